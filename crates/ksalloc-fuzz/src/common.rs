//! What the targets share: a fresh graph on a fresh model kernel, the state a rejected
//! request must leave alone, and checks on what a request returned.

use std::sync::Arc;

use ks_abi::guid::{
    KSPROPSETID_CONNECTION, KSPROPSETID_PIN, KSPROPSETID_STREAM, KSPROPSETID_STREAM_ALLOCATOR,
};
use ks_abi::ioctl::{
    IOCTL_KS_DISABLE_EVENT, IOCTL_KS_ENABLE_EVENT, IOCTL_KS_METHOD, IOCTL_KS_PROPERTY,
    IOCTL_KS_READ_STREAM, IOCTL_KS_RESET_STATE, IOCTL_KS_WRITE_STREAM,
};
use ks_abi::ks::{connection, pin, stream, stream_allocator, KsAllocatorFraming};
use ks_abi::NtStatus;
use ksalloc_core::stats::Counters;
use ksalloc_core::Snapshot;
use ksalloc_model::catalogue::harness_framing;
use ksalloc_model::{AllocatorRef, Handle, KsClient, ModelDriver, ModelEvent, ModelKernel};

/// The event handle the first `event_handle` of a fresh model kernel returns: seeds
/// name it in `KSEVENTDATA` so ENABLE/DISABLE can succeed.
pub const FIRST_EVENT_HANDLE: usize = 0x104;

/// IOCTL codes a one-byte selector names; anything else reads a raw `u32` code.
pub const CODES: [u32; 7] = [
    IOCTL_KS_PROPERTY,
    IOCTL_KS_METHOD,
    IOCTL_KS_ENABLE_EVENT,
    IOCTL_KS_DISABLE_EVENT,
    IOCTL_KS_READ_STREAM,
    IOCTL_KS_WRITE_STREAM,
    IOCTL_KS_RESET_STATE,
];

/// Selector byte that means "a raw little-endian `u32` code follows".
pub const RAW_CODE: u8 = 0xFF;

/// A filter, pin 0 and an allocator on it (the catalogue's framing: 4 x 256 bytes), on
/// a fresh model kernel, plus one event handle a client could name.
pub struct Graph {
    /// The kernel.
    pub kernel: ModelKernel,
    /// A kernel-mode client.
    pub client: KsClient,
    /// The filter.
    pub filter: Handle,
    /// Pin 0.
    pub pin: Handle,
    /// The allocator on pin 0.
    pub allocator: Handle,
    /// An event handle (== [`FIRST_EVENT_HANDLE`]) and its event.
    pub event: (usize, Arc<ModelEvent>),
}

impl Graph {
    /// Builds the graph.
    ///
    /// # Panics
    /// If the graph cannot be built (a harness bug, or a regression the unit tests catch).
    #[must_use]
    pub fn new() -> Self {
        Self::with_framing(&harness_framing())
    }

    /// Builds the graph with this allocator framing.
    ///
    /// # Panics
    /// As [`Graph::new`].
    #[must_use]
    pub fn with_framing(framing: &KsAllocatorFraming) -> Self {
        let kernel = ModelKernel::new();
        let client = KsClient::kernel(ModelDriver::new(kernel.clone()));
        let filter = client.open_filter().expect("graph: filter");
        let pin = client.create_pin(&filter, 0).expect("graph: pin 0");
        let allocator = client
            .create_allocator(&pin, framing)
            .expect("graph: allocator");
        let event = Arc::new(ModelEvent::notification());
        let handle = kernel.event_handle(&event);
        assert_eq!(handle, FIRST_EVENT_HANDLE, "model handle numbering changed");
        Self {
            kernel,
            client,
            filter,
            pin,
            allocator,
            event: (handle, event),
        }
    }

    /// The allocator engine.
    ///
    /// # Panics
    /// Never: the handle is an allocator.
    #[must_use]
    pub fn engine(&self) -> AllocatorRef {
        self.allocator.allocator().expect("allocator")
    }

    /// Everything a rejected request must leave unchanged.
    #[must_use]
    pub fn observe(&self) -> Observed {
        let get = |file: &Handle, set, id, extra: &[u8], len| {
            self.client
                .get(file, set, id, extra, len)
                .unwrap_or_default()
        };
        let mut instances = Vec::new();
        for id in 0u32..2 {
            instances.extend(get(
                &self.filter,
                &KSPROPSETID_PIN,
                pin::CINSTANCES,
                &[id.to_le_bytes(), [0; 4]].concat(),
                8,
            ));
        }
        Observed {
            allocator: without_rejections(self.engine().snapshot()),
            pin_state: get(
                &self.pin,
                &KSPROPSETID_CONNECTION,
                connection::PROPERTY_STATE,
                &[],
                4,
            ),
            pin_allocator: get(
                &self.pin,
                &KSPROPSETID_STREAM,
                stream::PROPERTY_ALLOCATOR,
                &[],
                8,
            ),
            allocator_status: get(
                &self.allocator,
                &KSPROPSETID_STREAM_ALLOCATOR,
                stream_allocator::PROPERTY_STATUS,
                &[],
                32,
            ),
            instances,
            live_blocks: self.kernel.live_blocks(),
            live_files: self.kernel.live_files(),
            live_irps: self.kernel.live_irps(),
        }
    }

    /// Closes everything (children first) and checks that nothing leaked.
    ///
    /// # Panics
    /// On a leak.
    pub fn teardown(self) {
        let Self {
            kernel,
            client,
            filter,
            pin,
            allocator,
            event,
        } = self;
        client.close(allocator);
        client.close(pin);
        client.close(filter);
        kernel.close_event_handle(event.0);
        drop(event);
        drop(client);
        kernel.assert_no_leaks();
    }
}

impl Default for Graph {
    fn default() -> Self {
        Self::new()
    }
}

/// A snapshot with the two counters a rejected request may bump zeroed.
#[must_use]
pub fn without_rejections(mut snap: Snapshot) -> Snapshot {
    snap.counters = Counters {
        rejected_frees: 0,
        failed_allocations: 0,
        ..snap.counters
    };
    snap
}

/// The state [`Graph::observe`] reads.
#[derive(Debug, PartialEq, Eq)]
pub struct Observed {
    allocator: Snapshot,
    pin_state: Vec<u8>,
    pin_allocator: Vec<u8>,
    allocator_status: Vec<u8>,
    instances: Vec<u8>,
    live_blocks: usize,
    live_files: i64,
    live_irps: i64,
}

/// Panics if what the driver wrote into a user-mode requestor's buffer carries a kernel
/// address: a function-table routine, a frame or any other live pool address
/// ([`ModelKernel::is_kernel_address`]).
///
/// Only bytes the driver wrote count: `received` is compared with `sent` (the buffer as
/// the caller filled it), and an 8-byte window is judged only if at least one of its
/// bytes changed. Bytes the caller planted and the driver left alone are the caller's own
/// and leak nothing, so a fuzzer that learns an address and plants it is not a finding,
/// and a real leak cannot hide among echoed bytes.
///
/// # Panics
/// As described.
pub fn assert_no_kernel_address(kernel: &ModelKernel, sent: &[u8], received: &[u8], what: &str) {
    for start in 0..received.len().saturating_sub(7) {
        let window = &received[start..start + 8];
        let changed = sent
            .get(start..start + 8)
            .is_none_or(|before| before != window);
        if !changed {
            continue;
        }
        let value = usize::from_le_bytes(window.try_into().expect("8 bytes"));
        assert!(
            !kernel.is_kernel_address(value),
            "{what}: a user-mode requestor received the kernel address {value:#x} at offset {start}"
        );
    }
}

/// Touches the first and last byte of a frame: panics (in the model pool) unless the
/// whole frame lies inside one live pool block.
pub fn touch_frame(kernel: &ModelKernel, address: usize, frame_size: usize) {
    ksalloc_model::driver::at_dispatch(|| {
        kernel.with_bytes(address, 1, |b| b[0] ^= 0x5A);
        kernel.with_bytes(address + frame_size - 1, 1, |b| b[0] ^= 0xA5);
    });
}

/// The IOCTL code a selector byte names (`None`: read a raw code).
#[must_use]
pub fn code_of(selector: u8) -> Option<u32> {
    CODES.get(usize::from(selector)).copied()
}

/// The selector byte for `code` ([`RAW_CODE`] when it has none).
#[must_use]
pub fn selector_of(code: u32) -> u8 {
    CODES
        .iter()
        .position(|&c| c == code)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(RAW_CODE)
}

/// The status of a completed IRP or `STATUS_PENDING`.
#[must_use]
pub fn status_of(irp: &ksalloc_model::Irp) -> NtStatus {
    irp.completion().map_or(NtStatus::PENDING, |c| c.status)
}
