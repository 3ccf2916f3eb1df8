//! A KS client on the model.
//!
//! Shaped like ksuser's `KsCreatePin` / `KsCreateAllocator` and a kernel requestor's
//! property, method and function-table calls. Tests, the simulator and ksprobe's
//! scenarios drive the driver through it.

use std::ffi::c_void;

use ks_abi::guid::{
    KSEVENTSETID_STREAM_ALLOCATOR, KSINTERFACESETID_STANDARD, KSMEDIUMSETID_STANDARD,
    KSMETHODSETID_STREAM_ALLOCATOR, KSNAME_ALLOCATOR, KSNAME_FILTER, KSNAME_PIN, KSPROPSETID_PIN,
    KSPROPSETID_STREAM_ALLOCATOR,
};
use ks_abi::ioctl::{
    IOCTL_KS_DISABLE_EVENT, IOCTL_KS_ENABLE_EVENT, IOCTL_KS_METHOD, IOCTL_KS_PROPERTY,
};
use ks_abi::ks::{
    event_type, eventf, method_type, pin, property_type, stream_allocator, KsAllocatorFraming,
    KsDataFormat, KsIdentifier, KsPinConnect, KsPriority, KsStreamAllocatorStatus,
    PfnAllocatorAllocateFrame, PfnAllocatorFreeFrame, KSPRIORITY_NORMAL,
};
use ks_abi::{Guid, NtStatus};
use ksalloc_core::ks::filter::DATA_RANGE;
use ksalloc_core::wire::{self, Writer};

use crate::driver::{at_dispatch, FileRef, Handle, ModelDriver};
use crate::irp::{Irp, RequestorMode};

/// UTF-16LE bytes of `\{GUID}` followed, if `params` is `Some`, by `\` and the bytes.
#[must_use]
pub fn create_name(class: &Guid, params: Option<&[u8]>) -> Vec<u8> {
    let mut name: Vec<u8> = [b'\\', 0].to_vec();
    name.extend(class.to_braced_ascii().iter().flat_map(|&c| [c, 0]));
    if let Some(params) = params {
        name.extend_from_slice(&[b'\\', 0]);
        name.extend_from_slice(params);
    }
    name
}

/// Bytes of a `KSIDENTIFIER` followed by `extra`.
#[must_use]
pub fn request(set: &Guid, id: u32, flags: u32, extra: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0; wire::IDENTIFIER_SIZE];
    Writer::new(&mut bytes).identifier(&KsIdentifier {
        set: *set,
        id,
        flags,
    });
    bytes.extend_from_slice(extra);
    bytes
}

/// Bytes of a `KSALLOCATOR_FRAMING`.
#[must_use]
pub fn framing_bytes(framing: &KsAllocatorFraming) -> Vec<u8> {
    let mut bytes = vec![0; wire::FRAMING_SIZE];
    Writer::new(&mut bytes).framing(framing);
    bytes
}

/// A standard streaming connection to pin factory `pin_id`.
#[must_use]
pub const fn standard_connect(pin_id: u32) -> KsPinConnect {
    KsPinConnect {
        interface: KsIdentifier {
            set: KSINTERFACESETID_STANDARD,
            id: 0,
            flags: 0,
        },
        medium: KsIdentifier {
            set: KSMEDIUMSETID_STANDARD,
            id: 0,
            flags: 0,
        },
        pin_id,
        pin_to_handle: 0,
        priority: KsPriority {
            priority_class: KSPRIORITY_NORMAL,
            priority_sub_class: 1,
        },
    }
}

/// Bytes of a `KSPIN_CONNECT` followed by a `KSDATAFORMAT`.
#[must_use]
pub fn connect_bytes(connect: &KsPinConnect, format: &KsDataFormat) -> Vec<u8> {
    let mut bytes = vec![0; wire::PIN_CONNECT_SIZE + wire::DATA_FORMAT_SIZE];
    let mut w = Writer::new(&mut bytes);
    w.identifier(&connect.interface)
        .identifier(&connect.medium)
        .u32(connect.pin_id)
        .u32(0);
    w.usize(connect.pin_to_handle)
        .u32(connect.priority.priority_class)
        .u32(connect.priority.priority_sub_class)
        .data_format(format);
    bytes
}

/// The function table a kernel client got from FUNCTIONTABLE.
///
/// It holds the allocator file object it must pass, referenced
/// (`ObReferenceObjectByHandle`): the table works past the handle's close
/// (IRP_MJ_CLEANUP) until this reference goes (IRP_MJ_CLOSE).
pub struct FunctionTable {
    allocate: PfnAllocatorAllocateFrame,
    free: PfnAllocatorFreeFrame,
    file: FileRef,
}

impl FunctionTable {
    /// `AllocateFrame(FileObject, &Frame)` at the caller's IRQL.
    ///
    /// # Errors
    /// The routine's status.
    pub fn allocate(&self) -> Result<usize, NtStatus> {
        let mut frame: *mut c_void = std::ptr::null_mut();
        // SAFETY: `allocate` is the driver's routine from FUNCTIONTABLE; the file object
        // is kept alive by `self.file`, and `frame` is a valid out pointer.
        let status = unsafe { (self.allocate)(self.file.as_ptr(), &raw mut frame) };
        if status == NtStatus::SUCCESS {
            Ok(frame as usize)
        } else {
            Err(status)
        }
    }

    /// `FreeFrame(FileObject, Frame)`.
    pub fn free(&self, frame: usize) {
        // SAFETY: as in `allocate`; the routine checks the frame itself.
        unsafe {
            (self.free)(self.file.as_ptr(), frame as *mut c_void);
        }
    }

    /// `AllocateFrame` at DISPATCH_LEVEL, as streaming clients call it.
    ///
    /// # Errors
    /// The routine's status.
    pub fn allocate_at_dispatch(&self) -> Result<usize, NtStatus> {
        at_dispatch(|| self.allocate())
    }

    /// `FreeFrame` at DISPATCH_LEVEL.
    pub fn free_at_dispatch(&self, frame: usize) {
        at_dispatch(|| self.free(frame));
    }

    /// The allocator file object the table is used with.
    #[must_use]
    pub const fn file(&self) -> &FileRef {
        &self.file
    }
}

/// A KS client: a requestor mode and the driver it talks to.
#[derive(Clone, Debug)]
pub struct KsClient {
    driver: ModelDriver,
    mode: RequestorMode,
}

fn status_of(irp: &Irp) -> NtStatus {
    irp.completion().map_or(NtStatus::PENDING, |c| c.status)
}

impl KsClient {
    /// A kernel-mode client (another driver).
    #[must_use]
    pub const fn kernel(driver: ModelDriver) -> Self {
        Self {
            driver,
            mode: RequestorMode::Kernel,
        }
    }

    /// A user-mode client (an application through ksuser/ksproxy).
    #[must_use]
    pub const fn user(driver: ModelDriver) -> Self {
        Self {
            driver,
            mode: RequestorMode::User,
        }
    }

    /// The driver.
    #[must_use]
    pub const fn driver(&self) -> &ModelDriver {
        &self.driver
    }

    /// Opens the filter through its device interface (`\{KSNAME_Filter}`).
    ///
    /// # Errors
    /// The create status.
    pub fn open_filter(&self) -> Result<Handle, NtStatus> {
        self.driver
            .create_as(None, &create_name(&KSNAME_FILTER, None), self.mode)
    }

    /// `KsCreatePin` with a standard streaming connection and the filter's data range.
    ///
    /// # Errors
    /// The create status.
    pub fn create_pin(&self, filter: &FileRef, pin_id: u32) -> Result<Handle, NtStatus> {
        self.create_pin_with(filter, &standard_connect(pin_id), &DATA_RANGE)
    }

    /// `KsCreatePin` with any connection and format.
    ///
    /// # Errors
    /// The create status.
    pub fn create_pin_with(
        &self,
        filter: &FileRef,
        connect: &KsPinConnect,
        format: &KsDataFormat,
    ) -> Result<Handle, NtStatus> {
        self.driver.create_as(
            Some(filter),
            &create_name(&KSNAME_PIN, Some(&connect_bytes(connect, format))),
            self.mode,
        )
    }

    /// `KsCreateAllocator` on a pin.
    ///
    /// # Errors
    /// The create status.
    pub fn create_allocator(
        &self,
        pin: &FileRef,
        framing: &KsAllocatorFraming,
    ) -> Result<Handle, NtStatus> {
        self.driver.create_as(
            Some(pin),
            &create_name(&KSNAME_ALLOCATOR, Some(&framing_bytes(framing))),
            self.mode,
        )
    }

    /// Sends an IOCTL; returns the IRP (completed unless it pended).
    #[must_use]
    pub fn ioctl(&self, file: &FileRef, code: u32, input: &[u8], data: &[u8]) -> Irp {
        self.driver
            .device_control(file, code, input, data, self.mode)
    }

    /// A property GET into `len` bytes: the data returned, or the status.
    ///
    /// # Errors
    /// The completion status when it is not success.
    ///
    /// # Panics
    /// If the property pended (properties never do).
    pub fn get(
        &self,
        file: &FileRef,
        set: &Guid,
        id: u32,
        extra: &[u8],
        len: usize,
    ) -> Result<Vec<u8>, NtStatus> {
        let irp = self.ioctl(
            file,
            IOCTL_KS_PROPERTY,
            &request(set, id, property_type::GET, extra),
            &vec![0; len],
        );
        let done = irp.completion().expect("properties complete at once");
        if done.status == NtStatus::SUCCESS {
            Ok(irp.output()[..done.information].to_vec())
        } else {
            Err(done.status)
        }
    }

    /// A property SET of `value`: the completion status.
    #[must_use]
    pub fn set(&self, file: &FileRef, set: &Guid, id: u32, extra: &[u8], value: &[u8]) -> NtStatus {
        let irp = self.ioctl(
            file,
            IOCTL_KS_PROPERTY,
            &request(set, id, property_type::SET, extra),
            value,
        );
        status_of(&irp)
    }

    /// KSPROPERTY_PIN_CINSTANCES of pin factory `id` on `filter`: the instances open now.
    ///
    /// # Errors
    /// The completion status when it is not success.
    pub fn pin_instances(&self, filter: &FileRef, id: u32) -> Result<u32, NtStatus> {
        let bytes = self.get(
            filter,
            &KSPROPSETID_PIN,
            pin::CINSTANCES,
            &[id.to_le_bytes(), [0; 4]].concat(),
            8,
        )?;
        wire::u32_at(&bytes, 4).ok_or(NtStatus::INVALID_PARAMETER)
    }

    /// KSPROPERTY_STREAMALLOCATOR_STATUS.
    ///
    /// # Errors
    /// The completion status when it is not success.
    pub fn allocator_status(
        &self,
        allocator: &FileRef,
    ) -> Result<KsStreamAllocatorStatus, NtStatus> {
        let bytes = self.get(
            allocator,
            &KSPROPSETID_STREAM_ALLOCATOR,
            stream_allocator::PROPERTY_STATUS,
            &[],
            32,
        )?;
        let framing = wire::framing(&bytes).ok_or(NtStatus::INVALID_PARAMETER)?;
        let allocated_frames = wire::u32_at(&bytes, 24).ok_or(NtStatus::INVALID_PARAMETER)?;
        Ok(KsStreamAllocatorStatus {
            framing,
            allocated_frames,
            reserved: 0,
        })
    }

    /// KSPROPERTY_STREAMALLOCATOR_FUNCTIONTABLE, as a kernel requestor must ask.
    ///
    /// # Errors
    /// The completion status when it is not success.
    pub fn function_table(&self, allocator: &FileRef) -> Result<FunctionTable, NtStatus> {
        let bytes = self.get(
            allocator,
            &KSPROPSETID_STREAM_ALLOCATOR,
            stream_allocator::PROPERTY_FUNCTIONTABLE,
            &[],
            16,
        )?;
        let (Some(allocate), Some(free)) = (wire::usize_at(&bytes, 0), wire::usize_at(&bytes, 8))
        else {
            return Err(NtStatus::INVALID_PARAMETER);
        };
        // The addresses come back as integers: recover the provenance the driver exposed
        // when it cast its routines to integers (Miri found the bare transmute
        // undefined).
        let allocate = std::ptr::with_exposed_provenance::<()>(allocate);
        let free = std::ptr::with_exposed_provenance::<()>(free);
        // SAFETY: the driver answered FUNCTIONTABLE with the address of its
        // AllocateFrame routine, whose signature is exactly this pointer type.
        let allocate =
            unsafe { std::mem::transmute::<*const (), PfnAllocatorAllocateFrame>(allocate) };
        // SAFETY: likewise for FreeFrame.
        let free = unsafe { std::mem::transmute::<*const (), PfnAllocatorFreeFrame>(free) };
        Ok(FunctionTable {
            allocate,
            free,
            file: self.driver.reference(allocator),
        })
    }

    /// KSMETHOD_STREAMALLOCATOR_ALLOC: the IRP, completed or pending.
    #[must_use]
    pub fn alloc(&self, allocator: &FileRef) -> Irp {
        let method = request(
            &KSMETHODSETID_STREAM_ALLOCATOR,
            stream_allocator::METHOD_ALLOC,
            method_type::WRITE,
            &[],
        );
        self.ioctl(allocator, IOCTL_KS_METHOD, &method, &[0; 8])
    }

    /// KSMETHOD_STREAMALLOCATOR_FREE.
    #[must_use]
    pub fn free(&self, allocator: &FileRef, frame: usize) -> NtStatus {
        let method = request(
            &KSMETHODSETID_STREAM_ALLOCATOR,
            stream_allocator::METHOD_FREE,
            method_type::READ,
            &[],
        );
        status_of(&self.ioctl(allocator, IOCTL_KS_METHOD, &method, &frame.to_le_bytes()))
    }

    fn event_data(handle: usize) -> Vec<u8> {
        let mut data = vec![0; wire::EVENT_DATA_SIZE];
        Writer::new(&mut data)
            .u32(eventf::EVENT_HANDLE)
            .u32(0)
            .usize(handle);
        data
    }

    /// Enables KSEVENT_STREAMALLOCATOR_FREEFRAME on an event handle.
    #[must_use]
    pub fn enable_free_frame(&self, allocator: &FileRef, event_handle: usize) -> NtStatus {
        let event = request(
            &KSEVENTSETID_STREAM_ALLOCATOR,
            stream_allocator::EVENT_FREEFRAME,
            event_type::ENABLE,
            &[],
        );
        status_of(&self.ioctl(
            allocator,
            IOCTL_KS_ENABLE_EVENT,
            &event,
            &Self::event_data(event_handle),
        ))
    }

    /// Disables it again.
    #[must_use]
    pub fn disable_free_frame(&self, allocator: &FileRef, event_handle: usize) -> NtStatus {
        status_of(&self.ioctl(
            allocator,
            IOCTL_KS_DISABLE_EVENT,
            &Self::event_data(event_handle),
            &[],
        ))
    }

    /// Closes a handle (`CloseHandle`).
    pub fn close(&self, file: Handle) {
        self.driver.close(file);
    }

    /// The requestor mode it sends with.
    #[must_use]
    pub const fn mode(&self) -> RequestorMode {
        self.mode
    }
}
