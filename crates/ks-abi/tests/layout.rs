//! Pins the x86_64 Windows (LLP64) layout of every `ks-abi` struct, and the value of every
//! GUID, IOCTL code, NTSTATUS and flag, to the numbers in the reference file.
//!
//! All of it is driven from `abi_table`, the same table `mingw_crosscheck.rs` compiles
//! against mingw-w64's headers.

mod abi_table;

use abi_table::{Constant, StructLayout, ALIASES, GUIDS, STRUCTS};
use ks_abi::guid::{self, Guid};
use ks_abi::ks::KsAllocatorFramingEx;
use ks_abi::NtStatus;

/// Size, alignment and every field offset of one struct, plus sanity of the entry itself.
fn check_struct(s: &StructLayout) {
    assert_eq!(
        s.rust_size, s.expected_size,
        "size_of::<{}>() ({})",
        s.rust, s.c
    );
    assert_eq!(
        s.rust_align, s.expected_align,
        "align_of::<{}>() ({})",
        s.rust, s.c
    );
    assert_eq!(
        s.rust_size % s.rust_align,
        0,
        "{}: size is not a multiple of its alignment",
        s.rust
    );
    let mut end_of_previous = 0;
    for f in s.fields {
        let c = f.c.unwrap_or("<padding, implicit in C>");
        assert_eq!(
            f.rust_offset, f.expected_offset,
            "offset_of!({}, {}) (C {}.{c})",
            s.rust, f.rust, s.c
        );
        assert!(
            f.rust_offset >= end_of_previous,
            "{}.{} at {} overlaps the field before it (which ends at {end_of_previous})",
            s.rust,
            f.rust,
            f.rust_offset
        );
        end_of_previous = f.rust_offset + f.rust_size;
        assert!(
            end_of_previous <= s.rust_size,
            "{}.{} runs past the end of the struct",
            s.rust,
            f.rust
        );
    }
}

/// One `#[test]` per table entry, plus the list of entries the tests cover.
macro_rules! struct_tests {
    ($($test:ident => $entry:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check_struct(&abi_table::$entry);
            }
        )*

        /// The C names of the structs that have a test above.
        const TESTED: &[&str] = &[$(abi_table::$entry.c),*];
    };
}

struct_tests! {
    guid_layout => GUID,
    ks_identifier_layout => KSIDENTIFIER,
    ksp_pin_layout => KSP_PIN,
    ks_allocator_framing_layout => KSALLOCATOR_FRAMING,
    ks_compression_layout => KS_COMPRESSION,
    ks_framing_range_layout => KS_FRAMING_RANGE,
    ks_framing_range_weighted_layout => KS_FRAMING_RANGE_WEIGHTED,
    ks_framing_item_layout => KS_FRAMING_ITEM,
    ks_allocator_framing_ex_layout => KSALLOCATOR_FRAMING_EX,
    ks_stream_allocator_status_layout => KSSTREAMALLOCATOR_STATUS,
    ks_stream_allocator_status_ex_layout => KSSTREAMALLOCATOR_STATUS_EX,
    ks_stream_allocator_function_table_layout => KSSTREAMALLOCATOR_FUNCTIONTABLE,
    ks_event_data_layout => KSEVENTDATA,
    ks_priority_layout => KSPRIORITY,
    ks_pin_connect_layout => KSPIN_CONNECT,
    ks_data_format_layout => KSDATAFORMAT,
    ks_multiple_item_layout => KSMULTIPLE_ITEM,
    ks_pin_cinstances_layout => KSPIN_CINSTANCES,
    ks_property_description_layout => KSPROPERTY_DESCRIPTION,
    ks_property_members_header_layout => KSPROPERTY_MEMBERSHEADER,
    nt_status_layout => NTSTATUS,
}

/// Names of the `pub struct`s declared in one source file.
fn declared_structs(source: &str) -> Vec<&str> {
    source
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("pub struct "))
        .map(|rest| {
            rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or("")
        })
        .collect()
}

#[test]
fn table_covers_every_struct_in_ks_abi() {
    let sources = [
        ("guid.rs", include_str!("../src/guid.rs")),
        ("ks.rs", include_str!("../src/ks.rs")),
        ("status.rs", include_str!("../src/status.rs")),
        ("ioctl.rs", include_str!("../src/ioctl.rs")),
        ("lib.rs", include_str!("../src/lib.rs")),
    ];
    let mut declared = Vec::new();
    for (file, text) in sources {
        for name in declared_structs(text) {
            let in_table = STRUCTS.iter().filter(|s| s.rust == name).count();
            let exempt = abi_table::NOT_LAID_OUT.iter().any(|(n, _)| *n == name);
            assert!(
                in_table == 1 || (in_table == 0 && exempt),
                "{file}: `pub struct {name}` must appear exactly once in abi_table::STRUCTS \
                 (or be listed in NOT_LAID_OUT with a reason); found {in_table}"
            );
            declared.push(name);
        }
    }
    for s in STRUCTS {
        assert!(
            declared.contains(&s.rust),
            "table entry {} names no struct in ks-abi/src",
            s.rust
        );
    }
    // Every table entry has its own #[test] above.
    let table: Vec<&str> = STRUCTS.iter().map(|s| s.c).collect();
    assert_eq!(
        table, TESTED,
        "struct_tests! and abi_table::STRUCTS list different structs"
    );
}

#[test]
fn aliases_have_their_targets_layout() {
    for a in ALIASES {
        let target = STRUCTS
            .iter()
            .find(|s| s.c == a.target)
            .expect("alias target is in the table");
        assert_eq!(
            (a.rust_size, a.rust_align),
            (target.expected_size, target.expected_align),
            "{} ({}) should be laid out as {}",
            a.rust,
            a.c,
            a.target
        );
    }
}

#[test]
fn framing_ex_blob_sizes() {
    assert_eq!(
        KsAllocatorFramingEx::HEADER_SIZE,
        abi_table::KSALLOCATOR_FRAMING_EX.fields[4].rust_offset
    );
    assert_eq!(KsAllocatorFramingEx::blob_size(0), Some(24));
    assert_eq!(
        KsAllocatorFramingEx::blob_size(1),
        Some(abi_table::KSALLOCATOR_FRAMING_EX.rust_size)
    );
    assert_eq!(KsAllocatorFramingEx::blob_size(2), Some(24 + 2 * 88));
    let max = usize::try_from(u32::MAX).expect("usize holds u32 on the 64-bit hosts we test on");
    assert_eq!(
        KsAllocatorFramingEx::blob_size(u32::MAX),
        Some(24 + 88 * max)
    );
}

/// Parses `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}` into the GUID's in-memory bytes, the
/// slow obvious way, independent of `ks_abi::Guid`.
fn parse_braced(s: &str) -> [u8; 16] {
    let inner = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .expect("braced GUID");
    let groups: Vec<&str> = inner.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12],
        "{s}"
    );
    let hex = |g: &str| -> Vec<u8> {
        (0..g.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&g[i..i + 2], 16).expect("hex digit"))
            .collect()
    };
    let mut out = Vec::with_capacity(16);
    // Data1..Data3 are little-endian integers in memory; Data4 is bytes in text order.
    for (i, g) in groups.iter().enumerate() {
        let mut bytes = hex(g);
        if i < 3 {
            bytes.reverse();
        }
        out.extend(bytes);
    }
    out.try_into().expect("16 bytes")
}

#[test]
fn guid_values_match_the_reference() {
    for g in GUIDS {
        let braced = g.value.to_braced_ascii();
        assert_eq!(
            core::str::from_utf8(&braced),
            Ok(g.expected),
            "{} ({})",
            g.rust,
            g.c
        );
        assert_eq!(
            g.value.to_bytes(),
            parse_braced(g.expected),
            "{} in-memory bytes",
            g.rust
        );
        assert_eq!(
            Guid::from_bytes(&g.value.to_bytes()),
            g.value,
            "{} bytes round trip",
            g.rust
        );
        assert_eq!(format!("{:?}", g.value), g.expected, "{} Debug", g.rust);
    }
    for (i, a) in GUIDS.iter().enumerate() {
        for b in &GUIDS[i + 1..] {
            assert_ne!(
                a.value, b.value,
                "{} and {} are the same GUID",
                a.rust, b.rust
            );
        }
    }
}

#[test]
fn ksname_allocator_is_the_create_name_ks_uses() {
    let g = guid::KSNAME_ALLOCATOR;
    assert_eq!(
        &g.to_braced_ascii(),
        b"{642F5D00-4791-11D0-A5D6-28DB04C10000}"
    );
    assert_eq!(
        g.to_bytes(),
        [
            0x00, 0x5D, 0x2F, 0x64, 0x91, 0x47, 0xD0, 0x11, 0xA5, 0xD6, 0x28, 0xDB, 0x04, 0xC1,
            0x00, 0x00
        ]
    );
    assert_eq!(
        (g.data1, g.data2, g.data3, g.data4),
        (
            0x642F_5D00,
            0x4791,
            0x11D0,
            [0xA5, 0xD6, 0x28, 0xDB, 0x04, 0xC1, 0x00, 0x00]
        )
    );
    assert_eq!(Guid::NULL.to_bytes(), [0; 16]);
    assert_eq!(Guid::default(), Guid::NULL);
}

fn check_constants(table: &[Constant]) {
    for c in table {
        assert_eq!(
            c.value, c.expected,
            "{} ({}) = {:#010X}, reference says {:#010X}",
            c.rust, c.c, c.value, c.expected
        );
    }
}

#[test]
fn ioctl_codes_match_the_reference() {
    check_constants(abi_table::IOCTLS);
    // Every KS IOCTL is METHOD_NEITHER on FILE_DEVICE_KS.
    for c in abi_table::IOCTLS
        .iter()
        .filter(|c| c.c.starts_with("IOCTL_"))
    {
        assert_eq!(c.value & 3, ks_abi::ioctl::METHOD_NEITHER, "{}", c.c);
        assert_eq!(c.value >> 16, ks_abi::ioctl::FILE_DEVICE_KS, "{}", c.c);
    }
    assert_eq!(ks_abi::ioctl::ctl_code(0x2F, 5, 3, 1), 0x002F_4017);
}

#[test]
fn ntstatus_values_and_names_match_the_reference() {
    check_constants(abi_table::STATUSES);
    for c in abi_table::STATUSES {
        let status = NtStatus(i32::from_ne_bytes(c.value.to_ne_bytes()));
        assert_eq!(status.name(), c.c, "{}.name()", c.rust);
        assert_eq!(format!("{status:?}"), format!("{}(0x{:08X})", c.c, c.value));
    }
    assert_eq!(NtStatus(0x1234_5678).name(), "STATUS_<other>");
}

#[test]
fn ntstatus_severity() {
    // Success and informational: NT_SUCCESS, not NT_ERROR.
    for s in [NtStatus::SUCCESS, NtStatus::PENDING, NtStatus(0x4000_0000)] {
        assert!(s.is_success(), "{s:?}");
        assert!(!s.is_error(), "{s:?}");
    }
    // Warning (the KS size-query answer): neither.
    assert!(!NtStatus::BUFFER_OVERFLOW.is_success());
    assert!(!NtStatus::BUFFER_OVERFLOW.is_error());
    // Errors: every 0xC... status.
    for c in abi_table::STATUSES
        .iter()
        .filter(|c| c.value >= 0xC000_0000)
    {
        let s = NtStatus(i32::from_ne_bytes(c.value.to_ne_bytes()));
        assert!(s.is_error(), "{}", c.c);
        assert!(!s.is_success(), "{}", c.c);
    }
}

#[test]
fn flags_and_ids_match_the_reference() {
    check_constants(abi_table::FLAGS_AND_IDS);
}
