//! Validation of a client's `KSALLOCATOR_FRAMING`, with ks.sys's
//! `KsValidateAllocatorCreateRequest` semantics plus the limits a preallocating
//! allocator needs.
//!
//! | rule | status |
//! |---|---|
//! | `frames == 0` | `STATUS_INVALID_PARAMETER` |
//! | `frames > MAX_FRAMES` | `STATUS_INVALID_PARAMETER` |
//! | `frame_size == 0` | `STATUS_INVALID_PARAMETER` |
//! | `options_flags` outside `0x0F` (incl. `PREFERENCES_ONLY`) | `STATUS_INVALID_PARAMETER` |
//! | `pool_type` not `NonPagedPool`/`PagedPool` | `STATUS_INVALID_PARAMETER` |
//! | `pool_type == PagedPool` (cannot serve DISPATCH_LEVEL) | `STATUS_NOT_SUPPORTED` |
//! | `file_alignment + 1` not a power of two, or above `PAGE_SIZE` | `STATUS_INVALID_PARAMETER` |
//! | `reserved != 0` | `STATUS_INVALID_PARAMETER` |
//! | frame size rounded to the alignment overflows, or `frames * stride` overflows | `STATUS_INVALID_PARAMETER` |
//! | `frames * stride > MAX_TOTAL_BYTES` | `STATUS_INSUFFICIENT_RESOURCES` |

use ks_abi::ks::{pool_type, KsAllocatorFraming};
use ks_abi::NtStatus;

/// `PAGE_SIZE` on x64.
pub const PAGE_SIZE: u32 = 4096;
/// Largest frame count one allocator accepts (the free list indexes frames with `u32`).
pub const MAX_FRAMES: u32 = 1 << 20;
/// Largest block of frame memory one allocator preallocates (256 MiB of nonpaged pool).
pub const MAX_TOTAL_BYTES: usize = 256 << 20;
/// Option and requirement bits ks.sys accepts (`KSALLOCATOR_OPTIONF_*` and
/// `KSALLOCATOR_REQUIREMENTF_*` without `PREFERENCES_ONLY`).
pub const VALID_OPTIONS: u32 = 0x0000_000F;

/// Why a framing was refused; each maps to one documented NTSTATUS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingError {
    /// `frames` is zero.
    ZeroFrames,
    /// `frames` exceeds [`MAX_FRAMES`].
    TooManyFrames,
    /// `frame_size` is zero.
    ZeroFrameSize,
    /// Unknown option or requirement bits.
    UnknownOptions,
    /// A pool type that is neither nonpaged nor paged.
    UnknownPoolType,
    /// Paged pool: frames could not be touched at `DISPATCH_LEVEL`.
    PagedPool,
    /// Alignment is not a `FILE_*_ALIGNMENT` value below a page.
    BadAlignment,
    /// The reserved field is not zero.
    ReservedNotZero,
    /// Size arithmetic overflows.
    Overflow,
    /// The frame block would exceed [`MAX_TOTAL_BYTES`].
    TooLarge,
}

impl FramingError {
    /// The NTSTATUS the driver returns for this error.
    #[must_use]
    pub const fn status(self) -> NtStatus {
        match self {
            Self::PagedPool => NtStatus::NOT_SUPPORTED,
            Self::TooLarge => NtStatus::INSUFFICIENT_RESOURCES,
            _ => NtStatus::INVALID_PARAMETER,
        }
    }

    /// The rule that was broken, in words (for logs and the simulator's CLI).
    #[must_use]
    pub const fn rule(self) -> &'static str {
        match self {
            Self::ZeroFrames => "frames must be at least 1",
            Self::TooManyFrames => "frames must be at most 1048576",
            Self::ZeroFrameSize => "frame size must be at least 1 byte",
            Self::UnknownOptions => {
                "options may only use KSALLOCATOR_OPTIONF/REQUIREMENTF bits 0x0F"
            }
            Self::UnknownPoolType => "pool type must be NonPagedPool (0)",
            Self::PagedPool => "paged pool cannot serve the DISPATCH_LEVEL function table",
            Self::BadAlignment => {
                "alignment (FILE_*_ALIGNMENT + 1) must be a power of two of at most 4096"
            }
            Self::ReservedNotZero => "reserved must be zero",
            Self::Overflow => "frames x frame size overflows",
            Self::TooLarge => "frames x frame size must be at most 256 MiB",
        }
    }
}

/// A framing that passed validation, with the derived layout of the frame block.
///
/// Invariants: `1 <= frames <= MAX_FRAMES`; `align` is a power of two `<= PAGE_SIZE`;
/// `stride` is `frame_size` rounded up to `align`; `frames * stride <= MAX_TOTAL_BYTES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    raw: KsAllocatorFraming,
    align: usize,
    stride: usize,
}

impl Framing {
    /// Validates `raw`.
    ///
    /// # Errors
    /// The first rule `raw` breaks, in the order of the module table.
    pub fn validate(raw: &KsAllocatorFraming) -> Result<Self, FramingError> {
        if raw.frames == 0 {
            return Err(FramingError::ZeroFrames);
        }
        if raw.frames > MAX_FRAMES {
            return Err(FramingError::TooManyFrames);
        }
        if raw.frame_size == 0 {
            return Err(FramingError::ZeroFrameSize);
        }
        if raw.options_flags & !VALID_OPTIONS != 0 {
            return Err(FramingError::UnknownOptions);
        }
        match raw.pool_type {
            pool_type::NON_PAGED => {}
            pool_type::PAGED => return Err(FramingError::PagedPool),
            _ => return Err(FramingError::UnknownPoolType),
        }
        let align = raw
            .file_alignment
            .checked_add(1)
            .filter(|a| a.is_power_of_two() && *a <= PAGE_SIZE)
            .ok_or(FramingError::BadAlignment)? as usize;
        if raw.reserved != 0 {
            return Err(FramingError::ReservedNotZero);
        }
        let stride = (raw.frame_size as usize)
            .checked_next_multiple_of(align)
            .ok_or(FramingError::Overflow)?;
        let total = stride
            .checked_mul(raw.frames as usize)
            .ok_or(FramingError::Overflow)?;
        if total > MAX_TOTAL_BYTES {
            return Err(FramingError::TooLarge);
        }
        Ok(Self {
            raw: *raw,
            align,
            stride,
        })
    }

    /// The framing as the client sent it (reported back by STATUS).
    #[must_use]
    pub const fn raw(&self) -> &KsAllocatorFraming {
        &self.raw
    }
    /// Number of frames.
    #[must_use]
    pub const fn frames(&self) -> u32 {
        self.raw.frames
    }
    /// Bytes a client may use in each frame.
    #[must_use]
    pub const fn frame_size(&self) -> usize {
        self.raw.frame_size as usize
    }
    /// Alignment of every frame start.
    #[must_use]
    pub const fn align(&self) -> usize {
        self.align
    }
    /// Distance between frame starts.
    #[must_use]
    pub const fn stride(&self) -> usize {
        self.stride
    }
    /// Bytes of the whole frame block.
    #[must_use]
    pub const fn total_bytes(&self) -> usize {
        self.stride * self.raw.frames as usize
    }
}
