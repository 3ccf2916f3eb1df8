//! KS objects and the one KS dispatcher every build uses.
//!
//! The glue (the Windows driver, the Linux cross-built PE, the model) owns the memory of
//! each object and maps file objects to them; everything else is here:
//! [`create`] parses create names and buffers into a [`KsObject`], [`dispatch`] serves
//! IOCTL_KS_PROPERTY / METHOD / ENABLE_EVENT / DISABLE_EVENT from the [`sets`] tables,
//! and [`KsObject::cleanup`] / [`KsObject::close`] end an object's life.

pub mod create;
pub mod dispatch;
pub mod filter;
pub mod sets;

use crate::allocator::Allocator;
use crate::platform::Platform;
pub use filter::{Filter, Pin};

/// An object behind a file object.
///
/// Each lives alone in the pool block of its file object's context, so the allocator
/// variant's size (its counters are padded to their own cache lines) costs filters and
/// pins a few hundred bytes once, where boxing it would cost every allocator create a
/// second pool allocation and a second failure point.
#[allow(clippy::large_enum_variant)]
pub enum KsObject<P: Platform> {
    /// The filter, opened through the device interface.
    Filter(Filter),
    /// A pin, created relative to the filter.
    Pin(Pin),
    /// An allocator, created relative to a pin.
    Allocator(Allocator<P>),
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
            Self::Pin(_) => ObjectKind::Pin,
            Self::Allocator(_) => ObjectKind::Allocator,
        }
    }

    /// The allocator, if this is one.
    #[must_use]
    pub const fn as_allocator(&self) -> Option<&Allocator<P>> {
        match self {
            Self::Allocator(a) => Some(a),
            _ => None,
        }
    }

    /// IRP_MJ_CLEANUP (the last handle is gone): an allocator stops serving and
    /// cancels its pending ALLOCs here, since those IRPs keep the file object alive and
    /// IRP_MJ_CLOSE would never come while they wait. PASSIVE_LEVEL.
    pub fn cleanup(&self) {
        if let Self::Allocator(allocator) = self {
            allocator.close();
        }
    }

    /// IRP_MJ_CLOSE (the last reference is gone): gives back the pin instance this
    /// object held on its parent filter. `parent` is the object of the related file
    /// object. After this the glue drops the object; an allocator with frames still out
    /// then leaks its frame block rather than free it under a client (see
    /// [`Allocator`]'s drop). PASSIVE_LEVEL.
    pub fn close(&self, parent: Option<&Self>) {
        match (self, parent) {
            (Self::Pin(pin), Some(Self::Filter(filter))) => filter.release_instance(pin.id()),
            (Self::Allocator(allocator), _) => {
                allocator.close();
            }
            _ => {}
        }
    }
}
