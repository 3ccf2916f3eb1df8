//! Seed inputs for every target, from the bad-input catalogue
//! (`ksalloc_model::catalogue::cases()`) plus one well-formed request per table item,
//! each in its target's input format. `examples/seeds.rs` writes them to
//! `corpus/<target>/cat-*`; the unit tests run them all.

use ks_abi::guid::{KSNAME_ALLOCATOR, KSNAME_FILTER, KSNAME_PIN};
use ks_abi::ioctl::{
    IOCTL_KS_DISABLE_EVENT, IOCTL_KS_ENABLE_EVENT, IOCTL_KS_METHOD, IOCTL_KS_PROPERTY,
};
use ks_abi::ks::{eventf, method_type, property_type, KsAllocatorFraming};
use ksalloc_core::ks::filter::{DATA_RANGE, PREFERRED_FRAMING};
use ksalloc_core::ks::{sets, ObjectKind};
use ksalloc_core::limits::MAX_ALLOCATORS_PER_PIN;
use ksalloc_core::wire::Writer;
use ksalloc_model::catalogue::{cases, harness_framing, FrameRef, Given, Op as CatOp, Target};
use ksalloc_model::client::{connect_bytes, create_name, framing_bytes, standard_connect};
use ksalloc_model::irp::RequestorMode;
use ksprobe_scenarios::wire::{Request, Response};
use ksprobe_scenarios::{Config, Failure, Outcome, ScenarioId, ScenarioResult, Text, Timings};

use crate::common::FIRST_EVENT_HANDLE;
use crate::create::{parse, Name};
use crate::ioctl::{Input, Object};
use crate::sequence::{self, Bytes, Code, Frame, FramingSpec, Kind, Obj, Op, Parent};

/// The targets, by name.
pub const TARGETS: [&str; 6] = [
    "ks_ioctl",
    "framing",
    "create_allocator",
    "create_pin",
    "request_sequence",
    "ksprobe_wire",
];

/// A named seed.
pub type Seed = (String, Vec<u8>);

fn slug(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').chars().take(60).collect()
}

fn event_data(kind: u32, object: usize) -> Vec<u8> {
    let mut data = vec![0; 32];
    Writer::new(&mut data).u32(kind).u32(0).usize(object);
    data
}

/// The catalogue's IOCTL with the harness's substitutions (an empty KSEVENTDATA means
/// "the spare event handle").
fn catalogue_ioctl(code: u32, input: &[u8], data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut input = input.to_vec();
    let mut data = data.to_vec();
    if code == IOCTL_KS_DISABLE_EVENT && input.is_empty() {
        input = event_data(eventf::EVENT_HANDLE, FIRST_EVENT_HANDLE);
    }
    if code == IOCTL_KS_ENABLE_EVENT && data.is_empty() {
        data = event_data(eventf::EVENT_HANDLE, FIRST_EVENT_HANDLE);
    }
    (input, data)
}

fn method_free(address: usize) -> (Vec<u8>, Vec<u8>) {
    (
        ksalloc_model::client::request(
            &ks_abi::guid::KSMETHODSETID_STREAM_ALLOCATOR,
            ks_abi::ks::stream_allocator::METHOD_FREE,
            method_type::READ,
            &[],
        ),
        address.to_le_bytes().to_vec(),
    )
}

/// `ks_ioctl` seeds.
#[must_use]
pub fn ks_ioctl() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let object = |t: Target| match t {
        Target::Filter => Some(Object::Filter),
        Target::Pin => Some(Object::Pin),
        Target::Allocator => Some(Object::Allocator),
        Target::Device => None,
    };
    for (i, case) in cases().iter().enumerate() {
        let (op, cleanup_first) = match &case.op {
            CatOp::AfterClose(inner) => (inner.as_ref(), true),
            // The one-request target cannot close parents or spend limits first: the
            // request itself is still a seed.
            CatOp::Given(_, inner) => (inner.as_ref(), false),
            op => (op, false),
        };
        let (object, code, input, data, mode) = match op {
            CatOp::Ioctl {
                target,
                code,
                input,
                data,
                mode,
            } => {
                let (input, data) = catalogue_ioctl(*code, input, data);
                (object(*target), *code, input, data, *mode)
            }
            CatOp::Free(FrameRef::Raw(address)) => {
                let (input, data) = method_free(*address);
                (
                    Some(Object::Allocator),
                    IOCTL_KS_METHOD,
                    input,
                    data,
                    RequestorMode::Kernel,
                )
            }
            _ => continue,
        };
        let Some(object) = object else { continue };
        let io = Input {
            object,
            cleanup_first,
            mode,
            code,
            input: &input,
            data: &data,
        };
        seeds.push((format!("cat-{i:03}-{}", slug(case.name)), io.encode()));
    }
    // One well-formed request per table item, per requestor, into three buffer sizes.
    let objects = [
        (ObjectKind::Filter, Object::Filter),
        (ObjectKind::Pin, Object::Pin),
        (ObjectKind::Allocator, Object::Allocator),
    ];
    let mut n = 0;
    for (kind, object) in objects {
        let families = [
            (IOCTL_KS_PROPERTY, sets::properties(kind)),
            (IOCTL_KS_METHOD, sets::methods(kind)),
            (IOCTL_KS_ENABLE_EVENT, sets::events(kind)),
        ];
        for (code, family) in families {
            for set in family {
                for item in set.items {
                    let flags = match code {
                        IOCTL_KS_PROPERTY => property_type::GET,
                        IOCTL_KS_METHOD => item.access,
                        _ => ks_abi::ks::event_type::ENABLE,
                    };
                    let extra = [0u8; 8];
                    let input = ksalloc_model::client::request(&set.guid, item.id, flags, &extra);
                    for len in [0usize, 4, 128] {
                        let data = if code == IOCTL_KS_ENABLE_EVENT {
                            event_data(eventf::EVENT_HANDLE, FIRST_EVENT_HANDLE)
                        } else {
                            vec![0; len]
                        };
                        for mode in [RequestorMode::Kernel, RequestorMode::User] {
                            let io = Input {
                                object,
                                cleanup_first: false,
                                mode,
                                code,
                                input: &input,
                                data: &data,
                            };
                            seeds.push((format!("item-{n:03}"), io.encode()));
                            n += 1;
                        }
                    }
                }
            }
        }
    }
    seeds
}

fn framing_seed_bytes(f: &KsAllocatorFraming) -> Vec<u8> {
    framing_bytes(f)
}

/// `framing` seeds.
#[must_use]
pub fn framing() -> Vec<Seed> {
    let mut seeds = vec![
        (
            "harness".to_string(),
            framing_seed_bytes(&harness_framing()),
        ),
        (
            "preferred".to_string(),
            framing_seed_bytes(&PREFERRED_FRAMING),
        ),
    ];
    for (i, case) in cases().iter().enumerate() {
        if let CatOp::Create { name, .. } = &case.op {
            if let Name::Class(class, Some(params)) = parse(name) {
                if class == KSNAME_ALLOCATOR {
                    seeds.push((format!("cat-{i:03}-{}", slug(case.name)), params.to_vec()));
                }
            }
        }
    }
    seeds
}

fn create_seeds(parent: Target, class: ks_abi::Guid, extra: &[Seed]) -> Vec<Seed> {
    let mut seeds = extra.to_vec();
    for (i, case) in cases().iter().enumerate() {
        let CatOp::Create {
            parent: p, name, ..
        } = &case.op
        else {
            continue;
        };
        if *p != parent {
            continue;
        }
        let base = format!("cat-{i:03}-{}", slug(case.name));
        seeds.push((format!("{base}-raw"), [&[1u8][..], name].concat()));
        if let Name::Class(c, Some(params)) = parse(name) {
            if c == class {
                seeds.push((format!("{base}-params"), [&[0u8][..], params].concat()));
            }
        }
    }
    seeds
}

/// `create_allocator` seeds.
#[must_use]
pub fn create_allocator() -> Vec<Seed> {
    let good = framing_bytes(&harness_framing());
    create_seeds(
        Target::Pin,
        KSNAME_ALLOCATOR,
        &[
            ("good-params".to_string(), [&[0u8][..], &good].concat()),
            (
                "good-raw".to_string(),
                [&[1u8][..], &create_name(&KSNAME_ALLOCATOR, Some(&good))].concat(),
            ),
        ],
    )
}

/// `create_pin` seeds.
#[must_use]
pub fn create_pin() -> Vec<Seed> {
    let mut extra = Vec::new();
    for id in 0..2 {
        let params = connect_bytes(&standard_connect(id), &DATA_RANGE);
        for flags in [0u8, 2] {
            extra.push((
                format!("good-pin{id}-flags{flags}"),
                [&[flags][..], &params].concat(),
            ));
        }
        extra.push((
            format!("good-pin{id}-raw"),
            [&[1u8][..], &create_name(&KSNAME_PIN, Some(&params))].concat(),
        ));
    }
    extra.push((
        "filter-name-raw".to_string(),
        [&[1u8][..], &create_name(&KSNAME_FILTER, None)].concat(),
    ));
    create_seeds(Target::Filter, KSNAME_PIN, &extra)
}

const fn obj(kind: Kind, nth: u8) -> Obj {
    Obj { kind, nth }
}

/// The catalogue harness as a sequence: filter, pin 0, allocator (4 x 256) on it, pin
/// 1, a second allocator, a table on the first, a held frame (out 0), a frame taken
/// and returned (returned 0), a frame of the second allocator (out 1), one event.
#[must_use]
pub fn harness_prefix() -> Vec<Op> {
    let small = FramingSpec::Small {
        frames: 3,
        size: 255,
        align_log2: 6,
        options: 0,
    };
    vec![
        Op::OpenFilter,
        Op::CreatePin {
            filter: 0,
            pin_id: 0,
        },
        Op::CreateAllocator {
            pin: 0,
            framing: small.clone(),
        },
        Op::CreatePin {
            filter: 0,
            pin_id: 1,
        },
        Op::CreateAllocator {
            pin: 1,
            framing: small,
        },
        Op::FunctionTable {
            allocator: 0,
            user: false,
        },
        Op::TableAllocate { table: 0 },
        Op::TableAllocate { table: 0 },
        Op::TableFree {
            table: 0,
            frame: Frame::Outstanding(1),
        },
        Op::FunctionTable {
            allocator: 1,
            user: false,
        },
        Op::TableAllocate { table: 1 },
        Op::NewEvent,
    ]
}

fn seq_obj(t: Target) -> Option<Obj> {
    match t {
        Target::Device => None,
        Target::Filter => Some(obj(Kind::Filter, 0)),
        Target::Pin => Some(obj(Kind::Pin, 0)),
        Target::Allocator => Some(obj(Kind::Allocator, 0)),
    }
}

fn seq_op(op: &CatOp) -> Vec<Op> {
    match op {
        CatOp::Create { parent, name, .. } => vec![Op::Create {
            parent: seq_obj(*parent).map_or(Parent::Device, Parent::Object),
            name: Bytes(name.clone()),
        }],
        CatOp::Ioctl {
            target,
            code,
            input,
            data,
            mode,
        } => {
            let (input, data) = catalogue_ioctl(*code, input, data);
            seq_obj(*target)
                .map(|target| Op::Ioctl {
                    target,
                    code: Code::of(*code),
                    input: Bytes(input),
                    data: Bytes(data),
                    user: *mode == RequestorMode::User,
                })
                .into_iter()
                .collect()
        }
        CatOp::Free(frame) => {
            let frame = match *frame {
                FrameRef::Outstanding(offset) => {
                    Frame::Inside(0, u16::try_from(offset).unwrap_or(u16::MAX))
                }
                FrameRef::Returned => Frame::Returned(0),
                FrameRef::Foreign => Frame::Outstanding(1),
                FrameRef::Raw(address) => Frame::Raw(address as u64),
            };
            vec![Op::MethodFree {
                allocator: 0,
                frame,
                user: false,
            }]
        }
        // The first allocator is open handle 2 in the prefix.
        CatOp::AfterClose(inner) => [vec![Op::Close { handle: 2 }], seq_op(inner)].concat(),
        CatOp::Given(setup, inner) => [given_ops(*setup), seq_op(inner)].concat(),
    }
}

/// Sequence operations that reach a catalogue [`Given`] state from the prefix.
fn given_ops(setup: Given) -> Vec<Op> {
    let small = FramingSpec::Small {
        frames: 0,
        size: 63,
        align_log2: 0,
        options: 0,
    };
    match setup {
        // The sequence runs one kernel with the default budget: a 256 MiB allocator
        // (the largest framing) on top of the prefix's is past it.
        Given::BudgetSpent | Given::QuotaSpent => vec![Op::CreateAllocator {
            pin: 0,
            framing: FramingSpec::Raw(Bytes(framing_bytes(&KsAllocatorFraming {
                options_flags: 0,
                pool_type: 0,
                frames: 4096,
                frame_size: 65536,
                file_alignment: 0,
                reserved: 0,
            }))),
        }],
        Given::PinFull => (1..MAX_ALLOCATORS_PER_PIN)
            .map(|_| Op::CreateAllocator {
                pin: 0,
                framing: small.clone(),
            })
            .collect(),
        // Handle 0 is the filter; pin 0 moves to index 0 once it is gone.
        Given::ParentsClosed => vec![Op::Close { handle: 0 }, Op::Close { handle: 0 }],
    }
}

/// Hand-written streaming stories (pend, hand-off, cancel, close with frames out).
#[must_use]
pub fn stories() -> Vec<(String, Vec<Op>)> {
    let a0 = 0;
    let alloc = |user| Op::Alloc {
        allocator: a0,
        user,
    };
    let mut stories = Vec::new();
    let mut drain = harness_prefix();
    drain.extend([
        Op::TableAllocate { table: 0 },
        Op::TableAllocate { table: 0 },
        Op::TableAllocate { table: 0 },
        alloc(false),
        alloc(true),
        Op::EnableEvent {
            allocator: a0,
            event: 0,
            by_object: false,
            user: false,
        },
        Op::TableFree {
            table: 0,
            frame: Frame::Outstanding(0),
        },
        Op::Cancel { irp: 0 },
        Op::MethodFree {
            allocator: a0,
            frame: Frame::Outstanding(2),
            user: false,
        },
        Op::Close { handle: 2 },
        Op::TableAllocate { table: 0 },
        Op::TableFree {
            table: 0,
            frame: Frame::Outstanding(0),
        },
    ]);
    stories.push(("story-pend-handoff-cancel-close".to_string(), drain));
    let mut close_order = harness_prefix();
    close_order.extend([
        alloc(false),
        Op::Close { handle: 0 },
        Op::Close { handle: 0 },
        Op::EnableEvent {
            allocator: 1,
            event: 0,
            by_object: true,
            user: false,
        },
        Op::CloseEventHandle { event: 0 },
        Op::TableFree {
            table: 1,
            frame: Frame::Outstanding(1),
        },
        Op::SetPinState { pin: 0, state: 3 },
        Op::Close { handle: 1 },
    ]);
    stories.push(("story-close-parents-first".to_string(), close_order));
    stories
}

/// `request_sequence` seeds.
#[must_use]
pub fn request_sequence() -> Vec<Seed> {
    let mut seeds: Vec<Seed> = stories()
        .into_iter()
        .map(|(name, ops)| (name, sequence::encode(&ops)))
        .collect();
    for (i, case) in cases().iter().enumerate() {
        let ops = [harness_prefix(), seq_op(&case.op)].concat();
        seeds.push((
            format!("cat-{i:03}-{}", slug(case.name)),
            sequence::encode(&ops),
        ));
    }
    seeds
}

/// `ksprobe_wire` seeds.
#[must_use]
pub fn ksprobe_wire() -> Vec<Seed> {
    let path: Vec<u16> = "\\\\?\\root#ksalloc#0000#{9b365890-165f-11d0-a195-0020afd156e4}\\{9B365890-165F-11D0-A195-0020AFD156E4}"
        .encode_utf16()
        .collect();
    let with_path = Request {
        selection: 0b101,
        config: Config::DEFAULT,
        path,
    };
    let results = vec![
        ScenarioResult {
            id: ScenarioId::ALL[0],
            outcome: Outcome::Pass,
            elapsed_ns: 1234,
            timings: Some(Timings {
                samples: 3,
                min_ns: 1,
                median_ns: 2,
                p99_ns: 3,
                max_ns: 4,
            }),
            note: Text::new("a note"),
        },
        ScenarioResult {
            id: ScenarioId::ALL[1],
            outcome: Outcome::Fail(
                Failure::status("refused", ks_abi::NtStatus::INVALID_PARAMETER).with_values(7, 8),
            ),
            elapsed_ns: 99,
            timings: None,
            note: Text::EMPTY,
        },
    ];
    vec![
        ("request-all".to_string(), Request::all().encode()),
        ("request-path".to_string(), with_path.encode()),
        (
            "response-empty".to_string(),
            Response {
                status: ks_abi::NtStatus::SUCCESS,
                results: Vec::new(),
            }
            .encode(),
        ),
        (
            "response-two".to_string(),
            Response {
                status: ks_abi::NtStatus::SUCCESS,
                results,
            }
            .encode(),
        ),
    ]
}

/// Every target's seeds.
#[must_use]
pub fn all() -> Vec<(&'static str, Vec<Seed>)> {
    vec![
        ("ks_ioctl", ks_ioctl()),
        ("framing", framing()),
        ("create_allocator", create_allocator()),
        ("create_pin", create_pin()),
        ("request_sequence", request_sequence()),
        ("ksprobe_wire", ksprobe_wire()),
    ]
}

/// Runs one input through the named target.
///
/// # Panics
/// On an unknown target, or when the target's invariants break.
pub fn run_target(target: &str, bytes: &[u8]) {
    match target {
        "ks_ioctl" => crate::ioctl::run(bytes),
        "framing" => crate::framing::run(bytes),
        "create_allocator" => crate::create::run_allocator(bytes),
        "create_pin" => crate::create::run_pin(bytes),
        "request_sequence" => crate::sequence::run(bytes),
        "ksprobe_wire" => crate::probe_wire::run(bytes),
        other => panic!("unknown target {other}"),
    }
}
