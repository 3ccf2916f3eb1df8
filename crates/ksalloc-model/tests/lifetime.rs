//! Object lifetime (issue 15, section 1): a child must not outlive its parent's memory.
//!
//! `RelatedFileObject` is valid only during IRP_MJ_CREATE ("FILE_OBJECT structure"
//! page); the model poisons a file object's context at its IRP_MJ_CLOSE, so a driver
//! that reads its parent's context later fails here.

use ks_abi::guid::KSPROPSETID_PIN;
use ks_abi::ks::{file_alignment, pin, pool_type, KsAllocatorFraming};
use ksalloc_model::{Handle, KsClient, ModelDriver, ModelKernel};

fn framing() -> KsAllocatorFraming {
    KsAllocatorFraming {
        options_flags: 0,
        pool_type: pool_type::NON_PAGED,
        frames: 4,
        frame_size: 256,
        file_alignment: file_alignment::B64,
        reserved: 0,
    }
}

fn client() -> KsClient {
    KsClient::kernel(ModelDriver::new(ModelKernel::new()))
}

fn instances(client: &KsClient, filter: &Handle, id: u32) -> u32 {
    let bytes = client
        .get(
            filter,
            &KSPROPSETID_PIN,
            pin::CINSTANCES,
            &[id.to_le_bytes(), [0; 4]].concat(),
            8,
        )
        .expect("CINSTANCES");
    u32::from_le_bytes(bytes[4..8].try_into().unwrap())
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

#[test]
fn every_close_order_of_filter_pin_and_allocator_is_safe_and_gives_instances_back() {
    // 0 = filter, 1 = pin, 2 = allocator: all six orders.
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let client = client();
        let filter = client.open_filter().unwrap();
        let pin = client.create_pin(&filter, 0).unwrap();
        let allocator = client.create_allocator(&pin, &framing()).unwrap();
        let watcher = client.open_filter().unwrap();
        let mut handles = [Some(filter), Some(pin), Some(allocator)];
        for which in order {
            client.close(handles[which].take().unwrap());
            if which == 1 {
                // The pin's instance is back on its filter even if the filter is gone
                // from user mode; a fresh filter counts its own.
                assert_eq!(instances(&client, &watcher, 0), 0, "order {order:?}");
            }
        }
        client.close(watcher);
        client.driver().kernel().assert_no_leaks();
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
