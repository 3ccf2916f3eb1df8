//! `ProbeClient` over the kernel: ksprobe as a kernel-mode KS client of ksalloc.
//!
//! - Handles: `ZwCreateFile` with `OBJ_KERNEL_HANDLE` (the run IOCTL arrives in the
//!   runner's process; kernel handles keep that process out of it). The filter is
//!   opened by its interface path; pins and allocators relative to their parent handle
//!   with the KS create names `{GUID}\<parameters>` (`ksprobe_scenarios::ks`, whose
//!   bytes the model tests feed to ksalloc's parser).
//! - Requests: `IoBuildDeviceIoControlRequest` (RequestorMode = KernelMode, buffers
//!   used in place, as KS expects from a kernel requestor) with the target file object
//!   set in the next stack location, sent with `IoCallDriver` to the device behind the
//!   file object.
//! - Function table: called between `KeRaiseIrql(DISPATCH_LEVEL)` and `KeLowerIrql`,
//!   with the allocator's file object, referenced for as long as the table is held.
//!
//! - Under Wine relative creates cannot reach a driver, so in the cross-build
//!   (`nt_source = "mingw"`), when the service key asks for it (`StandIn` = 1, set by
//!   tests/wine/run.sh), opens, closes and file-object references go through
//!   [`crate::standin`], which plays the I/O manager's part in-process; requests and
//!   the function table are the same code as on Windows. Without it (ReactOS) the
//!   cross-build opens with `ZwCreateFile` like the WDK build.
//!
//! Everything here runs at PASSIVE_LEVEL in the runner's thread unless it says
//! otherwise; that thread is also where the I/O manager completes our threaded IRPs
//! (a special kernel APC), which the waits below rely on.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr::null_mut;

use ks_abi::guid::{
    KSCATEGORY_DATATRANSFORM, KSEVENTSETID_STREAM_ALLOCATOR, KSMETHODSETID_STREAM_ALLOCATOR,
    KSNAME_ALLOCATOR, KSNAME_FILTER, KSNAME_PIN, KSPROPSETID_STREAM_ALLOCATOR,
};
use ks_abi::ioctl::{
    IOCTL_KS_DISABLE_EVENT, IOCTL_KS_ENABLE_EVENT, IOCTL_KS_METHOD, IOCTL_KS_PROPERTY,
};
use ks_abi::ks::{
    event_type, method_type, property_type, stream_allocator, KsAllocatorFraming,
    KsStreamAllocatorStatus, PfnAllocatorAllocateFrame, PfnAllocatorFreeFrame,
};
use ks_abi::{Guid, NtStatus};
use ksprobe_scenarios::path::{filter_candidates, is_ksalloc_driver, to_nt_path};
use ksprobe_scenarios::requests::{Buffer, IoctlCase};
use ksprobe_scenarios::wire::Request;
use ksprobe_scenarios::{frame, ks, ProbeClient};

use crate::nt;

// ---- the client -----------------------------------------------------------------------

/// An open KS object: its kernel handle, its file object (referenced) and the device
/// requests about it go to.
pub struct Object {
    /// Null for a stand-in object (no handle).
    handle: nt::HANDLE,
    file: nt::PFILE_OBJECT,
    device: nt::PDEVICE_OBJECT,
}

/// The function table and the allocator's file object it is called with (referenced
/// by the table itself, so it outlives the allocator handle).
pub struct Table {
    allocate: PfnAllocatorAllocateFrame,
    free: PfnAllocatorFreeFrame,
    file: nt::PFILE_OBJECT,
}

// SAFETY: the table is two routine addresses and a referenced file object; ksalloc's
// AllocateFrame and FreeFrame may be called from any thread at once at <= DISPATCH_LEVEL
// (the KS function table contract, MS page "KSSTREAMALLOCATOR_FUNCTIONTABLE"), and the
// reference is only dropped by `release_table`, which takes the table by value.
unsafe impl Sync for Table {}

/// The state of one ALLOC request, in pool that does not move while the IRP is out:
/// the I/O manager writes `iosb` and signals `event`, ksalloc writes `frame`.
#[repr(C)]
struct PendingIo {
    event: nt::KEVENT,
    iosb: nt::IO_STATUS_BLOCK,
    method: [u8; 24],
    frame: [u8; 8],
    irp: nt::PIRP,
}

impl PendingIo {
    // Field addresses by offset: safe pointer arithmetic, no dereference.
    fn event(io: *mut Self) -> *mut nt::KEVENT {
        io.wrapping_byte_add(core::mem::offset_of!(Self, event))
            .cast()
    }
    fn iosb(io: *mut Self) -> *mut nt::IO_STATUS_BLOCK {
        io.wrapping_byte_add(core::mem::offset_of!(Self, iosb))
            .cast()
    }
    fn method(io: *mut Self) -> *mut u8 {
        io.wrapping_byte_add(core::mem::offset_of!(Self, method))
            .cast()
    }
    fn frame(io: *mut Self) -> *mut [u8; 8] {
        io.wrapping_byte_add(core::mem::offset_of!(Self, frame))
            .cast()
    }
    fn irp(io: *mut Self) -> *mut nt::PIRP {
        io.wrapping_byte_add(core::mem::offset_of!(Self, irp))
            .cast()
    }
}

/// An ALLOC request in flight: a `Box<PendingIo>` turned into a raw pointer, because
/// the I/O manager and ksalloc write into it behind Rust's back until it completes.
pub struct Pending(*mut PendingIo);

/// A FREEFRAME registration: a kernel event handle (what the `KSEVENTDATA` names), the
/// event object behind it (referenced, to wait on), and the `KSEVENTDATA` itself.
pub struct Event {
    handle: nt::HANDLE,
    object: *mut nt::KEVENT,
    data: [u8; 32],
}

/// ksprobe's kernel-mode KS client of one ksalloc filter.
pub struct KernelClient {
    /// NT path of the filter: the interface's symbolic link and reference string.
    filter: Vec<u16>,
    /// Performance counter ticks per second.
    frequency: u64,
    /// Whether `raw_ioctl` sends cases with a bad address (which make the driver's
    /// capture fault inside `__try`); off only where the kernel cannot dispatch that
    /// exception (boot mode on ReactOS amd64: see boot.rs).
    send_faulting: bool,
}

/// A stack `IO_STATUS_BLOCK`.
fn iosb() -> nt::IO_STATUS_BLOCK {
    // SAFETY: IO_STATUS_BLOCK is plain data for which all-zero is valid.
    unsafe { core::mem::zeroed() }
}

impl KernelClient {
    /// The client for a run request: its filter path, or the ksalloc filter found by
    /// [`find_filter`]. PASSIVE_LEVEL.
    ///
    /// # Errors
    /// `STATUS_OBJECT_NAME_NOT_FOUND` when no ksalloc filter is found, or the request's
    /// path does not lead to a device of `\Driver\ksalloc`.
    pub fn for_request(request: &Request) -> Result<Self, NtStatus> {
        let filter = if request.path.is_empty() {
            find_filter()?
        } else {
            // A path given with --filter is held to the same check as a found one: the
            // probe calls the function pointers the filter's allocators hand back.
            let path = to_nt_path(&request.path);
            if !serves_ksalloc(&path) {
                return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
            }
            path
        };
        let mut frequency = nt::LARGE_INTEGER { QuadPart: 0 };
        // SAFETY: any IRQL; `frequency` is a valid out pointer.
        unsafe { nt::KeQueryPerformanceCounter(&raw mut frequency) };
        // SAFETY: QuadPart is the union's 64-bit view, just written.
        let frequency = u64::try_from(unsafe { frequency.QuadPart })
            .unwrap_or(0)
            .max(1);
        Ok(Self {
            filter,
            frequency,
            send_faulting: true,
        })
    }

    /// The same client, reporting every case with a bad address as one it cannot send.
    #[must_use]
    pub fn without_faulting_cases(self) -> Self {
        Self {
            send_faulting: false,
            ..self
        }
    }

    /// `ZwCreateFile` on `name` relative to `parent` (or absolute), then the file object
    /// and its device. PASSIVE_LEVEL.
    fn open(parent: Option<&Object>, name: &[u16], access: u32) -> Result<Object, NtStatus> {
        #[cfg(nt_source = "mingw")]
        if crate::standin::enabled() {
            return Self::open_standin(parent, name);
        }
        let root = parent.map_or(null_mut(), |p| p.handle);
        let mut name = nt::counted(name).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
        // SAFETY: OBJECT_ATTRIBUTES is plain data; every field is set below.
        let mut attributes: nt::OBJECT_ATTRIBUTES = unsafe { core::mem::zeroed() };
        attributes.Length = core::mem::size_of::<nt::OBJECT_ATTRIBUTES>() as u32;
        attributes.RootDirectory = root;
        attributes.ObjectName = &raw mut name;
        attributes.Attributes = nt::OBJ_KERNEL_HANDLE | nt::OBJ_CASE_INSENSITIVE;
        let mut status_block = iosb();
        let mut handle: nt::HANDLE = null_mut();
        // SAFETY: PASSIVE_LEVEL; every pointer is to a local that outlives the call;
        // `name` may carry binary create parameters, which KS create names do.
        let status = unsafe {
            nt::ZwCreateFile(
                &raw mut handle,
                access,
                &raw mut attributes,
                &raw mut status_block,
                null_mut(),
                nt::FILE_ATTRIBUTE_NORMAL,
                0,
                nt::FILE_OPEN,
                0,
                null_mut(),
                0,
            )
        };
        if !nt::nt_success(status) {
            return Err(NtStatus(status));
        }
        let mut file: nt::PVOID = null_mut();
        // SAFETY: a kernel handle we just opened; KernelMode skips the access check, a
        // NULL type skips the type check (ZwCreateFile returns file handles only).
        let status = unsafe {
            nt::ObReferenceObjectByHandle(
                handle,
                0,
                null_mut(),
                nt::KERNEL_MODE,
                &raw mut file,
                null_mut(),
            )
        };
        if !nt::nt_success(status) {
            // SAFETY: our handle, closed once.
            unsafe { nt::close_handle(handle) };
            return Err(NtStatus(status));
        }
        let file = file.cast::<nt::FILE_OBJECT>();
        Ok(Object {
            handle,
            file,
            // SAFETY: `file` is referenced.
            device: unsafe { device_of(file) },
        })
    }

    /// The stand-in's open (module docs): no handle, no access check.
    #[cfg(nt_source = "mingw")]
    fn open_standin(parent: Option<&Object>, name: &[u16]) -> Result<Object, NtStatus> {
        let parent = parent.map_or(null_mut(), |p| p.file);
        // SAFETY: `parent` is null or the file object of a live `Object`.
        let (file, device) = unsafe { crate::standin::open(parent, name) }?;
        Ok(Object {
            handle: null_mut(),
            file,
            device,
        })
    }

    /// One synchronous KS IOCTL to `object`: `input` is the request, `data` the data
    /// buffer (both used in place: METHOD_NEITHER from a kernel requestor). Returns the
    /// status and `Information`. PASSIVE_LEVEL.
    fn ioctl(object: &Object, code: u32, input: &mut [u8], data: &mut [u8]) -> (NtStatus, usize) {
        // SAFETY: KEVENT is plain data, initialised by KeInitializeEvent right below.
        let mut event: nt::KEVENT = unsafe { core::mem::zeroed() };
        // SAFETY: a stack event, waited on below before it goes out of scope (KernelMode
        // wait: the stack stays resident).
        unsafe { nt::KeInitializeEvent(&raw mut event, nt::NOTIFICATION_EVENT, 0) };
        let mut status_block = iosb();
        // SAFETY: PASSIVE_LEVEL; the event and status block are locals waited on below,
        // before they go out of scope; the buffers are borrowed for this whole call.
        let irp = unsafe {
            build(
                object,
                code,
                raw(input),
                raw(data),
                &raw mut event,
                &raw mut status_block,
            )
        };
        if irp.is_null() {
            return (NtStatus::INSUFFICIENT_RESOURCES, 0);
        }
        // SAFETY: a fresh IRP set up for `object`'s device.
        unsafe { nt::IoCallDriver(object.device, irp) };
        // The I/O manager signals the event when the IRP completes, pended or not.
        // SAFETY: PASSIVE_LEVEL; our event; no timeout.
        let waited = unsafe {
            nt::KeWaitForSingleObject(
                (&raw mut event).cast(),
                nt::EXECUTIVE,
                nt::KERNEL_MODE,
                0,
                null_mut(),
            )
        };
        // A kernel-mode, non-alertable wait without timeout returns only STATUS_SUCCESS
        // (MS page "KeWaitForSingleObject function (wdm.h)").
        let _ = waited;
        // SAFETY: written by the I/O manager before it signalled the event.
        let status = unsafe { status_block.__bindgen_anon_1.Status };
        (NtStatus(status), status_block.Information as usize)
    }

    /// A property GET into `N` bytes.
    fn get<const N: usize>(object: &Object, set: &Guid, id: u32) -> Result<[u8; N], NtStatus> {
        let mut request = ks::identifier(set, id, property_type::GET);
        let mut data = [0u8; N];
        match Self::ioctl(object, IOCTL_KS_PROPERTY, &mut request, &mut data) {
            (NtStatus::SUCCESS, n) if n == N => Ok(data),
            (NtStatus::SUCCESS, _) => Err(NtStatus::INVALID_PARAMETER),
            (status, _) => Err(status),
        }
    }

    /// Raises to DISPATCH_LEVEL around `f` (nests: raising to the current level is
    /// allowed).
    fn dispatch<R>(f: impl FnOnce() -> R) -> R {
        // SAFETY: we run at PASSIVE_LEVEL or, nested, at DISPATCH_LEVEL: never above.
        let old = unsafe { nt::KeRaiseIrql(nt::DISPATCH_LEVEL) };
        let result = f();
        // SAFETY: back to the level this call raised from.
        unsafe { nt::KeLowerIrql(old) };
        result
    }
}

/// The device IRPs about `file` go to: the top of the stack the file was opened on.
/// `IoGetRelatedDeviceObject` gives it on Windows; Wine's returns NULL, and there (a
/// named device with nothing attached, never a file system) `FileObject->DeviceObject`
/// is the same device.
///
/// # Safety
/// `file` is a referenced file object.
unsafe fn device_of(file: nt::PFILE_OBJECT) -> nt::PDEVICE_OBJECT {
    // SAFETY: the caller's contract; any IRQL <= DISPATCH_LEVEL.
    let related = unsafe { nt::IoGetRelatedDeviceObject(file) };
    if related.is_null() {
        // SAFETY: as above.
        unsafe { (*file).DeviceObject }
    } else {
        related
    }
}

/// `IoBuildDeviceIoControlRequest` for `object`, with its file object in the next stack
/// location (KS finds the target object through it). `input` / `data` are pointer and
/// length of the request and data buffers (null and 0 when absent).
///
/// # Safety
/// PASSIVE_LEVEL; the buffers, `event` and `status_block` stay valid and unmoved until
/// the IRP completes (the event is signalled).
unsafe fn build(
    object: &Object,
    code: u32,
    input: (*mut u8, usize),
    data: (*mut u8, usize),
    event: *mut nt::KEVENT,
    status_block: *mut nt::IO_STATUS_BLOCK,
) -> nt::PIRP {
    #[allow(clippy::cast_possible_truncation)] // KS buffers here are at most 136 bytes.
    let (input_len, data_len) = (input.1 as u32, data.1 as u32);
    let or_null = |(ptr, len): (*mut u8, usize)| -> nt::PVOID {
        if len == 0 {
            null_mut()
        } else {
            ptr.cast()
        }
    };
    // SAFETY: the caller's contract; the device is referenced through `object.file`.
    let irp = unsafe {
        nt::IoBuildDeviceIoControlRequest(
            code,
            object.device,
            or_null(input),
            input_len,
            or_null(data),
            data_len,
            0,
            event,
            status_block,
        )
    };
    if !irp.is_null() {
        // SAFETY: a fresh IRP IoBuildDeviceIoControlRequest set up for one driver.
        let next = unsafe { nt::IoGetNextIrpStackLocation(irp) };
        // SAFETY: `next` is the stack location it filled in; the file object stays
        // referenced by `object` while the IRP is out.
        unsafe { (*next).FileObject = object.file };
    }
    irp
}

/// A slice as the (pointer, length) pair [`build`] takes.
fn raw(b: &mut [u8]) -> (*mut u8, usize) {
    (b.as_mut_ptr(), b.len())
}

/// The ksalloc filter's path: the first KSCATEGORY_DATATRANSFORM interface with the
/// KSNAME_Filter reference string whose device is served by `\Driver\ksalloc`, else
/// the named test device ksalloc creates on hosts without PnP
/// (`\Device\ksalloc\{KSNAME_Filter}`). Each candidate is opened (a filter instance is
/// created and closed again) to see which driver serves it. PASSIVE_LEVEL.
fn find_filter() -> Result<Vec<u16>, NtStatus> {
    let category = nt::guid(&KSCATEGORY_DATATRANSFORM);
    let mut list: *mut u16 = null_mut();
    // SAFETY: PASSIVE_LEVEL; active interfaces only (flags 0); on success we own the
    // returned REG_MULTI_SZ in paged pool and free it below.
    let status =
        unsafe { nt::IoGetDeviceInterfaces(&raw const category, null_mut(), 0, &raw mut list) };
    let mut found = None;
    if nt::nt_success(status) && !list.is_null() {
        // SAFETY: IoGetDeviceInterfaces returns a list of NUL-terminated strings ended
        // by an empty one.
        let len = unsafe { multi_sz_len(list) };
        // SAFETY: `len` units, up to that end, are the list's.
        let entries = unsafe { core::slice::from_raw_parts(list, len) };
        found = filter_candidates(entries)
            .find(|path| serves_ksalloc(path))
            .map(<[u16]>::to_vec);
        // SAFETY: the list IoGetDeviceInterfaces allocated; nothing borrows it now.
        unsafe { nt::ExFreePool(list.cast()) };
    }
    if found.is_none() {
        let mut legacy: Vec<u16> = "\\Device\\ksalloc\\".encode_utf16().collect();
        legacy.extend(
            KSNAME_FILTER
                .to_braced_ascii()
                .iter()
                .map(|&c| u16::from(c)),
        );
        if serves_ksalloc(&legacy) {
            found = Some(legacy);
        }
    }
    found.ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)
}

/// Length in units of a REG_MULTI_SZ, its final empty string included (bounded).
///
/// # Safety
/// `list` points at a terminated REG_MULTI_SZ.
unsafe fn multi_sz_len(list: *const u16) -> usize {
    const LIMIT: usize = 1 << 20;
    let mut previous = 1u16;
    for i in 0..LIMIT {
        // SAFETY: within the list: we stop at its terminating empty string.
        let unit = unsafe { *list.wrapping_add(i) };
        if unit == 0 && (i == 0 || previous == 0) {
            return i + 1;
        }
        previous = unit;
    }
    LIMIT
}

/// Whether opening `path` reaches a device of `\Driver\ksalloc`. PASSIVE_LEVEL.
fn serves_ksalloc(path: &[u16]) -> bool {
    let Ok(object) = KernelClient::open(None, path, nt::GENERIC_READ | nt::GENERIC_WRITE) else {
        return false;
    };
    let ours = is_ksalloc_object(&object);
    close_object(object);
    ours
}

/// Whether an open object's device belongs to `\Driver\ksalloc`.
fn is_ksalloc_object(object: &Object) -> bool {
    // SAFETY: the device is live while its file object is referenced.
    let driver = unsafe { (*object.device).DriverObject };
    // SAFETY: every device has its driver object, live while the device is.
    let name = unsafe { &(*driver).DriverName };
    let name = if name.Buffer.is_null() {
        &[][..]
    } else {
        // SAFETY: DriverName is a counted string the I/O manager set when it loaded
        // the driver.
        unsafe { core::slice::from_raw_parts(name.Buffer, usize::from(name.Length / 2)) }
    };
    is_ksalloc_driver(name)
}

/// Closes a handle, then drops our file-object reference (IRP_MJ_CLOSE follows once no
/// one else holds one).
fn close_object(object: Object) {
    #[cfg(nt_source = "mingw")]
    if crate::standin::enabled() {
        // SAFETY: the file object `open` made; its handle is closed once, here.
        unsafe { crate::standin::close_handle(object.file) };
        return;
    }
    // SAFETY: our kernel handle, closed once; PASSIVE_LEVEL.
    unsafe { nt::close_handle(object.handle) };
    // SAFETY: the reference `open` took.
    unsafe { nt::ObDereferenceObject(object.file.cast()) };
}

/// `ObReferenceObject` on a file object we opened: the object manager's, or the
/// stand-in's own count when it is on.
///
/// # Safety
/// `file` is a file object `open` returned, still referenced by the caller.
unsafe fn reference_file(file: nt::PFILE_OBJECT) {
    #[cfg(nt_source = "mingw")]
    if crate::standin::enabled() {
        // SAFETY: the caller's contract.
        unsafe { crate::standin::reference(file) };
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { nt::ObReferenceObject(file.cast()) };
}

/// `ObDereferenceObject` on a file object we opened (see [`reference_file`]).
///
/// # Safety
/// The caller gives up one reference it holds on `file`.
unsafe fn dereference_file(file: nt::PFILE_OBJECT) {
    #[cfg(nt_source = "mingw")]
    if crate::standin::enabled() {
        // SAFETY: the caller's contract.
        unsafe { crate::standin::dereference(file) };
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { nt::ObDereferenceObject(file.cast()) };
}

/// A relative timeout of `ms` milliseconds (100 ns units, negative = relative).
fn timeout(ms: u32) -> nt::LARGE_INTEGER {
    nt::LARGE_INTEGER {
        QuadPart: -i64::from(ms) * 10_000,
    }
}

/// Waits for a dispatcher object: whether it was signalled within `ms`. PASSIVE_LEVEL.
///
/// # Safety
/// `object` is a live dispatcher object (a KEVENT here).
unsafe fn wait_ms(object: *mut nt::KEVENT, ms: u32) -> bool {
    let mut limit = timeout(ms);
    // SAFETY: the caller's contract; a KernelMode, non-alertable wait.
    let status = unsafe {
        nt::KeWaitForSingleObject(
            object.cast(),
            nt::EXECUTIVE,
            nt::KERNEL_MODE,
            0,
            &raw mut limit,
        )
    };
    status == nt::STATUS_SUCCESS
}

impl ProbeClient for KernelClient {
    type Handle = Object;
    type Table = Table;
    type Pending = Pending;
    type Event = Event;

    fn open_filter(&self) -> Result<Object, NtStatus> {
        let object = Self::open(None, &self.filter, nt::GENERIC_READ | nt::GENERIC_WRITE)?;
        // Every open is checked, not only the first: the name could lead elsewhere by
        // now, and nothing but ksalloc's filter may be sent requests or trusted for the
        // function table it returns.
        if is_ksalloc_object(&object) {
            Ok(object)
        } else {
            close_object(object);
            Err(NtStatus::OBJECT_NAME_NOT_FOUND)
        }
    }

    fn create_pin(&self, filter: &Object, pin_id: u32) -> Result<Object, NtStatus> {
        let name = ks::child_create_name(&KSNAME_PIN, &ks::connect_bytes(pin_id));
        Self::open(Some(filter), &name, nt::GENERIC_READ | nt::GENERIC_WRITE)
    }

    fn create_allocator(
        &self,
        pin: &Object,
        framing: &KsAllocatorFraming,
    ) -> Result<Object, NtStatus> {
        // KsCreateAllocator asks for GENERIC_READ.
        let name = ks::child_create_name(&KSNAME_ALLOCATOR, &ks::framing_bytes(framing));
        Self::open(Some(pin), &name, nt::GENERIC_READ)
    }

    fn close(&self, handle: Object) {
        close_object(handle);
    }

    fn function_table(&self, allocator: &Object) -> Result<Table, NtStatus> {
        let bytes: [u8; 16] = Self::get(
            allocator,
            &KSPROPSETID_STREAM_ALLOCATOR,
            stream_allocator::PROPERTY_FUNCTIONTABLE,
        )?;
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            usize::from_le_bytes(w)
        };
        let (allocate, free) = (word(0), word(8));
        if allocate == 0 || free == 0 {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        // SAFETY: ksalloc answered FUNCTIONTABLE with the addresses of its AllocateFrame
        // and FreeFrame routines, whose signatures are exactly these pointer types
        // (ks.h's PFNALLOCATOR_ALLOCATEFRAME / PFNALLOCATOR_FREEFRAME); non-null checked.
        let allocate = unsafe {
            core::mem::transmute::<*const (), PfnAllocatorAllocateFrame>(
                core::ptr::with_exposed_provenance(allocate),
            )
        };
        // SAFETY: likewise.
        let free = unsafe {
            core::mem::transmute::<*const (), PfnAllocatorFreeFrame>(
                core::ptr::with_exposed_provenance(free),
            )
        };
        // SAFETY: the allocator's file object is referenced by `allocator`; the table
        // takes its own reference, dropped in `release_table`.
        unsafe { reference_file(allocator.file) };
        Ok(Table {
            allocate,
            free,
            file: allocator.file,
        })
    }

    fn table_allocate(&self, table: &Table) -> Result<usize, NtStatus> {
        Self::dispatch(|| {
            let mut frame: *mut c_void = null_mut();
            // SAFETY: ksalloc's AllocateFrame, callable at <= DISPATCH_LEVEL, with the
            // allocator's file object (referenced by the table) and a valid out pointer.
            let status = unsafe { (table.allocate)(table.file.cast(), &raw mut frame) };
            if status == NtStatus::SUCCESS {
                Ok(frame as usize)
            } else {
                Err(status)
            }
        })
    }

    fn table_free(&self, table: &Table, frame: usize) {
        Self::dispatch(|| {
            // SAFETY: ksalloc's FreeFrame, callable at <= DISPATCH_LEVEL; it checks the
            // frame itself (a foreign or double free is refused, not followed).
            unsafe { (table.free)(table.file.cast(), frame as *mut c_void) };
        });
    }

    fn release_table(&self, table: Table) {
        // SAFETY: the reference `function_table` took.
        unsafe { dereference_file(table.file) };
    }

    fn at_dispatch<R>(&self, f: impl FnOnce() -> R) -> R {
        Self::dispatch(f)
    }

    fn run_workers(
        &self,
        workers: u32,
        work: &ksprobe_scenarios::client::Work<'_>,
    ) -> Result<(), ksprobe_scenarios::Failure> {
        crate::workers::run(workers, work)
    }

    fn yield_now(&self) {
        crate::workers::yield_now();
    }

    fn status(&self, allocator: &Object) -> Result<KsStreamAllocatorStatus, NtStatus> {
        let bytes: [u8; 32] = Self::get(
            allocator,
            &KSPROPSETID_STREAM_ALLOCATOR,
            stream_allocator::PROPERTY_STATUS,
        )?;
        Ok(ks::parse_status(&bytes))
    }

    fn alloc_pending(&self, allocator: &Object) -> Result<Pending, NtStatus> {
        let io = Box::into_raw(Box::new(PendingIo {
            // SAFETY: KEVENT is plain data, initialised right below.
            event: unsafe { core::mem::zeroed() },
            iosb: iosb(),
            method: ks::identifier(
                &KSMETHODSETID_STREAM_ALLOCATOR,
                stream_allocator::METHOD_ALLOC,
                method_type::WRITE,
            ),
            frame: [0; 8],
            irp: null_mut(),
        }));
        // SAFETY: `io` is a fresh, exclusively owned pool block that does not move until
        // `release_pending` frees it; the event is initialised before any use.
        unsafe { nt::KeInitializeEvent(PendingIo::event(io), nt::NOTIFICATION_EVENT, 0) };
        // SAFETY: as above: the IRP may write the frame, the status block and the event
        // until it completes, and the block outlives that.
        let irp = unsafe {
            build(
                allocator,
                IOCTL_KS_METHOD,
                (PendingIo::method(io), 24),
                (PendingIo::frame(io).cast(), 8),
                PendingIo::event(io),
                PendingIo::iosb(io),
            )
        };
        if irp.is_null() {
            // SAFETY: no IRP refers to the block: ours to free; from Box::into_raw.
            drop(unsafe { Box::from_raw(io) });
            return Err(NtStatus::INSUFFICIENT_RESOURCES);
        }
        // SAFETY: our block; the IRP does not touch this field.
        unsafe { PendingIo::irp(io).write(irp) };
        // SAFETY: a fresh IRP for the allocator's device; ALLOC on an empty pool pends.
        unsafe { nt::IoCallDriver(allocator.device, irp) };
        Ok(Pending(io))
    }

    fn wait(&self, pending: &Pending, timeout_ms: u32) -> Option<Result<usize, NtStatus>> {
        let io = pending.0;
        // SAFETY: the block lives until `release_pending`.
        if !unsafe { wait_ms(PendingIo::event(io), timeout_ms) } {
            return None;
        }
        // SAFETY: signalled: the I/O manager wrote the status block before it set the
        // event, and nothing writes it any more.
        let status_block = unsafe { PendingIo::iosb(io).read() };
        // SAFETY: likewise for the frame ksalloc wrote.
        let frame = unsafe { PendingIo::frame(io).read() };
        // SAFETY: Status is the union's NTSTATUS view.
        let status = NtStatus(unsafe { status_block.__bindgen_anon_1.Status });
        Some(match (status, status_block.Information) {
            (NtStatus::SUCCESS, 8) => Ok(usize::from_le_bytes(frame)),
            (NtStatus::SUCCESS, _) => Err(NtStatus::INVALID_PARAMETER),
            (status, _) => Err(status),
        })
    }

    fn cancel(&self, pending: &Pending) {
        let io = pending.0;
        // The IRP is freed by the I/O manager's completion APC on this thread, which
        // also signals the event. Inside a guarded region no APC runs, so an event
        // still clear means the IRP is still allocated and IoCancelIrp may touch it.
        // SAFETY: PASSIVE_LEVEL; balanced by KeLeaveGuardedRegion below.
        unsafe { nt::KeEnterGuardedRegion() };
        // SAFETY: the block lives until `release_pending`.
        if unsafe { nt::KeReadStateEvent(PendingIo::event(io)) } == 0 {
            // SAFETY: set by alloc_pending before the IRP was sent.
            let irp = unsafe { PendingIo::irp(io).read() };
            // SAFETY: the IRP is not freed yet (above); <= DISPATCH_LEVEL.
            unsafe { nt::IoCancelIrp(irp) };
        }
        // SAFETY: the matching leave.
        unsafe { nt::KeLeaveGuardedRegion() };
    }

    fn release_pending(&self, pending: Pending) {
        let io = pending.0;
        // Never free what an IRP still in flight may write: wait; cancel and wait; if
        // it still has not completed, leave the block allocated (a leak, not a
        // corruption).
        // SAFETY: the block lives until freed below.
        let done = unsafe { wait_ms(PendingIo::event(io), 5000) } || {
            self.cancel(&pending);
            // SAFETY: as above.
            unsafe { wait_ms(PendingIo::event(io), 5000) }
        };
        if done {
            // SAFETY: completed: neither the IRP (freed by the I/O manager) nor ksalloc
            // refers to the block any more; it came from Box::into_raw.
            drop(unsafe { Box::from_raw(io) });
        }
    }

    fn free_method(&self, allocator: &Object, frame: usize) -> Result<(), NtStatus> {
        let mut method = ks::identifier(
            &KSMETHODSETID_STREAM_ALLOCATOR,
            stream_allocator::METHOD_FREE,
            method_type::READ,
        );
        let mut data = frame.to_le_bytes();
        match Self::ioctl(allocator, IOCTL_KS_METHOD, &mut method, &mut data) {
            (NtStatus::SUCCESS, _) => Ok(()),
            (status, _) => Err(status),
        }
    }

    fn create_event(&self) -> Result<Event, NtStatus> {
        // SAFETY: OBJECT_ATTRIBUTES is plain data; an unnamed kernel-handle event.
        let mut attributes: nt::OBJECT_ATTRIBUTES = unsafe { core::mem::zeroed() };
        attributes.Length = core::mem::size_of::<nt::OBJECT_ATTRIBUTES>() as u32;
        attributes.Attributes = nt::OBJ_KERNEL_HANDLE;
        let mut handle: nt::HANDLE = null_mut();
        // SAFETY: PASSIVE_LEVEL; pointers to locals.
        let status = unsafe {
            nt::ZwCreateEvent(
                &raw mut handle,
                nt::EVENT_ALL_ACCESS,
                &raw mut attributes,
                nt::NOTIFICATION_EVENT,
                0,
            )
        };
        if !nt::nt_success(status) {
            return Err(NtStatus(status));
        }
        let mut object: nt::PVOID = null_mut();
        // SAFETY: our kernel handle to an event object; KernelMode, no type check needed.
        let status = unsafe {
            nt::ObReferenceObjectByHandle(
                handle,
                0,
                null_mut(),
                nt::KERNEL_MODE,
                &raw mut object,
                null_mut(),
            )
        };
        if !nt::nt_success(status) {
            // SAFETY: our handle, closed once.
            unsafe { nt::close_handle(handle) };
            return Err(NtStatus(status));
        }
        // KSEVENTDATA { NotificationType = KSEVENTF_EVENT_HANDLE, EventHandle.Event }.
        // A kernel requestor's handle is looked up in the kernel handle table.
        let data = ks::event_handle_data(handle as usize);
        Ok(Event {
            handle,
            object: object.cast(),
            data,
        })
    }

    fn enable_free_frame(&self, allocator: &Object, event: &Event) -> Result<(), NtStatus> {
        let mut request = ks::identifier(
            &KSEVENTSETID_STREAM_ALLOCATOR,
            stream_allocator::EVENT_FREEFRAME,
            event_type::ENABLE,
        );
        let mut data = event.data;
        match Self::ioctl(allocator, IOCTL_KS_ENABLE_EVENT, &mut request, &mut data) {
            (NtStatus::SUCCESS, _) => Ok(()),
            (status, _) => Err(status),
        }
    }

    fn disable_free_frame(&self, allocator: &Object, event: &Event) -> Result<(), NtStatus> {
        let mut data = event.data;
        match Self::ioctl(allocator, IOCTL_KS_DISABLE_EVENT, &mut data, &mut []) {
            (NtStatus::SUCCESS, _) => Ok(()),
            (status, _) => Err(status),
        }
    }

    fn clear_event(&self, event: &Event) {
        // SAFETY: the referenced event object.
        unsafe { nt::KeClearEvent(event.object) };
    }

    fn wait_event(&self, event: &Event, timeout_ms: u32) -> bool {
        // SAFETY: the referenced event object.
        unsafe { wait_ms(event.object, timeout_ms) }
    }

    fn destroy_event(&self, event: Event) {
        // SAFETY: the reference create_event took.
        unsafe { nt::ObDereferenceObject(event.object.cast()) };
        // SAFETY: our kernel handle, closed once.
        unsafe { nt::close_handle(event.handle) };
    }

    fn touch_frame(&self, frame: usize, len: usize, pattern: u8) -> bool {
        // SAFETY: see `frame_bytes`.
        unsafe { frame_bytes(frame, len) }.is_some_and(|bytes| frame::fill(bytes, pattern))
    }

    fn verify_frame(&self, frame: usize, len: usize, pattern: u8) -> bool {
        // SAFETY: see `frame_bytes`.
        unsafe { frame_bytes(frame, len) }.is_some_and(|bytes| frame::verify(bytes, pattern))
    }

    fn raw_ioctl(
        &self,
        object: &Object,
        case: &IoctlCase,
        spare: &Event,
    ) -> Option<(NtStatus, usize)> {
        let faulting = |b: &Buffer| matches!(b, Buffer::Bad { .. });
        if !self.send_faulting && (faulting(&case.input) || faulting(&case.data)) {
            return None;
        }
        Some(crate::raw::send(
            object.file,
            object.device,
            case,
            &spare.data,
        ))
    }

    fn now_ns(&self) -> u64 {
        // SAFETY: any IRQL; no frequency wanted.
        let ticks = unsafe { nt::KeQueryPerformanceCounter(null_mut()) };
        // SAFETY: QuadPart is the union's 64-bit view.
        let ticks = u128::try_from(unsafe { ticks.QuadPart }).unwrap_or(0);
        u64::try_from(ticks * 1_000_000_000 / u128::from(self.frequency)).unwrap_or(u64::MAX)
    }
}

/// The bytes of a frame ksalloc handed out, if every page of it is resident.
///
/// # Safety
/// `frame` was returned by the allocator under test as a frame of `len` bytes and is
/// held by the scenario (not freed, not shared): the allocator promises that much
/// nonpaged memory there. The residency check turns a broken promise into a failed
/// check instead of a page fault at DISPATCH_LEVEL (it cannot catch memory that is
/// mapped but belongs to someone else).
unsafe fn frame_bytes<'a>(frame: usize, len: usize) -> Option<&'a mut [u8]> {
    if frame == 0 || len == 0 || frame.checked_add(len).is_none() {
        return None;
    }
    let first = frame & !(nt::PAGE_SIZE - 1);
    let mut page = first;
    while page < frame + len {
        // SAFETY: MmIsAddressValid only probes the page tables; <= DISPATCH_LEVEL.
        if unsafe { nt::MmIsAddressValid(page as nt::PVOID) } == 0 {
            return None;
        }
        page += nt::PAGE_SIZE;
    }
    // SAFETY: the caller's contract, and every page is resident.
    Some(unsafe { core::slice::from_raw_parts_mut(frame as *mut u8, len) })
}
