//! Object lifetime (issue 15, section 1): a child must not outlive its parent's memory.
//!
//! `RelatedFileObject` is valid only during IRP_MJ_CREATE ("FILE_OBJECT structure"
//! page); the model poisons a file object's context at its IRP_MJ_CLOSE, so a driver
//! that reads its parent's context later fails here.

use ks_abi::NtStatus;
use ksalloc_model::catalogue::harness_framing as framing;
use ksalloc_model::{Handle, KsClient, ModelDriver, ModelKernel};

fn client() -> KsClient {
    KsClient::kernel(ModelDriver::new(ModelKernel::new()))
}

fn instances(client: &KsClient, filter: &Handle, id: u32) -> u32 {
    client.pin_instances(filter, id).expect("CINSTANCES")
}

#[test]
fn closing_the_filter_before_its_pin_touches_no_freed_memory() {
    let client = client();
    let filter = client.open_filter().unwrap();
    let pin = client.create_pin(&filter, 0).unwrap();
    client.close(filter);
    client.close(pin);
    client.driver().kernel().assert_no_leaks();
}

#[test]
fn closing_the_pin_before_its_allocator_touches_no_freed_memory() {
    let client = client();
    let filter = client.open_filter().unwrap();
    let pin = client.create_pin(&filter, 0).unwrap();
    let allocator = client.create_allocator(&pin, &framing()).unwrap();
    client.close(pin);
    client.close(filter);
    client.close(allocator);
    client.driver().kernel().assert_no_leaks();
}

/// All six orders of closing the filter, pin and allocator handles.
const ORDERS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

#[test]
fn every_close_order_of_filter_pin_and_allocator_is_safe_and_gives_instances_back() {
    for order in ORDERS {
        let client = client();
        let filter = client.open_filter().unwrap();
        let pin = client.create_pin(&filter, 0).unwrap();
        let allocator = client.create_allocator(&pin, &framing()).unwrap();
        let mut handles = [Some(filter), Some(pin), Some(allocator)];
        for which in order {
            client.close(handles[which].take().unwrap());
            if which == 1 {
                if let Some(filter) = &handles[0] {
                    // The pin's instance is back on its filter at once, whether or not
                    // its allocator is still open.
                    assert_eq!(instances(&client, filter, 0), 0, "order {order:?}");
                    let again = client.create_pin(filter, 0).expect("instance free again");
                    client.close(again);
                }
            }
        }
        client.driver().kernel().assert_no_leaks();
    }
}

#[test]
fn every_close_order_with_frames_out_and_allocs_pending_is_safe() {
    for order in ORDERS {
        let client = client();
        let kernel = client.driver().kernel().clone();
        let filter = client.open_filter().unwrap();
        let pin = client.create_pin(&filter, 0).unwrap();
        let allocator = client.create_allocator(&pin, &framing()).unwrap();
        // A kernel client holds the table (and so the allocator's file object).
        let table = client.function_table(&allocator).unwrap();
        let frames: Vec<usize> = (0..4)
            .map(|_| table.allocate_at_dispatch().unwrap())
            .collect();
        let pending = [client.alloc(&allocator), client.alloc(&allocator)];
        assert!(pending.iter().all(|irp| irp.completion().is_none()));
        let mut handles = [Some(filter), Some(pin), Some(allocator)];
        for which in order {
            client.close(handles[which].take().unwrap());
            let cancelled = pending
                .iter()
                .all(|irp| irp.completion().map(|c| c.status) == Some(NtStatus::CANCELLED));
            // The ALLOCs pend until the allocator's own handle closes, not its parents'.
            assert_eq!(cancelled, handles[2].is_none(), "order {order:?}");
        }
        // Parents gone, handle gone: the table still works until its reference goes.
        for &frame in &frames {
            table.free_at_dispatch(frame);
        }
        let again = table
            .allocate_at_dispatch()
            .expect("table after every close");
        table.free_at_dispatch(again);
        assert!(
            kernel.live_blocks() > 0,
            "the allocator's memory stays until CLOSE"
        );
        drop(table);
        kernel.assert_no_leaks();
    }
}

#[test]
fn a_pin_closed_after_its_filter_still_frees_its_instance_for_that_filter() {
    // A second pin on the same filter, while the first is open, is refused
    // (one instance); the filter's count stays right when the filter handle goes first.
    let client = client();
    let filter = client.open_filter().unwrap();
    let pin = client.create_pin(&filter, 0).unwrap();
    assert_eq!(instances(&client, &filter, 0), 1);
    let second = client.create_pin(&filter, 0);
    assert!(second.is_err());
    client.close(pin);
    assert_eq!(instances(&client, &filter, 0), 0);
    let again = client.create_pin(&filter, 0).unwrap();
    client.close(filter);
    client.close(again);
    client.driver().kernel().assert_no_leaks();
}
