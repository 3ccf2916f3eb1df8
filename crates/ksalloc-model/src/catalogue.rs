//! The bad-input catalogue.
//!
//! Requests a hostile or broken client may send, each with the NTSTATUS the driver
//! documents for it. Kept as data so tests run it and fuzzers seed from it; [`run`]
//! executes one case on a fresh graph and checks that the status is the documented one
//! and that nothing changed and nothing leaked.

use std::sync::Arc;

use ks_abi::guid::{
    KSEVENTSETID_STREAM_ALLOCATOR, KSMETHODSETID_STREAM_ALLOCATOR, KSNAME_ALLOCATOR, KSNAME_FILTER,
    KSNAME_PIN, KSPROPSETID_CONNECTION, KSPROPSETID_PIN, KSPROPSETID_STREAM,
    KSPROPSETID_STREAM_ALLOCATOR, KSPROPSETID_TOPOLOGY,
};
use ks_abi::ioctl::{
    IOCTL_KS_DISABLE_EVENT, IOCTL_KS_ENABLE_EVENT, IOCTL_KS_METHOD, IOCTL_KS_PROPERTY,
    IOCTL_KS_READ_STREAM,
};
use ks_abi::ks::{
    connection, event_type, eventf, file_alignment, method_type, pin, pool_type, property_type,
    stream, stream_allocator, KsAllocatorFraming, KsDataFormat, KsPinConnect,
};
use ks_abi::{Guid, NtStatus};
use ksalloc_core::ks::filter::DATA_RANGE;
use ksalloc_core::limits::{DEFAULT_FRAME_BUDGET, MAX_ALLOCATORS_PER_PIN};
use ksalloc_core::wire::Writer;
use ksalloc_core::Snapshot;

use crate::client::{
    connect_bytes, create_name, framing_bytes, request, standard_connect, KsClient,
};
use crate::driver::{Handle, ModelDriver};
use crate::event::ModelEvent;
use crate::irp::RequestorMode;
use crate::kernel::ModelKernel;

/// The object a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The device itself (a create with no related file object).
    Device,
    /// The open filter.
    Filter,
    /// The open pin 0.
    Pin,
    /// The allocator on pin 0.
    Allocator,
}

/// A frame address a FREE names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameRef {
    /// A frame the harness holds, plus a byte offset.
    Outstanding(usize),
    /// A frame the harness already returned.
    Returned,
    /// A frame of a second allocator.
    Foreign,
    /// A literal address.
    Raw(usize),
}

/// What a case does.
#[derive(Clone, Debug)]
pub enum Op {
    /// IRP_MJ_CREATE with this file name relative to the target.
    Create {
        /// Related file object.
        parent: Target,
        /// File name bytes (UTF-16LE plus appended parameters).
        name: Vec<u8>,
        /// `Irp->RequestorMode` of the create.
        mode: RequestorMode,
    },
    /// IRP_MJ_DEVICE_CONTROL.
    Ioctl {
        /// The file object.
        target: Target,
        /// IOCTL code.
        code: u32,
        /// Request bytes.
        input: Vec<u8>,
        /// Data buffer bytes (its length is the output length).
        data: Vec<u8>,
        /// Requestor mode.
        mode: RequestorMode,
    },
    /// KSMETHOD_STREAMALLOCATOR_FREE of this frame, from a kernel requestor.
    Free(FrameRef),
    /// The allocator's last handle is closed first (IRP_MJ_CLEANUP; the harness's table
    /// reference keeps it from IRP_MJ_CLOSE), then the inner op runs: every IRP-based
    /// request is refused from then on.
    AfterClose(Box<Self>),
    /// The harness is brought to a state first (a limit reached, parents closed), then
    /// the inner op runs.
    Given(Given, Box<Self>),
}

/// A state [`Op::Given`] sets up before its op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Given {
    /// The driver's frame budget is spent (its limit set to what is in use).
    BudgetSpent,
    /// The user process's pool quota is spent (set to what it has charged).
    QuotaSpent,
    /// Pin 0 has `MAX_ALLOCATORS_PER_PIN` live allocators.
    PinFull,
    /// The filter's and pin 0's handles are closed (their objects' CLOSE ran); the
    /// allocator on pin 0 stays.
    ParentsClosed,
}

/// One catalogue entry.
#[derive(Clone, Debug)]
pub struct Case {
    /// What is wrong with the request.
    pub name: &'static str,
    /// The request.
    pub op: Op,
    /// The documented status.
    pub status: NtStatus,
    /// The documented `IoStatus.Information`, where it matters (size queries).
    pub information: Option<usize>,
}

/// A handle value no event has.
const BAD_HANDLE: usize = 0xDEAD_0000;

/// A non-paged framing of `frames` x `frame_size` bytes, 64-byte aligned, no options:
/// what the catalogue and the lifetime tests create allocators with.
#[must_use]
pub const fn framing(frames: u32, frame_size: u32) -> KsAllocatorFraming {
    KsAllocatorFraming {
        options_flags: 0,
        pool_type: pool_type::NON_PAGED,
        frames,
        frame_size,
        file_alignment: file_alignment::B64,
        reserved: 0,
    }
}

/// The framing the harness's allocator uses.
#[must_use]
pub const fn harness_framing() -> KsAllocatorFraming {
    framing(4, 256)
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

const fn create(parent: Target, name: Vec<u8>) -> Op {
    Op::Create {
        parent,
        name,
        mode: RequestorMode::Kernel,
    }
}

fn given(setup: Given, op: Op) -> Op {
    Op::Given(setup, Box::new(op))
}

fn pin_create(connect: &KsPinConnect, format: &KsDataFormat) -> Op {
    create(
        Target::Filter,
        create_name(&KSNAME_PIN, Some(&connect_bytes(connect, format))),
    )
}

fn alloc_create(params: &[u8]) -> Op {
    create(Target::Pin, create_name(&KSNAME_ALLOCATOR, Some(params)))
}

fn ioctl(target: Target, code: u32, input: Vec<u8>, data_len: usize, mode: RequestorMode) -> Op {
    Op::Ioctl {
        target,
        code,
        input,
        data: vec![0; data_len],
        mode,
    }
}

fn property(target: Target, set: Guid, id: u32, flags: u32, extra: &[u8], data_len: usize) -> Op {
    ioctl(
        target,
        IOCTL_KS_PROPERTY,
        request(&set, id, flags, extra),
        data_len,
        RequestorMode::Kernel,
    )
}

fn method(id: u32, flags: u32, data_len: usize) -> Op {
    ioctl(
        Target::Allocator,
        IOCTL_KS_METHOD,
        request(&KSMETHODSETID_STREAM_ALLOCATOR, id, flags, &[]),
        data_len,
        RequestorMode::Kernel,
    )
}

fn event_data(kind: u32, object: usize) -> Vec<u8> {
    let mut data = vec![0; 32];
    Writer::new(&mut data).u32(kind).u32(0).usize(object);
    data
}

fn enable(id: u32, flags: u32, data: Vec<u8>, mode: RequestorMode) -> Op {
    Op::Ioctl {
        target: Target::Allocator,
        code: IOCTL_KS_ENABLE_EVENT,
        input: request(&KSEVENTSETID_STREAM_ALLOCATOR, id, flags, &[]),
        data,
        mode,
    }
}

const fn case(name: &'static str, op: Op, status: NtStatus) -> Case {
    Case {
        name,
        op,
        status,
        information: None,
    }
}

const fn sized(name: &'static str, op: Op, status: NtStatus, information: usize) -> Case {
    Case {
        name,
        op,
        status,
        information: Some(information),
    }
}

fn pin_id(id: u32) -> Vec<u8> {
    [id.to_le_bytes(), [0; 4]].concat()
}

/// Every catalogue case.
#[must_use]
#[allow(clippy::too_many_lines)] // A table.
pub fn cases() -> Vec<Case> {
    use NtStatus as S;
    use RequestorMode::{Kernel, User};
    let connect = standard_connect(1);
    let bytes = |f: KsAllocatorFraming| framing_bytes(&f);
    let alloc_set = KSPROPSETID_STREAM_ALLOCATOR;
    let get = property_type::GET;
    let unknown = Guid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    vec![
        // ---- create names ----
        case(
            "device: pin class at the top",
            create(Target::Device, create_name(&KSNAME_PIN, None)),
            S::OBJECT_NAME_NOT_FOUND,
        ),
        case(
            "device: unknown class",
            create(Target::Device, create_name(&unknown, None)),
            S::OBJECT_NAME_NOT_FOUND,
        ),
        case(
            "device: malformed GUID text",
            create(
                Target::Device,
                utf16("\\{9B365890-165F-11D0-A195-0020AFD156E}"),
            ),
            S::OBJECT_NAME_INVALID,
        ),
        case(
            "device: odd-length name",
            create(Target::Device, vec![b'\\', 0, b'{']),
            S::OBJECT_NAME_INVALID,
        ),
        case(
            "device: filter class with parameters",
            create(Target::Device, create_name(&KSNAME_FILTER, Some(&[1, 0]))),
            S::OBJECT_NAME_NOT_FOUND,
        ),
        case(
            "device: text after the GUID",
            create(
                Target::Device,
                utf16("\\{9B365890-165F-11D0-A195-0020AFD156E4}x"),
            ),
            S::OBJECT_NAME_INVALID,
        ),
        case(
            "filter: pin class without KSPIN_CONNECT",
            create(Target::Filter, create_name(&KSNAME_PIN, None)),
            S::INVALID_PARAMETER,
        ),
        case(
            "filter: KSPIN_CONNECT truncated",
            create(Target::Filter, create_name(&KSNAME_PIN, Some(&[0; 100]))),
            S::INVALID_PARAMETER,
        ),
        case(
            "filter: pin id past the factories",
            pin_create(
                &KsPinConnect {
                    pin_id: 2,
                    ..connect
                },
                &DATA_RANGE,
            ),
            S::INVALID_PARAMETER,
        ),
        case(
            "filter: pin id u32::MAX",
            pin_create(
                &KsPinConnect {
                    pin_id: u32::MAX,
                    ..connect
                },
                &DATA_RANGE,
            ),
            S::INVALID_PARAMETER,
        ),
        case(
            "filter: PinToHandle on a sink pin",
            pin_create(
                &KsPinConnect {
                    pin_to_handle: 0x44,
                    ..connect
                },
                &DATA_RANGE,
            ),
            S::INVALID_PARAMETER,
        ),
        case(
            "filter: FormatSize 63",
            pin_create(
                &connect,
                &KsDataFormat {
                    format_size: 63,
                    ..DATA_RANGE
                },
            ),
            S::INVALID_PARAMETER,
        ),
        case(
            "filter: FormatSize past the buffer",
            pin_create(
                &connect,
                &KsDataFormat {
                    format_size: 65,
                    ..DATA_RANGE
                },
            ),
            S::INVALID_PARAMETER,
        ),
        case(
            "filter: bytes after KSDATAFORMAT",
            create(
                Target::Filter,
                create_name(
                    &KSNAME_PIN,
                    Some(&[connect_bytes(&connect, &DATA_RANGE), vec![0; 8]].concat()),
                ),
            ),
            S::INVALID_PARAMETER,
        ),
        case(
            "filter: unknown interface set",
            pin_create(
                &KsPinConnect {
                    interface: ks_abi::ks::KsIdentifier {
                        set: unknown,
                        ..connect.interface
                    },
                    ..connect
                },
                &DATA_RANGE,
            ),
            S::NO_MATCH,
        ),
        case(
            "filter: non-streaming interface id",
            pin_create(
                &KsPinConnect {
                    interface: ks_abi::ks::KsIdentifier {
                        id: 1,
                        ..connect.interface
                    },
                    ..connect
                },
                &DATA_RANGE,
            ),
            S::NO_MATCH,
        ),
        case(
            "filter: unknown medium",
            pin_create(
                &KsPinConnect {
                    medium: ks_abi::ks::KsIdentifier {
                        set: unknown,
                        ..connect.medium
                    },
                    ..connect
                },
                &DATA_RANGE,
            ),
            S::NO_MATCH,
        ),
        case(
            "filter: major format outside the range",
            pin_create(
                &connect,
                &KsDataFormat {
                    major_format: unknown,
                    ..DATA_RANGE
                },
            ),
            S::NO_MATCH,
        ),
        case(
            "filter: sub format outside the range",
            pin_create(
                &connect,
                &KsDataFormat {
                    sub_format: unknown,
                    ..DATA_RANGE
                },
            ),
            S::NO_MATCH,
        ),
        case(
            "filter: second instance of an open pin",
            pin_create(&standard_connect(0), &DATA_RANGE),
            S::INSUFFICIENT_RESOURCES,
        ),
        case(
            "filter: allocator class on the filter",
            create(
                Target::Filter,
                create_name(&KSNAME_ALLOCATOR, Some(&bytes(harness_framing()))),
            ),
            S::OBJECT_NAME_NOT_FOUND,
        ),
        case(
            "pin: pin class on a pin",
            create(
                Target::Pin,
                create_name(&KSNAME_PIN, Some(&connect_bytes(&connect, &DATA_RANGE))),
            ),
            S::OBJECT_NAME_NOT_FOUND,
        ),
        case(
            "pin: allocator class without framing",
            create(Target::Pin, create_name(&KSNAME_ALLOCATOR, None)),
            S::INVALID_PARAMETER,
        ),
        case(
            "allocator: allocator class on an allocator",
            create(
                Target::Allocator,
                create_name(&KSNAME_ALLOCATOR, Some(&bytes(harness_framing()))),
            ),
            S::OBJECT_NAME_NOT_FOUND,
        ),
        // ---- framing ----
        case(
            "framing: 22 bytes",
            alloc_create(&bytes(harness_framing())[..22]),
            S::INVALID_PARAMETER,
        ),
        case(
            "framing: 23 bytes makes the name odd-length",
            alloc_create(&bytes(harness_framing())[..23]),
            S::OBJECT_NAME_INVALID,
        ),
        case(
            "framing: 26 bytes",
            alloc_create(&[bytes(harness_framing()), vec![0, 0]].concat()),
            S::INVALID_PARAMETER,
        ),
        case(
            "framing: zero frames",
            alloc_create(&bytes(framing(0, 256))),
            S::INVALID_PARAMETER,
        ),
        case(
            "framing: zero frame size",
            alloc_create(&bytes(framing(4, 0))),
            S::INVALID_PARAMETER,
        ),
        case(
            "framing: alignment 5 is not 2^n-1",
            alloc_create(&bytes(KsAllocatorFraming {
                file_alignment: 5,
                ..harness_framing()
            })),
            S::INVALID_PARAMETER,
        ),
        case(
            "framing: alignment above a page",
            alloc_create(&bytes(KsAllocatorFraming {
                file_alignment: 0x1FFF,
                ..harness_framing()
            })),
            S::INVALID_PARAMETER,
        ),
        case(
            "framing: paged pool",
            alloc_create(&bytes(KsAllocatorFraming {
                pool_type: pool_type::PAGED,
                ..harness_framing()
            })),
            S::NOT_SUPPORTED,
        ),
        case(
            "framing: unknown pool type",
            alloc_create(&bytes(KsAllocatorFraming {
                pool_type: 9,
                ..harness_framing()
            })),
            S::INVALID_PARAMETER,
        ),
        case(
            "framing: unknown option bits",
            alloc_create(&bytes(KsAllocatorFraming {
                options_flags: 0x100,
                ..harness_framing()
            })),
            S::INVALID_PARAMETER,
        ),
        case(
            "framing: reserved set",
            alloc_create(&bytes(KsAllocatorFraming {
                reserved: 7,
                ..harness_framing()
            })),
            S::INVALID_PARAMETER,
        ),
        case(
            "framing: too many frames",
            alloc_create(&bytes(framing(u32::MAX, 1))),
            S::INVALID_PARAMETER,
        ),
        case(
            "framing: frames x size past the bound",
            alloc_create(&bytes(framing(1 << 20, u32::MAX))),
            S::INSUFFICIENT_RESOURCES,
        ),
        // ---- property requests ----
        case(
            "ioctl: a stream IOCTL on the allocator",
            ioctl(Target::Allocator, IOCTL_KS_READ_STREAM, vec![], 0, Kernel),
            S::INVALID_DEVICE_REQUEST,
        ),
        case(
            "property: request of 23 bytes",
            ioctl(
                Target::Allocator,
                IOCTL_KS_PROPERTY,
                vec![0; 23],
                32,
                Kernel,
            ),
            S::INVALID_BUFFER_SIZE,
        ),
        case(
            "property: empty request",
            ioctl(Target::Allocator, IOCTL_KS_PROPERTY, vec![], 32, Kernel),
            S::INVALID_BUFFER_SIZE,
        ),
        case(
            "property: unknown set",
            property(Target::Allocator, unknown, 0, get, &[], 32),
            S::NOT_FOUND,
        ),
        case(
            "property: unknown id",
            property(Target::Allocator, alloc_set, 9, get, &[], 32),
            S::NOT_FOUND,
        ),
        case(
            "property: GET and SET at once",
            property(
                Target::Allocator,
                alloc_set,
                stream_allocator::PROPERTY_STATUS,
                3,
                &[],
                32,
            ),
            S::INVALID_PARAMETER,
        ),
        case(
            "property: no flags",
            property(
                Target::Allocator,
                alloc_set,
                stream_allocator::PROPERTY_STATUS,
                0,
                &[],
                32,
            ),
            S::INVALID_PARAMETER,
        ),
        case(
            "property: SET on Get-only STATUS",
            property(
                Target::Allocator,
                alloc_set,
                stream_allocator::PROPERTY_STATUS,
                property_type::SET,
                &[],
                32,
            ),
            S::INVALID_DEVICE_REQUEST,
        ),
        case(
            "property: SET on Get-only FUNCTIONTABLE",
            property(
                Target::Allocator,
                alloc_set,
                stream_allocator::PROPERTY_FUNCTIONTABLE,
                property_type::SET,
                &[],
                16,
            ),
            S::INVALID_DEVICE_REQUEST,
        ),
        case(
            "property: FUNCTIONTABLE from user mode",
            ioctl(
                Target::Allocator,
                IOCTL_KS_PROPERTY,
                request(
                    &alloc_set,
                    stream_allocator::PROPERTY_FUNCTIONTABLE,
                    get,
                    &[],
                ),
                16,
                User,
            ),
            S::INVALID_DEVICE_REQUEST,
        ),
        sized(
            "property: STATUS size query",
            property(
                Target::Allocator,
                alloc_set,
                stream_allocator::PROPERTY_STATUS,
                get,
                &[],
                0,
            ),
            S::BUFFER_OVERFLOW,
            32,
        ),
        sized(
            "property: STATUS into 31 bytes",
            property(
                Target::Allocator,
                alloc_set,
                stream_allocator::PROPERTY_STATUS,
                get,
                &[],
                31,
            ),
            S::BUFFER_TOO_SMALL,
            32,
        ),
        sized(
            "property: FUNCTIONTABLE into 8 bytes",
            property(
                Target::Allocator,
                alloc_set,
                stream_allocator::PROPERTY_FUNCTIONTABLE,
                get,
                &[],
                8,
            ),
            S::BUFFER_TOO_SMALL,
            16,
        ),
        sized(
            "property: BASICSUPPORT into 2 bytes",
            property(
                Target::Allocator,
                alloc_set,
                stream_allocator::PROPERTY_STATUS,
                property_type::BASICSUPPORT,
                &[],
                2,
            ),
            S::BUFFER_TOO_SMALL,
            40,
        ),
        case(
            "property: SETSUPPORT of an unknown set",
            property(
                Target::Allocator,
                unknown,
                0,
                property_type::SETSUPPORT,
                &[],
                0,
            ),
            S::NOT_FOUND,
        ),
        case(
            "filter: pin property without KSP_PIN",
            property(Target::Filter, KSPROPSETID_PIN, pin::DATAFLOW, get, &[], 4),
            S::INVALID_PARAMETER,
        ),
        case(
            "filter: pin property of pin 7",
            property(
                Target::Filter,
                KSPROPSETID_PIN,
                pin::DATAFLOW,
                get,
                &pin_id(7),
                4,
            ),
            S::INVALID_PARAMETER,
        ),
        case(
            "filter: pin category (none)",
            property(
                Target::Filter,
                KSPROPSETID_PIN,
                pin::CATEGORY,
                get,
                &pin_id(0),
                16,
            ),
            S::NOT_FOUND,
        ),
        case(
            "filter: topology property with the node flag",
            property(
                Target::Filter,
                KSPROPSETID_TOPOLOGY,
                0,
                get | property_type::TOPOLOGY,
                &[0; 8],
                64,
            ),
            S::INVALID_PARAMETER,
        ),
        case(
            "pin: state 4",
            Op::Ioctl {
                target: Target::Pin,
                code: IOCTL_KS_PROPERTY,
                input: request(
                    &KSPROPSETID_CONNECTION,
                    connection::PROPERTY_STATE,
                    property_type::SET,
                    &[],
                ),
                data: 4u32.to_le_bytes().to_vec(),
                mode: Kernel,
            },
            S::INVALID_PARAMETER,
        ),
        sized(
            "pin: STREAM_ALLOCATOR set from 4 bytes",
            property(
                Target::Pin,
                KSPROPSETID_STREAM,
                stream::PROPERTY_ALLOCATOR,
                property_type::SET,
                &[],
                4,
            ),
            S::BUFFER_TOO_SMALL,
            8,
        ),
        case(
            "pin: allocator property set on a pin",
            property(
                Target::Pin,
                alloc_set,
                stream_allocator::PROPERTY_STATUS,
                get,
                &[],
                32,
            ),
            S::NOT_FOUND,
        ),
        // ---- methods ----
        case(
            "method: ALLOC with READ flags",
            method(stream_allocator::METHOD_ALLOC, method_type::READ, 8),
            S::INVALID_PARAMETER,
        ),
        sized(
            "method: ALLOC into 4 bytes",
            method(stream_allocator::METHOD_ALLOC, method_type::WRITE, 4),
            S::BUFFER_TOO_SMALL,
            8,
        ),
        sized(
            "method: ALLOC size query",
            method(stream_allocator::METHOD_ALLOC, method_type::WRITE, 0),
            S::BUFFER_OVERFLOW,
            8,
        ),
        case(
            "method: unknown id",
            method(5, method_type::WRITE, 8),
            S::NOT_FOUND,
        ),
        case(
            "method: on the filter",
            ioctl(
                Target::Filter,
                IOCTL_KS_METHOD,
                request(&KSMETHODSETID_STREAM_ALLOCATOR, 0, method_type::WRITE, &[]),
                8,
                Kernel,
            ),
            S::NOT_FOUND,
        ),
        case(
            "method: request of 10 bytes",
            ioctl(Target::Allocator, IOCTL_KS_METHOD, vec![0; 10], 8, Kernel),
            S::INVALID_BUFFER_SIZE,
        ),
        case(
            "free: another allocator's frame",
            Op::Free(FrameRef::Foreign),
            S::INVALID_PARAMETER,
        ),
        case(
            "free: inside a frame",
            Op::Free(FrameRef::Outstanding(8)),
            S::INVALID_PARAMETER,
        ),
        case(
            "free: a frame already free (double free)",
            Op::Free(FrameRef::Returned),
            S::INVALID_PARAMETER,
        ),
        case(
            "free: null",
            Op::Free(FrameRef::Raw(0)),
            S::INVALID_PARAMETER,
        ),
        case(
            "free: a kernel-looking wild pointer",
            Op::Free(FrameRef::Raw(0xFFFF_8000_0000_0000)),
            S::INVALID_PARAMETER,
        ),
        // ---- events ----
        case(
            "event: clients may not enable INTERNAL_FREEFRAME",
            enable(
                stream_allocator::EVENT_INTERNAL_FREEFRAME,
                event_type::ENABLE,
                event_data(eventf::EVENT_HANDLE, 0),
                Kernel,
            ),
            S::INVALID_DEVICE_REQUEST,
        ),
        case(
            "event: KSEVENTDATA of 16 bytes",
            enable(
                stream_allocator::EVENT_FREEFRAME,
                event_type::ENABLE,
                vec![0; 16],
                Kernel,
            ),
            S::BUFFER_TOO_SMALL,
        ),
        case(
            "event: a handle that is no event",
            enable(
                stream_allocator::EVENT_FREEFRAME,
                event_type::ENABLE,
                event_data(eventf::EVENT_HANDLE, BAD_HANDLE),
                Kernel,
            ),
            S::INVALID_HANDLE,
        ),
        case(
            "event: DPC notification",
            enable(
                stream_allocator::EVENT_FREEFRAME,
                event_type::ENABLE,
                event_data(eventf::DPC, 0x1000),
                Kernel,
            ),
            S::INVALID_PARAMETER,
        ),
        case(
            "event: KEVENT pointer from user mode",
            enable(
                stream_allocator::EVENT_FREEFRAME,
                event_type::ENABLE,
                event_data(eventf::EVENT_OBJECT, 0x1000),
                User,
            ),
            S::INVALID_PARAMETER,
        ),
        case(
            "event: ONESHOT",
            enable(
                stream_allocator::EVENT_FREEFRAME,
                event_type::ONESHOT,
                event_data(eventf::EVENT_HANDLE, 0),
                Kernel,
            ),
            S::INVALID_PARAMETER,
        ),
        case(
            "event: unknown event id",
            enable(
                7,
                event_type::ENABLE,
                event_data(eventf::EVENT_HANDLE, 0),
                Kernel,
            ),
            S::NOT_FOUND,
        ),
        case(
            "event: disable of an event never enabled",
            Op::Ioctl {
                target: Target::Allocator,
                code: IOCTL_KS_DISABLE_EVENT,
                input: Vec::new(),
                data: Vec::new(),
                mode: Kernel,
            },
            S::NOT_FOUND,
        ),
        case(
            "event: disable with a short KSEVENTDATA",
            ioctl(
                Target::Allocator,
                IOCTL_KS_DISABLE_EVENT,
                vec![0; 8],
                0,
                Kernel,
            ),
            S::INVALID_BUFFER_SIZE,
        ),
        // ---- after close ----
        case(
            "closed: ALLOC",
            Op::AfterClose(Box::new(method(
                stream_allocator::METHOD_ALLOC,
                method_type::WRITE,
                8,
            ))),
            S::INVALID_DEVICE_STATE,
        ),
        case(
            "closed: FUNCTIONTABLE",
            Op::AfterClose(Box::new(property(
                Target::Allocator,
                alloc_set,
                stream_allocator::PROPERTY_FUNCTIONTABLE,
                get,
                &[],
                16,
            ))),
            S::INVALID_DEVICE_STATE,
        ),
        case(
            "closed: enable FREEFRAME",
            Op::AfterClose(Box::new(enable(
                stream_allocator::EVENT_FREEFRAME,
                event_type::ENABLE,
                Vec::new(),
                Kernel,
            ))),
            S::INVALID_DEVICE_STATE,
        ),
        case(
            "closed: FREE method",
            Op::AfterClose(Box::new(Op::Free(FrameRef::Returned))),
            S::INVALID_DEVICE_STATE,
        ),
        // ---- user-mode requestors: no kernel address, no unbounded pool ----
        case(
            "user: ALLOC method (a frame is a kernel address)",
            ioctl(
                Target::Allocator,
                IOCTL_KS_METHOD,
                request(
                    &KSMETHODSETID_STREAM_ALLOCATOR,
                    stream_allocator::METHOD_ALLOC,
                    method_type::WRITE,
                    &[],
                ),
                8,
                User,
            ),
            S::INVALID_DEVICE_REQUEST,
        ),
        case(
            "user: FREE method",
            Op::Ioctl {
                target: Target::Allocator,
                code: IOCTL_KS_METHOD,
                input: request(
                    &KSMETHODSETID_STREAM_ALLOCATOR,
                    stream_allocator::METHOD_FREE,
                    method_type::READ,
                    &[],
                ),
                data: vec![0; 8],
                mode: User,
            },
            S::INVALID_DEVICE_REQUEST,
        ),
        case(
            "user: allocator create past the driver's frame budget",
            given(Given::BudgetSpent, user_alloc_create()),
            S::INSUFFICIENT_RESOURCES,
        ),
        case(
            "user: allocator create past the process's pool quota",
            given(Given::QuotaSpent, user_alloc_create()),
            S::INSUFFICIENT_RESOURCES,
        ),
        case(
            "pin: one allocator more than MAX_ALLOCATORS_PER_PIN",
            given(
                Given::PinFull,
                alloc_create(&framing_bytes(&harness_framing())),
            ),
            S::INSUFFICIENT_RESOURCES,
        ),
        // ---- parents closed first: the children do not need them ----
        sized(
            "parent closed first: allocator STATUS after its pin and filter closed",
            given(
                Given::ParentsClosed,
                property(
                    Target::Allocator,
                    alloc_set,
                    stream_allocator::PROPERTY_STATUS,
                    get,
                    &[],
                    32,
                ),
            ),
            S::SUCCESS,
            32,
        ),
        case(
            "parent closed first: FREE of a frame that is not out",
            given(Given::ParentsClosed, Op::Free(FrameRef::Returned)),
            S::INVALID_PARAMETER,
        ),
    ]
}

/// A user-mode allocator create on pin 0 with the harness's framing.
fn user_alloc_create() -> Op {
    Op::Create {
        parent: Target::Pin,
        name: create_name(&KSNAME_ALLOCATOR, Some(&framing_bytes(&harness_framing()))),
        mode: RequestorMode::User,
    }
}

/// Everything a case must leave as it found it.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    allocator: (u32, u32, u32, u32, bool, bool),
    counters: (u64, u64, u64, u64, u64),
    pin_connection: Vec<u8>,
    instances: Vec<u8>,
    live_blocks: usize,
    live_files: i64,
}

struct Harness {
    client: KsClient,
    filter: Option<Handle>,
    pin: Option<Handle>,
    allocator: Handle,
    /// Allocators [`Given::PinFull`] added on pin 0.
    extra: Vec<Handle>,
    other_pin: Handle,
    other: Handle,
    held: usize,
    returned: usize,
    foreign: usize,
    spare_event: (usize, Arc<ModelEvent>),
}

impl Harness {
    fn new() -> Result<Self, String> {
        fn err(what: &'static str) -> impl Fn(NtStatus) -> String {
            move |s| format!("harness: {what}: {s:?}")
        }
        let kernel = ModelKernel::new();
        let client = KsClient::kernel(ModelDriver::new(kernel));
        let filter = client.open_filter().map_err(err("filter"))?;
        let pin = client.create_pin(&filter, 0).map_err(err("pin 0"))?;
        let allocator = client
            .create_allocator(&pin, &harness_framing())
            .map_err(err("allocator"))?;
        let other_pin = client.create_pin(&filter, 1).map_err(err("pin 1"))?;
        let other = client
            .create_allocator(&other_pin, &harness_framing())
            .map_err(err("second allocator"))?;
        let table = client
            .function_table(&allocator)
            .map_err(err("function table"))?;
        let held = table.allocate_at_dispatch().map_err(err("allocate"))?;
        let returned = table.allocate_at_dispatch().map_err(err("allocate"))?;
        table.free_at_dispatch(returned);
        let foreign = client
            .function_table(&other)
            .and_then(|t| t.allocate_at_dispatch())
            .map_err(err("foreign"))?;
        let event = Arc::new(ModelEvent::notification());
        let handle = client.driver().kernel().event_handle(&event);
        Ok(Self {
            client,
            filter: Some(filter),
            pin: Some(pin),
            allocator,
            extra: Vec::new(),
            other_pin,
            other,
            held,
            returned,
            foreign,
            spare_event: (handle, event),
        })
    }

    const fn handle(&self, target: Target) -> Option<&Handle> {
        match target {
            Target::Device => None,
            Target::Filter => self.filter.as_ref(),
            Target::Pin => self.pin.as_ref(),
            Target::Allocator => Some(&self.allocator),
        }
    }

    /// Brings the harness to `setup` (before the "before" state is read).
    fn prepare(&mut self, setup: Given) -> Result<(), String> {
        let kernel = self.client.driver().kernel().clone();
        match setup {
            Given::BudgetSpent => {
                let budget = kernel.frame_budget();
                budget.set_limit(budget.in_use());
            }
            Given::QuotaSpent => kernel.set_process_quota(Some(kernel.process_quota_used())),
            Given::PinFull => {
                let pin = self.pin.as_ref().ok_or("no pin")?;
                while self.extra.len() + 1 < MAX_ALLOCATORS_PER_PIN as usize {
                    let extra = self
                        .client
                        .create_allocator(pin, &harness_framing())
                        .map_err(|s| format!("harness: allocator {}: {s:?}", self.extra.len()))?;
                    self.extra.push(extra);
                }
            }
            Given::ParentsClosed => {
                for handle in [self.pin.take(), self.filter.take()].into_iter().flatten() {
                    self.client.close(handle);
                }
            }
        }
        Ok(())
    }

    fn state(&self) -> Observed {
        let snap: Snapshot = self
            .allocator
            .object()
            .as_allocator()
            .map(|allocator| allocator.snapshot())
            .expect("allocator");
        let c = snap.counters;
        let pin_state = self.pin.as_ref().map_or_else(Vec::new, |p| {
            self.client
                .get(
                    p,
                    &KSPROPSETID_CONNECTION,
                    connection::PROPERTY_STATE,
                    &[],
                    4,
                )
                .unwrap_or_default()
        });
        let instances = self.filter.as_ref().map_or_else(Vec::new, |f| {
            [0u32, 1]
                .iter()
                .flat_map(|&id| {
                    self.client
                        .get(f, &KSPROPSETID_PIN, pin::CINSTANCES, &pin_id(id), 8)
                        .unwrap_or_default()
                })
                .collect()
        });
        let kernel = self.client.driver().kernel();
        Observed {
            allocator: (
                snap.total,
                snap.free,
                snap.outstanding,
                snap.pending,
                snap.closed,
                snap.memory_released,
            ),
            counters: (
                c.allocations,
                c.frees,
                c.pends,
                c.cancels,
                c.peak_outstanding,
            ),
            pin_connection: pin_state,
            instances,
            live_blocks: kernel.live_blocks(),
            live_files: kernel.live_files(),
        }
    }

    const fn frame(&self, which: FrameRef) -> usize {
        match which {
            FrameRef::Outstanding(offset) => self.held + offset,
            FrameRef::Returned => self.returned,
            FrameRef::Foreign => self.foreign,
            FrameRef::Raw(address) => address,
        }
    }

    /// Runs `op`: its status and Information.
    fn run(&self, op: &Op) -> (NtStatus, usize) {
        match op {
            Op::Create { parent, name, mode } => {
                let parent = self.handle(*parent).map(|h| &**h);
                match self.client.driver().create_as(parent, name, *mode) {
                    Ok(handle) => {
                        // Unexpected success: close it so the leak check stays meaningful.
                        self.client.close(handle);
                        (NtStatus::SUCCESS, 0)
                    }
                    Err(status) => (status, 0),
                }
            }
            Op::Ioctl {
                target,
                code,
                input,
                data,
                mode,
            } => {
                let file = self.handle(*target).expect("IOCTLs go to an object");
                let mut input = input.clone();
                // The spare handle stands in for "a valid event never enabled".
                if *code == IOCTL_KS_DISABLE_EVENT && input.is_empty() {
                    input = event_data(eventf::EVENT_HANDLE, self.spare_event.0);
                }
                let mut data = data.clone();
                if *code == IOCTL_KS_ENABLE_EVENT && data.is_empty() {
                    data = event_data(eventf::EVENT_HANDLE, self.spare_event.0);
                }
                let irp = self
                    .client
                    .driver()
                    .device_control(file, *code, &input, &data, *mode);
                let done = irp
                    .completion()
                    .expect("catalogue requests complete at once");
                (done.status, done.information)
            }
            Op::Free(which) => (self.client.free(&self.allocator, self.frame(*which)), 0),
            Op::AfterClose(inner) | Op::Given(_, inner) => self.run(inner),
        }
    }

    fn teardown(self) -> Result<(), String> {
        let table = self.client.function_table(&self.other).ok();
        if let Some(table) = table {
            table.free_at_dispatch(self.foreign);
        }
        // The allocator may be closed (AfterClose): return the frame through the
        // engine directly, as a table client still holding the file object would.
        {
            let object = self.allocator.object();
            let allocator = object.as_allocator().expect("allocator");
            crate::driver::at_dispatch(|| allocator.free(self.held))
                .map_err(|s| format!("teardown free: {s:?}"))?;
        }
        let kernel = self.client.driver().kernel().clone();
        kernel.close_event_handle(self.spare_event.0);
        for handle in self.extra {
            self.client.close(handle);
        }
        for handle in [
            Some(self.other),
            Some(self.other_pin),
            Some(self.allocator),
            self.pin,
            self.filter,
        ]
        .into_iter()
        .flatten()
        {
            self.client.close(handle);
        }
        kernel.frame_budget().set_limit(DEFAULT_FRAME_BUDGET);
        kernel.set_process_quota(None);
        if kernel.frame_budget().in_use() != 0 || kernel.process_quota_used() != 0 {
            return Err("budget or quota still charged after teardown".to_string());
        }
        std::panic::catch_unwind(|| kernel.assert_no_leaks())
            .map_err(|_| "leak after teardown".to_string())
    }
}

/// Runs one case on a fresh graph: the documented status (and Information), no state
/// change, no leak.
///
/// # Errors
/// A description of the first thing that did not hold.
pub fn run(case: &Case) -> Result<(), String> {
    let mut harness = Harness::new()?;
    match &case.op {
        Op::AfterClose(_) => harness.allocator.object().cleanup(),
        Op::Given(setup, _) => harness.prepare(*setup)?,
        _ => {}
    }
    let before = harness.state();
    let (status, information) = harness.run(&case.op);
    let after = harness.state();
    let mut problems = Vec::new();
    if status != case.status {
        problems.push(format!("status {status:?}, documented {:?}", case.status));
    }
    if let Some(expected) = case.information {
        if information != expected {
            problems.push(format!("Information {information}, documented {expected}"));
        }
    }
    if before != after {
        problems.push(format!(
            "state changed:\n  before {before:?}\n  after  {after:?}"
        ));
    }
    if let Err(leak) = harness.teardown() {
        problems.push(leak);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", case.name, problems.join("; ")))
    }
}
