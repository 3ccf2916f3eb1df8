//! The sink: holds each frame for the hold time, checks its content, frees it through
//! the function table at DISPATCH_LEVEL.
//!
//! Frames arrive in order and are all held equally long, so the frames held form a
//! queue sorted by due time: the sink frees what is due, then waits for the next frame
//! or the next due time, whichever comes first. It ends when every producer has gone
//! and the last held frame is freed.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use ksalloc_model::{FunctionTable, ModelKernel};

use super::{Filled, Live};
use crate::frame;

/// Longest idle wait (nothing held) before looking again.
const IDLE: Duration = Duration::from_millis(50);

/// What the sink saw.
#[derive(Debug, Default)]
pub struct SinkReport {
    /// Frames checked and freed.
    pub frames: u64,
    /// Frames whose content was not what their producer wrote.
    pub corrupt: u64,
    /// Most frames held at once.
    pub peak_held: usize,
}

/// What the sink needs.
pub struct Sink<'a> {
    /// The kernel (to read frames).
    pub kernel: &'a ModelKernel,
    /// The allocator's function table.
    pub table: &'a FunctionTable,
    /// Bytes of each frame to check.
    pub frame_size: usize,
    /// How long each frame is held.
    pub hold: Duration,
    /// The run's shared state.
    pub live: &'a Live,
}

impl Sink<'_> {
    /// Runs until every sender is gone and every frame is freed.
    #[must_use]
    pub fn run(&self, from_sources: &Receiver<Filled>) -> SinkReport {
        let mut report = SinkReport::default();
        let mut held: VecDeque<(Instant, Filled)> = VecDeque::new();
        let mut open = true;
        while open || !held.is_empty() {
            let now = Instant::now();
            while held.front().is_some_and(|(due, _)| *due <= now) {
                if let Some((_, frame)) = held.pop_front() {
                    self.release(frame, &mut report);
                }
            }
            let wait = held
                .front()
                .map_or(IDLE, |(due, _)| due.saturating_duration_since(now));
            if !open {
                std::thread::sleep(wait);
                continue;
            }
            match from_sources.recv_timeout(wait) {
                Ok(frame) => {
                    held.push_back((Instant::now() + self.hold, frame));
                    report.peak_held = report.peak_held.max(held.len());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
        }
        report
    }

    fn release(&self, frame: Filled, report: &mut SinkReport) {
        if !frame::verify(self.kernel, frame.address, self.frame_size, frame.seq) {
            report.corrupt += 1;
        }
        self.table.free_at_dispatch(frame.address);
        report.frames += 1;
        // Relaxed: a progress counter.
        self.live.streamed.fetch_add(1, Ordering::Relaxed);
    }
}
