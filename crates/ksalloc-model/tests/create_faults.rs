//! Every pool allocation of every create path fails in turn: each failure is
//! STATUS_INSUFFICIENT_RESOURCES, leaves no partial object (pin instances given back,
//! no file object, no pool block) and the same create then succeeds.
//!
//! This binary routes the core's heap allocations through the model's fault countdown
//! (on Windows they come from nonpaged pool through wdk-alloc), so the countdown covers
//! every allocation a create makes: the file-object context, the allocator's metadata,
//! its event and its frame block.

use ks_abi::guid::KSPROPSETID_PIN;
use ks_abi::ks::pin;
use ks_abi::NtStatus;
use ksalloc_core::ks::filter::PREFERRED_FRAMING;
use ksalloc_model::{pool, KsClient, ModelDriver, ModelKernel};

#[global_allocator]
static GLOBAL: pool::FaultyGlobal = pool::FaultyGlobal;

/// Fails allocation 1, 2, ... of `create` until it succeeds without the failure firing;
/// returns how many allocation points it has.
fn fail_each<T>(
    kernel: &ModelKernel,
    mut create: impl FnMut() -> Result<T, NtStatus>,
    mut check_clean: impl FnMut(),
) -> (u64, T) {
    for n in 1.. {
        pool::fail_nth_driver_allocation(n);
        let result = create();
        let fired = pool::disarm();
        match result {
            Err(status) => {
                assert!(
                    fired,
                    "create failed with {status:?} without an injected fault"
                );
                assert_eq!(status, NtStatus::INSUFFICIENT_RESOURCES, "allocation {n}");
                check_clean();
            }
            Ok(value) => {
                assert!(!fired, "allocation {n} failed but create still succeeded");
                let _ = kernel;
                return (n - 1, value);
            }
        }
    }
    unreachable!()
}

#[test]
fn every_create_path_survives_each_allocation_failing() {
    let kernel = ModelKernel::new();
    let client = KsClient::kernel(ModelDriver::new(kernel.clone()));

    let (filter_points, filter) = fail_each(
        &kernel,
        || client.open_filter(),
        || assert_eq!(kernel.live_files(), 0),
    );
    let instances = |id: u32| {
        client
            .get(
                &filter,
                &KSPROPSETID_PIN,
                pin::CINSTANCES,
                &[id.to_le_bytes(), [0; 4]].concat(),
                8,
            )
            .unwrap()
    };
    let (pin_points, pin) = fail_each(
        &kernel,
        || client.create_pin(&filter, 0),
        || {
            assert_eq!(kernel.live_files(), 1, "only the filter");
            assert_eq!(
                instances(0)[4..8],
                0u32.to_le_bytes(),
                "pin instance given back"
            );
        },
    );
    // The filter's and the pin's shared state (what their children reference).
    let shared_blocks = kernel.live_blocks();
    assert_eq!(shared_blocks, 2, "filter and pin state");
    let (allocator_points, allocator) = fail_each(
        &kernel,
        || client.create_allocator(&pin, &PREFERRED_FRAMING),
        || {
            assert_eq!(kernel.live_files(), 2, "filter and pin only");
            assert_eq!(
                kernel.live_blocks(),
                shared_blocks,
                "no frame block left behind"
            );
            assert_eq!(kernel.frame_budget().in_use(), 0, "budget given back");
        },
    );
    println!(
        "allocation points: filter {filter_points}, pin {pin_points}, allocator {allocator_points}"
    );
    assert!(
        filter_points >= 1 && pin_points >= 1,
        "the context allocation is a fault point"
    );
    assert!(
        allocator_points >= 5,
        "context, free list, queue, events, event, frames: {allocator_points}"
    );
    for handle in [allocator, pin, filter] {
        client.close(handle);
    }
    kernel.assert_no_leaks();
}
