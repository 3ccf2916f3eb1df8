//! Targets `create_allocator` and `create_pin`: IRP_MJ_CREATE relative to a pin (an
//! allocator name and `KSALLOCATOR_FRAMING`) and relative to the filter (a pin name and
//! `KSPIN_CONNECT` + `KSDATAFORMAT`).
//!
//! Input: byte 0 is flags, the rest is payload.
//!
//! | flag | meaning |
//! |---|---|
//! | bit 0 clear | payload = the parameters after `\{KSNAME_Allocator}\` / `\{KSNAME_Pin}\` |
//! | bit 0 set | payload = the whole file name (UTF-16LE bytes as `UNICODE_STRING` holds them) |
//! | bit 1 (pin) | create on a second, fresh filter instead of the graph's (whose pin 0 is taken) |
//!
//! The status is checked against an independent reading of `ks::create`'s table: the
//! name parsed with `char`/`u128::from_str_radix`, the parameters read at the offsets
//! of the Windows structures. A success must give a usable object (an allocator whose
//! STATUS echoes the framing and whose frames lie in live pool memory; a pin whose
//! DATAFORMAT echoes the format and which takes one instance), and closing it must give
//! back everything it took.

use ks_abi::guid::{
    KSINTERFACESETID_STANDARD, KSMEDIUMSETID_STANDARD, KSNAME_ALLOCATOR, KSNAME_FILTER, KSNAME_PIN,
    KSPROPSETID_CONNECTION, KSPROPSETID_STREAM_ALLOCATOR,
};
use ks_abi::ks::{connection, stream_allocator, KsAllocatorFraming};
use ks_abi::{Guid, NtStatus};
use ksalloc_core::ks::filter::DATA_RANGE;
use ksalloc_core::ks::ObjectKind;
use ksalloc_core::Framing;
use ksalloc_model::client::create_name;
use ksalloc_model::Handle;

use crate::common::{touch_frame, Graph};

/// A create name, read independently of `ks::create::parse_name`.
#[derive(Debug, PartialEq, Eq)]
pub enum Name<'a> {
    /// Not `[\]{GUID}[\params]`.
    Invalid,
    /// Empty (or a lone backslash).
    Empty,
    /// A class GUID, with the parameter bytes if a backslash followed it.
    Class(Guid, Option<&'a [u8]>),
}

/// Parses a UTF-16LE create name.
#[must_use]
pub fn parse(name: &[u8]) -> Name<'_> {
    if !name.len().is_multiple_of(2) {
        return Name::Invalid;
    }
    let rest = name.strip_prefix(b"\\\0").unwrap_or(name);
    if rest.is_empty() {
        return Name::Empty;
    }
    if rest.len() < 76 {
        return Name::Invalid;
    }
    let (text, tail) = rest.split_at(76);
    let mut s = String::new();
    for unit in text.chunks_exact(2) {
        let u = u16::from_le_bytes([unit[0], unit[1]]);
        match char::from_u32(u32::from(u)) {
            Some(c) if c.is_ascii() => s.push(c),
            _ => return Name::Invalid,
        }
    }
    let Some(inner) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
        return Name::Invalid;
    };
    let groups: Vec<&str> = inner.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lengths != [8, 4, 4, 4, 12]
        || !groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Name::Invalid;
    }
    let Ok(value) = u128::from_str_radix(&groups.concat(), 16) else {
        return Name::Invalid;
    };
    let guid = Guid::from_u128(value);
    if tail.is_empty() {
        Name::Class(guid, None)
    } else if let Some(params) = tail.strip_prefix(b"\\\0") {
        Name::Class(guid, Some(params))
    } else {
        Name::Invalid
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// What creating `name` relative to `parent` must give (`taken`: which pin factories of
/// a filter parent are open already).
///
/// # Errors
/// The documented status.
pub fn expected_create(
    parent: Option<ObjectKind>,
    name: &[u8],
    taken: [bool; 2],
) -> Result<(), NtStatus> {
    match parent {
        None => match parse(name) {
            Name::Invalid => Err(NtStatus::OBJECT_NAME_INVALID),
            Name::Empty | Name::Class(KSNAME_FILTER, None) => Ok(()),
            Name::Class(..) => Err(NtStatus::OBJECT_NAME_NOT_FOUND),
        },
        Some(ObjectKind::Filter) => expected_pin(name, taken).map(drop),
        Some(ObjectKind::Pin) => expected_allocator(name).map(drop),
        Some(ObjectKind::Allocator) => match parse(name) {
            Name::Invalid => Err(NtStatus::OBJECT_NAME_INVALID),
            _ => Err(NtStatus::OBJECT_NAME_NOT_FOUND),
        },
    }
}

/// Bytes of frame memory a valid allocator create named `name` asks for.
#[must_use]
pub fn expected_allocator_bytes(name: &[u8]) -> Option<usize> {
    let raw = expected_allocator(name).ok()?;
    Framing::validate(&raw).ok().map(|f| f.total_bytes())
}

/// What creating `name` relative to a pin must give.
fn expected_allocator(name: &[u8]) -> Result<KsAllocatorFraming, NtStatus> {
    match parse(name) {
        Name::Invalid => Err(NtStatus::OBJECT_NAME_INVALID),
        Name::Class(class, params) if class == KSNAME_ALLOCATOR => {
            let params = params.ok_or(NtStatus::INVALID_PARAMETER)?;
            if params.len() != 24 {
                return Err(NtStatus::INVALID_PARAMETER);
            }
            let raw = KsAllocatorFraming {
                options_flags: u32_at(params, 0),
                pool_type: u32_at(params, 4),
                frames: u32_at(params, 8),
                frame_size: u32_at(params, 12),
                file_alignment: u32_at(params, 16),
                reserved: u32_at(params, 20),
            };
            // The framing module's own rules; the `framing` target checks them.
            Framing::validate(&raw).map_err(ksalloc_core::FramingError::status)?;
            Ok(raw)
        }
        Name::Empty | Name::Class(..) => Err(NtStatus::OBJECT_NAME_NOT_FOUND),
    }
}

/// A valid framing is still refused when its frames do not fit what is left of the
/// driver-wide budget (the graph's own allocator already holds some of it).
fn within_budget(graph: &Graph, raw: KsAllocatorFraming) -> Result<KsAllocatorFraming, NtStatus> {
    let bytes = Framing::validate(&raw).map_or(0, |f| f.total_bytes());
    let budget = graph.kernel.frame_budget();
    if bytes > budget.limit() - budget.in_use() {
        Err(NtStatus::INSUFFICIENT_RESOURCES)
    } else {
        Ok(raw)
    }
}

/// Target `create_allocator`.
///
/// # Panics
/// When an invariant breaks.
pub fn run_allocator(bytes: &[u8]) {
    let (flags, payload) = bytes.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
    let name = if flags & 1 == 0 {
        create_name(&KSNAME_ALLOCATOR, Some(payload))
    } else {
        payload.to_vec()
    };
    let graph = Graph::new();
    let blocks = graph.kernel.live_blocks();
    let files = graph.kernel.live_files();
    let expected = expected_allocator(&name).and_then(|raw| within_budget(&graph, raw));
    let created = graph.client.driver().create(Some(&graph.pin), &name);
    match (&created, &expected) {
        (Ok(handle), Ok(raw)) => check_allocator(&graph, handle, raw),
        (Err(got), Err(want)) => assert_eq!(got, want, "allocator create status"),
        (Ok(_), Err(want)) => panic!("allocator create succeeded, documented {want:?}"),
        (Err(got), Ok(_)) => panic!("allocator create failed with {got:?}, documented success"),
    }
    if let Ok(handle) = created {
        graph.client.close(handle);
    }
    assert_eq!(
        graph.kernel.live_blocks(),
        blocks,
        "pool blocks after close"
    );
    assert_eq!(graph.kernel.live_files(), files, "files after close");
    graph.teardown();
}

fn check_allocator(graph: &Graph, handle: &Handle, raw: &KsAllocatorFraming) {
    let allocator = handle.allocator().expect("an allocator");
    let snap = allocator.snapshot();
    assert_eq!(
        (snap.total, snap.free, snap.outstanding),
        (raw.frames, raw.frames, 0)
    );
    assert!(snap.conserved());
    let status = graph
        .client
        .get(
            handle,
            &KSPROPSETID_STREAM_ALLOCATOR,
            stream_allocator::PROPERTY_STATUS,
            &[],
            32,
        )
        .expect("STATUS");
    let mut echoed = vec![0u8; 24];
    ksalloc_core::wire::Writer::new(&mut echoed).framing(raw);
    assert_eq!(&status[..24], &echoed[..], "STATUS echoes the framing");
    let table = graph.client.function_table(handle).expect("function table");
    let first = table
        .allocate_at_dispatch()
        .expect("a fresh allocator has a frame");
    assert_eq!(first % allocator.framing().align(), 0, "frame alignment");
    touch_frame(&graph.kernel, first, allocator.framing().frame_size());
    table.free_at_dispatch(first);
    let snap = allocator.snapshot();
    assert_eq!(
        (snap.free, snap.outstanding, snap.counters.frees),
        (raw.frames, 0, 1)
    );
}

/// Parameters of a pin create, read at the Windows offsets.
fn expected_pin(name: &[u8], taken: [bool; 2]) -> Result<u32, NtStatus> {
    match parse(name) {
        Name::Invalid => Err(NtStatus::OBJECT_NAME_INVALID),
        Name::Class(class, params) if class == KSNAME_PIN => {
            let p = params.ok_or(NtStatus::INVALID_PARAMETER)?;
            if p.len() < 72 + 64 {
                return Err(NtStatus::INVALID_PARAMETER);
            }
            let pin_id = u32_at(p, 48);
            let pin_to_handle = u64::from_le_bytes(p[56..64].try_into().expect("8"));
            if pin_id >= 2 || pin_to_handle != 0 {
                return Err(NtStatus::INVALID_PARAMETER);
            }
            if u32_at(p, 72) != 64 || p.len() != 136 {
                return Err(NtStatus::INVALID_PARAMETER);
            }
            let standard =
                |at: usize, set: Guid| p[at..at + 16] == set.to_bytes() && u32_at(p, at + 16) == 0;
            if !standard(0, KSINTERFACESETID_STANDARD) || !standard(24, KSMEDIUMSETID_STANDARD) {
                return Err(NtStatus::NO_MATCH);
            }
            let format = &p[72..];
            if format[16..32] != DATA_RANGE.major_format.to_bytes()
                || format[32..48] != DATA_RANGE.sub_format.to_bytes()
                || format[48..64] != DATA_RANGE.specifier.to_bytes()
            {
                return Err(NtStatus::NO_MATCH);
            }
            if taken[pin_id as usize] {
                return Err(NtStatus::INSUFFICIENT_RESOURCES);
            }
            Ok(pin_id)
        }
        Name::Empty | Name::Class(..) => Err(NtStatus::OBJECT_NAME_NOT_FOUND),
    }
}

fn instances(graph: &Graph, filter: &Handle, id: u32) -> u32 {
    graph.client.pin_instances(filter, id).expect("CINSTANCES")
}

/// Target `create_pin`.
///
/// # Panics
/// When an invariant breaks.
pub fn run_pin(bytes: &[u8]) {
    let (flags, payload) = bytes.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
    let name = if flags & 1 == 0 {
        create_name(&KSNAME_PIN, Some(payload))
    } else {
        payload.to_vec()
    };
    let graph = Graph::new();
    let fresh = (flags & 2 != 0).then(|| {
        graph
            .client
            .driver()
            .create(None, &create_name(&KSNAME_FILTER, None))
            .expect("second filter")
    });
    let filter = fresh.as_ref().unwrap_or(&graph.filter);
    let taken = [
        instances(&graph, filter, 0) == 1,
        instances(&graph, filter, 1) == 1,
    ];
    let before = [instances(&graph, filter, 0), instances(&graph, filter, 1)];
    let blocks = graph.kernel.live_blocks();
    let expected = expected_pin(&name, taken);
    let created = graph.client.driver().create(Some(filter), &name);
    match (&created, &expected) {
        (Ok(handle), Ok(id)) => {
            assert_eq!(handle.object().kind(), ObjectKind::Pin);
            assert_eq!(
                instances(&graph, filter, *id),
                1,
                "the pin took an instance"
            );
            let format = graph
                .client
                .get(
                    handle,
                    &KSPROPSETID_CONNECTION,
                    connection::PROPERTY_DATAFORMAT,
                    &[],
                    64,
                )
                .expect("DATAFORMAT");
            let Name::Class(_, Some(params)) = parse(&name) else {
                unreachable!("a pin was created from a parsed name")
            };
            assert_eq!(
                &format[..],
                &params[72..136],
                "DATAFORMAT echoes the format"
            );
        }
        (Err(got), Err(want)) => {
            assert_eq!(got, want, "pin create status");
            assert_eq!(
                [instances(&graph, filter, 0), instances(&graph, filter, 1)],
                before,
                "a refused create took an instance"
            );
        }
        (Ok(_), Err(want)) => panic!("pin create succeeded, documented {want:?}"),
        (Err(got), Ok(_)) => panic!("pin create failed with {got:?}, documented success"),
    }
    if let Ok(handle) = created {
        graph.client.close(handle);
    }
    assert_eq!(
        [instances(&graph, filter, 0), instances(&graph, filter, 1)],
        before,
        "instances after close"
    );
    assert_eq!(graph.kernel.live_blocks(), blocks);
    if let Some(fresh) = fresh {
        graph.client.close(fresh);
    }
    graph.teardown();
}
