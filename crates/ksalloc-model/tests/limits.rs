//! What a user-mode caller can make the driver do (issue 15, section 3), and CLEANUP
//! versus CLOSE (section 2).
//!
//! - ALLOC and FREE are refused to user mode (a frame is a kernel address).
//! - A driver-wide frame budget, a per-pin cap on allocators, and the process quota for
//!   user-mode creates: each refusal is STATUS_INSUFFICIENT_RESOURCES and changes
//!   nothing; closing gives everything back.
//! - IRP_MJ_CLEANUP ("last handle closed, ... might not have been released", the
//!   IRP_MJ_CLEANUP page) cancels the pending ALLOCs and refuses IRP-based requests; the
//!   function table works until IRP_MJ_CLOSE (the last reference).

use std::sync::Arc;

use ks_abi::NtStatus;
use ksalloc_core::limits::MAX_ALLOCATORS_PER_PIN;
use ksalloc_model::catalogue::framing;
use ksalloc_model::{KsClient, ModelDriver, ModelEvent, ModelKernel};

fn clients() -> (ModelKernel, KsClient, KsClient) {
    let kernel = ModelKernel::new();
    let driver = ModelDriver::new(kernel.clone());
    (
        kernel,
        KsClient::kernel(driver.clone()),
        KsClient::user(driver),
    )
}

#[test]
fn alloc_and_free_are_refused_to_user_mode_and_hand_out_no_address() {
    let (kernel, kernel_client, user) = clients();
    let filter = user.open_filter().unwrap();
    let pin = user.create_pin(&filter, 0).unwrap();
    let allocator = user.create_allocator(&pin, &framing(2, 64)).unwrap();
    let irp = user.alloc(&allocator);
    let done = irp.completion().expect("refused at once");
    assert_eq!(done.status, NtStatus::INVALID_DEVICE_REQUEST);
    assert_eq!(done.information, 0);
    assert_eq!(irp.output(), vec![0; 8], "nothing written back");
    // A kernel client's frame, named by a user FREE: refused, still out.
    let table = kernel_client.function_table(&allocator).unwrap();
    let frame = table.allocate_at_dispatch().unwrap();
    assert_eq!(
        user.free(&allocator, frame),
        NtStatus::INVALID_DEVICE_REQUEST
    );
    assert_eq!(
        user.allocator_status(&allocator).unwrap().allocated_frames,
        1
    );
    table.free_at_dispatch(frame);
    drop(table);
    for h in [allocator, pin, filter] {
        user.close(h);
    }
    kernel.assert_no_leaks();
}

#[test]
fn the_frame_budget_refuses_the_next_create_and_close_gives_the_pool_back() {
    let (kernel, _, user) = clients();
    let filter = user.open_filter().unwrap();
    let pins = [
        user.create_pin(&filter, 0).unwrap(),
        user.create_pin(&filter, 1).unwrap(),
    ];
    let each = framing(4, 4096);
    let bytes = 4 * 4096;
    kernel.frame_budget().set_limit(3 * bytes);
    let (blocks, live) = (kernel.live_blocks(), kernel.live_bytes());
    let mut allocators = Vec::new();
    for i in 0..3 {
        allocators.push(user.create_allocator(&pins[i % 2], &each).unwrap());
    }
    assert_eq!(kernel.frame_budget().in_use(), 3 * bytes);
    assert_eq!(
        kernel.process_quota_used(),
        3 * bytes,
        "charged to the user"
    );
    let (full_blocks, full_bytes) = (kernel.live_blocks(), kernel.live_bytes());
    assert_eq!(
        user.create_allocator(&pins[1], &each).err(),
        Some(NtStatus::INSUFFICIENT_RESOURCES),
        "past the budget"
    );
    assert_eq!(
        (kernel.live_blocks(), kernel.live_bytes()),
        (full_blocks, full_bytes),
        "a refused create changes nothing"
    );
    assert_eq!(kernel.frame_budget().in_use(), 3 * bytes);
    for a in allocators {
        user.close(a);
    }
    assert_eq!(
        (kernel.live_blocks(), kernel.live_bytes()),
        (blocks, live),
        "the machine's pool back to where it was"
    );
    assert_eq!(kernel.frame_budget().in_use(), 0);
    assert_eq!(kernel.process_quota_used(), 0);
    let again = user.create_allocator(&pins[0], &each).unwrap();
    user.close(again);
    for h in pins {
        user.close(h);
    }
    user.close(filter);
    kernel.assert_no_leaks();
}

#[test]
fn a_pin_takes_at_most_its_cap_of_allocators() {
    let (kernel, client, _) = clients();
    let filter = client.open_filter().unwrap();
    let pin = client.create_pin(&filter, 0).unwrap();
    let mut allocators: Vec<_> = (0..MAX_ALLOCATORS_PER_PIN)
        .map(|_| client.create_allocator(&pin, &framing(1, 64)).unwrap())
        .collect();
    let blocks = kernel.live_blocks();
    assert_eq!(
        client.create_allocator(&pin, &framing(1, 64)).err(),
        Some(NtStatus::INSUFFICIENT_RESOURCES)
    );
    assert_eq!(kernel.live_blocks(), blocks, "nothing allocated");
    // A bad framing still gets its own status on a full pin.
    assert_eq!(
        client.create_allocator(&pin, &framing(0, 64)).err(),
        Some(NtStatus::INVALID_PARAMETER)
    );
    client.close(allocators.pop().unwrap());
    let next = client.create_allocator(&pin, &framing(1, 64)).unwrap();
    allocators.push(next);
    for a in allocators {
        client.close(a);
    }
    client.close(pin);
    client.close(filter);
    kernel.assert_no_leaks();
}

#[test]
fn a_user_create_past_its_quota_is_refused_and_a_kernel_create_is_not_charged() {
    let (kernel, client, user) = clients();
    let filter = user.open_filter().unwrap();
    let pin = user.create_pin(&filter, 0).unwrap();
    kernel.set_process_quota(Some(1000));
    assert_eq!(
        user.create_allocator(&pin, &framing(4, 4096)).err(),
        Some(NtStatus::INSUFFICIENT_RESOURCES)
    );
    assert_eq!(kernel.frame_budget().in_use(), 0, "budget given back");
    let by_kernel = client.create_allocator(&pin, &framing(4, 4096)).unwrap();
    assert_eq!(
        kernel.process_quota_used(),
        0,
        "kernel creates are not charged"
    );
    client.close(by_kernel);
    kernel.set_process_quota(None);
    user.close(pin);
    user.close(filter);
    kernel.assert_no_leaks();
}

#[test]
fn cleanup_cancels_and_refuses_irps_while_the_table_works_until_close() {
    let (kernel, client, _) = clients();
    let filter = client.open_filter().unwrap();
    let pin = client.create_pin(&filter, 0).unwrap();
    let allocator = client.create_allocator(&pin, &framing(2, 64)).unwrap();
    let event = Arc::new(ModelEvent::notification());
    let handle = kernel.event_handle(&event);
    assert_eq!(
        client.enable_free_frame(&allocator, handle),
        NtStatus::SUCCESS
    );
    // An AVStream pin given this allocator: it references the file object.
    let table = client.function_table(&allocator).unwrap();
    let frames = [
        table.allocate_at_dispatch().unwrap(),
        table.allocate_at_dispatch().unwrap(),
    ];
    let pending = client.alloc(&allocator);
    assert!(pending.completion().is_none());
    let frame_bytes = kernel.live_bytes();

    // The handle closes: IRP_MJ_CLEANUP.
    client.close(allocator);
    assert_eq!(
        pending.completion().map(|c| c.status),
        Some(NtStatus::CANCELLED)
    );
    let reference = table.file();
    assert_eq!(
        client.alloc(reference).completion().map(|c| c.status),
        Some(NtStatus::INVALID_DEVICE_STATE),
        "IRP-based requests are refused after cleanup"
    );
    assert_eq!(
        client.allocator_status(reference).err(),
        Some(NtStatus::INVALID_DEVICE_STATE)
    );
    let sets = event.set_count();
    table.free_at_dispatch(frames[0]);
    assert_eq!(event.set_count(), sets, "events disabled at cleanup");
    let again = table
        .allocate_at_dispatch()
        .expect("the table works after cleanup");
    table.free_at_dispatch(again);
    table.free_at_dispatch(frames[1]);
    assert_eq!(kernel.live_bytes(), frame_bytes, "memory stays until CLOSE");
    // The last reference goes: IRP_MJ_CLOSE releases the memory.
    drop(table);
    assert!(kernel.live_bytes() < frame_bytes);
    kernel.close_event_handle(handle);
    client.close(pin);
    client.close(filter);
    kernel.assert_no_leaks();
}
