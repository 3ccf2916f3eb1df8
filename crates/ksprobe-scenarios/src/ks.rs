//! The bytes a kernel-mode KS client sends ksalloc, built without `unsafe`.
//!
//! Request identifiers, create names and their parameters, `KSEVENTDATA`. ksprobe's driver
//! sends exactly these; `tests/model.rs` feeds the same bytes to the model driver, so
//! what the kernel client sends is what ksalloc's parser is tested with. Offsets are
//! the x64 layouts ks-abi's layout tests pin.

use alloc::vec::Vec;

use ks_abi::guid::{
    KSDATAFORMAT_SPECIFIER_NONE, KSDATAFORMAT_SUBTYPE_NONE, KSDATAFORMAT_TYPE_STREAM,
    KSINTERFACESETID_STANDARD, KSMEDIUMSETID_STANDARD,
};
use ks_abi::ks::{eventf, KsAllocatorFraming, KsStreamAllocatorStatus, KSPRIORITY_NORMAL};
use ks_abi::Guid;

/// Size of a `KSIDENTIFIER` (KSPROPERTY / KSMETHOD / KSEVENT).
pub const IDENTIFIER_SIZE: usize = 24;
/// Size of `KSPIN_CONNECT` followed by `KSDATAFORMAT`.
pub const CONNECT_SIZE: usize = 72 + 64;
/// Size of `KSEVENTDATA`.
pub const EVENT_DATA_SIZE: usize = 32;

/// A `KSIDENTIFIER`.
#[must_use]
pub fn identifier(set: &Guid, id: u32, flags: u32) -> [u8; IDENTIFIER_SIZE] {
    let mut out = [0u8; IDENTIFIER_SIZE];
    out[..16].copy_from_slice(&set.to_bytes());
    out[16..20].copy_from_slice(&id.to_le_bytes());
    out[20..].copy_from_slice(&flags.to_le_bytes());
    out
}

/// A `KSALLOCATOR_FRAMING` (24 bytes).
#[must_use]
pub fn framing_bytes(f: &KsAllocatorFraming) -> [u8; 24] {
    let mut out = [0u8; 24];
    let fields = [
        f.options_flags,
        f.pool_type,
        f.frames,
        f.frame_size,
        f.file_alignment,
        f.reserved,
    ];
    for (i, v) in fields.into_iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// `KSPIN_CONNECT` (standard streaming interface and medium, `pin_id`, no peer pin,
/// normal priority, sub-class 1) followed by `KSDATAFORMAT` (an unformatted byte
/// stream: ksalloc's one data range).
#[must_use]
pub fn connect_bytes(pin_id: u32) -> [u8; CONNECT_SIZE] {
    let mut out = [0u8; CONNECT_SIZE];
    out[..24].copy_from_slice(&identifier(&KSINTERFACESETID_STANDARD, 0, 0));
    out[24..48].copy_from_slice(&identifier(&KSMEDIUMSETID_STANDARD, 0, 0));
    out[48..52].copy_from_slice(&pin_id.to_le_bytes());
    // 52..56 padding, 56..64 PinToHandle = NULL.
    out[64..68].copy_from_slice(&KSPRIORITY_NORMAL.to_le_bytes());
    out[68..72].copy_from_slice(&1u32.to_le_bytes());
    // KSDATAFORMAT: FormatSize, Flags, SampleSize, Reserved, then three GUIDs.
    out[72..76].copy_from_slice(&64u32.to_le_bytes());
    out[88..104].copy_from_slice(&KSDATAFORMAT_TYPE_STREAM.to_bytes());
    out[104..120].copy_from_slice(&KSDATAFORMAT_SUBTYPE_NONE.to_bytes());
    out[120..136].copy_from_slice(&KSDATAFORMAT_SPECIFIER_NONE.to_bytes());
    out
}

/// The create name of a child object, opened relative to its parent's handle.
///
/// `{GUID}\` and the raw parameter bytes (two bytes per UTF-16 unit, as KsCreatePin and
/// KsCreateAllocator carry them). No leading backslash: a relative object name has none
/// (Wine refuses one; Windows tolerates it only because the root is a file object).
#[must_use]
pub fn child_create_name(class: &Guid, params: &[u8]) -> Vec<u16> {
    let mut name = Vec::with_capacity(39 + params.len().div_ceil(2));
    name.extend(class.to_braced_ascii().iter().map(|&c| u16::from(c)));
    name.push(u16::from(b'\\'));
    name.extend(
        params
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c.get(1).copied().unwrap_or(0)])),
    );
    name
}

/// UTF-16 units as the little-endian bytes of a `UNICODE_STRING` buffer.
#[must_use]
pub fn utf16_bytes(units: &[u16]) -> Vec<u8> {
    units.iter().flat_map(|u| u.to_le_bytes()).collect()
}

/// A `KSEVENTDATA` naming an event by handle (`KSEVENTF_EVENT_HANDLE`).
#[must_use]
pub fn event_handle_data(handle: usize) -> [u8; EVENT_DATA_SIZE] {
    let mut out = [0u8; EVENT_DATA_SIZE];
    out[..4].copy_from_slice(&eventf::EVENT_HANDLE.to_le_bytes());
    out[8..16].copy_from_slice(&(handle as u64).to_le_bytes());
    out
}

/// A `KSSTREAMALLOCATOR_STATUS` from its 32 bytes.
#[must_use]
pub fn parse_status(b: &[u8; 32]) -> KsStreamAllocatorStatus {
    let u = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    KsStreamAllocatorStatus {
        framing: KsAllocatorFraming {
            options_flags: u(0),
            pool_type: u(4),
            frames: u(8),
            frame_size: u(12),
            file_alignment: u(16),
            reserved: u(20),
        },
        allocated_frames: u(24),
        reserved: u(28),
    }
}
