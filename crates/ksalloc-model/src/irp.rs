//! IRPs: requestor mode, buffers, pending, cancel routine, completion exactly once.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ks_abi::NtStatus;
use ksalloc_core::{Irql, RequestHandle};

use crate::irql::{assert_irql_at_most, locks_held, raise_irql};

/// `Irp->RequestorMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestorMode {
    /// `KernelMode`: buffers are trusted kernel addresses.
    Kernel,
    /// `UserMode`: buffers must be probed and captured.
    User,
}

/// How an IRP was completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// `IoStatus.Status`.
    pub status: NtStatus,
    /// `IoStatus.Information`.
    pub information: usize,
}

/// The cancel routine a dispatcher installs (`IoSetCancelRoutine`'s argument).
pub type CancelRoutine = Box<dyn FnOnce(&Irp) + Send>;

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const CANCELLED: u8 = 2;

struct Inner {
    mode: RequestorMode,
    input: Vec<u8>,
    output: Mutex<Vec<u8>>,
    /// IDLE / ARMED (cancel routine set) / CANCELLED (IoCancelIrp ran).
    cancel_state: AtomicU8,
    cancel_routine: Mutex<Option<CancelRoutine>>,
    completion: Mutex<Option<Completion>>,
    done: Condvar,
    on_complete: Option<Box<dyn Fn() + Send + Sync>>,
}

/// An IRP. Cloning clones the handle; every clone is the same IRP.
#[derive(Clone)]
pub struct Irp(Arc<Inner>);

impl std::fmt::Debug for Irp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Irp")
            .field("key", &self.key())
            .field("mode", &self.0.mode)
            .finish()
    }
}

impl RequestHandle for Irp {
    fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
}

impl Irp {
    pub(crate) fn new(
        mode: RequestorMode,
        input: Vec<u8>,
        output_len: usize,
        on_complete: Option<Box<dyn Fn() + Send + Sync>>,
    ) -> Self {
        Self(Arc::new(Inner {
            mode,
            input,
            output: Mutex::new(vec![0; output_len]),
            cancel_state: AtomicU8::new(IDLE),
            cancel_routine: Mutex::new(None),
            completion: Mutex::new(None),
            done: Condvar::new(),
            on_complete,
        }))
    }

    /// `Irp->RequestorMode`.
    #[must_use]
    pub fn requestor_mode(&self) -> RequestorMode {
        self.0.mode
    }

    /// The input buffer (the KS request).
    #[must_use]
    pub fn input(&self) -> &[u8] {
        &self.0.input
    }

    /// Length of the output buffer.
    #[must_use]
    pub fn output_len(&self) -> usize {
        lock(&self.0.output).len()
    }

    /// A copy of the output buffer.
    #[must_use]
    pub fn output(&self) -> Vec<u8> {
        lock(&self.0.output).clone()
    }

    /// Writes `bytes` at the start of the output buffer.
    ///
    /// # Panics
    /// If they do not fit: a driver overrunning a caller's buffer.
    pub fn write_output(&self, bytes: &[u8]) {
        let mut out = lock(&self.0.output);
        assert!(
            bytes.len() <= out.len(),
            "driver wrote {} bytes into a {}-byte buffer",
            bytes.len(),
            out.len()
        );
        out[..bytes.len()].copy_from_slice(bytes);
    }

    /// Installs the routine [`Irp::cancel`] runs (what the dispatcher passes to
    /// `IoSetCancelRoutine`; arming happens in the platform's `arm_cancel`).
    pub fn set_cancel_routine(&self, routine: CancelRoutine) {
        *lock(&self.0.cancel_routine) = Some(routine);
    }

    /// Platform side of `IoSetCancelRoutine(irp, routine)` + the `Irp->Cancel` re-check.
    pub(crate) fn arm_cancel(&self) -> bool {
        assert!(
            lock(&self.0.cancel_routine).is_some(),
            "arming an IRP without a cancel routine"
        );
        self.0
            .cancel_state
            .compare_exchange(IDLE, ARMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Platform side of `IoSetCancelRoutine(irp, NULL) != NULL`.
    pub(crate) fn disarm_cancel(&self) -> bool {
        self.0
            .cancel_state
            .compare_exchange(ARMED, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// `IoCancelIrp`: marks the IRP cancelled and, if a cancel routine is armed, runs it
    /// at `DISPATCH_LEVEL` on this thread. Returns whether a routine ran.
    ///
    /// # Panics
    /// Above `DISPATCH_LEVEL`.
    #[allow(clippy::must_use_candidate)] // Cancelling is the point; the answer is extra.
    pub fn cancel(&self) -> bool {
        assert_irql_at_most(Irql::Dispatch, "IoCancelIrp");
        if self.0.cancel_state.swap(CANCELLED, Ordering::AcqRel) != ARMED {
            return false;
        }
        let routine = lock(&self.0.cancel_routine)
            .take()
            .expect("armed IRP has a cancel routine");
        let _irql = raise_irql(Irql::Dispatch);
        routine(self);
        true
    }

    /// `IoCompleteRequest`.
    ///
    /// # Panics
    /// On a second completion, with a cancel routine still armed, above
    /// `DISPATCH_LEVEL`, or with a spin lock held.
    #[track_caller]
    pub fn complete(&self, status: NtStatus, information: usize) {
        assert_irql_at_most(Irql::Dispatch, "IoCompleteRequest");
        assert_eq!(locks_held(), 0, "IoCompleteRequest with a spin lock held");
        assert_ne!(
            self.0.cancel_state.load(Ordering::Acquire),
            ARMED,
            "IRP completed with its cancel routine still set"
        );
        {
            let mut done = lock(&self.0.completion);
            assert!(
                done.is_none(),
                "IRP completed twice (first: {:?}, now: {status:?})",
                *done
            );
            *done = Some(Completion {
                status,
                information,
            });
        }
        // The routine may hold references (e.g. to the allocator); drop them now.
        drop(lock(&self.0.cancel_routine).take());
        self.0.done.notify_all();
        if let Some(hook) = &self.0.on_complete {
            hook();
        }
    }

    /// How the IRP completed, if it has.
    #[must_use]
    pub fn completion(&self) -> Option<Completion> {
        lock(&self.0.completion).clone()
    }

    /// Waits for completion (below `DISPATCH_LEVEL` only).
    #[track_caller]
    #[allow(clippy::significant_drop_tightening)] // The guard is the condvar's.
    pub fn wait(&self, timeout: Duration) -> Option<Completion> {
        assert_irql_at_most(Irql::Apc, "KeWaitForSingleObject(IRP event)");
        let guard = lock(&self.0.completion);
        let (guard, _) = self
            .0
            .done
            .wait_timeout_while(guard, timeout, |c| c.is_none())
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.clone()
    }

    /// The frame address a completed ALLOC wrote into its output buffer.
    #[must_use]
    pub fn allocated_frame(&self) -> Option<usize> {
        let done = self.completion()?;
        if done.status != NtStatus::SUCCESS || done.information != 8 {
            return None;
        }
        let out = self.output();
        out.get(..8)?.try_into().ok().map(usize::from_le_bytes)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
