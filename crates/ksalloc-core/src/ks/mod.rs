//! KS objects and the one KS dispatcher every build uses.
//!
//! The glue (the Windows driver, the Linux cross-built PE, the model) owns the memory of
//! each object and maps file objects to them; everything else is here:
//! [`create`] parses create names and buffers into a [`KsObject`], [`dispatch`] serves
//! IOCTL_KS_PROPERTY / METHOD / ENABLE_EVENT / DISABLE_EVENT from the [`sets`] tables,
//! and [`KsObject::cleanup`] / [`KsObject::close`] end an object's life.
//!
//! ## Lifetime rules (the glue stores, the core decides)
//! - `FILE_OBJECT.RelatedFileObject` "is valid only during the processing of
//!   IRP_MJ_CREATE requests" ("FILE_OBJECT structure" page), and the I/O manager keeps
//!   no reference on the parent for the child's life. So the parent object is handed to
//!   [`KsObject::create`] only; what a child needs of its parent later it holds itself,
//!   as a reference-counted [`Platform::Shared`] taken at create and dropped with the
//!   child's object at its IRP_MJ_CLOSE: a pin holds its filter's instance counts
//!   ([`PinInstance`]), an allocator holds its pin's allocator count
//!   ([`AllocatorSlot`]). The glue never reads a parent after create; handles close in
//!   any order.
//! - IRP_MJ_CLEANUP (last handle gone; "IRP_MJ_CLEANUP" page) is not IRP_MJ_CLOSE (last
//!   reference gone; "IRP_MJ_CLOSE" page): see [`KsObject::cleanup`].
//! - Requestors ("Irp->RequestorMode"): the items refused to user mode are marked
//!   `kernel_only` in [`sets`]; the limits on what a create may make the driver hold are
//!   in [`crate::limits`].

pub mod create;
pub mod dispatch;
pub mod filter;
pub mod sets;

use crate::allocator::Allocator;
use crate::platform::Platform;
pub use filter::{AllocatorSlot, Filter, Pin, PinInstance};

/// An object behind a file object.
///
/// Each lives alone in the pool block of its file object's context, so the allocator
/// variant's size (its counters are padded to their own cache lines) costs filters and
/// pins a few hundred bytes once, where boxing it would cost every allocator create a
/// second pool allocation and a second failure point.
#[allow(clippy::large_enum_variant)]
pub enum KsObject<P: Platform> {
    /// The filter, opened through the device interface. Its pins share its state.
    Filter(P::Shared<Filter>),
    /// A pin, created relative to the filter: its state (shared with its allocators)
    /// and the instance it holds on the filter.
    Pin(P::Shared<Pin>, PinInstance<P>),
    /// An allocator, created relative to a pin, and the slot it holds on that pin.
    Allocator(Allocator<P>, AllocatorSlot<P>),
}

/// The kind of a [`KsObject`], for tables and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// [`KsObject::Filter`].
    Filter,
    /// [`KsObject::Pin`].
    Pin,
    /// [`KsObject::Allocator`].
    Allocator,
}

impl<P: Platform> KsObject<P> {
    /// Which kind of object this is.
    #[must_use]
    pub const fn kind(&self) -> ObjectKind {
        match self {
            Self::Filter(_) => ObjectKind::Filter,
            Self::Pin(..) => ObjectKind::Pin,
            Self::Allocator(..) => ObjectKind::Allocator,
        }
    }

    /// The allocator, if this is one.
    #[must_use]
    pub const fn as_allocator(&self) -> Option<&Allocator<P>> {
        match self {
            Self::Allocator(a, _) => Some(a),
            _ => None,
        }
    }

    /// IRP_MJ_CLEANUP (the last handle is gone; kernel references may remain): an
    /// allocator cancels its pending ALLOCs (they reference the file object, so
    /// IRP_MJ_CLOSE would never come while they wait), refuses new IRP-based requests
    /// and disables its events; its function table keeps working until
    /// [`Self::close`]. Filters and pins have nothing pending. PASSIVE_LEVEL.
    pub fn cleanup(&self) {
        if let Self::Allocator(allocator, _) = self {
            allocator.cleanup();
        }
    }

    /// IRP_MJ_CLOSE (the last reference is gone): an allocator's function table stops.
    /// The glue then drops the object, which gives back what it held of its parent (a
    /// pin's instance on its filter, an allocator's slot on its pin), whatever order
    /// the handles closed in. An allocator with frames still out then leaks its frame
    /// block rather than free it under a client (see [`Allocator`]'s drop).
    /// PASSIVE_LEVEL.
    pub fn close(&self) {
        if let Self::Allocator(allocator, _) = self {
            allocator.close();
        }
    }
}
