//! The model driver: the glue between model IRPs and the core's KS dispatcher.
//!
//! It does what `src/` does on Windows: file objects, buffer capture, completion,
//! cancel routines, and the function table's `extern "C"` routines.

use std::ffi::c_void;
use std::sync::{Arc, Weak};

use ks_abi::ks::{FileObject as AbiFileObject, PfnAllocatorAllocateFrame, PfnAllocatorFreeFrame};
use ks_abi::NtStatus;
use ksalloc_core::ks::dispatch::{device_control, Ioctl, Reply};
use ksalloc_core::ks::KsObject;
use ksalloc_core::{Irql, RequestHandle, Requestor};

use crate::irp::{Irp, RequestorMode};
use crate::irql::{assert_irql_at_most, raise_irql};
use crate::kernel::ModelKernel;

/// A file object: the KS object behind a handle, and its related (parent) file object.
pub struct FileObject {
    object: KsObject<ModelKernel>,
    parent: Option<Handle>,
    kernel: ModelKernel,
}

/// A referenced file object (a handle plus `ObReferenceObjectByHandle`).
pub type Handle = Arc<FileObject>;

impl FileObject {
    /// The KS object.
    #[must_use]
    pub const fn object(&self) -> &KsObject<ModelKernel> {
        &self.object
    }

    /// The related file object this one was created against.
    #[must_use]
    pub const fn parent(&self) -> Option<&Handle> {
        self.parent.as_ref()
    }
}

impl Drop for FileObject {
    fn drop(&mut self) {
        self.kernel.file_closed();
    }
}

/// The model of the ksalloc driver's dispatch routines.
#[derive(Clone, Debug)]
pub struct ModelDriver {
    kernel: ModelKernel,
}

const fn requestor(mode: RequestorMode) -> Requestor {
    match mode {
        RequestorMode::Kernel => Requestor::Kernel,
        RequestorMode::User => Requestor::User,
    }
}

impl ModelDriver {
    /// A driver on `kernel`.
    #[must_use]
    pub const fn new(kernel: ModelKernel) -> Self {
        Self { kernel }
    }

    /// The kernel it runs on.
    #[must_use]
    pub const fn kernel(&self) -> &ModelKernel {
        &self.kernel
    }

    /// IRP_MJ_CREATE with `name` (UTF-16LE bytes) relative to `parent`.
    ///
    /// # Errors
    /// The core's create status.
    pub fn create(&self, parent: Option<&Handle>, name: &[u8]) -> Result<Handle, NtStatus> {
        assert_irql_at_most(Irql::Passive, "IRP_MJ_CREATE");
        crate::pool::in_driver(|| self.create_in_driver(parent, name))
    }

    fn create_in_driver(&self, parent: Option<&Handle>, name: &[u8]) -> Result<Handle, NtStatus> {
        let parent_object = parent.map(|p| &p.object);
        let object = KsObject::create(&self.kernel, parent_object, name)?;
        // The Windows glue puts the object in a pool-allocated file-object context;
        // when that allocation fails it gives back what create took (a pin instance),
        // then fails the create. Model the same fault point.
        if crate::pool::fault_point() {
            object.close(parent_object);
            return Err(NtStatus::INSUFFICIENT_RESOURCES);
        }
        self.kernel.file_opened();
        // The Arc stands in for the pool context the fault point above decided on.
        Ok(crate::pool::host(|| {
            Arc::new(FileObject {
                object,
                parent: parent.cloned(),
                kernel: self.kernel.clone(),
            })
        }))
    }

    /// IRP_MJ_DEVICE_CONTROL: builds the IRP, captures its buffers, dispatches, and
    /// completes it unless it pended. Returns the IRP to inspect or wait on.
    #[must_use]
    pub fn device_control(
        &self,
        file: &Handle,
        code: u32,
        input: &[u8],
        data: &[u8],
        mode: RequestorMode,
    ) -> Irp {
        assert_irql_at_most(Irql::Passive, "IRP_MJ_DEVICE_CONTROL");
        let irp = self.kernel.new_irp(mode, input.to_vec(), data.len());
        irp.write_output(data);
        let weak: Weak<FileObject> = Arc::downgrade(file);
        irp.set_cancel_routine(Box::new(move |irp| {
            // The cancel routine finds the allocator through the IRP's file object.
            if let Some(allocator) = weak
                .upgrade()
                .as_ref()
                .and_then(|f| f.object.as_allocator())
            {
                allocator.cancel(irp.key());
            }
        }));
        // Capture: the core works on private copies, as the SEH capture gives it.
        let mut output = irp.output();
        let reply = device_control(
            &self.kernel,
            &file.object,
            Ioctl {
                code,
                input: irp.input(),
                output: &mut output,
                requestor: requestor(mode),
                request: &irp,
            },
        );
        if let Reply::Complete {
            status,
            information,
        } = reply
        {
            if status.is_success() {
                irp.write_output(&output[..information.min(output.len())]);
            }
            irp.complete(status, information);
        }
        irp
    }

    /// IRP_MJ_CLEANUP then IRP_MJ_CLOSE for `file`: the handle goes. The file object
    /// itself goes when the last reference does.
    #[allow(clippy::needless_pass_by_value)] // Closing consumes the handle.
    pub fn close(&self, file: Handle) {
        assert_irql_at_most(Irql::Passive, "IRP_MJ_CLOSE");
        file.object.cleanup();
        file.object.close(file.parent.as_ref().map(|p| &p.object));
    }
}

/// The function table's routines, as `extern "C"` functions taking the allocator's
/// file object, exactly as a kernel client calls them.
pub(crate) fn function_table() -> [usize; 2] {
    let allocate: PfnAllocatorAllocateFrame = allocate_frame;
    let free: PfnAllocatorFreeFrame = free_frame;
    // Exposed, so a client that turns the integers back into pointers gets provenance.
    [
        (allocate as *const ()).expose_provenance(),
        (free as *const ()).expose_provenance(),
    ]
}

/// # Safety
/// `file_object` must be a live model [`FileObject`] pointer (what the model client
/// passes, holding a reference), `frame` a writable pointer.
unsafe extern "C" fn allocate_frame(
    file_object: *mut AbiFileObject,
    frame: *mut *mut c_void,
) -> NtStatus {
    // SAFETY: per this function's contract the pointer is a live FileObject the caller
    // keeps referenced for the duration of the call.
    let file = unsafe { &*file_object.cast::<FileObject>() };
    let Some(allocator) = file.object.as_allocator() else {
        return NtStatus::INVALID_DEVICE_REQUEST;
    };
    match allocator.table_allocate() {
        Ok(address) => {
            // SAFETY: `frame` is writable per the contract.
            unsafe { frame.write(address as *mut c_void) };
            NtStatus::SUCCESS
        }
        Err(status) => status,
    }
}

/// # Safety
/// As [`allocate_frame`].
unsafe extern "C" fn free_frame(file_object: *mut AbiFileObject, frame: *mut c_void) {
    // SAFETY: as in `allocate_frame`.
    let file = unsafe { &*file_object.cast::<FileObject>() };
    if let Some(allocator) = file.object.as_allocator() {
        // VOID routine: a refused free is counted by the engine, nothing to return.
        let _ = allocator.free(frame as usize);
    }
}

/// Runs `f` at DISPATCH_LEVEL (what a kernel client does around table calls).
pub fn at_dispatch<R>(f: impl FnOnce() -> R) -> R {
    let _irql = raise_irql(Irql::Dispatch);
    f()
}
