//! Target `framing`: `KSALLOCATOR_FRAMING` bytes through `wire::framing` and
//! `Framing::validate`, checked against an independent reading of the rule table in
//! `ksalloc_core::framing` (u128 arithmetic, no shared code); and the
//! `KSALLOCATOR_FRAMING_EX` header's item count through `KsAllocatorFramingEx::blob_size`.
//!
//! The core has no `KSALLOCATOR_FRAMING_EX` decoder: the driver only writes `_EX`
//! answers (the pin's ALLOCATORFRAMING_EX property, which `ks_ioctl` fuzzes into every
//! buffer size). The one `_EX` computation on caller-controlled data is the blob size
//! from `CountItems`, fuzzed here.
//!
//! Input: the bytes themselves (the first 24 are the framing, the first 4 also read as
//! an `_EX` `CountItems`).

use ks_abi::ks::{KsAllocatorFraming, KsAllocatorFramingEx, KsFramingItem};
use ksalloc_core::framing::{FramingError, MAX_FRAMES, MAX_TOTAL_BYTES, PAGE_SIZE, VALID_OPTIONS};
use ksalloc_core::wire::{self, Writer};
use ksalloc_core::Framing;

/// The rule table, read independently: `(frames, align, stride, total)` or the error.
fn reference(f: &KsAllocatorFraming) -> Result<(u32, u128, u128, u128), FramingError> {
    if f.frames == 0 {
        return Err(FramingError::ZeroFrames);
    }
    if f.frames > MAX_FRAMES {
        return Err(FramingError::TooManyFrames);
    }
    if f.frame_size == 0 {
        return Err(FramingError::ZeroFrameSize);
    }
    if f.options_flags & !VALID_OPTIONS != 0 {
        return Err(FramingError::UnknownOptions);
    }
    match f.pool_type {
        0 => {}
        1 => return Err(FramingError::PagedPool),
        _ => return Err(FramingError::UnknownPoolType),
    }
    let align = u128::from(f.file_alignment) + 1;
    if !align.is_power_of_two() || align > u128::from(PAGE_SIZE) {
        return Err(FramingError::BadAlignment);
    }
    if f.reserved != 0 {
        return Err(FramingError::ReservedNotZero);
    }
    let stride = u128::from(f.frame_size).div_ceil(align) * align;
    let total = stride * u128::from(f.frames);
    // usize is 64 bits: neither can overflow it with u32 inputs, so Overflow never fires.
    if total > MAX_TOTAL_BYTES as u128 {
        return Err(FramingError::TooLarge);
    }
    Ok((f.frames, align, stride, total))
}

/// Runs one input.
///
/// # Panics
/// When the core disagrees with the reference or an invariant breaks.
pub fn run(bytes: &[u8]) {
    let decoded = wire::framing(bytes);
    assert_eq!(
        decoded.is_some(),
        bytes.len() >= wire::FRAMING_SIZE,
        "framing decodes iff 24 bytes are there"
    );
    if let Some(raw) = decoded {
        let mut again = [0u8; wire::FRAMING_SIZE];
        let mut w = Writer::new(&mut again);
        w.framing(&raw);
        assert_eq!(w.written(), wire::FRAMING_SIZE);
        assert_eq!(
            &again[..],
            &bytes[..wire::FRAMING_SIZE],
            "framing round trip"
        );

        let core = Framing::validate(&raw);
        let expected = reference(&raw);
        match (&core, &expected) {
            (Ok(f), Ok((frames, align, stride, total))) => {
                assert_eq!(f.frames(), *frames);
                assert_eq!(f.align() as u128, *align);
                assert_eq!(f.stride() as u128, *stride);
                assert_eq!(f.total_bytes() as u128, *total);
                assert_eq!(f.raw(), &raw);
                assert!(f.stride() >= f.frame_size() && f.stride() % f.align() == 0);
                assert!(f.stride() - f.frame_size() < f.align());
            }
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "first broken rule for {raw:?}");
                assert_eq!(a.status(), b.status());
                assert!(a.status().is_error());
                assert!(!a.rule().is_empty());
            }
            _ => panic!("core {core:?} but the rule table says {expected:?} for {raw:?}"),
        }
    }
    if let Some(count) = wire::u32_at(bytes, 0) {
        let size = KsAllocatorFramingEx::blob_size(count);
        let expected = u128::from(count) * core::mem::size_of::<KsFramingItem>() as u128
            + KsAllocatorFramingEx::HEADER_SIZE as u128;
        assert_eq!(
            size.map(|s| s as u128),
            Some(expected),
            "blob size of {count} items"
        );
    }
}
