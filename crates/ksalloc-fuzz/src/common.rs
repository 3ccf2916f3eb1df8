//! What the targets share: a fresh graph on a fresh model kernel, the state a rejected
//! request must leave alone, and checks on what a request returned.

use std::sync::Arc;

use ks_abi::guid::{
    KSPROPSETID_CONNECTION, KSPROPSETID_PIN, KSPROPSETID_STREAM, KSPROPSETID_STREAM_ALLOCATOR,
};
use ks_abi::ioctl::{
    IOCTL_KS_DISABLE_EVENT, IOCTL_KS_ENABLE_EVENT, IOCTL_KS_METHOD, IOCTL_KS_PROPERTY,
    IOCTL_KS_READ_STREAM, IOCTL_KS_RESET_STATE, IOCTL_KS_WRITE_STREAM,
};
use ks_abi::ks::{connection, pin, stream, stream_allocator, KsAllocatorFraming};
use ks_abi::NtStatus;
use ksalloc_core::stats::Counters;
use ksalloc_core::{Platform, Snapshot};
use ksalloc_model::catalogue::harness_framing;
use ksalloc_model::{Handle, KsClient, ModelDriver, ModelEvent, ModelKernel};

/// The event handle the first `event_handle` of a fresh model kernel returns: seeds
/// name it in `KSEVENTDATA` so ENABLE/DISABLE can succeed.
pub const FIRST_EVENT_HANDLE: usize = 0x104;

/// IOCTL codes a one-byte selector names; anything else reads a raw `u32` code.
pub const CODES: [u32; 7] = [
    IOCTL_KS_PROPERTY,
    IOCTL_KS_METHOD,
    IOCTL_KS_ENABLE_EVENT,
    IOCTL_KS_DISABLE_EVENT,
    IOCTL_KS_READ_STREAM,
    IOCTL_KS_WRITE_STREAM,
    IOCTL_KS_RESET_STATE,
];

/// Selector byte that means "a raw little-endian `u32` code follows".
pub const RAW_CODE: u8 = 0xFF;

/// A filter, pin 0 and an allocator on it (the catalogue's framing: 4 x 256 bytes), on
/// a fresh model kernel, plus one event handle a client could name.
pub struct Graph {
    /// The kernel.
    pub kernel: ModelKernel,
    /// A kernel-mode client.
    pub client: KsClient,
    /// The filter.
    pub filter: Handle,
    /// Pin 0.
    pub pin: Handle,
    /// The allocator on pin 0.
    pub allocator: Handle,
    /// An event handle (== [`FIRST_EVENT_HANDLE`]) and its event.
    pub event: (usize, Arc<ModelEvent>),
}

impl Graph {
    /// Builds the graph.
    ///
    /// # Panics
    /// If the graph cannot be built (a harness bug, or a regression the unit tests catch).
    #[must_use]
    pub fn new() -> Self {
        Self::with_framing(&harness_framing())
    }

    /// Builds the graph with this allocator framing.
    ///
    /// # Panics
    /// As [`Graph::new`].
    #[must_use]
    pub fn with_framing(framing: &KsAllocatorFraming) -> Self {
        let kernel = ModelKernel::new();
        let client = KsClient::kernel(ModelDriver::new(kernel.clone()));
        let filter = client.open_filter().expect("graph: filter");
        let pin = client.create_pin(&filter, 0).expect("graph: pin 0");
        let allocator = client
            .create_allocator(&pin, framing)
            .expect("graph: allocator");
        let event = Arc::new(ModelEvent::notification());
        let handle = kernel.event_handle(&event);
        assert_eq!(handle, FIRST_EVENT_HANDLE, "model handle numbering changed");
        Self {
            kernel,
            client,
            filter,
            pin,
            allocator,
            event: (handle, event),
        }
    }

    /// The allocator engine.
    ///
    /// # Panics
    /// Never: the handle is an allocator.
    #[must_use]
    pub fn engine(&self) -> &ksalloc_core::Allocator<ModelKernel> {
        self.allocator.object().as_allocator().expect("allocator")
    }

    /// Everything a rejected request must leave unchanged.
    #[must_use]
    pub fn observe(&self) -> Observed {
        let get = |file: &Handle, set, id, extra: &[u8], len| {
            self.client
                .get(file, set, id, extra, len)
                .unwrap_or_default()
        };
        let mut instances = Vec::new();
        for id in 0u32..2 {
            instances.extend(get(
                &self.filter,
                &KSPROPSETID_PIN,
                pin::CINSTANCES,
                &[id.to_le_bytes(), [0; 4]].concat(),
                8,
            ));
        }
        Observed {
            allocator: without_rejections(self.engine().snapshot()),
            pin_state: get(
                &self.pin,
                &KSPROPSETID_CONNECTION,
                connection::PROPERTY_STATE,
                &[],
                4,
            ),
            pin_allocator: get(
                &self.pin,
                &KSPROPSETID_STREAM,
                stream::PROPERTY_ALLOCATOR,
                &[],
                8,
            ),
            allocator_status: get(
                &self.allocator,
                &KSPROPSETID_STREAM_ALLOCATOR,
                stream_allocator::PROPERTY_STATUS,
                &[],
                32,
            ),
            instances,
            live_blocks: self.kernel.live_blocks(),
            live_files: self.kernel.live_files(),
            live_irps: self.kernel.live_irps(),
        }
    }

    /// Closes everything (children first) and checks that nothing leaked.
    ///
    /// # Panics
    /// On a leak.
    pub fn teardown(self) {
        let Self {
            kernel,
            client,
            filter,
            pin,
            allocator,
            event,
        } = self;
        client.close(allocator);
        client.close(pin);
        client.close(filter);
        kernel.close_event_handle(event.0);
        drop(event);
        drop(client);
        kernel.assert_no_leaks();
    }
}

impl Default for Graph {
    fn default() -> Self {
        Self::new()
    }
}

/// A snapshot with the two counters a rejected request may bump zeroed.
#[must_use]
pub fn without_rejections(mut snap: Snapshot) -> Snapshot {
    snap.counters = Counters {
        rejected_frees: 0,
        failed_allocations: 0,
        ..snap.counters
    };
    snap
}

/// The state [`Graph::observe`] reads.
#[derive(Debug, PartialEq, Eq)]
pub struct Observed {
    allocator: Snapshot,
    pin_state: Vec<u8>,
    pin_allocator: Vec<u8>,
    allocator_status: Vec<u8>,
    instances: Vec<u8>,
    live_blocks: usize,
    live_files: i64,
    live_irps: i64,
}

/// The function table's two routine addresses, as little-endian bytes.
#[must_use]
pub fn table_address_bytes(kernel: &ModelKernel) -> [[u8; 8]; 2] {
    let [allocate, free] = kernel.function_table();
    [(allocate as u64).to_le_bytes(), (free as u64).to_le_bytes()]
}

/// Panics if `bytes` carries a function-table routine address: what a user-mode
/// requestor must never be handed.
///
/// # Panics
/// As described.
pub fn assert_no_table_address(kernel: &ModelKernel, bytes: &[u8], what: &str) {
    for address in table_address_bytes(kernel) {
        assert!(
            !bytes.windows(8).any(|w| w == address),
            "{what}: a user-mode requestor received a function-table address"
        );
    }
}

/// Touches the first and last byte of a frame: panics (in the model pool) unless the
/// whole frame lies inside one live pool block.
pub fn touch_frame(kernel: &ModelKernel, address: usize, frame_size: usize) {
    ksalloc_model::driver::at_dispatch(|| {
        kernel.with_bytes(address, 1, |b| b[0] ^= 0x5A);
        kernel.with_bytes(address + frame_size - 1, 1, |b| b[0] ^= 0xA5);
    });
}

/// The IOCTL code a selector byte names (`None`: read a raw code).
#[must_use]
pub fn code_of(selector: u8) -> Option<u32> {
    CODES.get(usize::from(selector)).copied()
}

/// The selector byte for `code` ([`RAW_CODE`] when it has none).
#[must_use]
pub fn selector_of(code: u32) -> u8 {
    CODES
        .iter()
        .position(|&c| c == code)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(RAW_CODE)
}

/// The status of a completed IRP or `STATUS_PENDING`.
#[must_use]
pub fn status_of(irp: &ksalloc_model::Irp) -> NtStatus {
    irp.completion().map_or(NtStatus::PENDING, |c| c.status)
}
