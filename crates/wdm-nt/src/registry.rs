//! Reading the driver's own service key: DWORD switches set by a test host (ksalloc's
//! `TestDevice`, ksprobe's boot mode) and documented settings under its `Parameters`
//! subkey (ksalloc's `FrameBudgetMiB`).

use crate::bindings::{
    ZwOpenKey, ZwQueryValueKey, HANDLE, OBJECT_ATTRIBUTES, PCUNICODE_STRING, UNICODE_STRING,
};
use crate::constants::{
    nt_success, KEY_READ, KEY_VALUE_PARTIAL_INFORMATION_CLASS, OBJ_CASE_INSENSITIVE,
    OBJ_KERNEL_HANDLE, REG_DWORD,
};
use crate::macros::close_handle;
use crate::strings::counted_checked;

/// `ZwOpenKey` for reading `name`, relative to `root` (absolute when `root` is null).
///
/// # Safety
/// PASSIVE_LEVEL; `name` is a valid counted string; `root` is null or an open key.
unsafe fn open_key(root: HANDLE, name: *mut UNICODE_STRING) -> Option<HANDLE> {
    let mut attributes = OBJECT_ATTRIBUTES {
        Length: core::mem::size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: root,
        ObjectName: name,
        Attributes: OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
        SecurityDescriptor: core::ptr::null_mut(),
        SecurityQualityOfService: core::ptr::null_mut(),
    };
    let mut key: HANDLE = core::ptr::null_mut();
    // SAFETY: the caller's contract; a kernel handle the caller closes.
    let status = unsafe { ZwOpenKey(&raw mut key, KEY_READ, &raw mut attributes) };
    nt_success(status).then_some(key)
}

/// The REG_DWORD `name` of the open key `key`, if it is there and is a REG_DWORD.
///
/// # Safety
/// PASSIVE_LEVEL; `key` is open.
unsafe fn query_dword(key: HANDLE, name: &[u16]) -> Option<u32> {
    let mut value = counted_checked(name)?;
    // KEY_VALUE_PARTIAL_INFORMATION: TitleIndex, Type, DataLength, then the DWORD.
    let mut info = [0u32; 4];
    let mut returned = 0u32;
    // SAFETY: `info` is a buffer of the size passed; `key` is open (caller).
    let status = unsafe {
        ZwQueryValueKey(
            key,
            &raw mut value,
            KEY_VALUE_PARTIAL_INFORMATION_CLASS as _,
            info.as_mut_ptr().cast(),
            core::mem::size_of_val(&info) as u32,
            &raw mut returned,
        )
    };
    (nt_success(status) && info[1] == REG_DWORD && info[2] == 4).then_some(info[3])
}

/// A DWORD value of the driver's service key (`subkey` empty) or of one of its subkeys,
/// if it is there and is a REG_DWORD. PASSIVE_LEVEL.
///
/// # Safety
/// `registry_path` is DriverEntry's service key path.
pub unsafe fn service_dword(
    registry_path: PCUNICODE_STRING,
    subkey: &[u16],
    name: &[u16],
) -> Option<u32> {
    // SAFETY: PASSIVE_LEVEL (caller); our own service key, closed below.
    let service = unsafe { open_key(core::ptr::null_mut(), registry_path.cast_mut()) }?;
    let value = if subkey.is_empty() {
        // SAFETY: `service` is open.
        unsafe { query_dword(service, name) }
    } else {
        counted_checked(subkey).and_then(|mut sub| {
            // SAFETY: `service` is open; `sub` is a counted name.
            let key = unsafe { open_key(service, &raw mut sub) }?;
            // SAFETY: `key` is open.
            let value = unsafe { query_dword(key, name) };
            // SAFETY: the handle open_key gave us, closed once.
            unsafe { close_handle(key) };
            value
        })
    };
    // SAFETY: the handle open_key gave us, closed once.
    unsafe { close_handle(service) };
    value
}
