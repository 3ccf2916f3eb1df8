//! IOCTL codes of the KS interface (all METHOD_NEITHER).

/// `FILE_DEVICE_KS`.
pub const FILE_DEVICE_KS: u32 = 0x0000_002F;
/// `METHOD_NEITHER`.
pub const METHOD_NEITHER: u32 = 3;
/// `FILE_ANY_ACCESS`.
pub const FILE_ANY_ACCESS: u32 = 0;
/// `FILE_READ_ACCESS`.
pub const FILE_READ_ACCESS: u32 = 1;
/// `FILE_WRITE_ACCESS`.
pub const FILE_WRITE_ACCESS: u32 = 2;

/// `CTL_CODE(DeviceType, Function, Method, Access)`.
#[must_use]
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

/// `IOCTL_KS_PROPERTY`.
pub const IOCTL_KS_PROPERTY: u32 = ctl_code(FILE_DEVICE_KS, 0, METHOD_NEITHER, FILE_ANY_ACCESS);
/// `IOCTL_KS_ENABLE_EVENT`.
pub const IOCTL_KS_ENABLE_EVENT: u32 = ctl_code(FILE_DEVICE_KS, 1, METHOD_NEITHER, FILE_ANY_ACCESS);
/// `IOCTL_KS_DISABLE_EVENT`.
pub const IOCTL_KS_DISABLE_EVENT: u32 =
    ctl_code(FILE_DEVICE_KS, 2, METHOD_NEITHER, FILE_ANY_ACCESS);
/// `IOCTL_KS_METHOD`.
pub const IOCTL_KS_METHOD: u32 = ctl_code(FILE_DEVICE_KS, 3, METHOD_NEITHER, FILE_ANY_ACCESS);
/// `IOCTL_KS_WRITE_STREAM`.
pub const IOCTL_KS_WRITE_STREAM: u32 =
    ctl_code(FILE_DEVICE_KS, 4, METHOD_NEITHER, FILE_WRITE_ACCESS);
/// `IOCTL_KS_READ_STREAM`.
pub const IOCTL_KS_READ_STREAM: u32 = ctl_code(FILE_DEVICE_KS, 5, METHOD_NEITHER, FILE_READ_ACCESS);
/// `IOCTL_KS_RESET_STATE`.
pub const IOCTL_KS_RESET_STATE: u32 = ctl_code(FILE_DEVICE_KS, 6, METHOD_NEITHER, FILE_ANY_ACCESS);
