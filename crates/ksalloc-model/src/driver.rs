//! The model driver: the glue between model IRPs and the core's KS dispatcher, over a
//! model of the I/O manager's file objects.
//!
//! It does what `src/` does on Windows: file objects, buffer capture, completion,
//! cancel routines, and the function table's `extern "C"` routines. The file-object
//! model is as strict as Windows' documented rules, never kinder:
//!
//! - A file object has handles and references (a handle is also a reference).
//!   IRP_MJ_CLEANUP comes when the last handle goes, IRP_MJ_CLOSE when the last
//!   reference goes ("IRP_MJ_CLEANUP" and "IRP_MJ_CLOSE" DDI pages): a kernel client
//!   that took a reference ([`ModelDriver::reference`], `ObReferenceObjectByHandle`)
//!   keeps the object past CLEANUP.
//! - The related (parent) file object is handed to create only: "RelatedFileObject ...
//!   is valid only during the processing of IRP_MJ_CREATE requests" ("FILE_OBJECT
//!   structure" page). The I/O manager keeps no reference on it for the child's life,
//!   so after create the driver reaches a parent only through a reference it took.
//! - The context (`FsContext`) is freed at IRP_MJ_CLOSE and poisoned: any later use
//!   panics, like Driver Verifier's special pool.
//! - An IRP references its file object until it completes, so CLOSE never comes while
//!   one is outstanding: the model asserts the driver completed them all (cancelled at
//!   CLEANUP).

use std::ffi::c_void;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use ks_abi::ks::{FileObject as AbiFileObject, PfnAllocatorAllocateFrame, PfnAllocatorFreeFrame};
use ks_abi::NtStatus;
use ksalloc_core::ks::dispatch::{device_control, Ioctl, Reply};
use ksalloc_core::ks::KsObject;
use ksalloc_core::{Irql, RequestHandle, Requestor};

use crate::irp::{Irp, RequestorMode};
use crate::irql::{assert_irql_at_most, raise_irql};
use crate::kernel::ModelKernel;

/// The driver's object behind a file object (`FsContext`).
type Context = Arc<KsObject<ModelKernel>>;

/// A file object.
pub struct FileObject {
    /// `FsContext`: `Some` from create to IRP_MJ_CLOSE, then `None` (poisoned).
    context: Mutex<Option<Context>>,
    handles: AtomicUsize,
    references: AtomicUsize,
    /// IRPs sent on this file object and not completed (each holds a reference).
    irps: Arc<AtomicUsize>,
    driver: ModelDriver,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FileObject {
    /// The driver's object (`FsContext`).
    ///
    /// # Panics
    /// After IRP_MJ_CLOSE freed it: a use after free (Driver Verifier would bugcheck).
    #[must_use]
    #[track_caller]
    pub fn object(&self) -> Context {
        lock(&self.context).clone().unwrap_or_else(|| {
            panic!("DRIVER_VERIFIER: use of a file object's FsContext after IRP_MJ_CLOSE freed it")
        })
    }

    /// The allocator engine, if the object is an allocator. Held only briefly: IRP_MJ_CLOSE
    /// panics while one is held (the driver would free it under the holder).
    ///
    /// # Panics
    /// As [`Self::object`].
    #[must_use]
    #[track_caller]
    pub fn allocator(&self) -> Option<AllocatorRef> {
        let object = self.object();
        object
            .as_allocator()
            .is_some()
            .then_some(AllocatorRef(object))
    }

    /// Whether IRP_MJ_CLOSE has run (the context is gone).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        lock(&self.context).is_none()
    }

    /// Handles open on it.
    #[must_use]
    pub fn handles(&self) -> usize {
        self.handles.load(Ordering::Acquire)
    }
}

/// The allocator engine behind a file object ([`FileObject::allocator`]).
pub struct AllocatorRef(Context);

impl Deref for AllocatorRef {
    type Target = ksalloc_core::Allocator<ModelKernel>;
    fn deref(&self) -> &Self::Target {
        self.0
            .as_allocator()
            .expect("checked to be an allocator at construction")
    }
}

/// A referenced file object (`ObReferenceObjectByHandle`): keeps it from IRP_MJ_CLOSE.
/// Dropping it is `ObDereferenceObject`; the last one sends IRP_MJ_CLOSE (PASSIVE_LEVEL).
pub struct FileRef(Arc<FileObject>);

impl Deref for FileRef {
    type Target = FileObject;
    fn deref(&self) -> &FileObject {
        &self.0
    }
}

impl FileRef {
    /// The file object's address: what the driver's routines receive as `PFILE_OBJECT`.
    #[must_use]
    pub fn as_ptr(&self) -> *mut AbiFileObject {
        Arc::as_ptr(&self.0).cast_mut().cast()
    }

    fn take(file: &Arc<FileObject>) -> Self {
        file.references.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(file))
    }
}

impl Clone for FileRef {
    fn clone(&self) -> Self {
        Self::take(&self.0)
    }
}

impl Drop for FileRef {
    fn drop(&mut self) {
        if self.0.references.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.driver.dispatch_close(&self.0);
        }
    }
}

/// A handle to a file object (what `CreateFile` or `ZwCreateFile` gives a client). It
/// is also a reference. Closing it ([`ModelDriver::close`]) sends IRP_MJ_CLEANUP if it
/// was the last handle.
pub struct Handle(FileRef);

impl Deref for Handle {
    type Target = FileRef;
    fn deref(&self) -> &FileRef {
        &self.0
    }
}

impl Drop for Handle {
    /// `CloseHandle` (also what process exit does with a handle left open).
    fn drop(&mut self) {
        if self.0.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            assert_irql_at_most(Irql::Passive, "IRP_MJ_CLEANUP");
            self.0.object().cleanup();
        }
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

    /// IRP_MJ_CREATE with `name` (UTF-16LE bytes) relative to `parent`, from a
    /// kernel-mode requestor.
    ///
    /// # Errors
    /// The core's create status.
    pub fn create(&self, parent: Option<&FileRef>, name: &[u8]) -> Result<Handle, NtStatus> {
        self.create_as(parent, name, RequestorMode::Kernel)
    }

    /// IRP_MJ_CREATE from a requestor of `mode` (`Irp->RequestorMode`).
    ///
    /// # Errors
    /// The core's create status.
    pub fn create_as(
        &self,
        parent: Option<&FileRef>,
        name: &[u8],
        mode: RequestorMode,
    ) -> Result<Handle, NtStatus> {
        assert_irql_at_most(Irql::Passive, "IRP_MJ_CREATE");
        // RelatedFileObject: valid for this call only. The glue sees the parent's
        // context here and nowhere else; the core takes what the child needs of it.
        let parent_context = parent.map(|p| p.object());
        let object = crate::pool::in_driver(|| {
            let object = KsObject::create(
                &self.kernel,
                parent_context.as_deref(),
                name,
                requestor(mode),
            )?;
            // The Windows glue puts the object in a pool-allocated file-object context;
            // when that allocation fails it drops the object, which gives back what
            // create took (a pin instance, an allocator slot), then fails the create.
            // Model the same fault point.
            if crate::pool::fault_point() {
                object.close();
                drop(object);
                return Err(NtStatus::INSUFFICIENT_RESOURCES);
            }
            Ok(object)
        })?;
        drop(parent_context);
        self.kernel.file_opened();
        let file = crate::pool::host(|| {
            Arc::new(FileObject {
                context: Mutex::new(Some(Arc::new(object))),
                handles: AtomicUsize::new(1),
                references: AtomicUsize::new(1),
                irps: Arc::new(AtomicUsize::new(0)),
                driver: self.clone(),
            })
        });
        Ok(Handle(FileRef(file)))
    }

    /// `ObReferenceObjectByHandle`: a reference that outlives the handle.
    ///
    /// # Panics
    /// After the file object's IRP_MJ_CLOSE (no handle or reference could name it).
    #[must_use]
    pub fn reference(&self, file: &FileRef) -> FileRef {
        assert!(
            !file.is_closed(),
            "referencing a file object after IRP_MJ_CLOSE"
        );
        FileRef::take(&file.0)
    }

    /// IRP_MJ_DEVICE_CONTROL: builds the IRP, captures its buffers, dispatches, and
    /// completes it unless it pended. Returns the IRP to inspect or wait on.
    ///
    /// # Panics
    /// On a kernel rule the driver breaks (the model's assertions).
    #[must_use]
    pub fn device_control(
        &self,
        file: &FileRef,
        code: u32,
        input: &[u8],
        data: &[u8],
        mode: RequestorMode,
    ) -> Irp {
        assert_irql_at_most(Irql::Passive, "IRP_MJ_DEVICE_CONTROL");
        let outstanding = Arc::clone(&file.irps);
        outstanding.fetch_add(1, Ordering::AcqRel);
        let irp = self.kernel.new_irp_with(
            mode,
            input.to_vec(),
            data.len(),
            Box::new(move || {
                outstanding.fetch_sub(1, Ordering::AcqRel);
            }),
        );
        irp.write_output(data);
        let weak: Weak<FileObject> = Arc::downgrade(&file.0);
        irp.set_cancel_routine(Box::new(move |irp| {
            // The cancel routine finds the allocator through the IRP's file object,
            // which the IRP keeps referenced.
            let file = weak.upgrade().expect("an IRP's file object outlives it");
            if let Some(allocator) = file.object().as_allocator() {
                allocator.cancel(irp.key());
            }
        }));
        let object = file.object();
        // Capture: the core works on private copies, as the SEH capture gives it.
        let mut output = irp.output();
        let reply = device_control(
            &self.kernel,
            &object,
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

    /// `CloseHandle`: IRP_MJ_CLEANUP if it was the last handle, then the handle's
    /// reference goes (IRP_MJ_CLOSE if it was the last).
    #[allow(clippy::needless_pass_by_value)] // Closing consumes the handle.
    pub fn close(&self, handle: Handle) {
        assert_irql_at_most(Irql::Passive, "CloseHandle");
        drop(handle);
    }

    /// IRP_MJ_CLOSE: the last reference went.
    fn dispatch_close(&self, file: &Arc<FileObject>) {
        assert_irql_at_most(Irql::Passive, "IRP_MJ_CLOSE");
        assert_eq!(
            file.irps.load(Ordering::Acquire),
            0,
            "IRP_MJ_CLOSE with IRPs outstanding: each references its file object, so \
             the driver must have completed them (cancelled at IRP_MJ_CLEANUP)"
        );
        let object = lock(&file.context).take().expect("IRP_MJ_CLOSE twice");
        object.close();
        // Free and poison the context: dropping the object gives back what it held of
        // its parent.
        let object = Arc::try_unwrap(object)
            .unwrap_or_else(|_| panic!("IRP_MJ_CLOSE while the driver still uses the context"));
        drop(object);
        self.kernel.file_closed();
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
    let object = file.object();
    let Some(allocator) = object.as_allocator() else {
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
    if let Some(allocator) = file.object().as_allocator() {
        // VOID routine: a refused free is counted by the engine, nothing to return.
        let _ = allocator.free(frame as usize);
    }
}

/// Runs `f` at DISPATCH_LEVEL (what a kernel client does around table calls).
pub fn at_dispatch<R>(f: impl FnOnce() -> R) -> R {
    let _irql = raise_irql(Irql::Dispatch);
    f()
}
