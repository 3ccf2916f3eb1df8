//! The threads of a run, one role each, and what they share.
//!
//! | role | thread(s) | talks to the driver through |
//! |---|---|---|
//! | [`source`] | `--producers` | FUNCTIONTABLE `AllocateFrame` at DISPATCH_LEVEL, FREEFRAME event |
//! | [`sink`] | 1 | FUNCTIONTABLE `FreeFrame` at DISPATCH_LEVEL |
//! | [`alloc_client`] | 1 | KSMETHOD_STREAMALLOCATOR_ALLOC / FREE IRPs, IoCancelIrp |
//! | [`renegotiate`] | 1 | IRP_MJ_CREATE / CLOSE of short-lived allocators |
//!
//! Each role keeps its own report and histograms (no shared locks on the hot path) and
//! bumps the few [`Live`] counters the progress line shows.

pub mod alloc_client;
pub mod renegotiate;
pub mod sink;
pub mod source;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// State every role sees.
#[derive(Debug, Default)]
pub struct Live {
    /// Set when the run is over: roles finish what they hold and return.
    pub stop: AtomicBool,
    /// Next frame sequence number.
    next_seq: AtomicU64,
    /// With `--count`: sequence numbers stop here.
    limit: Option<u64>,
    /// Frames the sink has checked and freed.
    pub streamed: AtomicU64,
    /// Frames the ALLOC client has had and freed.
    pub alloc_frames: AtomicU64,
    /// Producers still running (a counted run also ends when none is left).
    sources: AtomicUsize,
}

impl Live {
    /// Shared state for a run of `sources` producers that stops after `limit` frames,
    /// if any.
    #[must_use]
    pub fn new(limit: Option<u64>, sources: usize) -> Self {
        Self {
            limit,
            sources: AtomicUsize::new(sources),
            ..Self::default()
        }
    }

    /// A producer is done.
    pub fn source_done(&self) {
        self.sources.fetch_sub(1, Ordering::Relaxed);
    }

    /// Producers still running.
    #[must_use]
    pub fn sources_running(&self) -> usize {
        self.sources.load(Ordering::Relaxed)
    }

    /// Whether the run is over.
    #[must_use]
    pub fn stopping(&self) -> bool {
        // Relaxed: a flag polled in loops; nothing is published through it.
        self.stop.load(Ordering::Relaxed)
    }

    /// Asks every role to finish.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The next frame's sequence number, or `None` when the run is over or the count
    /// is reached.
    #[must_use]
    pub fn ticket(&self) -> Option<u64> {
        if self.stopping() {
            return None;
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        match self.limit {
            Some(limit) if seq >= limit => None,
            _ => Some(seq),
        }
    }

    /// Frames the sink has freed so far.
    #[must_use]
    pub fn streamed(&self) -> u64 {
        self.streamed.load(Ordering::Relaxed)
    }

    /// Frames the ALLOC client has freed so far.
    #[must_use]
    pub fn alloc_frames(&self) -> u64 {
        self.alloc_frames.load(Ordering::Relaxed)
    }
}

/// A frame on its way from a producer to the sink.
#[derive(Clone, Copy, Debug)]
pub struct Filled {
    /// Frame address, as AllocateFrame returned it.
    pub address: usize,
    /// Its sequence number (what it was filled with).
    pub seq: u64,
}
