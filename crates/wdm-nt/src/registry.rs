//! Reading the driver's own service key: DWORD switches set by a test host (ksalloc's
//! `TestDevice`, ksprobe's boot mode), never by an INF.

use crate::bindings::{ZwOpenKey, ZwQueryValueKey, HANDLE, OBJECT_ATTRIBUTES, PCUNICODE_STRING};
use crate::constants::{
    nt_success, KEY_READ, KEY_VALUE_PARTIAL_INFORMATION_CLASS, OBJ_CASE_INSENSITIVE,
    OBJ_KERNEL_HANDLE, REG_DWORD,
};
use crate::macros::close_handle;
use crate::strings::counted_checked;

/// A DWORD value of the driver's service key, if it is there and is a REG_DWORD.
/// PASSIVE_LEVEL.
///
/// # Safety
/// `registry_path` is DriverEntry's service key path.
pub unsafe fn service_dword(registry_path: PCUNICODE_STRING, name: &[u16]) -> Option<u32> {
    let mut attributes = OBJECT_ATTRIBUTES {
        Length: core::mem::size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: core::ptr::null_mut(),
        ObjectName: registry_path.cast_mut(),
        Attributes: OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
        SecurityDescriptor: core::ptr::null_mut(),
        SecurityQualityOfService: core::ptr::null_mut(),
    };
    let mut key: HANDLE = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; a kernel handle to our own service key, closed below.
    if !nt_success(unsafe { ZwOpenKey(&raw mut key, KEY_READ, &raw mut attributes) }) {
        return None;
    }
    let value = counted_checked(name);
    // KEY_VALUE_PARTIAL_INFORMATION: TitleIndex, Type, DataLength, then the DWORD.
    let mut info = [0u32; 4];
    let mut returned = 0u32;
    let status = value.map(|mut value| {
        // SAFETY: `info` is a buffer of the size passed; `key` is open.
        unsafe {
            ZwQueryValueKey(
                key,
                &raw mut value,
                KEY_VALUE_PARTIAL_INFORMATION_CLASS as _,
                info.as_mut_ptr().cast(),
                core::mem::size_of_val(&info) as u32,
                &raw mut returned,
            )
        }
    });
    // SAFETY: the handle ZwOpenKey gave us, closed once.
    unsafe { close_handle(key) };
    (status.is_some_and(nt_success) && info[1] == REG_DWORD && info[2] == 4).then_some(info[3])
}
