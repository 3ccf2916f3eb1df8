//! A scenario's test rig: filter, pin and allocator, the function table, ALLOC requests
//! and frames it holds, all given back when the rig drops, whatever state a failed
//! check left it in.
//!
//! Tear-down order (each step only for what exists):
//! 1. cancel requests still pending and wait for them; frames they got are held;
//! 2. return held frames, through the table if there is one, else the FREE method;
//! 3. disable the FREEFRAME registration, destroy the event;
//! 4. close the allocator handle, wait again for requests (the close cancels them),
//!    release every request;
//! 5. release the table (its file-object reference), close the pin and the filter.

use alloc::vec::Vec;

use ks_abi::ks::{KsAllocatorFraming, KsStreamAllocatorStatus};
use ks_abi::NtStatus;

use crate::client::ProbeClient;
use crate::result::Failure;
use crate::scenario::Config;

/// How long [`Rig::fill_pool`] waits for frames cached on other processors to come back
/// (their DPCs run within microseconds on an idle machine; a second is generous).
pub const RECALL_WAIT_NS: u64 = 1_000_000_000;

/// An ALLOC request the rig sent.
enum Request<P> {
    /// Sent, not seen completed yet.
    Waiting(P),
    /// Seen completed (and released) with this result.
    Done(Result<usize, NtStatus>),
}

/// The objects one scenario works on.
pub struct Rig<'c, C: ProbeClient> {
    client: &'c C,
    framing: KsAllocatorFraming,
    wait_ms: u32,
    filter: Option<C::Handle>,
    pin: Option<C::Handle>,
    allocator: Option<C::Handle>,
    table: Option<C::Table>,
    event: Option<(C::Event, bool)>,
    requests: Vec<Request<C::Pending>>,
    held: Vec<usize>,
}

impl<'c, C: ProbeClient> Rig<'c, C> {
    /// Opens the filter, a pin on `config.pin_id` and an allocator with
    /// `config.framing`.
    ///
    /// # Errors
    /// The step that failed, with its status.
    pub fn open(client: &'c C, config: &Config) -> Result<Self, Failure> {
        let mut rig = Self {
            client,
            framing: config.framing,
            wait_ms: config.wait_ms,
            filter: None,
            pin: None,
            allocator: None,
            table: None,
            event: None,
            requests: Vec::new(),
            // Reserved up front so that recording a frame at DISPATCH_LEVEL never
            // allocates (the scenarios hold at most every frame plus a few extra).
            held: Vec::with_capacity(config.framing.frames as usize * 2 + 8),
        };
        let filter = client
            .open_filter()
            .map_err(|s| Failure::status("open filter failed", s))?;
        let filter = rig.filter.insert(filter);
        let pin = client
            .create_pin(filter, config.pin_id)
            .map_err(|s| Failure::status("create pin failed", s))?;
        let pin = rig.pin.insert(pin);
        let allocator = client
            .create_allocator(pin, &config.framing)
            .map_err(|s| Failure::status("create allocator failed", s))?;
        rig.allocator = Some(allocator);
        Ok(rig)
    }

    /// The client.
    #[must_use]
    pub const fn client(&self) -> &'c C {
        self.client
    }

    /// The framing the allocator was created with.
    #[must_use]
    pub const fn framing(&self) -> &KsAllocatorFraming {
        &self.framing
    }

    /// The filter and pin handles.
    ///
    /// # Errors
    /// When they were closed already.
    pub fn filter_and_pin(&self) -> Result<(&C::Handle, &C::Handle), Failure> {
        self.filter
            .as_ref()
            .zip(self.pin.as_ref())
            .ok_or_else(|| Failure::new("filter or pin already closed"))
    }

    /// The allocator handle.
    ///
    /// # Errors
    /// When it was closed already.
    pub fn allocator(&self) -> Result<&C::Handle, Failure> {
        self.allocator
            .as_ref()
            .ok_or_else(|| Failure::new("allocator already closed"))
    }

    /// Gets the function table as a kernel requestor.
    ///
    /// # Errors
    /// FUNCTIONTABLE's status.
    pub fn take_table(&mut self) -> Result<(), Failure> {
        let table = self
            .client
            .function_table(self.allocator()?)
            .map_err(|s| Failure::status("FUNCTIONTABLE refused to a kernel requestor", s))?;
        self.table = Some(table);
        Ok(())
    }

    /// The function table.
    ///
    /// # Errors
    /// When [`Self::take_table`] did not run.
    pub fn table(&self) -> Result<&C::Table, Failure> {
        self.table
            .as_ref()
            .ok_or_else(|| Failure::new("no function table"))
    }

    /// `AllocateFrame` through the table; the frame is held until returned.
    ///
    /// # Errors
    /// The routine's status (or `STATUS_INVALID_DEVICE_REQUEST` without a table).
    pub fn table_alloc(&mut self) -> Result<usize, NtStatus> {
        let table = self
            .table
            .as_ref()
            .ok_or(NtStatus::INVALID_DEVICE_REQUEST)?;
        let frame = self.client.table_allocate(table)?;
        self.held.push(frame);
        Ok(frame)
    }

    /// `FreeFrame` through the table.
    pub fn table_free(&mut self, frame: usize) {
        if let Some(table) = &self.table {
            self.client.table_free(table, frame);
            self.forget(frame);
        }
    }

    /// The FREE method.
    ///
    /// # Errors
    /// The method's status (the frame stays held).
    pub fn free_method(&mut self, frame: usize) -> Result<(), NtStatus> {
        let allocator = self
            .allocator
            .as_ref()
            .ok_or(NtStatus::INVALID_DEVICE_STATE)?;
        self.client.free_method(allocator, frame)?;
        self.forget(frame);
        Ok(())
    }

    fn forget(&mut self, frame: usize) {
        if let Some(i) = self.held.iter().position(|&f| f == frame) {
            self.held.swap_remove(i);
        }
    }

    /// Frames the rig holds, in no particular order.
    #[must_use]
    pub fn held(&self) -> &[usize] {
        &self.held
    }

    /// Takes every frame of the pool through the table, at DISPATCH_LEVEL, in order.
    ///
    /// Frames another processor caches (ksalloc's per-processor magazines) come back
    /// only when that processor's DPC runs, so an allocation at DISPATCH_LEVEL can fail
    /// while they are on their way: on `STATUS_INSUFFICIENT_RESOURCES` the rig drops to
    /// PASSIVE_LEVEL, yields, and goes on, for up to [`RECALL_WAIT_NS`].
    ///
    /// # Errors
    /// When the pool runs dry early (values: frames got, frames expected).
    pub fn fill_pool(&mut self) -> Result<Vec<usize>, Failure> {
        let want = self.framing.frames as usize;
        let mut frames = Vec::with_capacity(want);
        let client = self.client;
        let deadline = client.now_ns().saturating_add(RECALL_WAIT_NS);
        loop {
            let refused = client.at_dispatch(|| {
                while frames.len() < want {
                    match self.table_alloc() {
                        Ok(frame) => frames.push(frame),
                        Err(s) => return Some(s),
                    }
                }
                None
            });
            match refused {
                None => return Ok(frames),
                Some(NtStatus::INSUFFICIENT_RESOURCES) if client.now_ns() < deadline => {
                    client.yield_now();
                }
                Some(s) => {
                    return Err(Failure::status("pool ran dry before its Frames count", s)
                        .with_values(frames.len() as u64, want as u64))
                }
            }
        }
    }

    /// `KSPROPERTY_STREAMALLOCATOR_STATUS`.
    ///
    /// # Errors
    /// The property's status.
    pub fn status(&self) -> Result<KsStreamAllocatorStatus, Failure> {
        self.client
            .status(self.allocator()?)
            .map_err(|s| Failure::status("STATUS property failed", s))
    }

    /// Checks `AllocatedFrames` in STATUS.
    ///
    /// # Errors
    /// A mismatch (values: got, expected), or STATUS's failure.
    pub fn expect_allocated(&self, expected: u32, reason: &str) -> Result<(), Failure> {
        let got = self.status()?.allocated_frames;
        if got == expected {
            Ok(())
        } else {
            Err(Failure::new(reason).with_values(u64::from(got), u64::from(expected)))
        }
    }

    /// Sends an ALLOC request; returns its index.
    ///
    /// # Errors
    /// When it could not be sent.
    pub fn pend(&mut self) -> Result<usize, Failure> {
        let request = self
            .client
            .alloc_pending(self.allocator()?)
            .map_err(|s| Failure::status("ALLOC request could not be sent", s))?;
        self.requests.push(Request::Waiting(request));
        Ok(self.requests.len() - 1)
    }

    /// Waits up to `timeout_ms` for request `index`: `None` while pending. A frame it
    /// got is held from then on.
    pub fn wait(&mut self, index: usize, timeout_ms: u32) -> Option<Result<usize, NtStatus>> {
        let slot = self.requests.get_mut(index)?;
        let result = match slot {
            Request::Done(result) => return Some(*result),
            Request::Waiting(request) => self.client.wait(request, timeout_ms)?,
        };
        if let Request::Waiting(request) = core::mem::replace(slot, Request::Done(result)) {
            self.client.release_pending(request);
        }
        if let Ok(frame) = result {
            self.held.push(frame);
        }
        Some(result)
    }

    /// [`Self::wait`] without waiting.
    pub fn poll(&mut self, index: usize) -> Option<Result<usize, NtStatus>> {
        self.wait(index, 0)
    }

    /// Cancels request `index` (`IoCancelIrp`).
    pub fn cancel(&self, index: usize) {
        if let Some(Request::Waiting(request)) = self.requests.get(index) {
            self.client.cancel(request);
        }
    }

    /// Creates an event and enables FREEFRAME on it.
    ///
    /// # Errors
    /// The step that failed.
    pub fn enable_event(&mut self) -> Result<(), Failure> {
        let event = self
            .client
            .create_event()
            .map_err(|s| Failure::status("event could not be created", s))?;
        let allocator = self.allocator()?;
        let enabled = self.client.enable_free_frame(allocator, &event);
        self.event = Some((event, enabled.is_ok()));
        enabled.map_err(|s| Failure::status("enabling FREEFRAME failed", s))
    }

    /// The FREEFRAME event.
    ///
    /// # Errors
    /// When [`Self::enable_event`] did not run.
    pub fn event(&self) -> Result<&C::Event, Failure> {
        self.event
            .as_ref()
            .map(|(event, _)| event)
            .ok_or_else(|| Failure::new("no FREEFRAME event"))
    }

    /// Disables FREEFRAME (the event stays until tear-down).
    ///
    /// # Errors
    /// The disable status.
    pub fn disable_event(&mut self) -> Result<(), Failure> {
        let allocator = self
            .allocator
            .as_ref()
            .ok_or_else(|| Failure::new("allocator already closed"))?;
        let Some((event, enabled)) = &mut self.event else {
            return Err(Failure::new("no FREEFRAME event"));
        };
        *enabled = false;
        self.client
            .disable_free_frame(allocator, event)
            .map_err(|s| Failure::status("disabling FREEFRAME failed", s))
    }

    /// Closes the allocator handle now (the table, if taken, keeps its file object).
    pub fn close_allocator(&mut self) {
        if let Some(allocator) = self.allocator.take() {
            self.client.close(allocator);
        }
    }

    /// Closes the pin's and the filter's handles now, before the allocator's: the
    /// allocator must not depend on its parents' file objects after its create.
    pub fn close_parents(&mut self) {
        if let Some(pin) = self.pin.take() {
            self.client.close(pin);
        }
        if let Some(filter) = self.filter.take() {
            self.client.close(filter);
        }
    }

    /// Releases the function table's file-object reference now (the allocator's
    /// IRP_MJ_CLOSE once its handle is closed too).
    pub fn release_table(&mut self) {
        if let Some(table) = self.table.take() {
            self.client.release_table(table);
        }
    }

    /// Whether the allocator released its frame memory, if the client can tell.
    #[must_use]
    pub fn memory_released(&self) -> Option<bool> {
        self.client.memory_released(self.table.as_ref()?)
    }

    /// Returns every held frame: through the table if there is one, else the FREE
    /// method while the allocator is open.
    fn return_held(&mut self) {
        let client = self.client;
        for frame in core::mem::take(&mut self.held) {
            if let Some(table) = &self.table {
                client.at_dispatch(|| client.table_free(table, frame));
            } else if let Some(allocator) = &self.allocator {
                let _ = client.free_method(allocator, frame);
            }
        }
    }

    /// Waits for every request still pending, cancelling first if asked.
    fn settle_requests(&mut self, cancel: bool) {
        for index in 0..self.requests.len() {
            if cancel && self.poll(index).is_none() {
                self.cancel(index);
            }
            let _ = self.wait(index, self.wait_ms);
        }
    }
}

impl<C: ProbeClient> Drop for Rig<'_, C> {
    fn drop(&mut self) {
        let client = self.client;
        // 1. Requests: cancel what still waits; frames they got become held.
        self.settle_requests(true);
        // 2. Frames.
        self.return_held();
        // 3. Event.
        if let Some((event, enabled)) = self.event.take() {
            if let (true, Some(allocator)) = (enabled, &self.allocator) {
                let _ = client.disable_free_frame(allocator, &event);
            }
            client.destroy_event(event);
        }
        // 4. Allocator, then whatever its close completed.
        self.close_allocator();
        self.settle_requests(false);
        // A request that raced the close and won a frame gives it back here.
        self.return_held();
        for request in self.requests.drain(..) {
            if let Request::Waiting(request) = request {
                client.release_pending(request);
            }
        }
        // 5. Table, pin, filter.
        if let Some(table) = self.table.take() {
            client.release_table(table);
        }
        if let Some(pin) = self.pin.take() {
            client.close(pin);
        }
        if let Some(filter) = self.filter.take() {
            client.close(filter);
        }
    }
}
