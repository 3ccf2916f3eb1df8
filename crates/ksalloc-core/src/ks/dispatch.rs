//! IRP_MJ_DEVICE_CONTROL: IOCTL_KS_PROPERTY / METHOD / ENABLE_EVENT / DISABLE_EVENT,
//! with ks.sys's documented contract.
//!
//! The glue hands over the request (`Type3InputBuffer`) and the data buffer
//! (`Irp->UserBuffer`) as slices, captured first if the requestor is user mode, and
//! completes the IRP with the [`Reply`] (copying a user requestor's data back).
//!
//! Checks, in order, and their statuses:
//!
//! | request | status |
//! |---|---|
//! | IOCTL not a KS one we serve | `STATUS_INVALID_DEVICE_REQUEST` |
//! | request shorter than `KSIDENTIFIER` (24) | `STATUS_INVALID_BUFFER_SIZE` |
//! | `SETSUPPORT` with `GUID_NULL`, id 0 | list of set GUIDs (size-query tiers) |
//! | `SETSUPPORT` of a set | `STATUS_SUCCESS` if served, else `STATUS_NOT_FOUND` |
//! | unknown set or id | `STATUS_NOT_FOUND` |
//! | `BASICSUPPORT` | 0 bytes: `STATUS_BUFFER_OVERFLOW`, size 40; 1-3: `STATUS_BUFFER_TOO_SMALL`; 4-39: access flags; 40+: `KSPROPERTY_DESCRIPTION` |
//! | flags other than exactly GET, SET (properties), the item's type (methods), ENABLE (events) | `STATUS_INVALID_PARAMETER` |
//! | GET/SET the item does not allow (e.g. Set on a Get-only property), or an event clients may not enable | `STATUS_INVALID_DEVICE_REQUEST` |
//! | kernel-only item (FUNCTIONTABLE, the ALLOC and FREE methods, object events) from user mode | `STATUS_INVALID_DEVICE_REQUEST` (see below) |
//! | request shorter than the item's minimum (e.g. `KSP_PIN`) | `STATUS_INVALID_PARAMETER` |
//! | data buffer empty (size query) | `STATUS_BUFFER_OVERFLOW`, Information = size needed |
//! | data buffer short but not empty | `STATUS_BUFFER_TOO_SMALL`, Information = size needed |
//! | list answer (`KSMULTIPLE_ITEM`) into exactly 4 bytes | `STATUS_SUCCESS`, the total size only |
//! | pin id out of range in `KSP_PIN`, bad state value | `STATUS_INVALID_PARAMETER` |
//! | any request but SETSUPPORT/BASICSUPPORT on an allocator after IRP_MJ_CLEANUP | `STATUS_INVALID_DEVICE_STATE` |
//! | handler refusal | the engine's status (e.g. `STATUS_INVALID_DEVICE_STATE` after close) |
//!
//! ## Requestors
//! A frame is a kernel address, so whatever hands one out or takes one back is
//! kernel-only: FUNCTIONTABLE is kernel-only by its KS documentation
//! ("KSPROPERTY_STREAMALLOCATOR_FUNCTIONTABLE" page), and the ALLOC and FREE methods
//! (the "KSMETHOD_STREAMALLOCATOR_ALLOC" page: ALLOC "returns a pointer to a frame", and
//! its example is a kernel-mode client; FREE takes one back) are refused to `UserMode`
//! requestors the same way, with
//! `STATUS_INVALID_DEVICE_REQUEST` ("not a valid request for this requestor", what the
//! I/O manager answers for a request a driver does not serve): an address would tell
//! user mode where kernel pool is (defeating KASLR) and is useless to it, and a frame
//! held out at close would leak pool for good. STATUS, BASICSUPPORT, SETSUPPORT, size
//! queries and the FREEFRAME event stay open to user mode.

use ks_abi::guid::{
    KSCATEGORY_DATATRANSFORM, KSINTERFACESETID_STANDARD, KSMEDIUMSETID_STANDARD,
    KSPROPTYPESETID_GENERAL,
};
use ks_abi::ioctl::{
    IOCTL_KS_DISABLE_EVENT, IOCTL_KS_ENABLE_EVENT, IOCTL_KS_METHOD, IOCTL_KS_PROPERTY,
};
use ks_abi::ks::{
    connection, eventf, method_type, pin, property_type, stream, stream_allocator, KsIdentifier,
};
use ks_abi::{Guid, NtStatus};

use super::filter::{
    state, Filter, Pin, DATA_RANGE, PINS, PREFERRED_FRAMING, PREFERRED_MEMORY_TYPE,
};
use super::sets::{self, topology, Item, Set};
use super::KsObject;
use crate::allocator::{AllocOutcome, Allocator};
use crate::platform::{Irql, Platform, Requestor};
use crate::wire::{self, Writer, EVENT_DATA_SIZE, IDENTIFIER_SIZE};

/// One IOCTL, as the glue hands it over.
pub struct Ioctl<'a, R> {
    /// `IoControlCode`.
    pub code: u32,
    /// The request (`Type3InputBuffer`, captured).
    pub input: &'a [u8],
    /// The data buffer (`UserBuffer`, captured); its length is `OutputBufferLength`.
    pub output: &'a mut [u8],
    /// `Irp->RequestorMode`.
    pub requestor: Requestor,
    /// The IRP, for requests that pend.
    pub request: &'a R,
}

/// How to complete the IRP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Complete now.
    Complete {
        /// `IoStatus.Status`.
        status: NtStatus,
        /// `IoStatus.Information`: bytes of the data buffer to return, or the size
        /// needed for a size query.
        information: usize,
    },
    /// The request pended; it will be completed through the platform.
    Pending,
}

const fn done(status: NtStatus, information: usize) -> Reply {
    Reply::Complete {
        status,
        information,
    }
}

const fn fail(status: NtStatus) -> Reply {
    done(status, 0)
}

/// Size of `KSPROPERTY_DESCRIPTION`.
const DESCRIPTION_SIZE: usize = 40;
/// Size of `KSMULTIPLE_ITEM`.
const MULTIPLE_ITEM_SIZE: usize = 8;
/// `KSFILTER_NODE`: a connection end on the filter's own pins.
const FILTER_NODE: u32 = u32::MAX;

/// The size-query tiers of a fixed-size answer: `Ok(())` when `out` can take `size`.
const fn room(out: &[u8], size: usize) -> Result<(), Reply> {
    if out.is_empty() {
        Err(done(NtStatus::BUFFER_OVERFLOW, size))
    } else if out.len() < size {
        Err(done(NtStatus::BUFFER_TOO_SMALL, size))
    } else {
        Ok(())
    }
}

/// A fixed-size answer of `size` bytes written by `fill`.
fn answer(out: &mut [u8], size: usize, fill: impl FnOnce(&mut Writer<'_>)) -> Reply {
    if let Err(reply) = room(out, size) {
        return reply;
    }
    let mut writer = Writer::new(&mut out[..size]);
    fill(&mut writer);
    debug_assert_eq!(writer.written(), size, "answer filled short");
    done(NtStatus::SUCCESS, size)
}

/// A `KSMULTIPLE_ITEM` list answer (`KsHandleSizedListQuery` tiers): empty buffer ->
/// overflow with the size; exactly a ULONG -> the size only; short -> too small;
/// else header and items.
fn answer_list(
    out: &mut [u8],
    item_size: usize,
    count: usize,
    fill: impl FnOnce(&mut Writer<'_>),
) -> Reply {
    let total = MULTIPLE_ITEM_SIZE + item_size * count;
    #[allow(clippy::cast_possible_truncation)] // Lists here are a few dozen bytes.
    let (total32, count32) = (total as u32, count as u32);
    if out.len() == 4 {
        Writer::new(out).u32(total32);
        return done(NtStatus::SUCCESS, 4);
    }
    answer(out, total, |w| {
        w.u32(total32).u32(count32);
        fill(w);
    })
}

/// Serves one IOCTL on `object`. PASSIVE_LEVEL (IRP_MJ_DEVICE_CONTROL).
pub fn device_control<P: Platform>(
    platform: &P,
    object: &KsObject<P>,
    mut io: Ioctl<'_, P::Request>,
) -> Reply {
    platform.check_irql(Irql::Passive);
    let kind = object.kind();
    let (sets, family) = match io.code {
        IOCTL_KS_PROPERTY => (sets::properties(kind), Family::Property),
        IOCTL_KS_METHOD => (sets::methods(kind), Family::Method),
        IOCTL_KS_ENABLE_EVENT => (sets::events(kind), Family::Event),
        IOCTL_KS_DISABLE_EVENT => return disable_event(platform, object, &io),
        _ => return fail(NtStatus::INVALID_DEVICE_REQUEST),
    };
    let Some(request) =
        wire::identifier_at(io.input, 0).filter(|_| io.input.len() >= IDENTIFIER_SIZE)
    else {
        return fail(NtStatus::INVALID_BUFFER_SIZE);
    };
    if request.flags == family.setsupport() {
        return set_support(sets, &request, io.output);
    }
    let Some(item) = sets::find(sets, &request.set).and_then(|s| s.item(request.id)) else {
        return fail(NtStatus::NOT_FOUND);
    };
    if request.flags == family.basicsupport() {
        return basic_support(item, io.output);
    }
    if let Err(reply) = family.check(item, &request, io.input.len(), io.requestor) {
        return reply;
    }
    match (object, family) {
        (KsObject::Filter(filter), Family::Property) => {
            filter_property(filter, &request, io.input, io.output)
        }
        (KsObject::Pin(pin, _), Family::Property) => pin_property(pin, &request, io.output),
        (KsObject::Allocator(allocator, _), _) if allocator.is_cleaned_up() => {
            fail(NtStatus::INVALID_DEVICE_STATE)
        }
        (KsObject::Allocator(allocator, _), Family::Property) => {
            allocator_property(allocator, &request, io.output)
        }
        (KsObject::Allocator(allocator, _), Family::Method) => {
            allocator_method(allocator, &request, &mut io)
        }
        (KsObject::Allocator(allocator, _), Family::Event) => {
            enable_event(platform, allocator, &io)
        }
        // The tables give filters and pins no methods or events.
        _ => fail(NtStatus::NOT_FOUND),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Property,
    Method,
    Event,
}

impl Family {
    const fn setsupport(self) -> u32 {
        match self {
            Self::Property => property_type::SETSUPPORT,
            Self::Method => method_type::SETSUPPORT,
            Self::Event => ks_abi::ks::event_type::SETSUPPORT,
        }
    }

    const fn basicsupport(self) -> u32 {
        match self {
            Self::Property => property_type::BASICSUPPORT,
            Self::Method => method_type::BASICSUPPORT,
            Self::Event => ks_abi::ks::event_type::BASICSUPPORT,
        }
    }

    /// Flags, access, requestor and request size, in the module table's order.
    fn check(
        self,
        item: &Item,
        request: &KsIdentifier,
        input_len: usize,
        requestor: Requestor,
    ) -> Result<(), Reply> {
        let well_formed = match self {
            Self::Property => {
                request.flags == property_type::GET || request.flags == property_type::SET
            }
            Self::Method => request.flags == item.access,
            Self::Event => request.flags == ks_abi::ks::event_type::ENABLE,
        };
        if !well_formed {
            return Err(fail(NtStatus::INVALID_PARAMETER));
        }
        let allowed = match self {
            Self::Property => item.access & request.flags != 0,
            Self::Method => true,
            Self::Event => item.access != 0,
        };
        if !allowed || (item.kernel_only && requestor == Requestor::User) {
            return Err(fail(NtStatus::INVALID_DEVICE_REQUEST));
        }
        if input_len < item.min_request {
            return Err(fail(NtStatus::INVALID_PARAMETER));
        }
        Ok(())
    }
}

fn set_support(sets: &'static [Set], request: &KsIdentifier, out: &mut [u8]) -> Reply {
    if request.set == Guid::NULL && request.id == 0 {
        return answer(out, 16 * sets.len(), |w| {
            for set in sets {
                w.guid(&set.guid);
            }
        });
    }
    if sets::find(sets, &request.set).is_some() {
        done(NtStatus::SUCCESS, 0)
    } else {
        fail(NtStatus::NOT_FOUND)
    }
}

fn basic_support(item: &Item, out: &mut [u8]) -> Reply {
    match out.len() {
        0 => done(NtStatus::BUFFER_OVERFLOW, DESCRIPTION_SIZE),
        1..4 => done(NtStatus::BUFFER_TOO_SMALL, DESCRIPTION_SIZE),
        4..DESCRIPTION_SIZE => answer(out, 4, |w| {
            w.u32(item.access);
        }),
        _ => answer(out, DESCRIPTION_SIZE, |w| {
            #[allow(clippy::cast_possible_truncation)]
            w.u32(item.access)
                .u32(DESCRIPTION_SIZE as u32)
                .identifier(&KsIdentifier {
                    set: KSPROPTYPESETID_GENERAL,
                    id: item.value_type,
                    flags: 0,
                })
                .u32(0)
                .u32(0);
        }),
    }
}

fn filter_property(filter: &Filter, request: &KsIdentifier, input: &[u8], out: &mut [u8]) -> Reply {
    if request.set == ks_abi::guid::KSPROPSETID_TOPOLOGY {
        return match request.id {
            topology::CATEGORIES => answer_list(out, 16, 1, |w| {
                w.guid(&KSCATEGORY_DATATRANSFORM);
            }),
            topology::NODES => answer_list(out, 16, 0, |_| {}),
            topology::CONNECTIONS => answer_list(out, 16, 1, |w| {
                w.u32(FILTER_NODE).u32(0).u32(FILTER_NODE).u32(1);
            }),
            _ => fail(NtStatus::NOT_FOUND),
        };
    }
    #[allow(clippy::cast_possible_truncation)]
    let pin_count = PINS.len() as u32;
    if request.id == pin::CTYPES {
        return answer(out, 4, |w| {
            w.u32(pin_count);
        });
    }
    let Some((pin_id, descriptor)) =
        wire::u32_at(input, 24).and_then(|id| Some((id, PINS.get(id as usize)?)))
    else {
        return fail(NtStatus::INVALID_PARAMETER);
    };
    match request.id {
        pin::CINSTANCES | pin::GLOBALCINSTANCES => answer(out, 8, |w| {
            w.u32(descriptor.possible_instances)
                .u32(filter.instances(pin_id));
        }),
        pin::DATAFLOW => answer(out, 4, |w| {
            w.u32(descriptor.dataflow);
        }),
        pin::COMMUNICATION => answer(out, 4, |w| {
            w.u32(descriptor.communication);
        }),
        pin::NECESSARYINSTANCES => answer(out, 4, |w| {
            w.u32(0);
        }),
        pin::DATARANGES => answer_list(out, wire::DATA_FORMAT_SIZE, 1, |w| {
            w.data_format(&DATA_RANGE);
        }),
        pin::INTERFACES => answer_list(out, IDENTIFIER_SIZE, 1, |w| {
            w.identifier(&KsIdentifier {
                set: KSINTERFACESETID_STANDARD,
                id: 0,
                flags: 0,
            });
        }),
        pin::MEDIUMS => answer_list(out, IDENTIFIER_SIZE, 1, |w| {
            w.identifier(&KsIdentifier {
                set: KSMEDIUMSETID_STANDARD,
                id: 0,
                flags: 0,
            });
        }),
        pin::NAME => {
            let units = descriptor.name.encode_utf16().count() + 1;
            answer(out, units * 2, |w| {
                for unit in descriptor.name.encode_utf16().chain([0]) {
                    w.bytes(&unit.to_le_bytes());
                }
            })
        }
        // Our pins have no category (AVStream answers the same for a NULL Category).
        _ => fail(NtStatus::NOT_FOUND),
    }
}

fn pin_property(pin: &Pin, request: &KsIdentifier, out: &mut [u8]) -> Reply {
    let set = request.flags == property_type::SET;
    match (request.set, request.id) {
        (s, connection::PROPERTY_STATE) if s == ks_abi::guid::KSPROPSETID_CONNECTION => {
            if !set {
                return answer(out, 4, |w| {
                    w.u32(pin.state());
                });
            }
            if let Err(reply) = room(out, 4) {
                return reply;
            }
            match wire::u32_at(out, 0) {
                Some(value) if value <= state::RUN => {
                    pin.set_state(value);
                    done(NtStatus::SUCCESS, 0)
                }
                _ => fail(NtStatus::INVALID_PARAMETER),
            }
        }
        (_, connection::PROPERTY_DATAFORMAT) => answer(out, wire::DATA_FORMAT_SIZE, |w| {
            w.data_format(pin.format());
        }),
        (_, connection::PROPERTY_ALLOCATORFRAMING) => answer(out, wire::FRAMING_SIZE, |w| {
            w.framing(&PREFERRED_FRAMING);
        }),
        (_, connection::PROPERTY_ALLOCATORFRAMING_EX) => answer(out, 112, |w| {
            let f = &PREFERRED_FRAMING;
            // Header: one item, no pin flags, 1:1 compression, no weight.
            w.u32(1).u32(0).u32(1).u32(1).u32(0).u32(0);
            // KS_FRAMING_ITEM.
            w.guid(&PREFERRED_MEMORY_TYPE)
                .guid(&Guid::NULL)
                .u32(f.options_flags)
                .u32(0)
                .u32(0);
            w.u32(f.frames).u32(f.file_alignment).u32(0);
            w.u32(f.frame_size).u32(f.frame_size).u32(0); // physical range
            w.u32(f.frame_size).u32(f.frame_size).u32(0).u32(0).u32(0); // framing range, weights
        }),
        (s, stream::PROPERTY_ALLOCATOR) if s == ks_abi::guid::KSPROPSETID_STREAM => {
            if !set {
                return answer(out, 8, |w| {
                    w.usize(pin.allocator_handle());
                });
            }
            if let Err(reply) = room(out, 8) {
                return reply;
            }
            pin.set_allocator_handle(wire::usize_at(out, 0).unwrap_or(0));
            done(NtStatus::SUCCESS, 0)
        }
        _ => fail(NtStatus::NOT_FOUND),
    }
}

fn allocator_property<P: Platform>(
    allocator: &Allocator<P>,
    request: &KsIdentifier,
    out: &mut [u8],
) -> Reply {
    match request.id {
        stream_allocator::PROPERTY_FUNCTIONTABLE => {
            if let Err(reply) = room(out, 16) {
                return reply;
            }
            if let Err(status) = allocator.acquire_function_table() {
                return fail(status);
            }
            let [allocate, free] = allocator.platform().function_table();
            answer(out, 16, |w| {
                w.usize(allocate).usize(free);
            })
        }
        stream_allocator::PROPERTY_STATUS => {
            let status = allocator.status();
            answer(out, 32, |w| {
                w.framing(&status.framing)
                    .u32(status.allocated_frames)
                    .u32(status.reserved);
            })
        }
        _ => fail(NtStatus::NOT_FOUND),
    }
}

fn allocator_method<P: Platform>(
    allocator: &Allocator<P>,
    request: &KsIdentifier,
    io: &mut Ioctl<'_, P::Request>,
) -> Reply {
    if let Err(reply) = room(io.output, 8) {
        return reply;
    }
    match request.id {
        stream_allocator::METHOD_ALLOC => match allocator.method_alloc(io.request) {
            AllocOutcome::Ready(address) => answer(io.output, 8, |w| {
                w.usize(address);
            }),
            AllocOutcome::Pended => Reply::Pending,
            AllocOutcome::Failed(status) => fail(status),
        },
        stream_allocator::METHOD_FREE => {
            let address = wire::usize_at(io.output, 0).unwrap_or(0);
            match allocator.free(address) {
                Ok(()) => done(NtStatus::SUCCESS, 0),
                Err(status) => fail(status),
            }
        }
        _ => fail(NtStatus::NOT_FOUND),
    }
}

/// Notification types a FREEFRAME client may ask for, by requestor.
fn notification_allowed(kind: u32, requestor: Requestor) -> bool {
    kind == eventf::EVENT_HANDLE || (kind == eventf::EVENT_OBJECT && requestor == Requestor::Kernel)
}

fn enable_event<P: Platform>(
    platform: &P,
    allocator: &Allocator<P>,
    io: &Ioctl<'_, P::Request>,
) -> Reply {
    let Some(data) = wire::event_data(io.output).filter(|_| io.output.len() >= EVENT_DATA_SIZE)
    else {
        return fail(NtStatus::BUFFER_TOO_SMALL);
    };
    if !notification_allowed(data.notification_type, io.requestor) {
        return fail(NtStatus::INVALID_PARAMETER);
    }
    let event = match platform.reference_client_event(&data, io.requestor) {
        Ok(event) => event,
        Err(status) => return fail(status),
    };
    match allocator.enable_free_frame_event(event) {
        Ok(()) => done(NtStatus::SUCCESS, 0),
        Err(status) => fail(status),
    }
}

/// IOCTL_KS_DISABLE_EVENT: the request is the `KSEVENTDATA` the client enabled with.
fn disable_event<P: Platform>(
    platform: &P,
    object: &KsObject<P>,
    io: &Ioctl<'_, P::Request>,
) -> Reply {
    let Some(allocator) = object.as_allocator() else {
        return fail(NtStatus::NOT_FOUND);
    };
    let Some(data) = wire::event_data(io.input).filter(|_| io.input.len() >= EVENT_DATA_SIZE)
    else {
        return fail(NtStatus::INVALID_BUFFER_SIZE);
    };
    if allocator.is_cleaned_up() {
        return fail(NtStatus::INVALID_DEVICE_STATE);
    }
    if !notification_allowed(data.notification_type, io.requestor) {
        return fail(NtStatus::INVALID_PARAMETER);
    }
    let key = match platform.reference_client_event(&data, io.requestor) {
        Ok(event) => platform.client_event_key(&event),
        Err(status) => return fail(status),
    };
    match allocator.disable_free_frame_event(key) {
        Ok(()) => done(NtStatus::SUCCESS, 0),
        Err(status) => fail(status),
    }
}
