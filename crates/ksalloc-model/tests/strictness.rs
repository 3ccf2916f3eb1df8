//! The model kernel catches what Driver Verifier would: each test breaks one rule and
//! expects the panic, or checks the accounting a rule relies on.

use std::time::Duration;

use ks_abi::NtStatus;
use ksalloc_core::{Irql, Platform, PoolCharge, SpinLock};
use ksalloc_model::{current_irql, pool, raise_irql, ModelEvent, ModelKernel, RequestorMode};

#[test]
fn irql_raises_and_lowers_in_nested_order() {
    assert_eq!(current_irql(), Irql::Passive);
    {
        let _apc = raise_irql(Irql::Apc);
        let _dispatch = raise_irql(Irql::Dispatch);
        assert_eq!(current_irql(), Irql::Dispatch);
    }
    assert_eq!(current_irql(), Irql::Passive);
}

#[test]
#[should_panic(expected = "KeRaiseIrql")]
fn raising_to_a_lower_irql_panics() {
    let _dispatch = raise_irql(Irql::Dispatch);
    let _ = raise_irql(Irql::Passive);
}

#[test]
#[should_panic(expected = "IRQL violation: KeWaitForSingleObject")]
fn waiting_at_dispatch_level_panics() {
    let event = ModelEvent::notification();
    let _irql = raise_irql(Irql::Dispatch);
    event.wait(Duration::from_millis(1));
}

#[test]
fn events_notify_and_synchronise() {
    let notification = ModelEvent::notification();
    notification.set();
    assert!(
        notification.wait(Duration::ZERO) && notification.is_set(),
        "stays set"
    );
    let sync = ModelEvent::synchronization();
    sync.set();
    assert!(sync.wait(Duration::ZERO));
    assert!(!sync.is_set(), "auto-reset after a satisfied wait");
    assert!(!sync.wait(Duration::from_millis(1)));
}

#[test]
#[should_panic(expected = "recursively")]
fn recursive_spin_lock_acquisition_panics() {
    let kernel = ModelKernel::new();
    let lock = kernel.new_lock(0u32);
    lock.with(|_| lock.with(|_| ()));
}

#[test]
fn spin_lock_runs_at_dispatch_level() {
    let kernel = ModelKernel::new();
    let lock = kernel.new_lock(1u32);
    let seen = lock.with(|v| {
        *v += 1;
        current_irql()
    });
    assert_eq!(seen, Irql::Dispatch);
    assert_eq!(current_irql(), Irql::Passive);
}

#[test]
#[should_panic(expected = "IRP completed twice")]
fn double_completion_panics() {
    let kernel = ModelKernel::new();
    let irp = kernel.new_irp(RequestorMode::Kernel, Vec::new(), 0);
    irp.complete(NtStatus::SUCCESS, 0);
    irp.complete(NtStatus::SUCCESS, 0);
}

#[test]
#[should_panic(expected = "spin lock held")]
fn completion_under_a_spin_lock_panics() {
    let kernel = ModelKernel::new();
    let irp = kernel.new_irp(RequestorMode::Kernel, Vec::new(), 0);
    let lock = kernel.new_lock(());
    lock.with(|()| irp.complete(NtStatus::SUCCESS, 0));
}

#[test]
#[should_panic(expected = "bytes into a 4-byte buffer")]
fn output_overrun_panics() {
    let kernel = ModelKernel::new();
    let irp = kernel.new_irp(RequestorMode::User, Vec::new(), 4);
    irp.write_output(&[0; 8]);
}

#[test]
fn uncompleted_irps_and_unfreed_blocks_are_leaks() {
    let kernel = ModelKernel::new();
    let irp = kernel.new_irp(RequestorMode::Kernel, Vec::new(), 0);
    let block = kernel.alloc_nonpaged(64, 16, PoolCharge::Driver).unwrap();
    assert_eq!(
        (
            kernel.live_irps(),
            kernel.live_blocks(),
            kernel.live_bytes()
        ),
        (1, 1, 64)
    );
    let leak = std::panic::catch_unwind(|| kernel.assert_no_leaks());
    assert!(leak.is_err(), "a live block is a leak");
    irp.complete(NtStatus::SUCCESS, 0);
    kernel.free_nonpaged(block);
    kernel.assert_no_leaks();
}

#[test]
#[should_panic(expected = "PAGE_FAULT_IN_NONPAGED_AREA")]
fn touching_freed_pool_panics() {
    let kernel = ModelKernel::new();
    let block = kernel.alloc_nonpaged(64, 16, PoolCharge::Driver).unwrap();
    let base = ksalloc_core::platform::FrameMemory::base(&block);
    kernel.free_nonpaged(block);
    kernel.with_bytes(base, 1, |b| b[0] = 1);
}

#[test]
#[should_panic(expected = "runs past its block")]
fn touching_past_a_block_panics() {
    let kernel = ModelKernel::new();
    let block = kernel.alloc_nonpaged(64, 16, PoolCharge::Driver).unwrap();
    let base = ksalloc_core::platform::FrameMemory::base(&block);
    kernel.with_bytes(base + 60, 8, |b| b[0] = 1);
}

#[test]
fn nth_allocation_fault_fires_once_on_this_thread() {
    let kernel = ModelKernel::new();
    pool::fail_nth_allocation(2);
    let first = kernel.alloc_nonpaged(8, 8, PoolCharge::Driver);
    let second = kernel.alloc_nonpaged(8, 8, PoolCharge::Driver);
    let third = kernel.alloc_nonpaged(8, 8, PoolCharge::Driver);
    assert!(pool::disarm(), "the armed failure fired");
    assert!(first.is_some() && second.is_none() && third.is_some());
    assert_eq!(kernel.pool_failures(), 1);
    let other_thread = std::thread::spawn({
        let kernel = kernel.clone();
        move || {
            pool::fail_nth_allocation(1);
            let got = kernel.alloc_nonpaged(8, 8, PoolCharge::Driver).is_none();
            pool::disarm();
            got
        }
    });
    assert!(other_thread.join().unwrap(), "armed per thread");
    kernel.free_nonpaged(first.unwrap());
    kernel.free_nonpaged(third.unwrap());
    kernel.assert_no_leaks();
}

#[test]
fn random_faults_are_reproducible_from_the_seed() {
    let pattern = |seed| {
        let kernel = ModelKernel::new();
        kernel.set_random_faults(0.5, seed);
        let got: Vec<bool> = (0..64)
            .map(|_| {
                kernel
                    .alloc_nonpaged(8, 8, PoolCharge::Driver)
                    .map(|b| kernel.free_nonpaged(b))
                    .is_some()
            })
            .collect();
        kernel.assert_no_leaks();
        got
    };
    let a = pattern(7);
    assert_eq!(a, pattern(7));
    assert_ne!(a, pattern(8));
    let failures = a.iter().filter(|ok| !**ok).count();
    assert!((16..=48).contains(&failures), "about half fail: {failures}");
}

#[test]
fn cancel_runs_the_armed_routine_at_dispatch_level() {
    let kernel = ModelKernel::new();
    let irp = kernel.new_irp(RequestorMode::Kernel, Vec::new(), 0);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let record = std::sync::Arc::clone(&seen);
    irp.set_cancel_routine(Box::new(move |irp| {
        *record.lock().unwrap() = Some(current_irql());
        irp.complete(NtStatus::CANCELLED, 0);
    }));
    let lock = kernel.new_lock(());
    assert!(lock.with(|()| kernel.arm_cancel(&irp)));
    assert!(irp.cancel());
    assert_eq!(*seen.lock().unwrap(), Some(Irql::Dispatch));
    assert_eq!(
        irp.completion().map(|c| c.status),
        Some(NtStatus::CANCELLED)
    );
    kernel.assert_no_leaks();
}
