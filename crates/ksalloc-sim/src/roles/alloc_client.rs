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
use crate::summary::AllocClientSummary;

/// An address no frame can have (inside the never-mapped first page).
const FOREIGN_POINTER: usize = 0x10;
/// Longest wait for a pended ALLOC beyond the hold time before it counts as stuck.
const STUCK_AFTER: Duration = Duration::from_secs(5);

/// What the ALLOC client saw.
#[derive(Debug, Default)]
pub struct AllocReport {
    /// The counts the summary reports as they are.
    pub counts: AllocClientSummary,
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
                report.counts.corrupt += 1;
            }
            report.counts.frames += 1;
            if self.bad_free_every != 0 && report.counts.frames % self.bad_free_every == 0 {
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
        report.counts.requests += 1;
        let irp = self.client.alloc(self.allocator);
        if let Some(done) = irp.completion() {
            if let Some(address) = irp.allocated_frame() {
                report.counts.immediate += 1;
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
        report.counts.pended += 1;
        let cancel = self.cancel_every != 0 && report.counts.pended % self.cancel_every == 0;
        if cancel {
            report.counts.cancels_requested += 1;
            irp.cancel();
        }
        let done = self.wait(&irp, report)?;
        match (done.status, irp.allocated_frame()) {
            (NtStatus::SUCCESS, Some(address)) => {
                report.counts.completed_after_pend += 1;
                if cancel {
                    report.counts.cancel_lost += 1;
                } else {
                    report.pend_to_completion.record(pended_at.elapsed());
                }
                Some(address)
            }
            (NtStatus::CANCELLED, _) if cancel => {
                report.counts.cancelled += 1;
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
        report.counts.stuck += 1;
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
        let wild = if report.counts.bad_frees_sent % 2 == 0 && self.stride > 1 {
            held + self.stride / 2
        } else {
            FOREIGN_POINTER
        };
        report.counts.bad_frees_sent += 1;
        let status = self.client.free(self.allocator, wild);
        if status == NtStatus::INVALID_PARAMETER {
            report.counts.bad_frees_refused += 1;
        } else {
            report.problems.push(format!(
                "FREE of the bad pointer {wild:#x} answered {status:?}"
            ));
        }
    }
}
