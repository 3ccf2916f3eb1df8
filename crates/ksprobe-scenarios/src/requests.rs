//! Raw KS IOCTLs, each with the status the driver documents for it.
//!
//! Two tables: the bad-input catalogue's IOCTL cases, and what only a real kernel can
//! show (user-mode requests from bad or kernel addresses, the user-buffer size limit).
//!
//! The catalogue itself (`crates/ksalloc-model/src/catalogue.rs`) is std code over the
//! model's harness; this is the same IOCTL cases as `no_std` data, so ksprobe can send
//! them to the real driver. Until the two are one table, `tests/requests.rs` checks that
//! every [`catalogue_cases`] entry equals the catalogue's case of the same name (bytes,
//! mode, target, status, Information).

use alloc::vec;
use alloc::vec::Vec;

use ks_abi::guid::{
    KSEVENTSETID_STREAM_ALLOCATOR, KSMETHODSETID_STREAM_ALLOCATOR, KSPROPSETID_CONNECTION,
    KSPROPSETID_PIN, KSPROPSETID_STREAM, KSPROPSETID_STREAM_ALLOCATOR, KSPROPSETID_TOPOLOGY,
};
use ks_abi::ioctl::{
    IOCTL_KS_DISABLE_EVENT, IOCTL_KS_ENABLE_EVENT, IOCTL_KS_METHOD, IOCTL_KS_PROPERTY,
    IOCTL_KS_READ_STREAM,
};
use ks_abi::ks::{
    connection, event_type, eventf, method_type, pin, property_type, stream, stream_allocator,
};
use ks_abi::{Guid, NtStatus};

/// The object a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The filter.
    Filter,
    /// Pin 0.
    Pin,
    /// The allocator on pin 0.
    Allocator,
}

/// `IRP.RequestorMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A kernel-mode requestor: buffers used in place.
    Kernel,
    /// A user-mode requestor: the driver must probe and capture every buffer.
    User,
}

/// A request or data buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Buffer {
    /// These bytes, in a buffer the client owns (for a user-mode request, in its
    /// process's user address space).
    Bytes(Vec<u8>),
    /// A `KSEVENTDATA` naming a valid event that was never enabled (the client makes
    /// one for the case).
    SpareEvent,
    /// `len` bytes at `address`, which the client passes as is and never touches.
    Bad {
        /// The address.
        address: usize,
        /// The length.
        len: usize,
    },
}

impl Buffer {
    /// Its length.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Bytes(b) => b.len(),
            Self::SpareEvent => EVENT_DATA_SIZE,
            Self::Bad { len, .. } => *len,
        }
    }

    /// Whether it is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One IOCTL and its documented result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoctlCase {
    /// What is wrong with the request (the catalogue's name where it has the case).
    pub name: &'static str,
    /// Where it goes.
    pub target: Target,
    /// The IOCTL code.
    pub code: u32,
    /// The request buffer (`Type3InputBuffer`).
    pub input: Buffer,
    /// The data buffer (`UserBuffer`); its length is the output length.
    pub data: Buffer,
    /// The requestor mode.
    pub mode: Mode,
    /// The documented status.
    pub status: NtStatus,
    /// The documented `IoStatus.Information`, where it matters.
    pub information: Option<usize>,
}

/// `STATUS_ACCESS_VIOLATION`: what a fault in the driver's capture of a user buffer
/// must turn into (ntstatus.h).
#[allow(clippy::cast_possible_wrap)] // An NTSTATUS bit pattern.
pub const ACCESS_VIOLATION: NtStatus = NtStatus(0xC000_0005_u32 as i32);

/// Bytes of a `KSEVENTDATA` on x64.
pub const EVENT_DATA_SIZE: usize = 32;
/// A handle value no event has (the catalogue's).
pub const BAD_HANDLE: usize = 0xDEAD_0000;
/// Largest buffer ksalloc captures from a user-mode requestor (`src/seh`:
/// `MAX_USER_BUFFER`, 64 KiB).
pub const MAX_USER_BUFFER: usize = 64 * 1024;

/// A `KSIDENTIFIER` request followed by `extra`.
#[must_use]
pub fn request(set: &Guid, id: u32, flags: u32, extra: &[u8]) -> Vec<u8> {
    let mut out = crate::ks::identifier(set, id, flags).to_vec();
    out.extend_from_slice(extra);
    out
}

/// A `KSEVENTDATA` of `kind` naming `object`.
#[must_use]
pub fn event_data(kind: u32, object: usize) -> Vec<u8> {
    let mut out = vec![0; EVENT_DATA_SIZE];
    out[..4].copy_from_slice(&kind.to_le_bytes());
    out[8..16].copy_from_slice(&(object as u64).to_le_bytes());
    out
}

fn zeros(len: usize) -> Buffer {
    Buffer::Bytes(vec![0; len])
}

const fn case(
    name: &'static str,
    target: Target,
    code: u32,
    input: Buffer,
    data: Buffer,
    mode: Mode,
    status: NtStatus,
) -> IoctlCase {
    IoctlCase {
        name,
        target,
        code,
        input,
        data,
        mode,
        status,
        information: None,
    }
}

const fn sized(mut c: IoctlCase, information: usize) -> IoctlCase {
    c.information = Some(information);
    c
}

fn property(
    name: &'static str,
    target: Target,
    (set, id, flags): (Guid, u32, u32),
    extra: &[u8],
    data_len: usize,
    status: NtStatus,
) -> IoctlCase {
    case(
        name,
        target,
        IOCTL_KS_PROPERTY,
        Buffer::Bytes(request(&set, id, flags, extra)),
        zeros(data_len),
        Mode::Kernel,
        status,
    )
}

fn method(name: &'static str, id: u32, flags: u32, data_len: usize, status: NtStatus) -> IoctlCase {
    case(
        name,
        Target::Allocator,
        IOCTL_KS_METHOD,
        Buffer::Bytes(request(&KSMETHODSETID_STREAM_ALLOCATOR, id, flags, &[])),
        zeros(data_len),
        Mode::Kernel,
        status,
    )
}

fn enable(
    name: &'static str,
    id: u32,
    flags: u32,
    data: Buffer,
    mode: Mode,
    status: NtStatus,
) -> IoctlCase {
    case(
        name,
        Target::Allocator,
        IOCTL_KS_ENABLE_EVENT,
        Buffer::Bytes(request(&KSEVENTSETID_STREAM_ALLOCATOR, id, flags, &[])),
        data,
        mode,
        status,
    )
}

fn pin_id(id: u32) -> [u8; 8] {
    let mut out = [0; 8];
    out[..4].copy_from_slice(&id.to_le_bytes());
    out
}

/// The catalogue's IOCTL cases (`Op::Ioctl`), in its order.
///
/// Not here: its creates (the
/// scenarios create through the real I/O manager or the stand-in, with good names), its
/// FREE cases (they name frames of its harness) and its after-close cases.
#[must_use]
#[allow(clippy::too_many_lines)] // A table.
pub fn catalogue_cases() -> Vec<IoctlCase> {
    use Mode::{Kernel, User};
    use NtStatus as S;
    use Target::{Allocator, Filter, Pin};
    let alloc = KSPROPSETID_STREAM_ALLOCATOR;
    let status = stream_allocator::PROPERTY_STATUS;
    let table = stream_allocator::PROPERTY_FUNCTIONTABLE;
    let get = property_type::GET;
    let unknown = Guid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let handle_data = |object| Buffer::Bytes(event_data(eventf::EVENT_HANDLE, object));
    vec![
        case(
            "ioctl: a stream IOCTL on the allocator",
            Allocator,
            IOCTL_KS_READ_STREAM,
            zeros(0),
            zeros(0),
            Kernel,
            S::INVALID_DEVICE_REQUEST,
        ),
        case(
            "property: request of 23 bytes",
            Allocator,
            IOCTL_KS_PROPERTY,
            zeros(23),
            zeros(32),
            Kernel,
            S::INVALID_BUFFER_SIZE,
        ),
        case(
            "property: empty request",
            Allocator,
            IOCTL_KS_PROPERTY,
            zeros(0),
            zeros(32),
            Kernel,
            S::INVALID_BUFFER_SIZE,
        ),
        property(
            "property: unknown set",
            Allocator,
            (unknown, 0, get),
            &[],
            32,
            S::NOT_FOUND,
        ),
        property(
            "property: unknown id",
            Allocator,
            (alloc, 9, get),
            &[],
            32,
            S::NOT_FOUND,
        ),
        property(
            "property: GET and SET at once",
            Allocator,
            (alloc, status, 3),
            &[],
            32,
            S::INVALID_PARAMETER,
        ),
        property(
            "property: no flags",
            Allocator,
            (alloc, status, 0),
            &[],
            32,
            S::INVALID_PARAMETER,
        ),
        property(
            "property: SET on Get-only STATUS",
            Allocator,
            (alloc, status, property_type::SET),
            &[],
            32,
            S::INVALID_DEVICE_REQUEST,
        ),
        property(
            "property: SET on Get-only FUNCTIONTABLE",
            Allocator,
            (alloc, table, property_type::SET),
            &[],
            16,
            S::INVALID_DEVICE_REQUEST,
        ),
        case(
            "property: FUNCTIONTABLE from user mode",
            Allocator,
            IOCTL_KS_PROPERTY,
            Buffer::Bytes(request(&alloc, table, get, &[])),
            zeros(16),
            User,
            S::INVALID_DEVICE_REQUEST,
        ),
        sized(
            property(
                "property: STATUS size query",
                Allocator,
                (alloc, status, get),
                &[],
                0,
                S::BUFFER_OVERFLOW,
            ),
            32,
        ),
        sized(
            property(
                "property: STATUS into 31 bytes",
                Allocator,
                (alloc, status, get),
                &[],
                31,
                S::BUFFER_TOO_SMALL,
            ),
            32,
        ),
        sized(
            property(
                "property: FUNCTIONTABLE into 8 bytes",
                Allocator,
                (alloc, table, get),
                &[],
                8,
                S::BUFFER_TOO_SMALL,
            ),
            16,
        ),
        sized(
            property(
                "property: BASICSUPPORT into 2 bytes",
                Allocator,
                (alloc, status, property_type::BASICSUPPORT),
                &[],
                2,
                S::BUFFER_TOO_SMALL,
            ),
            40,
        ),
        property(
            "property: SETSUPPORT of an unknown set",
            Allocator,
            (unknown, 0, property_type::SETSUPPORT),
            &[],
            0,
            S::NOT_FOUND,
        ),
        property(
            "filter: pin property without KSP_PIN",
            Filter,
            (KSPROPSETID_PIN, pin::DATAFLOW, get),
            &[],
            4,
            S::INVALID_PARAMETER,
        ),
        property(
            "filter: pin property of pin 7",
            Filter,
            (KSPROPSETID_PIN, pin::DATAFLOW, get),
            &pin_id(7),
            4,
            S::INVALID_PARAMETER,
        ),
        property(
            "filter: pin category (none)",
            Filter,
            (KSPROPSETID_PIN, pin::CATEGORY, get),
            &pin_id(0),
            16,
            S::NOT_FOUND,
        ),
        property(
            "filter: topology property with the node flag",
            Filter,
            (KSPROPSETID_TOPOLOGY, 0, get | property_type::TOPOLOGY),
            &[0; 8],
            64,
            S::INVALID_PARAMETER,
        ),
        case(
            "pin: state 4",
            Pin,
            IOCTL_KS_PROPERTY,
            Buffer::Bytes(request(
                &KSPROPSETID_CONNECTION,
                connection::PROPERTY_STATE,
                property_type::SET,
                &[],
            )),
            Buffer::Bytes(4u32.to_le_bytes().to_vec()),
            Kernel,
            S::INVALID_PARAMETER,
        ),
        sized(
            property(
                "pin: STREAM_ALLOCATOR set from 4 bytes",
                Pin,
                (
                    KSPROPSETID_STREAM,
                    stream::PROPERTY_ALLOCATOR,
                    property_type::SET,
                ),
                &[],
                4,
                S::BUFFER_TOO_SMALL,
            ),
            8,
        ),
        property(
            "pin: allocator property set on a pin",
            Pin,
            (alloc, status, get),
            &[],
            32,
            S::NOT_FOUND,
        ),
        method(
            "method: ALLOC with READ flags",
            stream_allocator::METHOD_ALLOC,
            method_type::READ,
            8,
            S::INVALID_PARAMETER,
        ),
        sized(
            method(
                "method: ALLOC into 4 bytes",
                stream_allocator::METHOD_ALLOC,
                method_type::WRITE,
                4,
                S::BUFFER_TOO_SMALL,
            ),
            8,
        ),
        sized(
            method(
                "method: ALLOC size query",
                stream_allocator::METHOD_ALLOC,
                method_type::WRITE,
                0,
                S::BUFFER_OVERFLOW,
            ),
            8,
        ),
        method("method: unknown id", 5, method_type::WRITE, 8, S::NOT_FOUND),
        case(
            "method: on the filter",
            Filter,
            IOCTL_KS_METHOD,
            Buffer::Bytes(request(
                &KSMETHODSETID_STREAM_ALLOCATOR,
                0,
                method_type::WRITE,
                &[],
            )),
            zeros(8),
            Kernel,
            S::NOT_FOUND,
        ),
        case(
            "method: request of 10 bytes",
            Allocator,
            IOCTL_KS_METHOD,
            zeros(10),
            zeros(8),
            Kernel,
            S::INVALID_BUFFER_SIZE,
        ),
        enable(
            "event: clients may not enable INTERNAL_FREEFRAME",
            stream_allocator::EVENT_INTERNAL_FREEFRAME,
            event_type::ENABLE,
            handle_data(0),
            Kernel,
            S::INVALID_DEVICE_REQUEST,
        ),
        enable(
            "event: KSEVENTDATA of 16 bytes",
            stream_allocator::EVENT_FREEFRAME,
            event_type::ENABLE,
            zeros(16),
            Kernel,
            S::BUFFER_TOO_SMALL,
        ),
        enable(
            "event: a handle that is no event",
            stream_allocator::EVENT_FREEFRAME,
            event_type::ENABLE,
            handle_data(BAD_HANDLE),
            Kernel,
            S::INVALID_HANDLE,
        ),
        enable(
            "event: DPC notification",
            stream_allocator::EVENT_FREEFRAME,
            event_type::ENABLE,
            Buffer::Bytes(event_data(eventf::DPC, 0x1000)),
            Kernel,
            S::INVALID_PARAMETER,
        ),
        enable(
            "event: KEVENT pointer from user mode",
            stream_allocator::EVENT_FREEFRAME,
            event_type::ENABLE,
            Buffer::Bytes(event_data(eventf::EVENT_OBJECT, 0x1000)),
            User,
            S::INVALID_PARAMETER,
        ),
        enable(
            "event: ONESHOT",
            stream_allocator::EVENT_FREEFRAME,
            event_type::ONESHOT,
            handle_data(0),
            Kernel,
            S::INVALID_PARAMETER,
        ),
        enable(
            "event: unknown event id",
            7,
            event_type::ENABLE,
            handle_data(0),
            Kernel,
            S::NOT_FOUND,
        ),
        case(
            "event: disable of an event never enabled",
            Allocator,
            IOCTL_KS_DISABLE_EVENT,
            Buffer::SpareEvent,
            zeros(0),
            Kernel,
            S::NOT_FOUND,
        ),
        case(
            "event: disable with a short KSEVENTDATA",
            Allocator,
            IOCTL_KS_DISABLE_EVENT,
            zeros(8),
            zeros(0),
            Kernel,
            S::INVALID_BUFFER_SIZE,
        ),
        // User-mode requestors get no frame (a kernel address) and return none.
        case(
            "user: ALLOC method (a frame is a kernel address)",
            Allocator,
            IOCTL_KS_METHOD,
            Buffer::Bytes(request(
                &KSMETHODSETID_STREAM_ALLOCATOR,
                stream_allocator::METHOD_ALLOC,
                method_type::WRITE,
                &[],
            )),
            zeros(8),
            Mode::User,
            S::INVALID_DEVICE_REQUEST,
        ),
        case(
            "user: FREE method",
            Allocator,
            IOCTL_KS_METHOD,
            Buffer::Bytes(request(
                &KSMETHODSETID_STREAM_ALLOCATOR,
                stream_allocator::METHOD_FREE,
                method_type::READ,
                &[],
            )),
            zeros(8),
            Mode::User,
            S::INVALID_DEVICE_REQUEST,
        ),
    ]
}

/// Every case the `bad_requests` scenario sends, in order: [`catalogue_cases`], then
/// [`user_cases`]. A case's position is its bit in a failed result's verdict mask.
#[must_use]
pub fn all_cases() -> Vec<IoctlCase> {
    let mut all = catalogue_cases();
    all.extend(user_cases());
    all
}

/// At most this many cases: a failed result carries their verdicts as a 128-bit mask in
/// its two values.
pub const MAX_CASES: usize = 128;

/// The two result values of a verdict mask (bit i set: case i did not hold).
#[must_use]
#[allow(clippy::cast_possible_truncation)] // The two halves, on purpose.
pub const fn mask_values(mask: u128) -> [u64; 2] {
    [mask as u64, (mask >> 64) as u64]
}

/// The verdict mask of a failed result's two values.
#[must_use]
pub const fn values_mask(values: [u64; 2]) -> u128 {
    values[0] as u128 | (values[1] as u128) << 64
}

/// User-mode requests only a real kernel can check.
///
/// Good ones (the capture and copy back), buffers at an unmapped and at a kernel address (the SEH capture must turn the
/// fault into `STATUS_ACCESS_VIOLATION` and the driver keep serving), and the capture's
/// size limit (refused before the buffer is touched).
#[must_use]
#[allow(clippy::too_many_lines)] // A table.
pub fn user_cases() -> Vec<IoctlCase> {
    use Mode::User;
    use NtStatus as S;
    use Target::{Allocator, Filter};
    let status = request(
        &KSPROPSETID_STREAM_ALLOCATOR,
        stream_allocator::PROPERTY_STATUS,
        property_type::GET,
        &[],
    );
    let unmapped = |len| Buffer::Bad { address: 0x10, len };
    let kernel = |len| Buffer::Bad {
        address: 0xFFFF_8000_0000_1000,
        len,
    };
    let alloc = request(
        &KSMETHODSETID_STREAM_ALLOCATOR,
        stream_allocator::METHOD_ALLOC,
        method_type::WRITE,
        &[],
    );
    vec![
        sized(
            case(
                "user: allocator STATUS",
                Allocator,
                IOCTL_KS_PROPERTY,
                Buffer::Bytes(status.clone()),
                zeros(32),
                User,
                S::SUCCESS,
            ),
            32,
        ),
        sized(
            case(
                "user: filter pin CTYPES",
                Filter,
                IOCTL_KS_PROPERTY,
                Buffer::Bytes(request(
                    &KSPROPSETID_PIN,
                    pin::CTYPES,
                    property_type::GET,
                    &[],
                )),
                zeros(4),
                User,
                S::SUCCESS,
            ),
            4,
        ),
        case(
            "user: property request at an unmapped address",
            Allocator,
            IOCTL_KS_PROPERTY,
            unmapped(24),
            zeros(32),
            User,
            ACCESS_VIOLATION,
        ),
        case(
            "user: property request at a kernel address",
            Allocator,
            IOCTL_KS_PROPERTY,
            kernel(24),
            zeros(32),
            User,
            ACCESS_VIOLATION,
        ),
        case(
            "user: STATUS into an unmapped buffer",
            Allocator,
            IOCTL_KS_PROPERTY,
            Buffer::Bytes(status.clone()),
            unmapped(32),
            User,
            ACCESS_VIOLATION,
        ),
        case(
            "user: STATUS into a kernel buffer",
            Allocator,
            IOCTL_KS_PROPERTY,
            Buffer::Bytes(status),
            kernel(32),
            User,
            ACCESS_VIOLATION,
        ),
        case(
            "user: ALLOC request at an unmapped address",
            Allocator,
            IOCTL_KS_METHOD,
            unmapped(24),
            zeros(8),
            User,
            ACCESS_VIOLATION,
        ),
        case(
            "user: ALLOC into an unmapped buffer",
            Allocator,
            IOCTL_KS_METHOD,
            Buffer::Bytes(alloc),
            unmapped(8),
            User,
            ACCESS_VIOLATION,
        ),
        case(
            "user: enable FREEFRAME with KSEVENTDATA unmapped",
            Allocator,
            IOCTL_KS_ENABLE_EVENT,
            Buffer::Bytes(request(
                &KSEVENTSETID_STREAM_ALLOCATOR,
                stream_allocator::EVENT_FREEFRAME,
                event_type::ENABLE,
                &[],
            )),
            unmapped(EVENT_DATA_SIZE),
            User,
            ACCESS_VIOLATION,
        ),
        case(
            "user: request past the 64 KiB capture limit",
            Allocator,
            IOCTL_KS_PROPERTY,
            unmapped(MAX_USER_BUFFER + 1),
            zeros(32),
            User,
            S::INVALID_PARAMETER,
        ),
    ]
}
