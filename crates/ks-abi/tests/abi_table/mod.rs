//! The one table of ABI facts both `layout.rs` and `mingw_crosscheck.rs` are driven from.
//!
//! Every entry pairs three things:
//! - what the Rust type actually is (`size_of`, `align_of`, `offset_of!`, the constant's value),
//! - the number written down by hand from `/work/shared/reference/ks-allocator-facts.md`
//!   (x86_64 Windows, LLP64) -- `layout.rs` asserts the first equals this;
//! - the C spelling (type, field path, macro or enumerator name) -- `mingw_crosscheck.rs`
//!   turns it into `_Static_assert`s against mingw-w64's `ntddk.h`/`ks.h`/`ksmedia.h` that
//!   must agree with both numbers above.
//!
//! Where a number is not in the reference file, the entry says where it came from.
//! Where mingw-w64's headers lack something, the entry says so and only that C check is
//! skipped (today every type, constant and GUID below is present in mingw-w64 10.0).

use core::mem::{align_of, offset_of, size_of};

use ks_abi::guid::{self, Guid};
use ks_abi::ioctl;
use ks_abi::ks::{
    self, KsAllocatorFraming, KsAllocatorFramingEx, KsCompression, KsDataFormat, KsDataRange,
    KsEvent, KsEventData, KsFramingItem, KsFramingRange, KsFramingRangeWeighted, KsIdentifier,
    KsMethod, KsMultipleItem, KsPinCInstances, KsPinConnect, KsPinMedium, KsPriority, KsProperty,
    KsPropertyDescription, KsPropertyMembersHeader, KsStreamAllocatorFunctionTable,
    KsStreamAllocatorStatus, KsStreamAllocatorStatusEx, KspPin, PfnAllocatorAllocateFrame,
    PfnAllocatorFreeFrame,
};
use ks_abi::NtStatus;

/// One field of a struct: where Rust puts it, where the reference says it is, and its C path.
#[derive(Debug)]
pub struct Field {
    /// Rust field name.
    pub rust: &'static str,
    /// C member designator for `offsetof` (may be nested, e.g. `EventHandle.Event`), or
    /// `None` where the Rust struct spells out padding that C leaves implicit.
    pub c: Option<&'static str>,
    /// `offset_of!` of the Rust field.
    pub rust_offset: usize,
    /// `size_of` of the Rust field's type.
    pub rust_size: usize,
    /// Offset from the reference file.
    pub expected_offset: usize,
}

/// One `#[repr(C)]` struct of `ks-abi` and its C counterpart.
#[derive(Debug)]
pub struct StructLayout {
    /// Rust type name (as written in `ks-abi`).
    pub rust: &'static str,
    /// C typedef name in `ks.h` / `ntddk.h`.
    pub c: &'static str,
    /// `size_of` of the Rust type.
    pub rust_size: usize,
    /// `align_of` of the Rust type.
    pub rust_align: usize,
    /// Size from the reference file.
    pub expected_size: usize,
    /// Alignment from the reference file.
    pub expected_align: usize,
    /// Every field, in declaration order.
    pub fields: &'static [Field],
}

/// A Rust type alias that names a C typedef of the same layout (`KSPROPERTY` = `KSIDENTIFIER`).
#[derive(Debug)]
pub struct Alias {
    /// Rust alias name.
    pub rust: &'static str,
    /// C typedef name.
    pub c: &'static str,
    /// `size_of` of the alias.
    pub rust_size: usize,
    /// `align_of` of the alias.
    pub rust_align: usize,
    /// C name of the laid-out struct it stands for.
    pub target: &'static str,
}

/// Which set of headers a C check needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Headers {
    /// Kernel mode: `ntddk.h` first, so `ks.h` shows its `_NTDDK_` part.
    Kernel,
    /// User mode: `windows.h` + `ks.h` + `ksproxy.h` (COM; cannot be included in kernel mode).
    User,
}

/// A GUID `ks-abi` names, its textual value from the reference, and mingw's name for it.
#[derive(Debug)]
pub struct GuidEntry {
    /// Rust constant path, for messages.
    pub rust: &'static str,
    /// The Rust value.
    pub value: Guid,
    /// The C name; mingw defines `STATIC_<c>` as the initializer list.
    pub c: &'static str,
    /// Registry form from the reference file (upper case, braced).
    pub expected: &'static str,
    /// Headers that define `STATIC_<c>`.
    #[allow(dead_code)] // Only mingw_crosscheck.rs reads it; layout.rs has no C side.
    pub headers: Headers,
}

/// A numeric constant (IOCTL, NTSTATUS, flag, id) and its C name.
#[derive(Debug)]
pub struct Constant {
    /// Rust constant path, for messages.
    pub rust: &'static str,
    /// The Rust value as its 32-bit pattern.
    pub value: u32,
    /// C macro or enumerator name.
    pub c: &'static str,
    /// Value from the reference file (or the noted header where the reference is silent).
    pub expected: u32,
}

/// Builds a [`StructLayout`] and checks at compile time that each listed field exists with
/// the listed type (so `rust_size` is the real field size, not a guess).
///
/// `field: Type => "CPath" @ offset` or `field: Type => _ @ offset` (no C member).
macro_rules! layout {
    ($rust:ident => $c:literal, size $size:literal, align $align:literal {
        $($field:ident : $fty:ty => $cpath:tt @ $off:literal),* $(,)?
    }) => {{
        $(
            const _: () = {
                const fn _field_has_type(s: &$rust) -> &$fty {
                    &s.$field
                }
            };
        )*
        StructLayout {
            rust: stringify!($rust),
            c: $c,
            rust_size: size_of::<$rust>(),
            rust_align: align_of::<$rust>(),
            expected_size: $size,
            expected_align: $align,
            fields: &[$(Field {
                rust: stringify!($field),
                c: c_path!($cpath),
                rust_offset: offset_of!($rust, $field),
                rust_size: size_of::<$fty>(),
                expected_offset: $off,
            }),*],
        }
    }};
}

/// `"Member"` -> `Some("Member")`, `_` -> `None`.
macro_rules! c_path {
    (_) => {
        None
    };
    ($s:literal) => {
        Some($s)
    };
}

/// `GUID` (16 bytes, align 4): the standard `guiddef.h` layout (not spelled out in the
/// reference file, which uses GUIDs as 16-byte members at align-4 offsets throughout).
pub const GUID: StructLayout = layout!(Guid => "GUID", size 16, align 4 {
    data1: u32 => "Data1" @ 0,
    data2: u16 => "Data2" @ 4,
    data3: u16 => "Data3" @ 6,
    data4: [u8; 8] => "Data4" @ 8,
});

/// `KSIDENTIFIER` (reference section 2: 24 bytes, align 8 from the `LONGLONG` union member).
pub const KSIDENTIFIER: StructLayout = layout!(KsIdentifier => "KSIDENTIFIER", size 24, align 8 {
    set: Guid => "Set" @ 0,
    id: u32 => "Id" @ 16,
    flags: u32 => "Flags" @ 20,
});

/// `KSP_PIN` (reference section 6: KSPROPERTY + PinId + Reserved, 32 bytes).
pub const KSP_PIN: StructLayout = layout!(KspPin => "KSP_PIN", size 32, align 8 {
    property: KsProperty => "Property" @ 0,
    pin_id: u32 => "PinId" @ 24,
    reserved: u32 => "Reserved" @ 28,
});

/// `KSALLOCATOR_FRAMING` (reference section 2: 24 bytes, align 4).
pub const KSALLOCATOR_FRAMING: StructLayout = layout!(KsAllocatorFraming => "KSALLOCATOR_FRAMING", size 24, align 4 {
    options_flags: u32 => "OptionsFlags" @ 0,
    pool_type: u32 => "PoolType" @ 4,
    frames: u32 => "Frames" @ 8,
    frame_size: u32 => "FrameSize" @ 12,
    file_alignment: u32 => "FileAlignment" @ 16,
    reserved: u32 => "Reserved" @ 20,
});

/// `KS_COMPRESSION` (reference section 2: 12 bytes).
pub const KS_COMPRESSION: StructLayout = layout!(KsCompression => "KS_COMPRESSION", size 12, align 4 {
    ratio_numerator: u32 => "RatioNumerator" @ 0,
    ratio_denominator: u32 => "RatioDenominator" @ 4,
    ratio_constant_margin: u32 => "RatioConstantMargin" @ 8,
});

/// `KS_FRAMING_RANGE` (reference section 2: 12 bytes).
pub const KS_FRAMING_RANGE: StructLayout = layout!(KsFramingRange => "KS_FRAMING_RANGE", size 12, align 4 {
    min_frame_size: u32 => "MinFrameSize" @ 0,
    max_frame_size: u32 => "MaxFrameSize" @ 4,
    stepping: u32 => "Stepping" @ 8,
});

/// `KS_FRAMING_RANGE_WEIGHTED` (reference section 2: 20 bytes, Range(12) + two weights).
pub const KS_FRAMING_RANGE_WEIGHTED: StructLayout = layout!(KsFramingRangeWeighted => "KS_FRAMING_RANGE_WEIGHTED", size 20, align 4 {
    range: KsFramingRange => "Range" @ 0,
    in_place_weight: u32 => "InPlaceWeight" @ 12,
    not_in_place_weight: u32 => "NotInPlaceWeight" @ 16,
});

/// `KS_FRAMING_ITEM` (reference section 2: 88 bytes).
pub const KS_FRAMING_ITEM: StructLayout = layout!(KsFramingItem => "KS_FRAMING_ITEM", size 88, align 4 {
    memory_type: Guid => "MemoryType" @ 0,
    bus_type: Guid => "BusType" @ 16,
    memory_flags: u32 => "MemoryFlags" @ 32,
    bus_flags: u32 => "BusFlags" @ 36,
    flags: u32 => "Flags" @ 40,
    frames: u32 => "Frames" @ 44,
    file_alignment: u32 => "FileAlignment" @ 48,
    memory_type_weight: u32 => "MemoryTypeWeight" @ 52,
    physical_range: KsFramingRange => "PhysicalRange" @ 56,
    framing_range: KsFramingRangeWeighted => "FramingRange" @ 68,
});

/// `KSALLOCATOR_FRAMING_EX` with its one declared item (reference section 2: 112 bytes).
pub const KSALLOCATOR_FRAMING_EX: StructLayout = layout!(KsAllocatorFramingEx => "KSALLOCATOR_FRAMING_EX", size 112, align 4 {
    count_items: u32 => "CountItems" @ 0,
    pin_flags: u32 => "PinFlags" @ 4,
    output_compression: KsCompression => "OutputCompression" @ 8,
    pin_weight: u32 => "PinWeight" @ 20,
    framing_item: [KsFramingItem; 1] => "FramingItem" @ 24,
});

/// `KSSTREAMALLOCATOR_STATUS` (reference section 2: 32 bytes).
pub const KSSTREAMALLOCATOR_STATUS: StructLayout = layout!(KsStreamAllocatorStatus => "KSSTREAMALLOCATOR_STATUS", size 32, align 4 {
    framing: KsAllocatorFraming => "Framing" @ 0,
    allocated_frames: u32 => "AllocatedFrames" @ 24,
    reserved: u32 => "Reserved" @ 28,
});

/// `KSSTREAMALLOCATOR_STATUS_EX` (reference section 2: 120 bytes).
pub const KSSTREAMALLOCATOR_STATUS_EX: StructLayout = layout!(KsStreamAllocatorStatusEx => "KSSTREAMALLOCATOR_STATUS_EX", size 120, align 4 {
    framing: KsAllocatorFramingEx => "Framing" @ 0,
    allocated_frames: u32 => "AllocatedFrames" @ 112,
    reserved: u32 => "Reserved" @ 116,
});

/// `KSSTREAMALLOCATOR_FUNCTIONTABLE` (reference section 2: 16 bytes, two function pointers;
/// only under `_NTDDK_`, hence the kernel-mode include order).
pub const KSSTREAMALLOCATOR_FUNCTIONTABLE: StructLayout = layout!(
    KsStreamAllocatorFunctionTable => "KSSTREAMALLOCATOR_FUNCTIONTABLE", size 16, align 8 {
        allocate_frame: PfnAllocatorAllocateFrame => "AllocateFrame" @ 0,
        free_frame: PfnAllocatorFreeFrame => "FreeFrame" @ 8,
    }
);

/// `KSEVENTDATA` (reference section 2: 32 bytes; the union starts at 8). The Rust struct
/// names the 4 bytes of padding C leaves implicit, and stands for the union by its
/// `EventHandle` arm (`HANDLE Event; ULONG_PTR Reserved[2]`).
pub const KSEVENTDATA: StructLayout = layout!(KsEventData => "KSEVENTDATA", size 32, align 8 {
    notification_type: u32 => "NotificationType" @ 0,
    padding: u32 => _ @ 4,
    object: usize => "EventHandle.Event" @ 8,
    reserved: [usize; 2] => "EventHandle.Reserved" @ 16,
});

/// `KSPRIORITY` (two ULONGs; the reference file does not spell it out, the layout is
/// `ks.h`'s `{ ULONG PriorityClass; ULONG PrioritySubClass; }`).
pub const KSPRIORITY: StructLayout = layout!(KsPriority => "KSPRIORITY", size 8, align 4 {
    priority_class: u32 => "PriorityClass" @ 0,
    priority_sub_class: u32 => "PrioritySubClass" @ 4,
});

/// `KSPIN_CONNECT` (not in the reference file; from `ks.h`'s declaration: two 24-byte
/// `KSIDENTIFIER`s, `ULONG PinId` at 48, `HANDLE PinToHandle` aligned up to 56,
/// `KSPRIORITY` at 64, 72 bytes in all).
pub const KSPIN_CONNECT: StructLayout = layout!(KsPinConnect => "KSPIN_CONNECT", size 72, align 8 {
    interface: KsPinMedium => "Interface" @ 0,
    medium: KsPinMedium => "Medium" @ 24,
    pin_id: u32 => "PinId" @ 48,
    pin_to_handle: usize => "PinToHandle" @ 56,
    priority: KsPriority => "Priority" @ 64,
});

/// `KSDATAFORMAT` (not in the reference file; from `ks.h`'s declaration: four ULONGs and
/// three GUIDs in a union with a `LONGLONG`, so 64 bytes, align 8).
pub const KSDATAFORMAT: StructLayout = layout!(KsDataFormat => "KSDATAFORMAT", size 64, align 8 {
    format_size: u32 => "FormatSize" @ 0,
    flags: u32 => "Flags" @ 4,
    sample_size: u32 => "SampleSize" @ 8,
    reserved: u32 => "Reserved" @ 12,
    major_format: Guid => "MajorFormat" @ 16,
    sub_format: Guid => "SubFormat" @ 32,
    specifier: Guid => "Specifier" @ 48,
});

/// `KSMULTIPLE_ITEM` (reference section 2 "Misc": 8 bytes).
pub const KSMULTIPLE_ITEM: StructLayout = layout!(KsMultipleItem => "KSMULTIPLE_ITEM", size 8, align 4 {
    size: u32 => "Size" @ 0,
    count: u32 => "Count" @ 4,
});

/// `KSPIN_CINSTANCES` (not in the reference file; `ks.h`: two ULONGs).
pub const KSPIN_CINSTANCES: StructLayout = layout!(KsPinCInstances => "KSPIN_CINSTANCES", size 8, align 4 {
    possible_count: u32 => "PossibleCount" @ 0,
    current_count: u32 => "CurrentCount" @ 4,
});

/// `KSPROPERTY_DESCRIPTION` (reference section 2: 40 bytes; align 8 through `PropTypeSet`).
pub const KSPROPERTY_DESCRIPTION: StructLayout = layout!(KsPropertyDescription => "KSPROPERTY_DESCRIPTION", size 40, align 8 {
    access_flags: u32 => "AccessFlags" @ 0,
    description_size: u32 => "DescriptionSize" @ 4,
    prop_type_set: KsIdentifier => "PropTypeSet" @ 8,
    members_list_count: u32 => "MembersListCount" @ 32,
    reserved: u32 => "Reserved" @ 36,
});

/// `KSPROPERTY_MEMBERSHEADER` (reference section 2: 16 bytes).
pub const KSPROPERTY_MEMBERSHEADER: StructLayout = layout!(KsPropertyMembersHeader => "KSPROPERTY_MEMBERSHEADER", size 16, align 4 {
    members_flags: u32 => "MembersFlags" @ 0,
    members_size: u32 => "MembersSize" @ 4,
    members_count: u32 => "MembersCount" @ 8,
    flags: u32 => "Flags" @ 12,
});

/// `NTSTATUS` (a `LONG`; a transparent newtype in Rust, so no C members to name).
pub const NTSTATUS: StructLayout = layout!(NtStatus => "NTSTATUS", size 4, align 4 {});

/// Every struct above, in source order.
pub const STRUCTS: &[&StructLayout] = &[
    &GUID,
    &KSIDENTIFIER,
    &KSP_PIN,
    &KSALLOCATOR_FRAMING,
    &KS_COMPRESSION,
    &KS_FRAMING_RANGE,
    &KS_FRAMING_RANGE_WEIGHTED,
    &KS_FRAMING_ITEM,
    &KSALLOCATOR_FRAMING_EX,
    &KSSTREAMALLOCATOR_STATUS,
    &KSSTREAMALLOCATOR_STATUS_EX,
    &KSSTREAMALLOCATOR_FUNCTIONTABLE,
    &KSEVENTDATA,
    &KSPRIORITY,
    &KSPIN_CONNECT,
    &KSDATAFORMAT,
    &KSMULTIPLE_ITEM,
    &KSPIN_CINSTANCES,
    &KSPROPERTY_DESCRIPTION,
    &KSPROPERTY_MEMBERSHEADER,
    &NTSTATUS,
];

/// Structs declared in `ks-abi` that deliberately have no entry, with the reason.
#[allow(dead_code)] // Only layout.rs reads it.
pub const NOT_LAID_OUT: &[(&str, &str)] = &[(
    "FileObject",
    "opaque stand-in for FILE_OBJECT; only ever used behind a pointer",
)];

/// Builds an [`Alias`].
macro_rules! alias {
    ($rust:ident => $c:literal as $target:literal) => {
        Alias {
            rust: stringify!($rust),
            c: $c,
            rust_size: size_of::<$rust>(),
            rust_align: align_of::<$rust>(),
            target: $target,
        }
    };
}

/// The Rust aliases of C typedefs; each must have its target's size and alignment.
pub const ALIASES: &[Alias] = &[
    alias!(KsProperty => "KSPROPERTY" as "KSIDENTIFIER"),
    alias!(KsMethod => "KSMETHOD" as "KSIDENTIFIER"),
    alias!(KsEvent => "KSEVENT" as "KSIDENTIFIER"),
    alias!(KsPinMedium => "KSPIN_MEDIUM" as "KSIDENTIFIER"),
    alias!(KsPinMedium => "KSPIN_INTERFACE" as "KSIDENTIFIER"),
    alias!(KsDataRange => "KSDATARANGE" as "KSDATAFORMAT"),
];

/// Builds a [`GuidEntry`].
macro_rules! guid {
    ($rust:ident => $c:literal, $expected:literal) => {
        guid!($rust => $c, $expected, Headers::Kernel)
    };
    ($rust:ident => $c:literal, $expected:literal, $headers:expr) => {
        GuidEntry {
            rust: stringify!($rust),
            value: guid::$rust,
            c: $c,
            expected: $expected,
            headers: $headers,
        }
    };
}

/// Every GUID `ks-abi` defines, with its value from reference sections 1 and 6.
pub const GUIDS: &[GuidEntry] = &[
    GuidEntry {
        rust: "Guid::NULL",
        value: Guid::NULL,
        c: "GUID_NULL",
        expected: "{00000000-0000-0000-0000-000000000000}",
        headers: Headers::Kernel,
    },
    guid!(KSPROPSETID_STREAM_ALLOCATOR => "KSPROPSETID_StreamAllocator",
        "{CF6E4342-EC87-11CF-A130-0020AFD156E4}"),
    guid!(KSMETHODSETID_STREAM_ALLOCATOR => "KSMETHODSETID_StreamAllocator",
        "{CF6E4341-EC87-11CF-A130-0020AFD156E4}"),
    guid!(KSEVENTSETID_STREAM_ALLOCATOR => "KSEVENTSETID_StreamAllocator",
        "{75D95571-073C-11D0-A161-0020AFD156E4}"),
    guid!(KSPROPSETID_STREAM => "KSPROPSETID_Stream", "{65AABA60-98AE-11CF-A10D-0020AFD156E4}"),
    guid!(KSPROPSETID_CONNECTION => "KSPROPSETID_Connection",
        "{1D58C920-AC9B-11CF-A5D6-28DB04C10000}"),
    guid!(KSPROPSETID_PIN => "KSPROPSETID_Pin", "{8C134960-51AD-11CF-878A-94F801C10000}"),
    guid!(KSPROPSETID_TOPOLOGY => "KSPROPSETID_Topology",
        "{720D4AC0-7533-11D0-A5D6-28DB04C10000}"),
    guid!(KSPROPSETID_GENERAL => "KSPROPSETID_General",
        "{1464EDA5-6A8F-11D1-9AA7-00A0C9223196}"),
    guid!(KSPROPTYPESETID_GENERAL => "KSPROPTYPESETID_General",
        "{97E99BA0-BDEA-11CF-A5D6-28DB04C10000}"),
    guid!(KSNAME_FILTER => "KSNAME_Filter", "{9B365890-165F-11D0-A195-0020AFD156E4}"),
    guid!(KSNAME_PIN => "KSNAME_Pin", "{146F1A80-4791-11D0-A5D6-28DB04C10000}"),
    guid!(KSNAME_ALLOCATOR => "KSNAME_Allocator", "{642F5D00-4791-11D0-A5D6-28DB04C10000}"),
    guid!(KSCATEGORY_DATATRANSFORM => "KSCATEGORY_DATATRANSFORM",
        "{2EB07EA0-7E70-11D0-A5D6-28DB04C10000}"),
    guid!(KSCATEGORY_BRIDGE => "KSCATEGORY_BRIDGE", "{085AFF00-62CE-11CF-A5D6-28DB04C10000}"),
    guid!(KSINTERFACESETID_STANDARD => "KSINTERFACESETID_Standard",
        "{1A8766A0-62CE-11CF-A5D6-28DB04C10000}"),
    guid!(KSMEDIUMSETID_STANDARD => "KSMEDIUMSETID_Standard",
        "{4747B320-62CE-11CF-A5D6-28DB04C10000}"),
    guid!(KSDATAFORMAT_TYPE_STREAM => "KSDATAFORMAT_TYPE_STREAM",
        "{E436EB83-524F-11CE-9F53-0020AF0BA770}"),
    guid!(KSDATAFORMAT_SUBTYPE_NONE => "KSDATAFORMAT_SUBTYPE_NONE",
        "{E436EB8E-524F-11CE-9F53-0020AF0BA770}"),
    guid!(KSDATAFORMAT_SPECIFIER_NONE => "KSDATAFORMAT_SPECIFIER_NONE",
        "{0F6417D6-C318-11D0-A43F-00A0C9223196}"),
    guid!(KSMEMORY_TYPE_KERNEL_NONPAGED => "KSMEMORY_TYPE_KERNEL_NONPAGED",
        "{4A6D5FC4-7895-11D1-B069-00A0C9062802}"),
    // ksproxy.h is a user-mode COM header: it needs windows.h/objbase, not ntddk.h.
    guid!(CLSID_PROXY => "CLSID_Proxy", "{17CCA71B-ECD7-11D0-B908-00A0C9223196}",
        Headers::User),
];

/// Builds a [`Constant`] from a Rust `u32` path.
macro_rules! constant {
    ($first:ident $(:: $rest:ident)* => $c:literal = $expected:literal) => {
        Constant {
            rust: concat!(stringify!($first) $(, "::", stringify!($rest))*),
            value: $first $(:: $rest)*,
            c: $c,
            expected: $expected,
        }
    };
}

/// Builds a [`Constant`] from an `NtStatus`, keeping its 32-bit pattern.
macro_rules! status {
    ($name:ident => $c:literal = $expected:literal) => {
        Constant {
            rust: concat!("NtStatus::", stringify!($name)),
            // The bit pattern, as `ntstatus.h` writes it (`0xC0000225`).
            value: u32::from_ne_bytes(NtStatus::$name.0.to_ne_bytes()),
            c: $c,
            expected: $expected,
        }
    };
}

/// IOCTL codes (reference section 3) and their building blocks.
pub const IOCTLS: &[Constant] = &[
    constant!(ioctl::FILE_DEVICE_KS => "FILE_DEVICE_KS" = 0x0000_002F),
    constant!(ioctl::METHOD_NEITHER => "METHOD_NEITHER" = 3),
    constant!(ioctl::FILE_ANY_ACCESS => "FILE_ANY_ACCESS" = 0),
    constant!(ioctl::FILE_READ_ACCESS => "FILE_READ_ACCESS" = 1),
    constant!(ioctl::FILE_WRITE_ACCESS => "FILE_WRITE_ACCESS" = 2),
    constant!(ioctl::IOCTL_KS_PROPERTY => "IOCTL_KS_PROPERTY" = 0x002F_0003),
    constant!(ioctl::IOCTL_KS_ENABLE_EVENT => "IOCTL_KS_ENABLE_EVENT" = 0x002F_0007),
    constant!(ioctl::IOCTL_KS_DISABLE_EVENT => "IOCTL_KS_DISABLE_EVENT" = 0x002F_000B),
    constant!(ioctl::IOCTL_KS_METHOD => "IOCTL_KS_METHOD" = 0x002F_000F),
    constant!(ioctl::IOCTL_KS_WRITE_STREAM => "IOCTL_KS_WRITE_STREAM" = 0x002F_8013),
    constant!(ioctl::IOCTL_KS_READ_STREAM => "IOCTL_KS_READ_STREAM" = 0x002F_4017),
    constant!(ioctl::IOCTL_KS_RESET_STATE => "IOCTL_KS_RESET_STATE" = 0x002F_001B),
];

/// Every `NtStatus` constant (reference section 7; `INVALID_HANDLE`,
/// `OBJECT_NAME_INVALID` and `OBJECT_NAME_NOT_FOUND` are not in the reference file, their
/// values are `ntstatus.h`'s).
pub const STATUSES: &[Constant] = &[
    status!(SUCCESS => "STATUS_SUCCESS" = 0x0000_0000),
    status!(PENDING => "STATUS_PENDING" = 0x0000_0103),
    status!(BUFFER_OVERFLOW => "STATUS_BUFFER_OVERFLOW" = 0x8000_0005),
    status!(UNSUCCESSFUL => "STATUS_UNSUCCESSFUL" = 0xC000_0001),
    status!(NOT_IMPLEMENTED => "STATUS_NOT_IMPLEMENTED" = 0xC000_0002),
    status!(INVALID_HANDLE => "STATUS_INVALID_HANDLE" = 0xC000_0008),
    status!(INVALID_PARAMETER => "STATUS_INVALID_PARAMETER" = 0xC000_000D),
    status!(INVALID_DEVICE_REQUEST => "STATUS_INVALID_DEVICE_REQUEST" = 0xC000_0010),
    status!(ACCESS_DENIED => "STATUS_ACCESS_DENIED" = 0xC000_0022),
    status!(BUFFER_TOO_SMALL => "STATUS_BUFFER_TOO_SMALL" = 0xC000_0023),
    status!(OBJECT_NAME_INVALID => "STATUS_OBJECT_NAME_INVALID" = 0xC000_0033),
    status!(OBJECT_NAME_NOT_FOUND => "STATUS_OBJECT_NAME_NOT_FOUND" = 0xC000_0034),
    status!(INSUFFICIENT_RESOURCES => "STATUS_INSUFFICIENT_RESOURCES" = 0xC000_009A),
    status!(DEVICE_NOT_READY => "STATUS_DEVICE_NOT_READY" = 0xC000_00A3),
    status!(NOT_SUPPORTED => "STATUS_NOT_SUPPORTED" = 0xC000_00BB),
    status!(CANCELLED => "STATUS_CANCELLED" = 0xC000_0120),
    status!(INVALID_DEVICE_STATE => "STATUS_INVALID_DEVICE_STATE" = 0xC000_0184),
    status!(INVALID_BUFFER_SIZE => "STATUS_INVALID_BUFFER_SIZE" = 0xC000_0206),
    status!(NOT_FOUND => "STATUS_NOT_FOUND" = 0xC000_0225),
    status!(NO_MATCH => "STATUS_NO_MATCH" = 0xC000_0272),
];

/// Flags and ids from `ks.rs` (reference sections 1 and 2; `FILE_*_ALIGNMENT`,
/// `KSPRIORITY_NORMAL`, the pin ids/enums and the pool types are not in the reference
/// file, their values are `ks.h`'s / `wdm.h`'s).
pub const FLAGS_AND_IDS: &[Constant] = &[
    constant!(ks::property_type::GET => "KSPROPERTY_TYPE_GET" = 0x0000_0001),
    constant!(ks::property_type::SET => "KSPROPERTY_TYPE_SET" = 0x0000_0002),
    constant!(ks::property_type::SETSUPPORT => "KSPROPERTY_TYPE_SETSUPPORT" = 0x0000_0100),
    constant!(ks::property_type::BASICSUPPORT => "KSPROPERTY_TYPE_BASICSUPPORT" = 0x0000_0200),
    constant!(ks::property_type::RELATIONS => "KSPROPERTY_TYPE_RELATIONS" = 0x0000_0400),
    constant!(ks::property_type::SERIALIZESET => "KSPROPERTY_TYPE_SERIALIZESET" = 0x0000_0800),
    constant!(ks::property_type::UNSERIALIZESET => "KSPROPERTY_TYPE_UNSERIALIZESET" = 0x0000_1000),
    constant!(ks::property_type::SERIALIZERAW => "KSPROPERTY_TYPE_SERIALIZERAW" = 0x0000_2000),
    constant!(ks::property_type::UNSERIALIZERAW => "KSPROPERTY_TYPE_UNSERIALIZERAW" = 0x0000_4000),
    constant!(ks::property_type::SERIALIZESIZE => "KSPROPERTY_TYPE_SERIALIZESIZE" = 0x0000_8000),
    constant!(ks::property_type::DEFAULTVALUES => "KSPROPERTY_TYPE_DEFAULTVALUES" = 0x0001_0000),
    constant!(ks::property_type::TOPOLOGY => "KSPROPERTY_TYPE_TOPOLOGY" = 0x1000_0000),
    constant!(ks::method_type::NONE => "KSMETHOD_TYPE_NONE" = 0x0),
    constant!(ks::method_type::READ => "KSMETHOD_TYPE_READ" = 0x1),
    constant!(ks::method_type::WRITE => "KSMETHOD_TYPE_WRITE" = 0x2),
    constant!(ks::method_type::MODIFY => "KSMETHOD_TYPE_MODIFY" = 0x3),
    constant!(ks::method_type::SOURCE => "KSMETHOD_TYPE_SOURCE" = 0x4),
    constant!(ks::method_type::SETSUPPORT => "KSMETHOD_TYPE_SETSUPPORT" = 0x100),
    constant!(ks::method_type::BASICSUPPORT => "KSMETHOD_TYPE_BASICSUPPORT" = 0x200),
    constant!(ks::method_type::TOPOLOGY => "KSMETHOD_TYPE_TOPOLOGY" = 0x1000_0000),
    constant!(ks::event_type::ENABLE => "KSEVENT_TYPE_ENABLE" = 0x1),
    constant!(ks::event_type::ONESHOT => "KSEVENT_TYPE_ONESHOT" = 0x2),
    constant!(ks::event_type::ENABLEBUFFERED => "KSEVENT_TYPE_ENABLEBUFFERED" = 0x4),
    constant!(ks::event_type::SETSUPPORT => "KSEVENT_TYPE_SETSUPPORT" = 0x100),
    constant!(ks::event_type::BASICSUPPORT => "KSEVENT_TYPE_BASICSUPPORT" = 0x200),
    constant!(ks::event_type::QUERYBUFFER => "KSEVENT_TYPE_QUERYBUFFER" = 0x400),
    constant!(ks::event_type::TOPOLOGY => "KSEVENT_TYPE_TOPOLOGY" = 0x1000_0000),
    constant!(ks::eventf::EVENT_HANDLE => "KSEVENTF_EVENT_HANDLE" = 0x01),
    constant!(ks::eventf::SEMAPHORE_HANDLE => "KSEVENTF_SEMAPHORE_HANDLE" = 0x02),
    constant!(ks::eventf::EVENT_OBJECT => "KSEVENTF_EVENT_OBJECT" = 0x04),
    constant!(ks::eventf::SEMAPHORE_OBJECT => "KSEVENTF_SEMAPHORE_OBJECT" = 0x08),
    constant!(ks::eventf::DPC => "KSEVENTF_DPC" = 0x10),
    constant!(ks::eventf::WORKITEM => "KSEVENTF_WORKITEM" = 0x20),
    constant!(ks::eventf::KSWORKITEM => "KSEVENTF_KSWORKITEM" = 0x80),
    constant!(ks::stream_allocator::PROPERTY_FUNCTIONTABLE
        => "KSPROPERTY_STREAMALLOCATOR_FUNCTIONTABLE" = 0),
    constant!(ks::stream_allocator::PROPERTY_STATUS => "KSPROPERTY_STREAMALLOCATOR_STATUS" = 1),
    constant!(ks::stream_allocator::METHOD_ALLOC => "KSMETHOD_STREAMALLOCATOR_ALLOC" = 0),
    constant!(ks::stream_allocator::METHOD_FREE => "KSMETHOD_STREAMALLOCATOR_FREE" = 1),
    constant!(ks::stream_allocator::EVENT_INTERNAL_FREEFRAME
        => "KSEVENT_STREAMALLOCATOR_INTERNAL_FREEFRAME" = 0),
    constant!(ks::stream_allocator::EVENT_FREEFRAME => "KSEVENT_STREAMALLOCATOR_FREEFRAME" = 1),
    constant!(ks::stream::PROPERTY_ALLOCATOR => "KSPROPERTY_STREAM_ALLOCATOR" = 0),
    constant!(ks::connection::PROPERTY_STATE => "KSPROPERTY_CONNECTION_STATE" = 0),
    constant!(ks::connection::PROPERTY_DATAFORMAT => "KSPROPERTY_CONNECTION_DATAFORMAT" = 2),
    constant!(ks::connection::PROPERTY_ALLOCATORFRAMING
        => "KSPROPERTY_CONNECTION_ALLOCATORFRAMING" = 3),
    constant!(ks::connection::PROPERTY_ALLOCATORFRAMING_EX
        => "KSPROPERTY_CONNECTION_ALLOCATORFRAMING_EX" = 6),
    constant!(ks::pin::CINSTANCES => "KSPROPERTY_PIN_CINSTANCES" = 0),
    constant!(ks::pin::CTYPES => "KSPROPERTY_PIN_CTYPES" = 1),
    constant!(ks::pin::DATAFLOW => "KSPROPERTY_PIN_DATAFLOW" = 2),
    constant!(ks::pin::DATARANGES => "KSPROPERTY_PIN_DATARANGES" = 3),
    constant!(ks::pin::DATAINTERSECTION => "KSPROPERTY_PIN_DATAINTERSECTION" = 4),
    constant!(ks::pin::INTERFACES => "KSPROPERTY_PIN_INTERFACES" = 5),
    constant!(ks::pin::MEDIUMS => "KSPROPERTY_PIN_MEDIUMS" = 6),
    constant!(ks::pin::COMMUNICATION => "KSPROPERTY_PIN_COMMUNICATION" = 7),
    constant!(ks::pin::GLOBALCINSTANCES => "KSPROPERTY_PIN_GLOBALCINSTANCES" = 8),
    constant!(ks::pin::NECESSARYINSTANCES => "KSPROPERTY_PIN_NECESSARYINSTANCES" = 9),
    constant!(ks::pin::CATEGORY => "KSPROPERTY_PIN_CATEGORY" = 11),
    constant!(ks::pin::NAME => "KSPROPERTY_PIN_NAME" = 12),
    constant!(ks::pin::DATAFLOW_IN => "KSPIN_DATAFLOW_IN" = 1),
    constant!(ks::pin::DATAFLOW_OUT => "KSPIN_DATAFLOW_OUT" = 2),
    constant!(ks::pin::COMMUNICATION_NONE => "KSPIN_COMMUNICATION_NONE" = 0),
    constant!(ks::pin::COMMUNICATION_SINK => "KSPIN_COMMUNICATION_SINK" = 1),
    constant!(ks::pin::COMMUNICATION_SOURCE => "KSPIN_COMMUNICATION_SOURCE" = 2),
    constant!(ks::pin::COMMUNICATION_BOTH => "KSPIN_COMMUNICATION_BOTH" = 3),
    constant!(ks::pool_type::NON_PAGED => "NonPagedPool" = 0),
    constant!(ks::pool_type::PAGED => "PagedPool" = 1),
    constant!(ks::allocator_flags::REQUIREMENTF_INPLACE_MODIFIER
        => "KSALLOCATOR_REQUIREMENTF_INPLACE_MODIFIER" = 0x0000_0001),
    constant!(ks::allocator_flags::REQUIREMENTF_SYSTEM_MEMORY
        => "KSALLOCATOR_REQUIREMENTF_SYSTEM_MEMORY" = 0x0000_0002),
    constant!(ks::allocator_flags::REQUIREMENTF_FRAME_INTEGRITY
        => "KSALLOCATOR_REQUIREMENTF_FRAME_INTEGRITY" = 0x0000_0004),
    constant!(ks::allocator_flags::REQUIREMENTF_MUST_ALLOCATE
        => "KSALLOCATOR_REQUIREMENTF_MUST_ALLOCATE" = 0x0000_0008),
    constant!(ks::allocator_flags::REQUIREMENTF_PREFERENCES_ONLY
        => "KSALLOCATOR_REQUIREMENTF_PREFERENCES_ONLY" = 0x8000_0000),
    constant!(ks::allocator_flags::OPTIONF_COMPATIBLE => "KSALLOCATOR_OPTIONF_COMPATIBLE" = 0x1),
    constant!(ks::allocator_flags::OPTIONF_SYSTEM_MEMORY
        => "KSALLOCATOR_OPTIONF_SYSTEM_MEMORY" = 0x2),
    constant!(ks::allocator_flags::OPTIONF_VALID => "KSALLOCATOR_OPTIONF_VALID" = 0x3),
    constant!(ks::file_alignment::BYTE => "FILE_BYTE_ALIGNMENT" = 0x0),
    constant!(ks::file_alignment::WORD => "FILE_WORD_ALIGNMENT" = 0x1),
    constant!(ks::file_alignment::LONG => "FILE_LONG_ALIGNMENT" = 0x3),
    constant!(ks::file_alignment::QUAD => "FILE_QUAD_ALIGNMENT" = 0x7),
    constant!(ks::file_alignment::OCTA => "FILE_OCTA_ALIGNMENT" = 0xF),
    constant!(ks::file_alignment::B32 => "FILE_32_BYTE_ALIGNMENT" = 0x1F),
    constant!(ks::file_alignment::B64 => "FILE_64_BYTE_ALIGNMENT" = 0x3F),
    constant!(ks::file_alignment::B128 => "FILE_128_BYTE_ALIGNMENT" = 0x7F),
    constant!(ks::file_alignment::B256 => "FILE_256_BYTE_ALIGNMENT" = 0xFF),
    constant!(ks::file_alignment::B512 => "FILE_512_BYTE_ALIGNMENT" = 0x1FF),
    constant!(ks::KSPRIORITY_NORMAL => "KSPRIORITY_NORMAL" = 0x4000_0000),
];
