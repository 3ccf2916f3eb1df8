//! The filter and pin objects: a pass-through data-transform filter with one input and
//! one output pin, both sinks, each accepting a plain byte stream.

use ks_abi::guid::{
    KSDATAFORMAT_SPECIFIER_NONE, KSDATAFORMAT_SUBTYPE_NONE, KSDATAFORMAT_TYPE_STREAM,
    KSMEMORY_TYPE_KERNEL_NONPAGED,
};
use ks_abi::ks::{
    allocator_flags, file_alignment, pin, pool_type, KsAllocatorFraming, KsDataFormat,
};

use crate::limits::MAX_ALLOCATORS_PER_PIN;
use crate::platform::Platform;
use crate::sync::{AtomicU32, AtomicUsize, Ordering};

/// One pin factory of the filter.
#[derive(Clone, Copy, Debug)]
pub struct PinDescriptor {
    /// `KSPIN_DATAFLOW_*`.
    pub dataflow: u32,
    /// `KSPIN_COMMUNICATION_*`.
    pub communication: u32,
    /// Instances that may exist at once.
    pub possible_instances: u32,
    /// `KSPROPERTY_PIN_NAME`.
    pub name: &'static str,
}

/// The filter's pin factories, indexed by pin id.
pub const PINS: [PinDescriptor; 2] = [
    PinDescriptor {
        dataflow: pin::DATAFLOW_IN,
        communication: pin::COMMUNICATION_SINK,
        possible_instances: 1,
        name: "ksalloc input",
    },
    PinDescriptor {
        dataflow: pin::DATAFLOW_OUT,
        communication: pin::COMMUNICATION_SINK,
        possible_instances: 1,
        name: "ksalloc output",
    },
];

/// The one data range both pins accept: an unformatted byte stream.
pub const DATA_RANGE: KsDataFormat = KsDataFormat {
    format_size: 64,
    flags: 0,
    sample_size: 0,
    reserved: 0,
    major_format: KSDATAFORMAT_TYPE_STREAM,
    sub_format: KSDATAFORMAT_SUBTYPE_NONE,
    specifier: KSDATAFORMAT_SPECIFIER_NONE,
};

/// The framing a pin asks for (`KSPROPERTY_CONNECTION_ALLOCATORFRAMING`): 8 frames of
/// 4 KiB, 64-byte aligned, in system nonpaged memory.
pub const PREFERRED_FRAMING: KsAllocatorFraming = KsAllocatorFraming {
    options_flags: allocator_flags::REQUIREMENTF_SYSTEM_MEMORY,
    pool_type: pool_type::NON_PAGED,
    frames: 8,
    frame_size: 4096,
    file_alignment: file_alignment::B64,
    reserved: 0,
};

/// Memory type of the preferred framing's extended form.
pub const PREFERRED_MEMORY_TYPE: ks_abi::Guid = KSMEMORY_TYPE_KERNEL_NONPAGED;

/// The filter object. Counts the pin instances open on each factory.
pub struct Filter {
    instances: [AtomicU32; PINS.len()],
}

impl Default for Filter {
    fn default() -> Self {
        Self::new()
    }
}

impl Filter {
    /// A filter with no pins open.
    #[must_use]
    #[allow(clippy::missing_const_for_fn)] // loom's atomics have no const constructor.
    pub fn new() -> Self {
        Self {
            instances: [AtomicU32::new(0), AtomicU32::new(0)],
        }
    }

    /// Pins of factory `id` open now (0 for an unknown id).
    #[must_use]
    pub fn instances(&self, id: u32) -> u32 {
        // Relaxed: a count for CINSTANCES, not a synchronisation point.
        self.instances
            .get(id as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Takes an instance of factory `id` if one is left.
    pub(crate) fn try_take_instance(&self, id: u32) -> bool {
        let (Some(count), Some(descriptor)) =
            (self.instances.get(id as usize), PINS.get(id as usize))
        else {
            return false;
        };
        // Relaxed: the count guards only itself.
        count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < descriptor.possible_instances).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back an instance taken by [`Self::try_take_instance`].
    pub(crate) fn release_instance(&self, id: u32) {
        if let Some(count) = self.instances.get(id as usize) {
            let previous = count.fetch_sub(1, Ordering::Relaxed);
            debug_assert!(previous > 0, "pin instance released twice");
        }
    }
}

/// `KSSTATE_*` values of `KSPROPERTY_CONNECTION_STATE`.
pub mod state {
    /// `KSSTATE_STOP`.
    pub const STOP: u32 = 0;
    /// `KSSTATE_ACQUIRE`.
    pub const ACQUIRE: u32 = 1;
    /// `KSSTATE_PAUSE`.
    pub const PAUSE: u32 = 2;
    /// `KSSTATE_RUN`.
    pub const RUN: u32 = 3;
}

/// A pin instance taken on a filter: given back when dropped (with the pin's object,
/// at the pin's IRP_MJ_CLOSE).
///
/// Invariant: holds one of `filter`'s instances of factory `id`, taken by
/// [`Filter::try_take_instance`]; holds `filter` referenced, so the count outlives the
/// filter's own file object whatever order the handles close in.
pub struct PinInstance<P: Platform> {
    filter: P::Shared<Filter>,
    id: u32,
}

impl<P: Platform> PinInstance<P> {
    /// Takes an instance of factory `id` on `filter`, if one is left.
    pub(crate) fn take(filter: &P::Shared<Filter>, id: u32) -> Option<Self> {
        filter.try_take_instance(id).then(|| Self {
            filter: filter.clone(),
            id,
        })
    }
}

impl<P: Platform> Drop for PinInstance<P> {
    fn drop(&mut self) {
        self.filter.release_instance(self.id);
    }
}

/// A live allocator counted on its pin: given back when dropped (with the allocator's
/// object, at its IRP_MJ_CLOSE).
///
/// Invariant: holds one of `pin`'s [`MAX_ALLOCATORS_PER_PIN`] slots, and `pin`
/// referenced.
pub struct AllocatorSlot<P: Platform> {
    pin: P::Shared<Pin>,
}

impl<P: Platform> AllocatorSlot<P> {
    /// Takes a slot on `pin`, if one is left.
    pub(crate) fn take(pin: &P::Shared<Pin>) -> Option<Self> {
        // Relaxed: the count guards only itself.
        pin.allocators
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_ALLOCATORS_PER_PIN).then_some(n + 1)
            })
            .ok()
            .map(|_| Self { pin: pin.clone() })
    }
}

impl<P: Platform> Drop for AllocatorSlot<P> {
    fn drop(&mut self) {
        let previous = self.pin.allocators.fetch_sub(1, Ordering::Relaxed);
        debug_assert!(previous > 0, "allocator slot released twice");
    }
}

/// A pin object: its factory, the format it was connected with, its state, the
/// allocator handle a client assigned with `KSPROPERTY_STREAM_ALLOCATOR`, and how many
/// allocators live on it.
pub struct Pin {
    id: u32,
    format: KsDataFormat,
    state: AtomicU32,
    allocator: AtomicUsize,
    allocators: AtomicU32,
}

impl Pin {
    #[allow(clippy::missing_const_for_fn)] // loom's atomics have no const constructor.
    pub(crate) fn new(id: u32, format: KsDataFormat) -> Self {
        Self {
            id,
            format,
            state: AtomicU32::new(state::STOP),
            allocator: AtomicUsize::new(0),
            allocators: AtomicU32::new(0),
        }
    }

    /// Allocators live on this pin (created and not yet closed).
    #[must_use]
    pub fn allocators(&self) -> u32 {
        self.allocators.load(Ordering::Relaxed)
    }

    /// The pin factory id.
    #[must_use]
    pub const fn id(&self) -> u32 {
        self.id
    }

    /// The connection format.
    #[must_use]
    pub const fn format(&self) -> &KsDataFormat {
        &self.format
    }

    /// `KSSTATE_*`.
    #[must_use]
    pub fn state(&self) -> u32 {
        // Relaxed: a plain value; transitions are serialised by the client.
        self.state.load(Ordering::Relaxed)
    }

    pub(crate) fn set_state(&self, value: u32) {
        self.state.store(value, Ordering::Relaxed);
    }

    /// The allocator handle assigned to this pin (0: none).
    #[must_use]
    pub fn allocator_handle(&self) -> usize {
        self.allocator.load(Ordering::Relaxed)
    }

    pub(crate) fn set_allocator_handle(&self, handle: usize) {
        self.allocator.store(handle, Ordering::Relaxed);
    }
}
