//! NTSTATUS values the driver returns, with the meaning ksalloc gives each.

/// An `NTSTATUS` (a signed 32-bit value; severity in the top two bits).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NtStatus(pub i32);

#[allow(clippy::cast_possible_wrap)] // NTSTATUS literals are defined as u32 bit patterns.
const fn st(v: u32) -> NtStatus {
    NtStatus(v as i32)
}

impl NtStatus {
    /// `STATUS_SUCCESS`.
    pub const SUCCESS: Self = st(0x0000_0000);
    /// `STATUS_PENDING`: the IRP was marked pending and will be completed later.
    pub const PENDING: Self = st(0x0000_0103);
    /// `STATUS_BUFFER_OVERFLOW` (warning): the KS size-query answer; Information = size needed.
    pub const BUFFER_OVERFLOW: Self = st(0x8000_0005);
    /// `STATUS_UNSUCCESSFUL`.
    pub const UNSUCCESSFUL: Self = st(0xC000_0001);
    /// `STATUS_NOT_IMPLEMENTED`.
    pub const NOT_IMPLEMENTED: Self = st(0xC000_0002);
    /// `STATUS_INVALID_HANDLE`: the file object names no live object of the right kind.
    pub const INVALID_HANDLE: Self = st(0xC000_0008);
    /// `STATUS_INVALID_PARAMETER`: malformed request or framing.
    pub const INVALID_PARAMETER: Self = st(0xC000_000D);
    /// `STATUS_INVALID_DEVICE_REQUEST`: the request is not valid for this object or requestor.
    pub const INVALID_DEVICE_REQUEST: Self = st(0xC000_0010);
    /// `STATUS_ACCESS_DENIED`.
    pub const ACCESS_DENIED: Self = st(0xC000_0022);
    /// `STATUS_BUFFER_TOO_SMALL`: a non-zero output buffer shorter than required.
    pub const BUFFER_TOO_SMALL: Self = st(0xC000_0023);
    /// `STATUS_OBJECT_NAME_INVALID`: a create name that parses to nothing we serve.
    pub const OBJECT_NAME_INVALID: Self = st(0xC000_0033);
    /// `STATUS_OBJECT_NAME_NOT_FOUND`.
    pub const OBJECT_NAME_NOT_FOUND: Self = st(0xC000_0034);
    /// `STATUS_INSUFFICIENT_RESOURCES`: pool exhausted, or no free frame on the table path.
    pub const INSUFFICIENT_RESOURCES: Self = st(0xC000_009A);
    /// `STATUS_DEVICE_NOT_READY`.
    pub const DEVICE_NOT_READY: Self = st(0xC000_00A3);
    /// `STATUS_NOT_SUPPORTED`.
    pub const NOT_SUPPORTED: Self = st(0xC000_00BB);
    /// `STATUS_CANCELLED`: a pending ALLOC cancelled, or failed by close.
    pub const CANCELLED: Self = st(0xC000_0120);
    /// `STATUS_INVALID_DEVICE_STATE`: the object is closing or closed.
    pub const INVALID_DEVICE_STATE: Self = st(0xC000_0184);
    /// `STATUS_INVALID_BUFFER_SIZE`: request shorter than its header.
    pub const INVALID_BUFFER_SIZE: Self = st(0xC000_0206);
    /// `STATUS_NOT_FOUND`: unknown property/method/event set or id.
    pub const NOT_FOUND: Self = st(0xC000_0225);
    /// `STATUS_NO_MATCH`: no data range matches the requested format.
    pub const NO_MATCH: Self = st(0xC000_0272);

    /// `NT_SUCCESS`: severity success or informational.
    #[must_use]
    pub const fn is_success(self) -> bool {
        self.0 >= 0
    }

    /// `NT_ERROR`: severity error.
    #[must_use]
    #[allow(clippy::cast_sign_loss)]
    pub const fn is_error(self) -> bool {
        (self.0 as u32) >> 30 == 3
    }

    /// The name of a status this crate defines, for logs and CLI output.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::SUCCESS => "STATUS_SUCCESS",
            Self::PENDING => "STATUS_PENDING",
            Self::BUFFER_OVERFLOW => "STATUS_BUFFER_OVERFLOW",
            Self::UNSUCCESSFUL => "STATUS_UNSUCCESSFUL",
            Self::NOT_IMPLEMENTED => "STATUS_NOT_IMPLEMENTED",
            Self::INVALID_HANDLE => "STATUS_INVALID_HANDLE",
            Self::INVALID_PARAMETER => "STATUS_INVALID_PARAMETER",
            Self::INVALID_DEVICE_REQUEST => "STATUS_INVALID_DEVICE_REQUEST",
            Self::ACCESS_DENIED => "STATUS_ACCESS_DENIED",
            Self::BUFFER_TOO_SMALL => "STATUS_BUFFER_TOO_SMALL",
            Self::OBJECT_NAME_INVALID => "STATUS_OBJECT_NAME_INVALID",
            Self::OBJECT_NAME_NOT_FOUND => "STATUS_OBJECT_NAME_NOT_FOUND",
            Self::INSUFFICIENT_RESOURCES => "STATUS_INSUFFICIENT_RESOURCES",
            Self::DEVICE_NOT_READY => "STATUS_DEVICE_NOT_READY",
            Self::NOT_SUPPORTED => "STATUS_NOT_SUPPORTED",
            Self::CANCELLED => "STATUS_CANCELLED",
            Self::INVALID_DEVICE_STATE => "STATUS_INVALID_DEVICE_STATE",
            Self::INVALID_BUFFER_SIZE => "STATUS_INVALID_BUFFER_SIZE",
            Self::NOT_FOUND => "STATUS_NOT_FOUND",
            Self::NO_MATCH => "STATUS_NO_MATCH",
            _ => "STATUS_<other>",
        }
    }
}

impl core::fmt::Debug for NtStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        #[allow(clippy::cast_sign_loss)]
        let raw = self.0 as u32;
        write!(f, "{}(0x{raw:08X})", self.name())
    }
}
