//! KS request headers and allocator structures, with the x86_64 layout of `ks.h`.
//!
//! Pointer-sized fields that only travel through the ABI (handles, frame addresses) are
//! `usize` so these types stay plain data; the glue turns them into pointers at the edge.

use crate::guid::Guid;
use crate::status::NtStatus;

/// `KSIDENTIFIER` = `KSPROPERTY` = `KSMETHOD` = `KSEVENT` (24 bytes, align 8: the C type is a
/// union with a `LONGLONG`).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsIdentifier {
    /// Property, method or event set.
    pub set: Guid,
    /// Item id within the set.
    pub id: u32,
    /// `KSPROPERTY_TYPE_*`, `KSMETHOD_TYPE_*` or `KSEVENT_TYPE_*`.
    pub flags: u32,
}

/// `KSPROPERTY`.
pub type KsProperty = KsIdentifier;
/// `KSMETHOD`.
pub type KsMethod = KsIdentifier;
/// `KSEVENT`.
pub type KsEvent = KsIdentifier;
/// `KSPIN_INTERFACE` / `KSPIN_MEDIUM`.
pub type KsPinMedium = KsIdentifier;

/// `KSP_PIN`: a property addressed to one pin factory of a filter (32 bytes).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KspPin {
    /// The property.
    pub property: KsProperty,
    /// Pin factory id.
    pub pin_id: u32,
    /// Must be zero.
    pub reserved: u32,
}

/// `KSPROPERTY_TYPE_*` flags.
pub mod property_type {
    /// Read the value.
    pub const GET: u32 = 0x0000_0001;
    /// Write the value.
    pub const SET: u32 = 0x0000_0002;
    /// Is the set supported (or, with a null set, list the sets).
    pub const SETSUPPORT: u32 = 0x0000_0100;
    /// Describe the property (access flags, value type).
    pub const BASICSUPPORT: u32 = 0x0000_0200;
    /// Relations query.
    pub const RELATIONS: u32 = 0x0000_0400;
    /// Serialize set.
    pub const SERIALIZESET: u32 = 0x0000_0800;
    /// Unserialize set.
    pub const UNSERIALIZESET: u32 = 0x0000_1000;
    /// Serialize raw.
    pub const SERIALIZERAW: u32 = 0x0000_2000;
    /// Unserialize raw.
    pub const UNSERIALIZERAW: u32 = 0x0000_4000;
    /// Serialize size.
    pub const SERIALIZESIZE: u32 = 0x0000_8000;
    /// Default values.
    pub const DEFAULTVALUES: u32 = 0x0001_0000;
    /// The request is a `KSP_NODE` addressed to a topology node.
    pub const TOPOLOGY: u32 = 0x1000_0000;
}

/// `KSMETHOD_TYPE_*` flags.
pub mod method_type {
    /// No data buffer.
    pub const NONE: u32 = 0x0;
    /// The handler reads the data buffer (client to driver).
    pub const READ: u32 = 0x1;
    /// The handler writes the data buffer (driver to client).
    pub const WRITE: u32 = 0x2;
    /// Read and write.
    pub const MODIFY: u32 = 0x3;
    /// Data buffer is a source (MDL).
    pub const SOURCE: u32 = 0x4;
    /// Is the set supported.
    pub const SETSUPPORT: u32 = 0x100;
    /// Describe the method.
    pub const BASICSUPPORT: u32 = 0x200;
    /// Addressed to a topology node.
    pub const TOPOLOGY: u32 = 0x1000_0000;
}

/// `KSEVENT_TYPE_*` flags.
pub mod event_type {
    /// Enable the event.
    pub const ENABLE: u32 = 0x1;
    /// Fire once, then disable.
    pub const ONESHOT: u32 = 0x2;
    /// Buffered enable.
    pub const ENABLEBUFFERED: u32 = 0x4;
    /// Is the set supported.
    pub const SETSUPPORT: u32 = 0x100;
    /// Describe the event.
    pub const BASICSUPPORT: u32 = 0x200;
    /// Query buffered data.
    pub const QUERYBUFFER: u32 = 0x400;
    /// Addressed to a topology node.
    pub const TOPOLOGY: u32 = 0x1000_0000;
}

/// `KSEVENTF_*` notification types in [`KsEventData::notification_type`].
pub mod eventf {
    /// Signal an event handle.
    pub const EVENT_HANDLE: u32 = 0x01;
    /// Release a semaphore handle.
    pub const SEMAPHORE_HANDLE: u32 = 0x02;
    /// Signal a KEVENT pointer (kernel clients).
    pub const EVENT_OBJECT: u32 = 0x04;
    /// Release a KSEMAPHORE pointer (kernel clients).
    pub const SEMAPHORE_OBJECT: u32 = 0x08;
    /// Queue a DPC.
    pub const DPC: u32 = 0x10;
    /// Queue a work item.
    pub const WORKITEM: u32 = 0x20;
    /// Queue a KS work item.
    pub const KSWORKITEM: u32 = 0x80;
}

/// Ids in `KSPROPSETID_StreamAllocator`.
pub mod stream_allocator {
    /// `KSPROPERTY_STREAMALLOCATOR_FUNCTIONTABLE` (Get, kernel requestors only).
    pub const PROPERTY_FUNCTIONTABLE: u32 = 0;
    /// `KSPROPERTY_STREAMALLOCATOR_STATUS` (Get).
    pub const PROPERTY_STATUS: u32 = 1;
    /// `KSMETHOD_STREAMALLOCATOR_ALLOC`.
    pub const METHOD_ALLOC: u32 = 0;
    /// `KSMETHOD_STREAMALLOCATOR_FREE`.
    pub const METHOD_FREE: u32 = 1;
    /// `KSEVENT_STREAMALLOCATOR_INTERNAL_FREEFRAME` (the allocator's own; clients may not enable it).
    pub const EVENT_INTERNAL_FREEFRAME: u32 = 0;
    /// `KSEVENT_STREAMALLOCATOR_FREEFRAME`.
    pub const EVENT_FREEFRAME: u32 = 1;
}

/// Ids in `KSPROPSETID_Stream`.
pub mod stream {
    /// `KSPROPERTY_STREAM_ALLOCATOR`: the allocator handle assigned to a pin.
    pub const PROPERTY_ALLOCATOR: u32 = 0;
}

/// Ids in `KSPROPSETID_Connection`.
pub mod connection {
    /// `KSPROPERTY_CONNECTION_STATE`.
    pub const PROPERTY_STATE: u32 = 0;
    /// `KSPROPERTY_CONNECTION_DATAFORMAT`.
    pub const PROPERTY_DATAFORMAT: u32 = 2;
    /// `KSPROPERTY_CONNECTION_ALLOCATORFRAMING`.
    pub const PROPERTY_ALLOCATORFRAMING: u32 = 3;
    /// `KSPROPERTY_CONNECTION_ALLOCATORFRAMING_EX`.
    pub const PROPERTY_ALLOCATORFRAMING_EX: u32 = 6;
}

/// Ids in `KSPROPSETID_Pin`.
pub mod pin {
    /// `KSPROPERTY_PIN_CINSTANCES`.
    pub const CINSTANCES: u32 = 0;
    /// `KSPROPERTY_PIN_CTYPES`.
    pub const CTYPES: u32 = 1;
    /// `KSPROPERTY_PIN_DATAFLOW`.
    pub const DATAFLOW: u32 = 2;
    /// `KSPROPERTY_PIN_DATARANGES`.
    pub const DATARANGES: u32 = 3;
    /// `KSPROPERTY_PIN_DATAINTERSECTION`.
    pub const DATAINTERSECTION: u32 = 4;
    /// `KSPROPERTY_PIN_INTERFACES`.
    pub const INTERFACES: u32 = 5;
    /// `KSPROPERTY_PIN_MEDIUMS`.
    pub const MEDIUMS: u32 = 6;
    /// `KSPROPERTY_PIN_COMMUNICATION`.
    pub const COMMUNICATION: u32 = 7;
    /// `KSPROPERTY_PIN_GLOBALCINSTANCES`.
    pub const GLOBALCINSTANCES: u32 = 8;
    /// `KSPROPERTY_PIN_NECESSARYINSTANCES`.
    pub const NECESSARYINSTANCES: u32 = 9;
    /// `KSPROPERTY_PIN_CATEGORY`.
    pub const CATEGORY: u32 = 11;
    /// `KSPROPERTY_PIN_NAME`.
    pub const NAME: u32 = 12;
    /// `KSPIN_DATAFLOW_IN`.
    pub const DATAFLOW_IN: u32 = 1;
    /// `KSPIN_DATAFLOW_OUT`.
    pub const DATAFLOW_OUT: u32 = 2;
    /// `KSPIN_COMMUNICATION_NONE`.
    pub const COMMUNICATION_NONE: u32 = 0;
    /// `KSPIN_COMMUNICATION_SINK`.
    pub const COMMUNICATION_SINK: u32 = 1;
    /// `KSPIN_COMMUNICATION_SOURCE`.
    pub const COMMUNICATION_SOURCE: u32 = 2;
    /// `KSPIN_COMMUNICATION_BOTH`.
    pub const COMMUNICATION_BOTH: u32 = 3;
}

/// `POOL_TYPE` values a framing may name.
pub mod pool_type {
    /// `NonPagedPool` (0): the only pool the DISPATCH_LEVEL function table can serve.
    pub const NON_PAGED: u32 = 0;
    /// `PagedPool` (1).
    pub const PAGED: u32 = 1;
}

/// `KSALLOCATOR_REQUIREMENTF_*`, `KSALLOCATOR_OPTIONF_*` and `KSALLOCATOR_FLAG_*`.
pub mod allocator_flags {
    /// `KSALLOCATOR_REQUIREMENTF_INPLACE_MODIFIER`.
    pub const REQUIREMENTF_INPLACE_MODIFIER: u32 = 0x0000_0001;
    /// `KSALLOCATOR_REQUIREMENTF_SYSTEM_MEMORY`.
    pub const REQUIREMENTF_SYSTEM_MEMORY: u32 = 0x0000_0002;
    /// `KSALLOCATOR_REQUIREMENTF_FRAME_INTEGRITY`.
    pub const REQUIREMENTF_FRAME_INTEGRITY: u32 = 0x0000_0004;
    /// `KSALLOCATOR_REQUIREMENTF_MUST_ALLOCATE`.
    pub const REQUIREMENTF_MUST_ALLOCATE: u32 = 0x0000_0008;
    /// `KSALLOCATOR_REQUIREMENTF_PREFERENCES_ONLY`.
    pub const REQUIREMENTF_PREFERENCES_ONLY: u32 = 0x8000_0000;
    /// `KSALLOCATOR_OPTIONF_COMPATIBLE`.
    pub const OPTIONF_COMPATIBLE: u32 = 0x0000_0001;
    /// `KSALLOCATOR_OPTIONF_SYSTEM_MEMORY`.
    pub const OPTIONF_SYSTEM_MEMORY: u32 = 0x0000_0002;
    /// `KSALLOCATOR_OPTIONF_VALID`.
    pub const OPTIONF_VALID: u32 = 0x0000_0003;
}

/// `FILE_*_ALIGNMENT` values (alignment minus one).
pub mod file_alignment {
    /// `FILE_BYTE_ALIGNMENT`.
    pub const BYTE: u32 = 0x0;
    /// `FILE_WORD_ALIGNMENT`.
    pub const WORD: u32 = 0x1;
    /// `FILE_LONG_ALIGNMENT`.
    pub const LONG: u32 = 0x3;
    /// `FILE_QUAD_ALIGNMENT`.
    pub const QUAD: u32 = 0x7;
    /// `FILE_OCTA_ALIGNMENT`.
    pub const OCTA: u32 = 0xF;
    /// `FILE_32_BYTE_ALIGNMENT`.
    pub const B32: u32 = 0x1F;
    /// `FILE_64_BYTE_ALIGNMENT`.
    pub const B64: u32 = 0x3F;
    /// `FILE_128_BYTE_ALIGNMENT`.
    pub const B128: u32 = 0x7F;
    /// `FILE_256_BYTE_ALIGNMENT`.
    pub const B256: u32 = 0xFF;
    /// `FILE_512_BYTE_ALIGNMENT`.
    pub const B512: u32 = 0x1FF;
}

/// `KSALLOCATOR_FRAMING` (24 bytes, align 4): what a client asks of an allocator.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsAllocatorFraming {
    /// `OptionsFlags` / `RequirementsFlags` (a union in C).
    pub options_flags: u32,
    /// `POOL_TYPE`.
    pub pool_type: u32,
    /// Number of frames.
    pub frames: u32,
    /// Bytes per frame.
    pub frame_size: u32,
    /// `FILE_*_ALIGNMENT` (alignment minus one).
    pub file_alignment: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// `KS_COMPRESSION` (12 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsCompression {
    /// Numerator of the output/input ratio.
    pub ratio_numerator: u32,
    /// Denominator of the ratio.
    pub ratio_denominator: u32,
    /// Constant margin.
    pub ratio_constant_margin: u32,
}

/// `KS_FRAMING_RANGE` (12 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsFramingRange {
    /// Smallest frame.
    pub min_frame_size: u32,
    /// Largest frame.
    pub max_frame_size: u32,
    /// Step between sizes.
    pub stepping: u32,
}

/// `KS_FRAMING_RANGE_WEIGHTED` (20 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsFramingRangeWeighted {
    /// The range.
    pub range: KsFramingRange,
    /// Weight when in place.
    pub in_place_weight: u32,
    /// Weight when not in place.
    pub not_in_place_weight: u32,
}

/// `KS_FRAMING_ITEM` (88 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsFramingItem {
    /// `KSMEMORY_TYPE_*`.
    pub memory_type: Guid,
    /// Bus type.
    pub bus_type: Guid,
    /// Memory flags.
    pub memory_flags: u32,
    /// Bus flags.
    pub bus_flags: u32,
    /// `KSALLOCATOR_*` flags.
    pub flags: u32,
    /// Number of frames.
    pub frames: u32,
    /// `FILE_*_ALIGNMENT`.
    pub file_alignment: u32,
    /// Memory type weight.
    pub memory_type_weight: u32,
    /// Physical frame size range.
    pub physical_range: KsFramingRange,
    /// Framing range with weights.
    pub framing_range: KsFramingRangeWeighted,
}

/// `KSALLOCATOR_FRAMING_EX` with its one declared item (112 bytes); real blobs carry
/// `count_items` items, i.e. `24 + 88 * count_items` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsAllocatorFramingEx {
    /// Number of framing items that follow.
    pub count_items: u32,
    /// Pin flags.
    pub pin_flags: u32,
    /// Output compression.
    pub output_compression: KsCompression,
    /// Pin weight.
    pub pin_weight: u32,
    /// The first framing item.
    pub framing_item: [KsFramingItem; 1],
}

impl KsAllocatorFramingEx {
    /// Bytes of the fixed header before the items.
    pub const HEADER_SIZE: usize = 24;
    /// Bytes of a blob carrying `items` framing items (`None` on overflow).
    #[must_use]
    pub const fn blob_size(items: u32) -> Option<usize> {
        match (items as usize).checked_mul(core::mem::size_of::<KsFramingItem>()) {
            Some(n) => n.checked_add(Self::HEADER_SIZE),
            None => None,
        }
    }
}

/// `KSSTREAMALLOCATOR_STATUS` (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsStreamAllocatorStatus {
    /// The framing in force.
    pub framing: KsAllocatorFraming,
    /// Frames handed out now.
    pub allocated_frames: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// `KSSTREAMALLOCATOR_STATUS_EX` (120 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsStreamAllocatorStatusEx {
    /// The framing in force, extended form.
    pub framing: KsAllocatorFramingEx,
    /// Frames handed out now.
    pub allocated_frames: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Opaque `FILE_OBJECT`: the function-table routines take the allocator's file object.
#[repr(C)]
pub struct FileObject {
    _opaque: [u8; 0],
}

/// `PFNALLOCATOR_ALLOCATEFRAME`: `NTSTATUS (*)(PFILE_OBJECT FileObject, PVOID *Frame)`.
/// ks.h gives no calling-convention keyword: the default C convention (one ABI on x64).
pub type PfnAllocatorAllocateFrame = unsafe extern "C" fn(
    file_object: *mut FileObject,
    frame: *mut *mut core::ffi::c_void,
) -> NtStatus;

/// `PFNALLOCATOR_FREEFRAME`: `VOID (*)(PFILE_OBJECT FileObject, PVOID Frame)`.
pub type PfnAllocatorFreeFrame =
    unsafe extern "C" fn(file_object: *mut FileObject, frame: *mut core::ffi::c_void);

/// `KSSTREAMALLOCATOR_FUNCTIONTABLE` (16 bytes; defined only for kernel mode in ks.h).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KsStreamAllocatorFunctionTable {
    /// `AllocateFrame`.
    pub allocate_frame: PfnAllocatorAllocateFrame,
    /// `FreeFrame`.
    pub free_frame: PfnAllocatorFreeFrame,
}

/// `KSEVENTDATA` (32 bytes, align 8). The 24-byte union after the type is kept as the
/// event/semaphore/DPC pointer-or-handle followed by two reserved words.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsEventData {
    /// `KSEVENTF_*`.
    pub notification_type: u32,
    /// Padding before the union (the union holds pointers).
    pub padding: u32,
    /// `EventHandle.Event` / `EventObject.Event` / `Dpc.Dpc` / ...
    pub object: usize,
    /// The union's remaining two pointer-sized words.
    pub reserved: [usize; 2],
}

/// `KSPRIORITY` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsPriority {
    /// Priority class.
    pub priority_class: u32,
    /// Priority sub-class.
    pub priority_sub_class: u32,
}

/// `KSPRIORITY_NORMAL`.
pub const KSPRIORITY_NORMAL: u32 = 0x4000_0000;

/// `KSPIN_CONNECT` (72 bytes, align 8); a `KSDATAFORMAT` follows it in the create buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsPinConnect {
    /// Interface (`KSINTERFACESETID_Standard` / `KSINTERFACE_STANDARD_STREAMING`).
    pub interface: KsPinMedium,
    /// Medium (`KSMEDIUMSETID_Standard` / `KSMEDIUM_TYPE_ANYINSTANCE`).
    pub medium: KsPinMedium,
    /// Pin factory id.
    pub pin_id: u32,
    /// Handle of the pin to connect to (null for a sink pin).
    pub pin_to_handle: usize,
    /// Priority.
    pub priority: KsPriority,
}

/// `KSDATAFORMAT` = `KSDATARANGE` (64 bytes, align 8: a union with a `LONGLONG`).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsDataFormat {
    /// Bytes of the format including any specifier data after it.
    pub format_size: u32,
    /// `KSDATAFORMAT_*` flags.
    pub flags: u32,
    /// Sample size.
    pub sample_size: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Major format.
    pub major_format: Guid,
    /// Sub format.
    pub sub_format: Guid,
    /// Specifier.
    pub specifier: Guid,
}

/// `KSDATARANGE`.
pub type KsDataRange = KsDataFormat;

/// `KSMULTIPLE_ITEM` (8 bytes): header of a list answer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsMultipleItem {
    /// Bytes of header plus items.
    pub size: u32,
    /// Number of items.
    pub count: u32,
}

/// `KSPIN_CINSTANCES` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsPinCInstances {
    /// Instances possible.
    pub possible_count: u32,
    /// Instances open now.
    pub current_count: u32,
}

/// `KSPROPERTY_DESCRIPTION` (40 bytes): header of a BASICSUPPORT answer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsPropertyDescription {
    /// `KSPROPERTY_TYPE_GET` / `SET` bits the property supports.
    pub access_flags: u32,
    /// Bytes of the whole description including member lists.
    pub description_size: u32,
    /// Value type (`KSPROPTYPESETID_General`, id = VARTYPE).
    pub prop_type_set: KsIdentifier,
    /// Number of member lists that follow.
    pub members_list_count: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// `KSPROPERTY_MEMBERSHEADER` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KsPropertyMembersHeader {
    /// `KSPROPERTY_MEMBER_*`.
    pub members_flags: u32,
    /// Bytes of one member.
    pub members_size: u32,
    /// Number of members.
    pub members_count: u32,
    /// `KSPROPERTY_MEMBER_FLAG_*`.
    pub flags: u32,
}
