//! The KS/NT ABI subset ksalloc needs, as plain data.
//!
//! Every type here is `#[repr(C)]` with the x86_64 (LLP64) Windows layout of the WDK's
//! `ks.h`; the layout tests in `tests/` pin every size and offset, and a second test checks
//! the same table against mingw-w64's headers. No behaviour and no `unsafe` lives here.
#![no_std]
#![forbid(unsafe_code)]

pub mod guid;
pub mod ioctl;
pub mod ks;
pub mod status;

pub use guid::Guid;
pub use status::NtStatus;
