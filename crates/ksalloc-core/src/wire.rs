//! Reading and writing ABI structures in caller buffers, by offset, without `unsafe`.
//!
//! Caller buffers are byte slices that may be unaligned, so every field is read with
//! `from_le_bytes` (x86_64 is little-endian). Offsets are the ones `ks-abi`'s layout
//! tests pin; `tests/wire.rs` checks each codec against `offset_of!` of the repr(C) type.
//! Readers return `None` on a short buffer; the dispatcher checks lengths first, so that
//! is a second line of defence, never a panic.

use ks_abi::guid::Guid;
use ks_abi::ks::{
    KsAllocatorFraming, KsDataFormat, KsEventData, KsIdentifier, KsPinConnect, KsPinMedium,
    KsPriority,
};

/// Size of `KSIDENTIFIER`.
pub const IDENTIFIER_SIZE: usize = 24;
/// Size of `KSP_PIN`.
pub const P_PIN_SIZE: usize = 32;
/// Size of `KSALLOCATOR_FRAMING`.
pub const FRAMING_SIZE: usize = 24;
/// Size of `KSPIN_CONNECT`.
pub const PIN_CONNECT_SIZE: usize = 72;
/// Size of `KSDATAFORMAT`.
pub const DATA_FORMAT_SIZE: usize = 64;
/// Size of `KSEVENTDATA`.
pub const EVENT_DATA_SIZE: usize = 32;

/// `u32` at `at`.
#[must_use]
pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// `u64` at `at`.
#[must_use]
pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Pointer-sized value at `at` (x86_64: 8 bytes).
#[must_use]
#[allow(clippy::cast_possible_truncation)] // usize is 64 bits on every target we build.
pub fn usize_at(b: &[u8], at: usize) -> Option<usize> {
    u64_at(b, at).map(|v| v as usize)
}

/// GUID at `at`.
#[must_use]
pub fn guid_at(b: &[u8], at: usize) -> Option<Guid> {
    let bytes: &[u8; 16] = b.get(at..at.checked_add(16)?)?.try_into().ok()?;
    Some(Guid::from_bytes(bytes))
}

/// `KSIDENTIFIER` at `at`.
#[must_use]
pub fn identifier_at(b: &[u8], at: usize) -> Option<KsIdentifier> {
    Some(KsIdentifier {
        set: guid_at(b, at)?,
        id: u32_at(b, at + 16)?,
        flags: u32_at(b, at + 20)?,
    })
}

/// `KSALLOCATOR_FRAMING` at the start of `b`.
#[must_use]
pub fn framing(b: &[u8]) -> Option<KsAllocatorFraming> {
    Some(KsAllocatorFraming {
        options_flags: u32_at(b, 0)?,
        pool_type: u32_at(b, 4)?,
        frames: u32_at(b, 8)?,
        frame_size: u32_at(b, 12)?,
        file_alignment: u32_at(b, 16)?,
        reserved: u32_at(b, 20)?,
    })
}

/// `KSPIN_CONNECT` at the start of `b`.
#[must_use]
pub fn pin_connect(b: &[u8]) -> Option<KsPinConnect> {
    let medium = |at| -> Option<KsPinMedium> { identifier_at(b, at) };
    Some(KsPinConnect {
        interface: medium(0)?,
        medium: medium(24)?,
        pin_id: u32_at(b, 48)?,
        pin_to_handle: usize_at(b, 56)?,
        priority: KsPriority {
            priority_class: u32_at(b, 64)?,
            priority_sub_class: u32_at(b, 68)?,
        },
    })
}

/// `KSDATAFORMAT` at `at`.
#[must_use]
pub fn data_format_at(b: &[u8], at: usize) -> Option<KsDataFormat> {
    Some(KsDataFormat {
        format_size: u32_at(b, at)?,
        flags: u32_at(b, at + 4)?,
        sample_size: u32_at(b, at + 8)?,
        reserved: u32_at(b, at + 12)?,
        major_format: guid_at(b, at + 16)?,
        sub_format: guid_at(b, at + 32)?,
        specifier: guid_at(b, at + 48)?,
    })
}

/// `KSEVENTDATA` at the start of `b`.
#[must_use]
pub fn event_data(b: &[u8]) -> Option<KsEventData> {
    Some(KsEventData {
        notification_type: u32_at(b, 0)?,
        padding: u32_at(b, 4)?,
        object: usize_at(b, 8)?,
        reserved: [usize_at(b, 16)?, usize_at(b, 24)?],
    })
}

/// A cursor that writes little-endian fields into an output buffer the caller sized.
pub struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    /// Writes from the start of `out`.
    pub const fn new(out: &'a mut [u8]) -> Self {
        Self { out, at: 0 }
    }

    /// Bytes written so far.
    #[must_use]
    pub const fn written(&self) -> usize {
        self.at
    }

    /// Appends raw bytes. Callers size the buffer first; bytes past its end are
    /// dropped (and `written` stops), never written out of bounds.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        let end = self.at.saturating_add(bytes.len());
        if let Some(dst) = self.out.get_mut(self.at..end) {
            dst.copy_from_slice(bytes);
            self.at = end;
        }
        self
    }

    /// Appends a `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a pointer-sized value.
    pub fn usize(&mut self, v: usize) -> &mut Self {
        self.bytes(&(v as u64).to_le_bytes())
    }

    /// Appends a GUID.
    pub fn guid(&mut self, g: &Guid) -> &mut Self {
        self.bytes(&g.to_bytes())
    }

    /// Appends a `KSIDENTIFIER`.
    pub fn identifier(&mut self, id: &KsIdentifier) -> &mut Self {
        self.guid(&id.set).u32(id.id).u32(id.flags)
    }

    /// Appends a `KSALLOCATOR_FRAMING`.
    pub fn framing(&mut self, f: &KsAllocatorFraming) -> &mut Self {
        self.u32(f.options_flags)
            .u32(f.pool_type)
            .u32(f.frames)
            .u32(f.frame_size)
            .u32(f.file_alignment)
            .u32(f.reserved)
    }

    /// Appends a `KSDATAFORMAT`.
    pub fn data_format(&mut self, f: &KsDataFormat) -> &mut Self {
        self.u32(f.format_size)
            .u32(f.flags)
            .u32(f.sample_size)
            .u32(f.reserved)
            .guid(&f.major_format)
            .guid(&f.sub_format)
            .guid(&f.specifier)
    }
}
