//! The control device `\\.\ksprobe` and its run IOCTL (Windows only).

use std::io;
use std::ptr;

use ksprobe_scenarios::wire::{CONTROL_DEVICE_WIN32, IOCTL_KSPROBE_RUN};
use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_ACCESS_DENIED, ERROR_FILE_NOT_FOUND, GENERIC_READ, GENERIC_WRITE, HANDLE,
    INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{CreateFileW, FILE_ATTRIBUTE_NORMAL, OPEN_EXISTING};
use windows_sys::Win32::System::IO::DeviceIoControl;

/// An open handle on ksprobe's control device.
pub struct Device(HANDLE);

impl Device {
    /// Opens `\\.\ksprobe` for read and write (the IOCTL's required access).
    ///
    /// # Errors
    /// `CreateFileW`'s error.
    pub fn open() -> io::Result<Self> {
        let name: Vec<u16> = CONTROL_DEVICE_WIN32.encode_utf16().chain([0]).collect();
        // SAFETY: `name` is a NUL-terminated UTF-16 string that outlives the call; no
        // security attributes and no template handle are passed (both may be null).
        let handle = unsafe {
            CreateFileW(
                name.as_ptr(),
                GENERIC_READ | GENERIC_WRITE,
                0,
                ptr::null(),
                OPEN_EXISTING,
                FILE_ATTRIBUTE_NORMAL,
                ptr::null_mut(),
            )
        };
        if handle == INVALID_HANDLE_VALUE {
            Err(io::Error::last_os_error())
        } else {
            Ok(Self(handle))
        }
    }

    /// Sends [`IOCTL_KSPROBE_RUN`] with `request`; the response lands in `out`.
    /// Returns the bytes written. Blocks while the scenarios run.
    ///
    /// # Errors
    /// `DeviceIoControl`'s error.
    pub fn run(&self, request: &[u8], out: &mut [u8]) -> io::Result<usize> {
        let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "buffer over 4 GiB");
        let in_len = u32::try_from(request.len()).map_err(|_| too_big())?;
        let out_len = u32::try_from(out.len()).map_err(|_| too_big())?;
        let mut returned = 0u32;
        // SAFETY: the handle is open (owned by self); the input and output pointers
        // and lengths describe live buffers borrowed for the call; `returned` is a
        // valid u32; no OVERLAPPED: the handle is synchronous, so the call returns
        // only when the driver completed the IRP.
        let ok = unsafe {
            DeviceIoControl(
                self.0,
                IOCTL_KSPROBE_RUN,
                request.as_ptr().cast(),
                in_len,
                out.as_mut_ptr().cast(),
                out_len,
                &raw mut returned,
                ptr::null_mut(),
            )
        };
        if ok == 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(returned as usize)
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: the handle came from CreateFileW and is closed exactly once, here.
        unsafe { CloseHandle(self.0) };
    }
}

/// What an open failure most likely means.
pub fn explain_open_error(error: &io::Error) -> String {
    let hint = match error.raw_os_error().and_then(|e| u32::try_from(e).ok()) {
        Some(ERROR_FILE_NOT_FOUND) => {
            "ksprobe's control device is not there: is the ksprobe service installed and started?"
        }
        Some(ERROR_ACCESS_DENIED) => {
            "access denied: ksprobe admits SYSTEM and Administrators only; run elevated"
        }
        _ => "could not open ksprobe's control device",
    };
    format!("{hint} ({CONTROL_DEVICE_WIN32}: {error})")
}
