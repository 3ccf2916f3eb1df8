//! A producer: allocates frames through the function table at DISPATCH_LEVEL, fills
//! them, hands them to the sink.
//!
//! The function table never waits: on an empty pool `AllocateFrame` fails at once with
//! STATUS_INSUFFICIENT_RESOURCES. The producer counts that, drops to PASSIVE_LEVEL and
//! waits (briefly) on the FREEFRAME event it enabled on the allocator, then retries. It
//! clears the event *before* each try, so a frame freed between the failed try and the
//! wait still wakes it.

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ks_abi::NtStatus;
use ksalloc_model::{FunctionTable, Handle, KsClient, ModelEvent, ModelKernel};

use super::{Filled, Live};
use crate::frame;
use crate::histogram::Histogram;

/// Longest FREEFRAME wait before trying again anyway.
const BACKOFF: Duration = Duration::from_millis(2);

/// What one producer saw.
#[derive(Debug, Default)]
pub struct SourceReport {
    /// Frames allocated, filled and handed to the sink.
    pub frames: u64,
    /// AllocateFrame calls that found the pool empty (STATUS_INSUFFICIENT_RESOURCES).
    pub empty: u64,
    /// FREEFRAME waits that timed out.
    pub wait_timeouts: u64,
    /// Duration of each successful AllocateFrame call.
    pub allocate: Histogram,
    /// From the first try for a frame to having it (retries and waits included).
    pub frame_wait: Histogram,
    /// Anything the driver answered that the contract does not allow here.
    pub problems: Vec<String>,
}

/// What a producer needs.
pub struct Source<'a> {
    /// The kernel (to touch frames and make the event handle).
    pub kernel: &'a ModelKernel,
    /// The client (to enable FREEFRAME).
    pub client: &'a KsClient,
    /// The allocator handle.
    pub allocator: &'a Handle,
    /// The allocator's function table.
    pub table: &'a FunctionTable,
    /// Bytes to fill in each frame.
    pub frame_size: usize,
    /// The run's shared state.
    pub live: &'a Live,
}

impl Source<'_> {
    /// Runs until the run stops or the frame count is reached.
    #[must_use]
    pub fn run(&self, to_sink: &Sender<Filled>) -> SourceReport {
        let mut report = SourceReport::default();
        let event = Arc::new(ModelEvent::notification());
        let handle = self.kernel.event_handle(&event);
        let enabled = self.client.enable_free_frame(self.allocator, handle);
        if enabled != NtStatus::SUCCESS {
            report
                .problems
                .push(format!("enabling FREEFRAME: {enabled:?}"));
        }
        while let Some(seq) = self.live.ticket() {
            let Some(address) = self.next_frame(&event, &mut report) else {
                break;
            };
            frame::write(self.kernel, address, self.frame_size, seq);
            report.frames += 1;
            if to_sink.send(Filled { address, seq }).is_err() {
                // The sink is gone (it only goes when every producer has): give it back.
                self.table.free_at_dispatch(address);
                report.problems.push("the sink went away".to_owned());
                break;
            }
        }
        if enabled == NtStatus::SUCCESS {
            let disabled = self.client.disable_free_frame(self.allocator, handle);
            if disabled != NtStatus::SUCCESS {
                report
                    .problems
                    .push(format!("disabling FREEFRAME: {disabled:?}"));
            }
        }
        self.kernel.close_event_handle(handle);
        self.live.source_done();
        report
    }

    /// A frame, retrying while the pool is empty; `None` if the run stopped first or
    /// the driver answered something unexpected.
    fn next_frame(&self, event: &ModelEvent, report: &mut SourceReport) -> Option<usize> {
        let first_try = Instant::now();
        loop {
            event.clear();
            let call = Instant::now();
            match self.table.allocate_at_dispatch() {
                Ok(address) => {
                    report.allocate.record(call.elapsed());
                    report.frame_wait.record(first_try.elapsed());
                    return Some(address);
                }
                Err(NtStatus::INSUFFICIENT_RESOURCES) => {
                    report.empty += 1;
                    if self.live.stopping() {
                        return None;
                    }
                    // PASSIVE_LEVEL again (allocate_at_dispatch lowered it): may wait.
                    if !event.wait(BACKOFF) {
                        report.wait_timeouts += 1;
                    }
                }
                Err(status) => {
                    report
                        .problems
                        .push(format!("AllocateFrame answered {status:?}"));
                    return None;
                }
            }
        }
    }
}
