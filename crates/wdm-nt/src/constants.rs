//! Values from wdm.h / ntddk.h / ntstatus.h / winnt.h, the same in every WDK.
//!
//! C enums are `int` in the WDK's (MSVC) bindings and `unsigned int` in mingw-w64's (GNU)
//! ones: constants of an enum type take the bindings' own type.

use crate::bindings::{CCHAR, EVENT_TYPE, KDPC_IMPORTANCE, KWAIT_REASON, NTSTATUS};

/// `IRP_MJ_CREATE`.
pub const IRP_MJ_CREATE: usize = 0x00;
/// `IRP_MJ_CLOSE`.
pub const IRP_MJ_CLOSE: usize = 0x02;
/// `IRP_MJ_DEVICE_CONTROL`.
pub const IRP_MJ_DEVICE_CONTROL: usize = 0x0e;
/// `IRP_MJ_CLEANUP`.
pub const IRP_MJ_CLEANUP: usize = 0x12;
/// `IRP_MJ_POWER`.
pub const IRP_MJ_POWER: usize = 0x16;
/// `IRP_MJ_SYSTEM_CONTROL`.
pub const IRP_MJ_SYSTEM_CONTROL: usize = 0x17;
/// `IRP_MJ_PNP`.
pub const IRP_MJ_PNP: usize = 0x1b;
/// `IRP_MN_START_DEVICE`.
pub const IRP_MN_START_DEVICE: u8 = 0x00;
/// `IRP_MN_QUERY_REMOVE_DEVICE`.
pub const IRP_MN_QUERY_REMOVE_DEVICE: u8 = 0x01;
/// `IRP_MN_REMOVE_DEVICE`.
pub const IRP_MN_REMOVE_DEVICE: u8 = 0x02;
/// `IRP_MN_CANCEL_REMOVE_DEVICE`.
pub const IRP_MN_CANCEL_REMOVE_DEVICE: u8 = 0x03;
/// `IRP_MN_STOP_DEVICE`.
pub const IRP_MN_STOP_DEVICE: u8 = 0x04;
/// `IRP_MN_QUERY_STOP_DEVICE`.
pub const IRP_MN_QUERY_STOP_DEVICE: u8 = 0x05;
/// `IRP_MN_CANCEL_STOP_DEVICE`.
pub const IRP_MN_CANCEL_STOP_DEVICE: u8 = 0x06;
/// `IRP_MN_SURPRISE_REMOVAL`.
pub const IRP_MN_SURPRISE_REMOVAL: u8 = 0x17;
/// `SL_PENDING_RETURNED` in `IO_STACK_LOCATION.Control`.
pub const SL_PENDING_RETURNED: u8 = 0x01;
/// `IRP_BUFFERED_IO`.
pub const IRP_BUFFERED_IO: u32 = 0x0000_0010;
/// `IRP_DEALLOCATE_BUFFER`.
pub const IRP_DEALLOCATE_BUFFER: u32 = 0x0000_0020;
/// `IRP_INPUT_OPERATION`.
pub const IRP_INPUT_OPERATION: u32 = 0x0000_0040;
/// `DO_DEVICE_INITIALIZING`.
pub const DO_DEVICE_INITIALIZING: u32 = 0x0000_0080;
/// `DO_POWER_PAGABLE`.
pub const DO_POWER_PAGABLE: u32 = 0x0000_2000;
/// `DISPATCH_LEVEL` (`KIRQL`).
pub const DISPATCH_LEVEL: u8 = 2;
/// `ALL_PROCESSOR_GROUPS`: a group number meaning every group.
pub const ALL_PROCESSOR_GROUPS: u16 = 0xffff;
/// `MediumHighImportance` (`KDPC_IMPORTANCE`, wdm.h: Low 0, Medium 1, High 2, MediumHigh 3).
///
/// Queued at the end of the target processor's DPC queue, and that queue is processed at
/// once even when it is another processor's ("KeSetImportanceDpc function (wdm.h)",
/// "Organization of DPC Queues").
pub const MEDIUM_HIGH_IMPORTANCE: KDPC_IMPORTANCE = 3;
/// `FILE_DEVICE_SECURE_OPEN`.
pub const FILE_DEVICE_SECURE_OPEN: u32 = 0x0000_0100;
/// `FILE_DEVICE_KS`.
pub const FILE_DEVICE_KS: u32 = ks_abi::ioctl::FILE_DEVICE_KS;
/// `POOL_FLAG_USE_QUOTA` (wdm.h; "ExAllocatePool2 function" page: charge the block to
/// the current process's quota).
pub const POOL_FLAG_USE_QUOTA: u64 = 0x0000_0000_0000_0001;
/// `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE` (wdm.h): OR'd into the pool type,
/// `ExAllocatePoolWithQuotaTag` returns null instead of raising an exception.
pub const POOL_QUOTA_FAIL_INSTEAD_OF_RAISE: i32 = 8;
/// `POOL_FLAG_NON_PAGED`.
pub const POOL_FLAG_NON_PAGED: u64 = 0x0000_0000_0000_0040;
/// `NonPagedPoolNx` (`POOL_TYPE`).
pub const NON_PAGED_POOL_NX: i32 = 512;
/// `PAGE_SIZE` on x64.
pub const PAGE_SIZE: usize = 4096;
/// `EVENT_MODIFY_STATE`: the access a FREEFRAME client's event handle must grant.
pub const EVENT_MODIFY_STATE: u32 = 0x0002;
/// `EVENT_ALL_ACCESS`.
pub const EVENT_ALL_ACCESS: u32 = 0x001F_0003;
/// `NotificationEvent` (`EVENT_TYPE`).
pub const NOTIFICATION_EVENT: EVENT_TYPE = 0;
/// `Executive` (`KWAIT_REASON`).
pub const EXECUTIVE: KWAIT_REASON = 0;
/// `KernelMode` / `UserMode` (`KPROCESSOR_MODE`).
pub const KERNEL_MODE: i8 = 0;
/// `IO_NO_INCREMENT`.
pub const IO_NO_INCREMENT: CCHAR = 0;
/// `OBJ_CASE_INSENSITIVE`.
pub const OBJ_CASE_INSENSITIVE: u32 = 0x0000_0040;
/// `OBJ_KERNEL_HANDLE`: the handle lives in the kernel's handle table, not the process
/// the request arrived in.
pub const OBJ_KERNEL_HANDLE: u32 = 0x0000_0200;
/// `GENERIC_READ`.
pub const GENERIC_READ: u32 = 0x8000_0000;
/// `GENERIC_WRITE`.
pub const GENERIC_WRITE: u32 = 0x4000_0000;
/// `FILE_ATTRIBUTE_NORMAL`.
pub const FILE_ATTRIBUTE_NORMAL: u32 = 0x0000_0080;
/// `FILE_OPEN` (create disposition).
pub const FILE_OPEN: u32 = 0x0000_0001;
/// `THREAD_ALL_ACCESS` (winnt.h, Vista and later).
pub const THREAD_ALL_ACCESS: u32 = 0x001F_FFFF;
/// `KEY_READ`.
pub const KEY_READ: u32 = 0x0002_0019;
/// `REG_DWORD`.
pub const REG_DWORD: u32 = 4;
/// `KeyValuePartialInformation` (`KEY_VALUE_INFORMATION_CLASS`).
pub const KEY_VALUE_PARTIAL_INFORMATION_CLASS: i32 = 2;
/// `STATUS_SUCCESS`.
pub const STATUS_SUCCESS: NTSTATUS = 0;
/// `STATUS_PENDING`.
pub const STATUS_PENDING: NTSTATUS = 0x0000_0103;
/// `STATUS_NO_SUCH_DEVICE`.
pub const STATUS_NO_SUCH_DEVICE: NTSTATUS = 0xC000_000E_u32 as NTSTATUS;
/// `STATUS_DELETE_PENDING`.
pub const STATUS_DELETE_PENDING: NTSTATUS = 0xC000_0056_u32 as NTSTATUS;

/// `NT_SUCCESS`: success and informational codes (the sign bit clear).
#[must_use]
pub const fn nt_success(status: NTSTATUS) -> bool {
    status >= 0
}
