//! End to end on the model: a KS client opens the filter, creates a pin and an
//! allocator on it, takes the function table as a kernel requestor, streams frames at
//! DISPATCH_LEVEL, pends ALLOC requests that frees complete, closes everything with
//! frames outstanding, and the model finds nothing leaked.

use std::sync::Arc;
use std::time::Duration;

use ks_abi::guid::{KSPROPSETID_CONNECTION, KSPROPSETID_PIN, KSPROPSETID_TOPOLOGY};
use ks_abi::ioctl::IOCTL_KS_PROPERTY;
use ks_abi::ks::{connection, pin, property_type};
use ks_abi::{Guid, NtStatus};
use ksalloc_core::ks::filter::PREFERRED_FRAMING;
use ksalloc_core::wire;
use ksalloc_model::client::request;
use ksalloc_model::{KsClient, ModelDriver, ModelEvent, ModelKernel};

fn pin_property(
    client: &KsClient,
    filter: &ksalloc_model::Handle,
    id: u32,
    pin_id: u32,
    len: usize,
) -> Result<Vec<u8>, NtStatus> {
    client.get(
        filter,
        &KSPROPSETID_PIN,
        id,
        &[pin_id.to_le_bytes(), [0; 4]].concat(),
        len,
    )
}

#[test]
fn filter_describes_itself_the_way_ksstudio_asks() {
    let kernel = ModelKernel::new();
    let client = KsClient::user(ModelDriver::new(kernel.clone()));
    let filter = client.open_filter().unwrap();
    // SETSUPPORT with GUID_NULL lists the sets; a zero-length buffer is a size query.
    let query = request(&Guid::NULL, 0, property_type::SETSUPPORT, &[]);
    let size = client
        .ioctl(&filter, IOCTL_KS_PROPERTY, &query, &[])
        .completion()
        .unwrap();
    assert_eq!(
        (size.status, size.information),
        (NtStatus::BUFFER_OVERFLOW, 32)
    );
    let sets = client.ioctl(&filter, IOCTL_KS_PROPERTY, &query, &[0; 32]);
    let listed: Vec<Guid> = (0..2)
        .filter_map(|i| wire::guid_at(&sets.output(), i * 16))
        .collect();
    assert_eq!(listed, [KSPROPSETID_PIN, KSPROPSETID_TOPOLOGY]);
    assert_eq!(
        client
            .get(&filter, &KSPROPSETID_PIN, pin::CTYPES, &[], 4)
            .unwrap(),
        2u32.to_le_bytes()
    );
    assert_eq!(
        pin_property(&client, &filter, pin::DATAFLOW, 0, 4).unwrap(),
        1u32.to_le_bytes(),
        "pin 0 is input"
    );
    assert_eq!(
        pin_property(&client, &filter, pin::DATAFLOW, 1, 4).unwrap(),
        2u32.to_le_bytes(),
        "pin 1 is output"
    );
    // DATARANGES: KSMULTIPLE_ITEM tiers (size only into 4 bytes, then the whole list).
    assert_eq!(
        pin_property(&client, &filter, pin::DATARANGES, 0, 4).unwrap(),
        72u32.to_le_bytes()
    );
    let ranges = pin_property(&client, &filter, pin::DATARANGES, 0, 72).unwrap();
    assert_eq!(
        (wire::u32_at(&ranges, 0), wire::u32_at(&ranges, 4)),
        (Some(72), Some(1))
    );
    let name = pin_property(&client, &filter, pin::NAME, 1, 64).unwrap();
    let text: Vec<u16> = name
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(String::from_utf16_lossy(&text), "ksalloc output\0");
    let connections = client
        .get(&filter, &KSPROPSETID_TOPOLOGY, 2, &[], 24)
        .unwrap();
    assert_eq!(
        wire::u32_at(&connections, 4),
        Some(1),
        "one pass-through connection"
    );
    // BASICSUPPORT describes an item's access.
    let basic = request(
        &KSPROPSETID_PIN,
        pin::CTYPES,
        property_type::BASICSUPPORT,
        &[],
    );
    let described = client.ioctl(&filter, IOCTL_KS_PROPERTY, &basic, &[0; 40]);
    assert_eq!(
        wire::u32_at(&described.output(), 0),
        Some(property_type::GET)
    );
    client.close(filter);
    kernel.assert_no_leaks();
}

#[test]
#[allow(clippy::too_many_lines)] // One story, told in order.
fn stream_pend_and_close_with_frames_out_leaks_nothing() {
    let kernel = ModelKernel::new();
    let client = KsClient::kernel(ModelDriver::new(kernel.clone()));
    let filter = client.open_filter().unwrap();
    let pin = client.create_pin(&filter, 0).unwrap();

    // The pin's framing is what the allocator is created with.
    let framing_bytes = client
        .get(
            &pin,
            &KSPROPSETID_CONNECTION,
            connection::PROPERTY_ALLOCATORFRAMING,
            &[],
            24,
        )
        .unwrap();
    let framing = wire::framing(&framing_bytes).unwrap();
    assert_eq!(framing, PREFERRED_FRAMING);
    // The filter's and the pin's shared state are pool blocks too.
    let graph_blocks = kernel.live_blocks();
    let allocator = client.create_allocator(&pin, &framing).unwrap();
    // With magazines (this framing's pool has them on the model's processors) the
    // allocator also holds its processor calls (one KDPC per processor) in pool.
    let calls_blocks = usize::from(
        allocator
            .object()
            .as_allocator()
            .is_some_and(|a| a.has_magazines()),
    );
    assert_eq!(
        kernel.live_blocks(),
        graph_blocks + 1 + calls_blocks,
        "all frames preallocated at create, in one block"
    );

    // FUNCTIONTABLE as a kernel requestor; a user requestor is refused.
    let user = KsClient::user(client.driver().clone());
    assert_eq!(
        user.function_table(&allocator).err(),
        Some(NtStatus::INVALID_DEVICE_REQUEST)
    );
    let table = client.function_table(&allocator).unwrap();

    // A FREEFRAME event from a client that uses the direct-call interface.
    let free_frame = Arc::new(ModelEvent::notification());
    let handle = kernel.event_handle(&free_frame);
    assert_eq!(
        client.enable_free_frame(&allocator, handle),
        NtStatus::SUCCESS
    );

    // Allocate every frame at DISPATCH_LEVEL: distinct, aligned, writable.
    let frames: Vec<usize> = std::iter::from_fn(|| table.allocate_at_dispatch().ok()).collect();
    assert_eq!(frames.len(), framing.frames as usize);
    for (i, &frame) in frames.iter().enumerate() {
        assert_eq!(frame % (framing.file_alignment as usize + 1), 0);
        #[allow(clippy::cast_possible_truncation)]
        kernel.with_bytes(frame, framing.frame_size as usize, |b| b.fill(i as u8));
    }
    let mut distinct = frames.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), frames.len());
    assert_eq!(
        table.allocate_at_dispatch(),
        Err(NtStatus::INSUFFICIENT_RESOURCES),
        "fails fast when empty"
    );
    assert_eq!(
        client
            .allocator_status(&allocator)
            .unwrap()
            .allocated_frames,
        framing.frames
    );

    // Two ALLOC requests pend; frees complete them oldest first.
    let first = client.alloc(&allocator);
    let second = client.alloc(&allocator);
    assert!(
        first.completion().is_none() && second.completion().is_none(),
        "both pended"
    );
    table.free_at_dispatch(frames[0]);
    assert_eq!(
        first.wait(Duration::from_secs(1)).map(|c| c.status),
        Some(NtStatus::SUCCESS)
    );
    assert_eq!(first.allocated_frame(), Some(frames[0]));
    assert!(second.completion().is_none());
    assert_eq!(
        client.free(&allocator, frames[1]),
        NtStatus::SUCCESS,
        "FREE method"
    );
    assert_eq!(second.allocated_frame(), Some(frames[1]));
    assert_eq!(free_frame.set_count(), 2, "each free signalled FREEFRAME");

    // A third request waits, and the handle's close (IRP_MJ_CLEANUP) cancels it.
    let third = client.alloc(&allocator);
    assert!(third.completion().is_none());

    // Close the allocator handle with every frame out. The table client holds the file
    // object referenced, so this is CLEANUP, not CLOSE: the table keeps working.
    let held: Vec<usize> = [
        first.allocated_frame().unwrap(),
        second.allocated_frame().unwrap(),
    ]
    .into_iter()
    .chain(frames[2..].iter().copied())
    .collect();
    client.close(allocator);
    assert_eq!(
        third.completion().map(|c| c.status),
        Some(NtStatus::CANCELLED)
    );
    assert_eq!(
        table.allocate_at_dispatch(),
        Err(NtStatus::INSUFFICIENT_RESOURCES),
        "the table still answers after cleanup: the pool is empty"
    );
    assert_eq!(
        client.alloc(table.file()).completion().map(|c| c.status),
        Some(NtStatus::INVALID_DEVICE_STATE),
        "IRP-based requests are refused after cleanup"
    );
    assert_eq!(
        kernel.live_blocks(),
        graph_blocks + 1 + calls_blocks,
        "frames out: memory stays"
    );
    for frame in held {
        table.free_at_dispatch(frame);
    }
    let again = table
        .allocate_at_dispatch()
        .expect("the table works until CLOSE");
    table.free_at_dispatch(again);
    {
        let object = table.file().object();
        let snapshot = object.as_allocator().unwrap().snapshot();
        assert!(!snapshot.closed && !snapshot.memory_released);
        assert_eq!(snapshot.counters.rejected_frees, 0);
    }
    // The last reference goes: IRP_MJ_CLOSE, and the frame memory with it.
    drop(table);
    assert_eq!(
        kernel.live_blocks(),
        graph_blocks,
        "memory released at CLOSE"
    );
    kernel.close_event_handle(handle);
    client.close(pin);
    client.close(filter);
    kernel.assert_no_leaks();
}
