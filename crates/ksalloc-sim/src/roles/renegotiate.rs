//! The output pin renegotiating its allocator, over and over: the role that meets the
//! fault injection.
//!
//! Only allocator creation allocates nonpaged pool (frames are preallocated; the hot
//! paths never allocate), so `--fault-rate` can only bite there. Every period this role
//! creates a short-lived allocator on the output pin (same frame size and alignment, a
//! few frames) and walks it through its whole life:
//!
//! 1. IRP_MJ_CREATE. Under fault injection it may fail: it must fail with
//!    STATUS_INSUFFICIENT_RESOURCES and leave the pool exactly as it was.
//! 2. FUNCTIONTABLE; allocate every frame at DISPATCH_LEVEL and fill it; one more
//!    AllocateFrame must fail at once (STATUS_INSUFFICIENT_RESOURCES).
//! 3. An ALLOC IRP, which pends (the pool is dry).
//! 4. Close the handle with frames out and the ALLOC pending. The table holds the file
//!    object referenced, so this is IRP_MJ_CLEANUP, not CLOSE: the ALLOC completes with
//!    STATUS_CANCELLED, the table keeps working (AllocateFrame answers
//!    STATUS_INSUFFICIENT_RESOURCES on the empty pool) and the frame memory stays.
//! 5. Check and free every frame through the table, then drop the table's reference:
//!    IRP_MJ_CLOSE releases the memory, and the pool is back to the graph's own
//!    block(s).

use std::time::Duration;

use ks_abi::ks::KsAllocatorFraming;
use ks_abi::NtStatus;
use ksalloc_core::allocator::Snapshot;
use ksalloc_model::{FileRef, FunctionTable, Handle, KsClient, ModelKernel};

use super::Live;
use crate::frame;

/// Most frames a renegotiation allocator has.
const MAX_FRAMES: u32 = 8;
/// Most bytes of frames it has (at least one frame, whatever its size).
const MAX_BYTES: usize = 1 << 20;

/// What the renegotiation role saw.
#[derive(Debug, Default)]
pub struct RenegotiateReport {
    /// Creations tried.
    pub attempts: u64,
    /// Allocators created and taken through their whole life.
    pub created: u64,
    /// Creations refused with STATUS_INSUFFICIENT_RESOURCES (injected pool faults).
    pub refused: u64,
    /// Frames allocated from them.
    pub frames: u64,
    /// ALLOCs pending at close that completed with STATUS_CANCELLED.
    pub cancelled_at_close: u64,
    /// Times the pool was not back to the graph's blocks after a cycle (must be 0).
    pub pool_mismatches: u64,
    /// Frames whose content changed.
    pub corrupt: u64,
    /// Answers the contract does not allow.
    pub problems: Vec<String>,
}

/// What the role needs.
pub struct Renegotiate<'a> {
    /// The kernel (pool accounting, frame access).
    pub kernel: &'a ModelKernel,
    /// The client creating the allocators.
    pub client: &'a KsClient,
    /// The output pin.
    pub pin: &'a Handle,
    /// The graph's framing (frame count is cut down here).
    pub framing: KsAllocatorFraming,
    /// Distance between frame starts.
    pub stride: usize,
    /// Pool blocks the rest of the graph owns (the main allocator's).
    pub baseline_blocks: usize,
    /// Time between cycles.
    pub period: Duration,
    /// The run's shared state.
    pub live: &'a Live,
}

impl Renegotiate<'_> {
    /// The framing of a renegotiation allocator.
    #[must_use]
    pub fn small_framing(&self) -> KsAllocatorFraming {
        let fit = u32::try_from(MAX_BYTES / self.stride.max(1)).unwrap_or(u32::MAX);
        KsAllocatorFraming {
            frames: fit.clamp(1, self.framing.frames.min(MAX_FRAMES)),
            ..self.framing
        }
    }

    /// Runs a cycle every period until the run stops.
    #[must_use]
    pub fn run(&self) -> RenegotiateReport {
        let mut report = RenegotiateReport::default();
        let framing = self.small_framing();
        loop {
            std::thread::sleep(self.period);
            if self.live.stopping() {
                break;
            }
            self.cycle(&framing, &mut report);
            if self.kernel.live_blocks() != self.baseline_blocks {
                report.pool_mismatches += 1;
                report.problems.push(format!(
                    "pool has {} blocks after a renegotiation, expected {}",
                    self.kernel.live_blocks(),
                    self.baseline_blocks
                ));
            }
        }
        report
    }

    fn cycle(&self, framing: &KsAllocatorFraming, report: &mut RenegotiateReport) {
        report.attempts += 1;
        let handle = match self.client.create_allocator(self.pin, framing) {
            Ok(handle) => handle,
            Err(NtStatus::INSUFFICIENT_RESOURCES) => {
                report.refused += 1;
                return;
            }
            Err(status) => {
                report
                    .problems
                    .push(format!("creating an allocator: {status:?}"));
                return;
            }
        };
        report.created += 1;
        let table = match self.client.function_table(&handle) {
            Ok(table) => table,
            Err(status) => {
                report.problems.push(format!("FUNCTIONTABLE: {status:?}"));
                self.client.close(handle);
                return;
            }
        };
        let len = framing.frame_size as usize;
        let mut held = Vec::new();
        while let Ok(address) = table.allocate_at_dispatch() {
            frame::write(self.kernel, address, len, address as u64);
            held.push(address);
        }
        report.frames += held.len() as u64;
        expect(
            held.len() == framing.frames as usize,
            report,
            "every frame is handed out, then AllocateFrame fails fast",
        );
        // Dry pool: the ALLOC pends; the close must cancel it.
        let irp = self.client.alloc(&handle);
        let pended = irp.completion().is_none();
        expect(pended, report, "an ALLOC on a dry pool pends");
        self.client.close(handle);
        match irp.completion() {
            Some(done) if done.status == NtStatus::CANCELLED => report.cancelled_at_close += 1,
            other => report
                .problems
                .push(format!("close left the pending ALLOC as {other:?}")),
        }
        let dry = table.allocate_at_dispatch();
        expect(
            dry == Err(NtStatus::INSUFFICIENT_RESOURCES),
            report,
            "the table keeps answering after cleanup (empty pool)",
        );
        let during = snapshot(table.file());
        expect(
            !during.closed && !during.memory_released,
            report,
            "frame memory stays until IRP_MJ_CLOSE",
        );
        self.give_back(&table, &held, len, report);
        let after = snapshot(table.file());
        expect(
            after.outstanding == 0 && after.free == after.total,
            report,
            "every frame is home before the reference goes",
        );
        // IRP_MJ_CLOSE: the caller checks the pool is back to the graph's own.
        drop(table);
    }

    fn give_back(
        &self,
        table: &FunctionTable,
        held: &[usize],
        len: usize,
        report: &mut RenegotiateReport,
    ) {
        for &address in held {
            if !frame::verify(self.kernel, address, len, address as u64) {
                report.corrupt += 1;
            }
            table.free_at_dispatch(address);
        }
    }
}

/// Records a broken expectation of the allocator's life cycle.
fn expect(ok: bool, report: &mut RenegotiateReport, what: &str) {
    if !ok {
        report
            .problems
            .push(format!("renegotiation: expected that {what}"));
    }
}

fn snapshot(handle: &FileRef) -> Snapshot {
    handle
        .object()
        .as_allocator()
        .expect("created as an allocator")
        .snapshot()
}
