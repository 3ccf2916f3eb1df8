//! The KS graph on the model kernel.
//!
//! Built and torn down the way a kernel client does it: open the filter, connect its
//! pins, run them, create the allocator on the source's connection (the input pin) and
//! take its function table.

use std::fmt;

use ks_abi::guid::KSPROPSETID_CONNECTION;
use ks_abi::ioctl::IOCTL_KS_PROPERTY;
use ks_abi::ks::{connection, property_type, KsAllocatorFraming};
use ks_abi::NtStatus;
use ksalloc_core::allocator::Snapshot;
use ksalloc_core::ks::filter::state;
use ksalloc_core::ks::KsObject;
use ksalloc_model::client::request;
use ksalloc_model::{FileRef, FunctionTable, Handle, KsClient, ModelDriver, ModelKernel};

/// Pin factory the source connects to; it gets the graph's allocator.
pub const INPUT_PIN: u32 = 0;
/// Pin factory on the sink's side; the renegotiation role creates its allocators there.
pub const OUTPUT_PIN: u32 = 1;

/// A step of building the graph failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraphError {
    /// What was being done.
    pub step: &'static str,
    /// The driver's answer.
    pub status: NtStatus,
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.step, self.status)
    }
}

impl std::error::Error for GraphError {}

/// The open graph.
pub struct Graph {
    /// The kernel everything runs on.
    pub kernel: ModelKernel,
    /// The kernel-mode client that built it.
    pub client: KsClient,
    filter: Handle,
    /// The input pin (the source's connection).
    pub input: Handle,
    /// The output pin (the sink's connection).
    pub output: Handle,
    /// The allocator on the input pin.
    pub allocator: Handle,
    /// Its function table (FUNCTIONTABLE, as a kernel requestor gets it).
    pub table: FunctionTable,
}

/// How the graph came down.
#[derive(Clone, Copy, Debug)]
pub struct Teardown {
    /// The allocator right before its handle closed.
    pub before_close: Snapshot,
    /// The allocator after its handle closed (IRP_MJ_CLEANUP; the table still holds
    /// the file object): open, every frame home.
    pub after_cleanup: Snapshot,
    /// Whether the table's release (IRP_MJ_CLOSE) gave the frame memory and its
    /// budget charge back.
    pub released_at_close: bool,
    /// The driver's frame budget while streaming: bytes in use, and the limit.
    pub budget: (usize, usize),
}

fn step<T>(step: &'static str, result: Result<T, NtStatus>) -> Result<T, GraphError> {
    result.map_err(|status| GraphError { step, status })
}

/// `KSPROPERTY_CONNECTION_STATE` Set on a pin.
fn set_state(client: &KsClient, pin: &Handle, value: u32) -> Result<(), NtStatus> {
    let irp = client.ioctl(
        pin,
        IOCTL_KS_PROPERTY,
        &request(
            &KSPROPSETID_CONNECTION,
            connection::PROPERTY_STATE,
            property_type::SET,
            &[],
        ),
        &value.to_le_bytes(),
    );
    match irp.completion() {
        Some(done) if done.status == NtStatus::SUCCESS => Ok(()),
        Some(done) => Err(done.status),
        None => Err(NtStatus::PENDING),
    }
}

/// Walks a pin through the KS states to `to`, one step at a time as KS requires.
fn walk_states(client: &KsClient, pin: &Handle, path: &[u32]) -> Result<(), NtStatus> {
    path.iter().try_for_each(|&s| set_state(client, pin, s))
}

impl Graph {
    /// Builds the graph on `kernel` with an allocator of `framing`.
    ///
    /// # Errors
    /// The first step the driver refused.
    pub fn build(kernel: &ModelKernel, framing: &KsAllocatorFraming) -> Result<Self, GraphError> {
        let client = KsClient::kernel(ModelDriver::new(kernel.clone()));
        let filter = step("opening the filter", client.open_filter())?;
        let input = step(
            "connecting the input pin",
            client.create_pin(&filter, INPUT_PIN),
        )?;
        let output = step(
            "connecting the output pin",
            client.create_pin(&filter, OUTPUT_PIN),
        )?;
        let run = [state::ACQUIRE, state::PAUSE, state::RUN];
        step("running the input pin", walk_states(&client, &input, &run))?;
        step(
            "running the output pin",
            walk_states(&client, &output, &run),
        )?;
        let allocator = step(
            "creating the allocator on the input pin",
            client.create_allocator(&input, framing),
        )?;
        let table = step(
            "getting the function table",
            client.function_table(&allocator),
        )?;
        Ok(Self {
            kernel: kernel.clone(),
            client,
            filter,
            input,
            output,
            allocator,
            table,
        })
    }

    /// The allocator engine behind the handle (for snapshots).
    ///
    /// # Panics
    /// Never: the handle was created as an allocator.
    #[must_use]
    pub fn engine(&self) -> std::sync::Arc<KsObject<ModelKernel>> {
        self.allocator.object()
    }

    /// A snapshot of the allocator.
    ///
    /// # Panics
    /// Never: the handle was created as an allocator.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        self.engine()
            .as_allocator()
            .expect("the allocator handle is an allocator")
            .snapshot()
    }

    /// Stops the pins and closes every handle, allocator first.
    ///
    /// # Errors
    /// A state change the driver refused (every handle is closed regardless).
    ///
    /// # Panics
    /// Never: the allocator handle was created as an allocator.
    pub fn teardown(self) -> Result<Teardown, GraphError> {
        let Self {
            kernel,
            client,
            filter,
            input,
            output,
            allocator,
            table,
        } = self;
        let engine_of = |h: &FileRef| {
            h.object()
                .as_allocator()
                .expect("the allocator handle is an allocator")
                .snapshot()
        };
        let before_close = engine_of(&allocator);
        let budget = kernel.frame_budget();
        let streaming_budget = (budget.in_use(), budget.limit());
        let frame_bytes = table
            .file()
            .object()
            .as_allocator()
            .map_or(0, |a| a.framing().total_bytes());
        let pool_before = kernel.live_bytes();
        client.close(allocator);
        let after_cleanup = engine_of(table.file());
        drop(table);
        // At least the frames go back (the object's other pool blocks, such as its
        // processor calls, go with it).
        let released_at_close = kernel.live_bytes() + frame_bytes <= pool_before
            && budget.in_use() + frame_bytes == streaming_budget.0;
        let stop = [state::PAUSE, state::ACQUIRE, state::STOP];
        let stopped =
            walk_states(&client, &input, &stop).and_then(|()| walk_states(&client, &output, &stop));
        client.close(input);
        client.close(output);
        client.close(filter);
        step("stopping the pins", stopped)?;
        Ok(Teardown {
            before_close,
            after_cleanup,
            released_at_close,
            budget: streaming_budget,
        })
    }
}
