//! Target `request_sequence`: `arbitrary` sequences of operations on the whole object
//! model, checked after every step against a reference model kept by the harness.
//!
//! Operations: open filters, create pins and allocators (structured or from raw create
//! names relative to any object), raw IOCTLs with fuzzed buffers on any object,
//! FUNCTIONTABLE (kernel and user requestors), `AllocateFrame` / `FreeFrame` through
//! the table at DISPATCH_LEVEL with frames that are out, inside a frame, returned,
//! another allocator's, or raw addresses, the ALLOC and FREE methods, cancelling pended
//! ALLOCs, FREEFRAME events by handle and by object, pin state, and closing handles in
//! any order. Function tables only ever come from the driver's own answer to a
//! structured FUNCTIONTABLE request: addresses from fuzzed answers are never called.
//!
//! The reference model knows which frames are out with whom, which ALLOCs are pending,
//! which pins are open on which filter and which events are enabled where. After every
//! step: every pended ALLOC that completed did so with a frame or STATUS_CANCELLED; no
//! frame is out twice, each lies inside live pool memory; every allocator is conserved
//! and its snapshot (outstanding, pending, cleaned up, open until its last reference,
//! allocations minus frees) equals the model; an open allocator with pending ALLOCs has
//! no free frame; every open filter's instance counts equal its open pins, whatever
//! order parents and children closed in; the kernel's live IRPs are exactly the pending
//! ALLOCs. Each operation's status is the documented one, including the limits (ALLOC
//! and FREE refused to user mode, at most `MAX_ALLOCATORS_PER_PIN` allocators per pin,
//! the frame budget). The harness keeps a reference on every allocator it created, so
//! closing an allocator's handle is IRP_MJ_CLEANUP and the function table keeps
//! working. At the end every handle is closed, every frame returned, the references
//! dropped (IRP_MJ_CLOSE releases the memory) and the kernel has no leak.

use std::collections::BTreeSet;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use ks_abi::guid::{
    KSEVENTSETID_STREAM_ALLOCATOR, KSMETHODSETID_STREAM_ALLOCATOR, KSNAME_ALLOCATOR, KSNAME_FILTER,
    KSNAME_PIN, KSPROPSETID_CONNECTION, KSPROPSETID_STREAM_ALLOCATOR,
};
use ks_abi::ioctl::{
    IOCTL_KS_DISABLE_EVENT, IOCTL_KS_ENABLE_EVENT, IOCTL_KS_METHOD, IOCTL_KS_PROPERTY,
};
use ks_abi::ks::{
    connection, event_type, eventf, method_type, property_type, stream_allocator,
    KsAllocatorFraming,
};
use ks_abi::NtStatus;
use ksalloc_core::ks::{KsObject, ObjectKind};
use ksalloc_core::limits::{DEFAULT_FRAME_BUDGET, MAX_ALLOCATORS_PER_PIN};
use ksalloc_core::pending::MAX_PENDING;
use ksalloc_core::wire;
use ksalloc_model::client::{create_name, framing_bytes, request};
use ksalloc_model::driver::at_dispatch;
use ksalloc_model::irp::RequestorMode;
use ksalloc_model::{
    AllocatorRef, FileRef, FunctionTable, Handle, Irp, KsClient, ModelDriver, ModelEvent,
    ModelKernel,
};

use crate::common::{assert_no_kernel_address, touch_frame};
use crate::create::{expected_allocator_bytes, expected_create};

/// Most operations one input runs.
pub const MAX_OPS: usize = 64;
/// Longest byte buffer one operation carries.
pub const MAX_BYTES: usize = 1024;

/// A byte buffer: a `u16` length (mod [`MAX_BYTES`] + 1), then that many bytes (or
/// what is left). Front-to-back, so seeds can be written by [`encode`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Bytes {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = usize::from(u16::arbitrary(u)?) % (MAX_BYTES + 1);
        let take = len.min(u.len());
        Ok(Self(u.bytes(take)?.to_vec()))
    }
}

/// A kind of KS object.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Filter.
    Filter,
    /// Pin.
    Pin,
    /// Allocator.
    Allocator,
}

/// The `nth` open object of a kind (mod how many are open).
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Obj {
    /// Kind.
    pub kind: Kind,
    /// Index.
    pub nth: u8,
}

/// The related file object of a create.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parent {
    /// None: the device.
    Device,
    /// An open object.
    Object(Obj),
}

/// An IOCTL code.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// IOCTL_KS_PROPERTY.
    Property,
    /// IOCTL_KS_METHOD.
    Method,
    /// IOCTL_KS_ENABLE_EVENT.
    EnableEvent,
    /// IOCTL_KS_DISABLE_EVENT.
    DisableEvent,
    /// Anything.
    Other(u32),
}

impl Code {
    /// The code.
    #[must_use]
    pub const fn value(self) -> u32 {
        match self {
            Self::Property => IOCTL_KS_PROPERTY,
            Self::Method => IOCTL_KS_METHOD,
            Self::EnableEvent => IOCTL_KS_ENABLE_EVENT,
            Self::DisableEvent => IOCTL_KS_DISABLE_EVENT,
            Self::Other(code) => code,
        }
    }

    /// The variant for `code`.
    #[must_use]
    pub const fn of(code: u32) -> Self {
        match code {
            IOCTL_KS_PROPERTY => Self::Property,
            IOCTL_KS_METHOD => Self::Method,
            IOCTL_KS_ENABLE_EVENT => Self::EnableEvent,
            IOCTL_KS_DISABLE_EVENT => Self::DisableEvent,
            other => Self::Other(other),
        }
    }
}

/// A frame address a free names.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The nth frame out (of any allocator: another allocator's is a foreign free).
    Outstanding(u8),
    /// The nth frame out plus a byte offset.
    Inside(u8, u16),
    /// The nth address that was out once and came back (a double free unless it is
    /// out again).
    Returned(u8),
    /// A literal address.
    Raw(u64),
}

/// An allocator framing.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum FramingSpec {
    /// `1 + frames % 8` frames of `1 + size` bytes, alignment `2^(align_log2 % 14)`
    /// (13 is past a page), options `options & 0x1F` (0x10 is unknown).
    Small {
        /// Frames - 1.
        frames: u8,
        /// Size - 1.
        size: u16,
        /// log2 of the alignment.
        align_log2: u8,
        /// Options.
        options: u8,
    },
    /// Raw parameter bytes after `\{KSNAME_Allocator}\`.
    Raw(Bytes),
}

impl FramingSpec {
    /// The parameter bytes.
    #[must_use]
    pub fn params(&self) -> Vec<u8> {
        match self {
            Self::Small {
                frames,
                size,
                align_log2,
                options,
            } => framing_bytes(&KsAllocatorFraming {
                options_flags: u32::from(*options & 0x1F),
                pool_type: 0,
                frames: 1 + u32::from(*frames % 8),
                frame_size: 1 + u32::from(*size),
                file_alignment: (1u32 << (align_log2 % 14)) - 1,
                reserved: 0,
            }),
            Self::Raw(bytes) => bytes.0.clone(),
        }
    }
}

/// One step.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Opens a filter (`\{KSNAME_Filter}`).
    OpenFilter,
    /// Creates a pin with a standard connection on the nth filter (`pin_id % 4`).
    CreatePin {
        /// Filter.
        filter: u8,
        /// Pin factory.
        pin_id: u8,
    },
    /// Creates an allocator on the nth pin.
    CreateAllocator {
        /// Pin.
        pin: u8,
        /// Framing.
        framing: FramingSpec,
    },
    /// IRP_MJ_CREATE with a raw name.
    Create {
        /// Related object.
        parent: Parent,
        /// File name bytes.
        name: Bytes,
    },
    /// A raw IOCTL.
    Ioctl {
        /// File object.
        target: Obj,
        /// Code.
        code: Code,
        /// Request.
        input: Bytes,
        /// Data buffer.
        data: Bytes,
        /// User-mode requestor.
        user: bool,
    },
    /// FUNCTIONTABLE on the nth allocator.
    FunctionTable {
        /// Allocator.
        allocator: u8,
        /// User-mode requestor (must be refused).
        user: bool,
    },
    /// `AllocateFrame` at DISPATCH_LEVEL through the nth table.
    TableAllocate {
        /// Table.
        table: u8,
    },
    /// `FreeFrame` at DISPATCH_LEVEL through the nth table.
    TableFree {
        /// Table.
        table: u8,
        /// Frame.
        frame: Frame,
    },
    /// KSMETHOD_STREAMALLOCATOR_ALLOC.
    Alloc {
        /// Allocator.
        allocator: u8,
        /// User-mode requestor.
        user: bool,
    },
    /// KSMETHOD_STREAMALLOCATOR_FREE.
    MethodFree {
        /// Allocator.
        allocator: u8,
        /// Frame.
        frame: Frame,
        /// User-mode requestor.
        user: bool,
    },
    /// IoCancelIrp of the nth pending ALLOC.
    Cancel {
        /// Pending IRP.
        irp: u8,
    },
    /// A new event and a handle to it.
    NewEvent,
    /// Closes the nth event's handle.
    CloseEventHandle {
        /// Event.
        event: u8,
    },
    /// Enables FREEFRAME on the nth allocator for the nth event.
    EnableEvent {
        /// Allocator.
        allocator: u8,
        /// Event.
        event: u8,
        /// Name it by KEVENT pointer (`KSEVENTF_EVENT_OBJECT`) instead of handle.
        by_object: bool,
        /// User-mode requestor.
        user: bool,
    },
    /// Disables it.
    DisableEvent {
        /// Allocator.
        allocator: u8,
        /// Event.
        event: u8,
        /// By pointer.
        by_object: bool,
        /// User-mode requestor.
        user: bool,
    },
    /// KSPROPERTY_CONNECTION_STATE Set on the nth pin.
    SetPinState {
        /// Pin.
        pin: u8,
        /// `KSSTATE` value.
        state: u32,
    },
    /// Closes the nth open handle (any kind).
    Close {
        /// Handle.
        handle: u8,
    },
}

/// Decodes up to [`MAX_OPS`] operations.
#[must_use]
pub fn decode(bytes: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(bytes);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

// ---- encoder (seeds): mirrors arbitrary 1.x's derive, checked by a round-trip test ----

fn tag(out: &mut Vec<u8>, index: u32, count: u32) {
    // The derive picks variant `(u64::from(tag) * count) >> 32`.
    let tag = (u64::from(index) << 32).div_ceil(u64::from(count));
    out.extend_from_slice(&u32::try_from(tag).expect("index < count").to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, b: &Bytes) {
    assert!(b.0.len() <= MAX_BYTES, "seed buffer too long");
    out.extend_from_slice(
        &u16::try_from(b.0.len())
            .expect("<= MAX_BYTES")
            .to_le_bytes(),
    );
    out.extend_from_slice(&b.0);
}

fn obj(out: &mut Vec<u8>, o: Obj) {
    tag(out, o.kind as u32, 3);
    out.push(o.nth);
}

fn frame(out: &mut Vec<u8>, f: Frame) {
    match f {
        Frame::Outstanding(n) => {
            tag(out, 0, 4);
            out.push(n);
        }
        Frame::Inside(n, off) => {
            tag(out, 1, 4);
            out.push(n);
            out.extend_from_slice(&off.to_le_bytes());
        }
        Frame::Returned(n) => {
            tag(out, 2, 4);
            out.push(n);
        }
        Frame::Raw(a) => {
            tag(out, 3, 4);
            out.extend_from_slice(&a.to_le_bytes());
        }
    }
}

/// Encodes `ops` into bytes [`decode`] turns back into `ops`.
#[must_use]
pub fn encode(ops: &[Op]) -> Vec<u8> {
    const OPS: u32 = 17;
    let mut out = Vec::new();
    for op in ops {
        let o = &mut out;
        match op {
            Op::OpenFilter => tag(o, 0, OPS),
            Op::CreatePin { filter, pin_id } => {
                tag(o, 1, OPS);
                o.extend_from_slice(&[*filter, *pin_id]);
            }
            Op::CreateAllocator { pin, framing } => {
                tag(o, 2, OPS);
                o.push(*pin);
                match framing {
                    FramingSpec::Small {
                        frames,
                        size,
                        align_log2,
                        options,
                    } => {
                        tag(o, 0, 2);
                        o.push(*frames);
                        o.extend_from_slice(&size.to_le_bytes());
                        o.extend_from_slice(&[*align_log2, *options]);
                    }
                    FramingSpec::Raw(b) => {
                        tag(o, 1, 2);
                        bytes(o, b);
                    }
                }
            }
            Op::Create { parent, name } => {
                tag(o, 3, OPS);
                match parent {
                    Parent::Device => tag(o, 0, 2),
                    Parent::Object(p) => {
                        tag(o, 1, 2);
                        obj(o, *p);
                    }
                }
                bytes(o, name);
            }
            Op::Ioctl {
                target,
                code,
                input,
                data,
                user,
            } => {
                tag(o, 4, OPS);
                obj(o, *target);
                match code {
                    Code::Property => tag(o, 0, 5),
                    Code::Method => tag(o, 1, 5),
                    Code::EnableEvent => tag(o, 2, 5),
                    Code::DisableEvent => tag(o, 3, 5),
                    Code::Other(c) => {
                        tag(o, 4, 5);
                        o.extend_from_slice(&c.to_le_bytes());
                    }
                }
                bytes(o, input);
                bytes(o, data);
                o.push(u8::from(*user));
            }
            Op::FunctionTable { allocator, user } => {
                tag(o, 5, OPS);
                o.extend_from_slice(&[*allocator, u8::from(*user)]);
            }
            Op::TableAllocate { table } => {
                tag(o, 6, OPS);
                o.push(*table);
            }
            Op::TableFree { table, frame: f } => {
                tag(o, 7, OPS);
                o.push(*table);
                frame(o, *f);
            }
            Op::Alloc { allocator, user } => {
                tag(o, 8, OPS);
                o.extend_from_slice(&[*allocator, u8::from(*user)]);
            }
            Op::MethodFree {
                allocator,
                frame: f,
                user,
            } => {
                tag(o, 9, OPS);
                o.push(*allocator);
                frame(o, *f);
                o.push(u8::from(*user));
            }
            Op::Cancel { irp } => {
                tag(o, 10, OPS);
                o.push(*irp);
            }
            Op::NewEvent => tag(o, 11, OPS),
            Op::CloseEventHandle { event } => {
                tag(o, 12, OPS);
                o.push(*event);
            }
            Op::EnableEvent {
                allocator,
                event,
                by_object,
                user,
            } => {
                tag(o, 13, OPS);
                o.extend_from_slice(&[*allocator, *event, u8::from(*by_object), u8::from(*user)]);
            }
            Op::DisableEvent {
                allocator,
                event,
                by_object,
                user,
            } => {
                tag(o, 14, OPS);
                o.extend_from_slice(&[*allocator, *event, u8::from(*by_object), u8::from(*user)]);
            }
            Op::SetPinState { pin, state } => {
                tag(o, 15, OPS);
                o.push(*pin);
                o.extend_from_slice(&state.to_le_bytes());
            }
            Op::Close { handle } => {
                tag(o, 16, OPS);
                o.push(*handle);
            }
        }
    }
    out
}

// ---- the world and its reference model ----

struct Open {
    handle: Handle,
    kind: ObjectKind,
    /// Unique among the world's objects.
    id: u64,
    /// A pin's filter, by id (the filter's handle may be closed already).
    filter: Option<u64>,
    /// A pin's factory.
    pin_factory: Option<u32>,
    /// Index into `World::allocators` for an allocator.
    allocator: Option<usize>,
}

struct AllocatorModel {
    /// A kernel client's reference: the engine stays open after its handle closes
    /// (CLEANUP only), so frames still out can come home at the end.
    keeper: FileRef,
    /// Its handle is closed (IRP_MJ_CLEANUP ran).
    closed: bool,
    /// Its pin, by id.
    pin: u64,
    /// Bytes of frame memory charged to the budget.
    bytes: usize,
    total: u32,
    frame_size: usize,
    align: usize,
    /// Distinct frame addresses ever handed out.
    seen: BTreeSet<usize>,
    /// Indices into `World::events` enabled here.
    enabled: Vec<usize>,
}

struct EventModel {
    handle: usize,
    event: Arc<ModelEvent>,
    handle_open: bool,
}

struct Pending {
    irp: Irp,
    allocator: usize,
}

struct Table {
    table: FunctionTable,
    allocator: usize,
}

struct World {
    kernel: ModelKernel,
    driver: ModelDriver,
    open: Vec<Open>,
    allocators: Vec<AllocatorModel>,
    /// Frames out: (allocator, address), in the order they went out.
    outstanding: Vec<(usize, usize)>,
    /// Addresses that were out and came back.
    returned: Vec<usize>,
    pending: Vec<Pending>,
    tables: Vec<Table>,
    events: Vec<EventModel>,
    next_id: u64,
}

const fn mode(user: bool) -> RequestorMode {
    if user {
        RequestorMode::User
    } else {
        RequestorMode::Kernel
    }
}

fn kind_of(kind: Kind) -> ObjectKind {
    match kind {
        Kind::Filter => ObjectKind::Filter,
        Kind::Pin => ObjectKind::Pin,
        Kind::Allocator => ObjectKind::Allocator,
    }
}

fn event_data(kind: u32, object: usize) -> Vec<u8> {
    let mut data = vec![0; wire::EVENT_DATA_SIZE];
    wire::Writer::new(&mut data).u32(kind).u32(0).usize(object);
    data
}

fn completed(irp: &Irp) -> ksalloc_model::irp::Completion {
    irp.completion().expect("this request completes at once")
}

impl World {
    fn new() -> Self {
        let kernel = ModelKernel::new();
        Self {
            driver: ModelDriver::new(kernel.clone()),
            kernel,
            open: Vec::new(),
            allocators: Vec::new(),
            outstanding: Vec::new(),
            returned: Vec::new(),
            pending: Vec::new(),
            tables: Vec::new(),
            events: Vec::new(),
            next_id: 0,
        }
    }

    fn pick(&self, kind: ObjectKind, nth: u8) -> Option<usize> {
        let of_kind: Vec<usize> = (0..self.open.len())
            .filter(|&i| self.open[i].kind == kind)
            .collect();
        (!of_kind.is_empty()).then(|| of_kind[usize::from(nth) % of_kind.len()])
    }

    fn engine(&self, a: usize) -> AllocatorRef {
        self.allocators[a].keeper.allocator().expect("allocator")
    }

    fn out_count(&self, a: usize) -> u32 {
        u32::try_from(self.outstanding.iter().filter(|(x, _)| *x == a).count()).expect("small")
    }

    fn pending_count(&self, a: usize) -> u32 {
        u32::try_from(self.pending.iter().filter(|p| p.allocator == a).count()).expect("small")
    }

    /// Pin factories of the filter `filter` that have an open pin.
    fn taken(&self, filter: u64) -> [bool; 2] {
        let mut taken = [false; 2];
        for open in &self.open {
            if let (Some(f), Some(id)) = (open.filter, open.pin_factory) {
                if f == filter {
                    taken[id as usize] = true;
                }
            }
        }
        taken
    }

    fn register_out(&mut self, a: usize, address: usize) {
        assert!(
            !self.outstanding.iter().any(|&(_, x)| x == address),
            "frame {address:#x} handed out twice"
        );
        let model = &mut self.allocators[a];
        assert_eq!(address % model.align, 0, "frame {address:#x} misaligned");
        model.seen.insert(address);
        assert!(
            model.seen.len() <= model.total as usize,
            "more distinct frames than the allocator owns"
        );
        let size = model.frame_size;
        touch_frame(&self.kernel, address, size);
        self.outstanding.push((a, address));
    }

    fn register_free(&mut self, a: usize, address: usize) {
        let at = self
            .outstanding
            .iter()
            .position(|&o| o == (a, address))
            .expect("a free the model did not expect succeeded");
        self.outstanding.remove(at);
        if !self.returned.contains(&address) {
            self.returned.push(address);
        }
    }

    fn resolve(&self, frame: Frame) -> usize {
        let nth = |list_len: usize, n: u8| (list_len != 0).then(|| usize::from(n) % list_len);
        match frame {
            Frame::Outstanding(n) => {
                nth(self.outstanding.len(), n).map_or(0, |i| self.outstanding[i].1)
            }
            Frame::Inside(n, off) => nth(self.outstanding.len(), n)
                .map_or(0, |i| self.outstanding[i].1.wrapping_add(usize::from(off))),
            Frame::Returned(n) => nth(self.returned.len(), n).map_or(0, |i| self.returned[i]),
            Frame::Raw(address) => usize::try_from(address).unwrap_or(usize::MAX),
        }
    }

    /// Pended ALLOCs that completed: record their frames.
    fn harvest(&mut self) {
        let mut i = 0;
        while i < self.pending.len() {
            let Some(done) = self.pending[i].irp.completion() else {
                i += 1;
                continue;
            };
            let p = self.pending.remove(i);
            if done.status == NtStatus::SUCCESS {
                assert_eq!(done.information, 8, "ALLOC completion Information");
                let address = p.irp.allocated_frame().expect("ALLOC frame");
                self.register_out(p.allocator, address);
            } else {
                assert_eq!(done.status, NtStatus::CANCELLED, "pended ALLOC completion");
            }
        }
    }

    fn push_open(&mut self, handle: Handle, parent: Option<u64>) {
        let object = handle.object();
        let kind = object.kind();
        let id = self.next_id;
        self.next_id += 1;
        let pin_factory = match &*object {
            KsObject::Pin(pin, _) => Some(pin.id()),
            _ => None,
        };
        let allocator = object.as_allocator().map(|engine| {
            let framing = engine.framing();
            self.allocators.push(AllocatorModel {
                keeper: self.driver.reference(&handle),
                closed: false,
                pin: parent.expect("an allocator has a pin"),
                bytes: framing.total_bytes(),
                total: framing.frames(),
                frame_size: framing.frame_size(),
                align: framing.align(),
                seen: BTreeSet::new(),
                enabled: Vec::new(),
            });
            self.allocators.len() - 1
        });
        drop(object);
        self.open.push(Open {
            handle,
            kind,
            id,
            filter: parent.filter(|_| kind == ObjectKind::Pin),
            pin_factory,
            allocator,
        });
    }

    /// The documented refusal of an allocator create on pin `pin` that passed every
    /// input check: the per-pin cap first, then the driver's frame budget.
    fn allocator_limits(&self, pin: u64, name: &[u8]) -> Result<(), NtStatus> {
        let on_pin = self.allocators.iter().filter(|m| m.pin == pin).count();
        if on_pin >= MAX_ALLOCATORS_PER_PIN as usize {
            return Err(NtStatus::INSUFFICIENT_RESOURCES);
        }
        let in_use: usize = self.allocators.iter().map(|m| m.bytes).sum();
        let bytes = expected_allocator_bytes(name).expect("a valid allocator create");
        if in_use + bytes > DEFAULT_FRAME_BUDGET {
            return Err(NtStatus::INSUFFICIENT_RESOURCES);
        }
        Ok(())
    }

    fn create(&mut self, parent: Option<usize>, name: &[u8]) {
        let parent_kind = parent.map(|p| self.open[p].kind);
        let parent_id = parent.map(|p| self.open[p].id);
        let taken = parent_id.map_or([false; 2], |f| self.taken(f));
        let mut expected = expected_create(parent_kind, name, taken);
        if let (Ok(()), Some(ObjectKind::Pin), Some(pin)) = (expected, parent_kind, parent_id) {
            expected = self.allocator_limits(pin, name);
        }
        let created = self
            .driver
            .create(parent.map(|p| &*self.open[p].handle), name);
        match (created, expected) {
            (Ok(handle), Ok(())) => self.push_open(handle, parent_id),
            (Err(got), Err(want)) => assert_eq!(got, want, "create status"),
            (Ok(_), Err(want)) => panic!("create succeeded, documented {want:?}"),
            (Err(got), Ok(())) => panic!("create failed with {got:?}, documented success"),
        }
    }

    fn ioctl(&self, at: usize, code: u32, input: &[u8], data: &[u8], user: bool) -> Irp {
        let irp = self
            .driver
            .device_control(&self.open[at].handle, code, input, data, mode(user));
        if let Some(done) = irp.completion() {
            if done.status.is_success() {
                assert!(
                    done.information <= data.len(),
                    "Information {} past a {}-byte buffer",
                    done.information,
                    data.len()
                );
            }
        }
        if user {
            assert_no_kernel_address(&self.kernel, data, &irp.output(), "request_sequence");
        }
        irp
    }

    fn free_expected(&self, a: usize, address: usize) -> bool {
        self.outstanding.contains(&(a, address))
    }

    /// Event signal counts of the events enabled on `a`.
    fn signals(&self, a: usize) -> Vec<u64> {
        self.allocators[a]
            .enabled
            .iter()
            .map(|&e| self.events[e].event.set_count())
            .collect()
    }

    fn after_free(&mut self, a: usize, address: usize, signals: &[u64]) {
        self.register_free(a, address);
        for (before, after) in signals.iter().zip(self.signals(a)) {
            assert!(after > *before, "FREEFRAME event not signalled on a free");
        }
    }

    /// The event a `KSEVENTDATA` names, as the model kernel resolves it.
    fn event_named(&self, data: &[u8]) -> Option<usize> {
        let event = wire::event_data(data)?;
        self.events.iter().position(|e| {
            e.handle_open
                && match event.notification_type {
                    eventf::EVENT_HANDLE => e.handle == event.object,
                    eventf::EVENT_OBJECT => Arc::as_ptr(&e.event) as usize == event.object,
                    _ => false,
                }
        })
    }

    /// A raw ENABLE / DISABLE that succeeded: keep the enabled set in step.
    fn raw_event_bookkeeping(
        &mut self,
        a: usize,
        code: u32,
        request: Option<ks_abi::ks::KsIdentifier>,
        input: &Bytes,
        data: &Bytes,
    ) {
        if code == IOCTL_KS_ENABLE_EVENT && request.is_some_and(|r| r.flags == event_type::ENABLE) {
            let e = self
                .event_named(&data.0)
                .expect("an enabled event is one the kernel knows");
            assert!(
                !self.allocators[a].enabled.contains(&e),
                "an event enabled twice"
            );
            self.allocators[a].enabled.push(e);
        } else if code == IOCTL_KS_DISABLE_EVENT {
            let e = self
                .event_named(&input.0)
                .expect("a disabled event is one the kernel knows");
            let before = self.allocators[a].enabled.len();
            self.allocators[a].enabled.retain(|&x| x != e);
            assert_eq!(
                self.allocators[a].enabled.len() + 1,
                before,
                "DISABLE succeeded for an event not enabled"
            );
        }
    }

    #[allow(clippy::too_many_lines)] // One arm per operation.
    fn step(&mut self, op: &Op) {
        match op {
            Op::OpenFilter => {
                let handle = self
                    .driver
                    .create(None, &create_name(&KSNAME_FILTER, None))
                    .expect("a filter opens");
                self.push_open(handle, None);
            }
            Op::CreatePin { filter, pin_id } => {
                let Some(f) = self.pick(ObjectKind::Filter, *filter) else {
                    return;
                };
                let connect = ksalloc_model::client::standard_connect(u32::from(*pin_id % 4));
                let params = ksalloc_model::client::connect_bytes(
                    &connect,
                    &ksalloc_core::ks::filter::DATA_RANGE,
                );
                self.create(Some(f), &create_name(&KSNAME_PIN, Some(&params)));
            }
            Op::CreateAllocator { pin, framing } => {
                let Some(p) = self.pick(ObjectKind::Pin, *pin) else {
                    return;
                };
                self.create(
                    Some(p),
                    &create_name(&KSNAME_ALLOCATOR, Some(&framing.params())),
                );
            }
            Op::Create { parent, name } => {
                let parent = match parent {
                    Parent::Device => None,
                    Parent::Object(o) => match self.pick(kind_of(o.kind), o.nth) {
                        Some(p) => Some(p),
                        None => return,
                    },
                };
                self.create(parent, &name.0);
            }
            Op::Ioctl {
                target,
                code,
                input,
                data,
                user,
            } => {
                let Some(at) = self.pick(kind_of(target.kind), target.nth) else {
                    return;
                };
                let a = self.open[at].allocator;
                let before = a.map(|a| (self.engine(a).snapshot(), self.signals(a)));
                let irp = self.ioctl(at, code.value(), &input.0, &data.0, *user);
                let Some(a) = a else {
                    assert!(irp.completion().is_some(), "only ALLOCs pend");
                    return;
                };
                let (before, signals) = before.expect("allocator snapshot");
                let after = self.engine(a).snapshot();
                if after.counters.frees > before.counters.frees {
                    let address = wire::usize_at(&data.0, 0).expect("a FREE carries an address");
                    self.after_free(a, address, &signals);
                }
                match irp.completion() {
                    None => {
                        assert_eq!(code.value(), IOCTL_KS_METHOD, "only ALLOCs pend");
                        self.pending.push(Pending { irp, allocator: a });
                    }
                    Some(done) => {
                        let request = wire::identifier_at(&input.0, 0);
                        if done.status == NtStatus::SUCCESS {
                            self.raw_event_bookkeeping(a, code.value(), request, input, data);
                        }
                        let is_alloc = request.is_some_and(|r| {
                            r.set == KSMETHODSETID_STREAM_ALLOCATOR
                                && r.id == stream_allocator::METHOD_ALLOC
                                && r.flags == method_type::WRITE
                        });
                        if code.value() == IOCTL_KS_METHOD
                            && is_alloc
                            && done.status == NtStatus::SUCCESS
                        {
                            let address = irp.allocated_frame().expect("ALLOC frame");
                            self.register_out(a, address);
                        }
                    }
                }
            }
            Op::FunctionTable { allocator, user } => {
                let Some(at) = self.pick(ObjectKind::Allocator, *allocator) else {
                    return;
                };
                let a = self.open[at].allocator.expect("allocator");
                if *user {
                    let irp = self.ioctl(
                        at,
                        IOCTL_KS_PROPERTY,
                        &request(
                            &KSPROPSETID_STREAM_ALLOCATOR,
                            stream_allocator::PROPERTY_FUNCTIONTABLE,
                            property_type::GET,
                            &[],
                        ),
                        &[0; 16],
                        true,
                    );
                    assert_eq!(
                        completed(&irp).status,
                        NtStatus::INVALID_DEVICE_REQUEST,
                        "FUNCTIONTABLE to a user requestor"
                    );
                } else {
                    let table = KsClient::kernel(self.driver.clone())
                        .function_table(&self.open[at].handle)
                        .expect("FUNCTIONTABLE on an open allocator");
                    self.tables.push(Table {
                        table,
                        allocator: a,
                    });
                }
            }
            Op::TableAllocate { table } => {
                if self.tables.is_empty() {
                    return;
                }
                let t = usize::from(*table) % self.tables.len();
                let a = self.tables[t].allocator;
                let result = self.tables[t].table.allocate_at_dispatch();
                let free = self.allocators[a].total - self.out_count(a);
                // The table works after the handle's close (CLEANUP): the harness's
                // reference keeps the allocator from IRP_MJ_CLOSE.
                if free > 0 && self.pending_count(a) == 0 {
                    let address = result.expect("a free frame and no waiter: AllocateFrame");
                    self.register_out(a, address);
                } else {
                    assert_eq!(
                        result,
                        Err(NtStatus::INSUFFICIENT_RESOURCES),
                        "table when empty"
                    );
                }
            }
            Op::TableFree { table, frame } => {
                if self.tables.is_empty() {
                    return;
                }
                let t = usize::from(*table) % self.tables.len();
                let a = self.tables[t].allocator;
                let address = self.resolve(*frame);
                let expected = self.free_expected(a, address);
                let frees = self.engine(a).counters().frees;
                let signals = self.signals(a);
                self.tables[t].table.free_at_dispatch(address);
                let accepted = self.engine(a).counters().frees > frees;
                assert_eq!(accepted, expected, "FreeFrame({address:#x}) accepted");
                if accepted {
                    self.after_free(a, address, &signals);
                }
            }
            Op::Alloc { allocator, user } => {
                let Some(at) = self.pick(ObjectKind::Allocator, *allocator) else {
                    return;
                };
                let a = self.open[at].allocator.expect("allocator");
                let free = self.allocators[a].total - self.out_count(a);
                let waiting = self.pending_count(a);
                let irp = self.ioctl(
                    at,
                    IOCTL_KS_METHOD,
                    &request(
                        &KSMETHODSETID_STREAM_ALLOCATOR,
                        stream_allocator::METHOD_ALLOC,
                        method_type::WRITE,
                        &[],
                    ),
                    &[0; 8],
                    *user,
                );
                if *user {
                    assert_eq!(
                        completed(&irp).status,
                        NtStatus::INVALID_DEVICE_REQUEST,
                        "ALLOC from a user requestor"
                    );
                } else if free > 0 && waiting == 0 {
                    assert_eq!(
                        completed(&irp).status,
                        NtStatus::SUCCESS,
                        "ALLOC with a frame free"
                    );
                    let address = irp.allocated_frame().expect("ALLOC frame");
                    self.register_out(a, address);
                } else if (waiting as usize) < MAX_PENDING {
                    assert!(irp.completion().is_none(), "ALLOC with no frame free pends");
                    self.pending.push(Pending { irp, allocator: a });
                } else {
                    assert_eq!(completed(&irp).status, NtStatus::INSUFFICIENT_RESOURCES);
                }
            }
            Op::MethodFree {
                allocator,
                frame,
                user,
            } => {
                let Some(at) = self.pick(ObjectKind::Allocator, *allocator) else {
                    return;
                };
                let a = self.open[at].allocator.expect("allocator");
                let address = self.resolve(*frame);
                let expected = self.free_expected(a, address);
                let signals = self.signals(a);
                let irp = self.ioctl(
                    at,
                    IOCTL_KS_METHOD,
                    &request(
                        &KSMETHODSETID_STREAM_ALLOCATOR,
                        stream_allocator::METHOD_FREE,
                        method_type::READ,
                        &[],
                    ),
                    &address.to_le_bytes(),
                    *user,
                );
                let status = completed(&irp).status;
                if *user {
                    assert_eq!(
                        status,
                        NtStatus::INVALID_DEVICE_REQUEST,
                        "FREE from a user requestor"
                    );
                } else if expected {
                    assert_eq!(status, NtStatus::SUCCESS, "FREE of a frame that is out");
                    self.after_free(a, address, &signals);
                } else {
                    assert_eq!(status, NtStatus::INVALID_PARAMETER, "FREE of {address:#x}");
                }
            }
            Op::Cancel { irp } => {
                if self.pending.is_empty() {
                    return;
                }
                let i = usize::from(*irp) % self.pending.len();
                let p = self.pending.remove(i);
                assert!(
                    p.irp.cancel(),
                    "a queued ALLOC has its cancel routine armed"
                );
                assert_eq!(
                    p.irp.completion().map(|c| c.status),
                    Some(NtStatus::CANCELLED),
                    "cancelled ALLOC"
                );
            }
            Op::NewEvent => {
                let event = Arc::new(ModelEvent::notification());
                let handle = self.kernel.event_handle(&event);
                self.events.push(EventModel {
                    handle,
                    event,
                    handle_open: true,
                });
            }
            Op::CloseEventHandle { event } => {
                if self.events.is_empty() {
                    return;
                }
                let e = usize::from(*event) % self.events.len();
                self.kernel.close_event_handle(self.events[e].handle);
                self.events[e].handle_open = false;
            }
            Op::EnableEvent {
                allocator,
                event,
                by_object,
                user,
            }
            | Op::DisableEvent {
                allocator,
                event,
                by_object,
                user,
            } => {
                let enable = matches!(op, Op::EnableEvent { .. });
                let (Some(at), false) = (
                    self.pick(ObjectKind::Allocator, *allocator),
                    self.events.is_empty(),
                ) else {
                    return;
                };
                let a = self.open[at].allocator.expect("allocator");
                let e = usize::from(*event) % self.events.len();
                let model = &self.events[e];
                let data = if *by_object {
                    event_data(eventf::EVENT_OBJECT, Arc::as_ptr(&model.event) as usize)
                } else {
                    event_data(eventf::EVENT_HANDLE, model.handle)
                };
                let enabled = self.allocators[a].enabled.contains(&e);
                let expected = if *by_object && *user {
                    NtStatus::INVALID_PARAMETER
                } else if !model.handle_open {
                    if *by_object {
                        NtStatus::INVALID_PARAMETER
                    } else {
                        NtStatus::INVALID_HANDLE
                    }
                } else if enable && enabled {
                    NtStatus::INVALID_PARAMETER
                } else if enable
                    && self.allocators[a].enabled.len()
                        == ksalloc_core::allocator::MAX_CLIENT_EVENTS
                {
                    NtStatus::INSUFFICIENT_RESOURCES
                } else if !enable && !enabled {
                    NtStatus::NOT_FOUND
                } else {
                    NtStatus::SUCCESS
                };
                let irp = if enable {
                    let req = request(
                        &KSEVENTSETID_STREAM_ALLOCATOR,
                        stream_allocator::EVENT_FREEFRAME,
                        event_type::ENABLE,
                        &[],
                    );
                    self.ioctl(at, IOCTL_KS_ENABLE_EVENT, &req, &data, *user)
                } else {
                    self.ioctl(at, IOCTL_KS_DISABLE_EVENT, &data, &[], *user)
                };
                assert_eq!(
                    completed(&irp).status,
                    expected,
                    "enable={enable} event status"
                );
                if expected == NtStatus::SUCCESS {
                    if enable {
                        self.allocators[a].enabled.push(e);
                    } else {
                        self.allocators[a].enabled.retain(|&x| x != e);
                    }
                }
            }
            Op::SetPinState { pin, state } => {
                let Some(at) = self.pick(ObjectKind::Pin, *pin) else {
                    return;
                };
                let req = request(
                    &KSPROPSETID_CONNECTION,
                    connection::PROPERTY_STATE,
                    property_type::SET,
                    &[],
                );
                let irp = self.ioctl(at, IOCTL_KS_PROPERTY, &req, &state.to_le_bytes(), false);
                let expected = if *state <= 3 {
                    NtStatus::SUCCESS
                } else {
                    NtStatus::INVALID_PARAMETER
                };
                assert_eq!(completed(&irp).status, expected, "pin state {state}");
                let now = KsClient::kernel(self.driver.clone())
                    .get(
                        &self.open[at].handle,
                        &KSPROPSETID_CONNECTION,
                        connection::PROPERTY_STATE,
                        &[],
                        4,
                    )
                    .expect("state get");
                if expected == NtStatus::SUCCESS {
                    assert_eq!(now, state.to_le_bytes(), "state reads back");
                }
            }
            Op::Close { handle } => {
                if self.open.is_empty() {
                    return;
                }
                let i = usize::from(*handle) % self.open.len();
                self.close(i);
            }
        }
    }

    fn close(&mut self, i: usize) {
        let open = self.open.remove(i);
        self.driver.close(open.handle);
        if let Some(a) = open.allocator {
            self.allocators[a].closed = true;
            self.allocators[a].enabled.clear();
            for p in self.pending.iter().filter(|p| p.allocator == a) {
                assert_eq!(
                    p.irp.completion().map(|c| c.status),
                    Some(NtStatus::CANCELLED),
                    "close cancels pended ALLOCs"
                );
            }
        }
    }

    fn check(&mut self) {
        self.harvest();
        assert_eq!(
            self.kernel.live_irps(),
            i64::try_from(self.pending.len()).expect("small"),
            "IRPs alive that are not pended ALLOCs"
        );
        for a in 0..self.allocators.len() {
            let snap = self.engine(a).snapshot();
            let model = &self.allocators[a];
            let out = self.out_count(a);
            assert!(snap.conserved(), "allocator {a} not conserved: {snap:?}");
            assert_eq!(snap.total, model.total);
            assert_eq!(snap.outstanding, out, "allocator {a} outstanding: {snap:?}");
            assert_eq!(snap.pending, self.pending_count(a), "allocator {a} pending");
            assert!(
                !snap.closed && !snap.memory_released,
                "allocator {a} closed under a reference: {snap:?}"
            );
            assert_eq!(
                self.engine(a).is_cleaned_up(),
                model.closed,
                "allocator {a} cleaned up"
            );
            assert_eq!(
                snap.counters.allocations - snap.counters.frees,
                u64::from(out),
                "allocator {a}: allocations - frees != out: {snap:?}"
            );
            if !model.closed && snap.pending > 0 {
                assert_eq!(
                    snap.free, 0,
                    "allocator {a}: ALLOCs wait while a frame is free"
                );
            }
        }
        // Pin instances: each open filter counts its open pins.
        for open in self.open.iter().filter(|o| o.kind == ObjectKind::Filter) {
            let object = open.handle.object();
            let KsObject::Filter(filter) = &*object else {
                panic!("a filter handle's object is not a filter");
            };
            let taken = self.taken(open.id);
            for id in 0..2u32 {
                assert_eq!(
                    filter.instances(id),
                    u32::from(taken[id as usize]),
                    "filter instances of pin {id}"
                );
            }
        }
    }

    fn teardown(mut self) {
        while !self.open.is_empty() {
            self.close(0);
        }
        self.check();
        assert!(
            self.pending.is_empty(),
            "ALLOCs still pended after every close"
        );
        for (a, address) in std::mem::take(&mut self.outstanding) {
            let engine = self.engine(a);
            at_dispatch(|| engine.free(address)).expect("returning a frame at the end");
        }
        for a in 0..self.allocators.len() {
            let snap = self.engine(a).snapshot();
            assert!(
                snap.conserved() && snap.free == snap.total && !snap.memory_released,
                "allocator {a} after the end, before its CLOSE: {snap:?}"
            );
        }
        // The last references go: IRP_MJ_CLOSE of each allocator releases its memory
        // (the leak check below sees it) and its budget charge.
        self.tables.clear();
        self.allocators.clear();
        assert_eq!(
            self.kernel.frame_budget().in_use(),
            0,
            "frame budget given back at CLOSE"
        );
        for e in std::mem::take(&mut self.events) {
            self.kernel.close_event_handle(e.handle);
        }
        let kernel = self.kernel.clone();
        drop(self);
        kernel.assert_no_leaks();
    }
}

/// Runs decoded operations.
///
/// # Panics
/// When an invariant breaks.
pub fn run_ops(ops: &[Op]) {
    let trace = std::env::var_os("KSALLOC_FUZZ_TRACE").is_some();
    let mut world = World::new();
    for op in ops {
        world.step(op);
        world.check();
        if trace {
            eprintln!(
                "{op:?}\n    -> open {}, out {}, pending {}, tables {}, events {}",
                world.open.len(),
                world.outstanding.len(),
                world.pending.len(),
                world.tables.len(),
                world.events.len()
            );
        }
    }
    world.teardown();
}

/// Runs one input.
///
/// # Panics
/// When an invariant breaks.
pub fn run(bytes: &[u8]) {
    run_ops(&decode(bytes));
}

#[cfg(test)]
mod sensitivity {
    //! The reference model must notice when the engine and the model disagree: each
    //! test corrupts the model's books and expects `check` to panic.

    use super::*;

    fn world_after_prefix() -> World {
        let mut world = World::new();
        for op in crate::seeds::harness_prefix() {
            world.step(&op);
            world.check();
        }
        world
    }

    fn must_panic(f: impl FnOnce() + std::panic::UnwindSafe, what: &str) {
        assert!(
            std::panic::catch_unwind(f).is_err(),
            "harness missed: {what}"
        );
    }

    #[test]
    fn a_frame_the_model_forgot_is_caught() {
        must_panic(
            || {
                let mut world = world_after_prefix();
                world.outstanding.pop();
                world.check();
            },
            "outstanding count",
        );
    }

    #[test]
    fn a_frame_handed_out_twice_is_caught() {
        must_panic(
            || {
                let mut world = world_after_prefix();
                let (a, address) = world.outstanding[0];
                world.register_out(a, address);
            },
            "double hand-out",
        );
    }

    #[test]
    fn a_pending_alloc_the_model_forgot_is_caught() {
        must_panic(
            || {
                let mut world = world_after_prefix();
                for _ in 0..4 {
                    world.step(&Op::Alloc {
                        allocator: 0,
                        user: false,
                    });
                }
                world.pending.pop();
                world.check();
            },
            "pending count / live IRPs",
        );
    }

    #[test]
    fn a_wrong_instance_count_is_caught() {
        must_panic(
            || {
                let mut world = world_after_prefix();
                // Forget which filter the pin belongs to: the filter still counts it.
                let pin = world
                    .open
                    .iter_mut()
                    .find(|o| o.kind == ObjectKind::Pin)
                    .expect("the prefix opens a pin");
                pin.filter = None;
                world.check();
            },
            "pin instances",
        );
    }

    #[test]
    fn the_prefix_and_teardown_leave_no_leak() {
        world_after_prefix().teardown();
    }
}
