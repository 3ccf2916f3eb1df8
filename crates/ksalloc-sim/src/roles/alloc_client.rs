//! The second client: frames through KSMETHOD_STREAMALLOCATOR_ALLOC / FREE IRPs.
//!
//! An ALLOC that finds the pool empty pends; the driver completes it with the next
//! frame anyone frees (pending requests come before the function table). The client
//! waits on the IRP and measures pend-to-completion. Every `--cancel-every`-th pended
//! request is cancelled instead (IoCancelIrp): it must complete with STATUS_CANCELLED,
//! or — if the frame got there first — with the frame, which the client then uses.
//! Every `--bad-free-every`-th frame, the client also sends a FREE the driver must
//! refuse: a pointer into the middle of the frame it holds, or one into no frame at all.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ks_abi::NtStatus;
use ksalloc_model::irp::Completion;
use ksalloc_model::{Handle, Irp, KsClient, ModelKernel};

use super::Live;
use crate::frame;
use crate::histogram::Histogram;

/// An address no frame can have (inside the never-mapped first page).
const FOREIGN_POINTER: usize = 0x10;
/// Longest wait for a pended ALLOC beyond the hold time before it counts as stuck.
const STUCK_AFTER: Duration = Duration::from_secs(5);

/// What the ALLOC client saw.
#[derive(Debug, Default)]
pub struct AllocReport {
    /// ALLOC requests sent.
    pub requests: u64,
    /// Completed within the call with a frame.
    pub immediate: u64,
    /// Still pending when the call returned.
    pub pended: u64,
    /// Pended, then completed with a frame (including cancels that lost the race).
    pub completed_after_pend: u64,
    /// Cancels requested (IoCancelIrp on a pending ALLOC).
    pub cancels_requested: u64,
    /// Completed with STATUS_CANCELLED.
    pub cancelled: u64,
    /// Cancels that came too late: the IRP completed with a frame.
    pub cancel_lost: u64,
    /// Pended requests that did not complete in time (must stay 0).
    pub stuck: u64,
    /// Frames had, checked and freed with the FREE method.
    pub frames: u64,
    /// Frames whose content changed while held.
    pub corrupt: u64,
    /// FREEs with a bad pointer sent.
    pub bad_frees_sent: u64,
    /// ... and refused by the driver with STATUS_INVALID_PARAMETER.
    pub bad_frees_refused: u64,
    /// Pend-to-completion of every pended request that got a frame.
    pub pend_to_completion: Histogram,
    /// Answers the contract does not allow.
    pub problems: Vec<String>,
}

/// What the ALLOC client needs.
pub struct AllocClient<'a> {
    /// The kernel (to touch frames).
    pub kernel: &'a ModelKernel,
    /// The client sending the IRPs.
    pub client: &'a KsClient,
    /// The allocator handle.
    pub allocator: &'a Handle,
    /// Bytes of each frame.
    pub frame_size: usize,
    /// Distance between frame starts (so a "mid-frame" pointer stays inside one).
    pub stride: usize,
    /// How long each frame is held.
    pub hold: Duration,
    /// Cancel every n-th pended request (0: never).
    pub cancel_every: u64,
    /// A bad FREE every n-th frame (0: never).
    pub bad_free_every: u64,
    /// The run's shared state.
    pub live: &'a Live,
}

impl AllocClient<'_> {
    /// Runs until the run stops.
    #[must_use]
    pub fn run(&self) -> AllocReport {
        let mut report = AllocReport::default();
        let mut seq = u64::MAX / 2; // Distinct from the producers' numbers.
        while !self.live.stopping() {
            let Some(address) = self.one_frame(&mut report) else {
                continue;
            };
            seq += 1;
            frame::write(self.kernel, address, self.frame_size, seq);
            std::thread::sleep(self.hold);
            if !frame::verify(self.kernel, address, self.frame_size, seq) {
                report.corrupt += 1;
            }
            report.frames += 1;
            if self.bad_free_every != 0 && report.frames % self.bad_free_every == 0 {
                self.bad_free(address, &mut report);
            }
            let freed = self.client.free(self.allocator, address);
            if freed != NtStatus::SUCCESS {
                report
                    .problems
                    .push(format!("FREE of a held frame answered {freed:?}"));
            }
            // Relaxed: a progress counter.
            self.live.alloc_frames.fetch_add(1, Ordering::Relaxed);
        }
        report
    }

    /// One ALLOC request to its end: the frame it brought, if any.
    fn one_frame(&self, report: &mut AllocReport) -> Option<usize> {
        report.requests += 1;
        let irp = self.client.alloc(self.allocator);
        if let Some(done) = irp.completion() {
            if let Some(address) = irp.allocated_frame() {
                report.immediate += 1;
                return Some(address);
            }
            report
                .problems
                .push(format!("ALLOC failed at once: {:?}", done.status));
            // Do not spin on a refusing driver.
            std::thread::sleep(Duration::from_millis(1));
            return None;
        }
        let pended_at = Instant::now();
        report.pended += 1;
        let cancel = self.cancel_every != 0 && report.pended % self.cancel_every == 0;
        if cancel {
            report.cancels_requested += 1;
            irp.cancel();
        }
        let done = self.wait(&irp, report)?;
        match (done.status, irp.allocated_frame()) {
            (NtStatus::SUCCESS, Some(address)) => {
                report.completed_after_pend += 1;
                if cancel {
                    report.cancel_lost += 1;
                } else {
                    report.pend_to_completion.record(pended_at.elapsed());
                }
                Some(address)
            }
            (NtStatus::CANCELLED, _) if cancel => {
                report.cancelled += 1;
                None
            }
            (status, _) => {
                report
                    .problems
                    .push(format!("pended ALLOC completed with {status:?}"));
                None
            }
        }
    }

    /// Waits for a pended request; cancels it if it is stuck.
    fn wait(&self, irp: &Irp, report: &mut AllocReport) -> Option<Completion> {
        if let Some(done) = irp.wait(STUCK_AFTER + self.hold * 4) {
            return Some(done);
        }
        report.stuck += 1;
        report.problems.push(format!(
            "an ALLOC stayed pending for {:?}",
            STUCK_AFTER + self.hold * 4
        ));
        irp.cancel();
        irp.wait(STUCK_AFTER)?;
        // If the frame won the race after all, hand it back.
        if let Some(address) = irp.allocated_frame() {
            let _ = self.client.free(self.allocator, address);
        }
        None
    }

    /// A FREE the driver must refuse, while `held` is ours.
    fn bad_free(&self, held: usize, report: &mut AllocReport) {
        // Alternate: a pointer into the middle of our frame, then a foreign one. With
        // one-byte frames there is no middle: `held + 1` would be the next frame.
        let wild = if report.bad_frees_sent % 2 == 0 && self.stride > 1 {
            held + self.stride / 2
        } else {
            FOREIGN_POINTER
        };
        report.bad_frees_sent += 1;
        let status = self.client.free(self.allocator, wild);
        if status == NtStatus::INVALID_PARAMETER {
            report.bad_frees_refused += 1;
        } else {
            report.problems.push(format!(
                "FREE of the bad pointer {wild:#x} answered {status:?}"
            ));
        }
    }
}
