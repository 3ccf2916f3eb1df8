//! Counted UTF-16 strings (`UNICODE_STRING`) and GUIDs in the kernel's types.

use crate::bindings::{GUID, UNICODE_STRING};

/// An ASCII string as UTF-16, at compile time (kernel names are UTF-16 `UNICODE_STRING`s).
#[must_use]
pub const fn wide<const N: usize>(ascii: &[u8; N]) -> [u16; N] {
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        out[i] = ascii[i] as u16;
        i += 1;
    }
    out
}

/// A `UNICODE_STRING` over static UTF-16 text (no terminator; `Length` in bytes): for the
/// driver's own fixed names, which always fit (longer text is cut at the limit).
#[must_use]
pub fn counted(text: &'static [u16]) -> UNICODE_STRING {
    let bytes = u16::try_from(text.len() * 2).unwrap_or(u16::MAX - 1);
    UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: text.as_ptr().cast_mut(),
    }
}

/// A counted string over any text (no terminator needed); `None` above 32,766
/// characters, which a `UNICODE_STRING` cannot describe.
#[must_use]
pub fn counted_checked(text: &[u16]) -> Option<UNICODE_STRING> {
    let bytes = u16::try_from(text.len() * 2)
        .ok()
        .filter(|&b| b < u16::MAX)?;
    Some(UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: text.as_ptr().cast_mut(),
    })
}

/// A `ks_abi::Guid` as the kernel's `GUID`.
#[must_use]
pub const fn guid(g: &ks_abi::Guid) -> GUID {
    GUID {
        Data1: g.data1,
        Data2: g.data2,
        Data3: g.data3,
        Data4: g.data4,
    }
}
