//! Property, method and event sets as tables, the way ks.sys's `KSPROPERTY_SET` tables
//! describe a KS object: set GUID -> items with id, access, minimum sizes.
//!
//! The dispatcher validates every request against these tables (set and id known,
//! access allowed, requestor allowed, buffers at least the minimum) before any handler
//! runs, and answers SETSUPPORT and BASICSUPPORT from them.

use ks_abi::guid::{
    KSEVENTSETID_STREAM_ALLOCATOR, KSMETHODSETID_STREAM_ALLOCATOR, KSPROPSETID_CONNECTION,
    KSPROPSETID_PIN, KSPROPSETID_STREAM, KSPROPSETID_STREAM_ALLOCATOR, KSPROPSETID_TOPOLOGY,
};
use ks_abi::ks::{
    connection, event_type, method_type, pin, property_type, stream, stream_allocator,
};
use ks_abi::Guid;

use super::ObjectKind;
use crate::wire::{EVENT_DATA_SIZE, IDENTIFIER_SIZE, P_PIN_SIZE};

/// `VT_UI4`: the value type BASICSUPPORT reports for ULONG properties.
pub const VT_UI4: u32 = 19;
/// `VT_UI8`.
pub const VT_UI8: u32 = 21;
/// `VT_EMPTY`: reported for structures.
pub const VT_EMPTY: u32 = 0;

/// `KSPROPERTY_TOPOLOGY_*` ids.
pub mod topology {
    /// `KSPROPERTY_TOPOLOGY_CATEGORIES`.
    pub const CATEGORIES: u32 = 0;
    /// `KSPROPERTY_TOPOLOGY_NODES`.
    pub const NODES: u32 = 1;
    /// `KSPROPERTY_TOPOLOGY_CONNECTIONS`.
    pub const CONNECTIONS: u32 = 2;
}

/// One property, method or event of a set.
#[derive(Clone, Copy, Debug)]
pub struct Item {
    /// Id within the set.
    pub id: u32,
    /// Properties: `KSPROPERTY_TYPE_GET | SET` bits allowed. Methods: the
    /// `KSMETHOD_TYPE_*` the request must carry. Events: `KSEVENT_TYPE_ENABLE`.
    pub access: u32,
    /// Smallest request (`KSPROPERTY`, `KSP_PIN`, ...).
    pub min_request: usize,
    /// Smallest data buffer (0: variable, the handler sizes it).
    pub min_data: usize,
    /// Refused to user-mode requestors.
    pub kernel_only: bool,
    /// Value type for BASICSUPPORT.
    pub value_type: u32,
}

/// A set of items.
#[derive(Clone, Copy, Debug)]
pub struct Set {
    /// The set GUID.
    pub guid: Guid,
    /// Its items.
    pub items: &'static [Item],
}

impl Set {
    /// The item with `id`.
    #[must_use]
    pub fn item(&self, id: u32) -> Option<&'static Item> {
        self.items.iter().find(|i| i.id == id)
    }
}

/// The set with `guid` in `sets`.
#[must_use]
pub fn find(sets: &'static [Set], guid: &Guid) -> Option<&'static Set> {
    sets.iter().find(|s| s.guid == *guid)
}

const GET: u32 = property_type::GET;
const GET_SET: u32 = property_type::GET | property_type::SET;

const fn prop(id: u32, access: u32, min_request: usize, min_data: usize, value_type: u32) -> Item {
    Item {
        id,
        access,
        min_request,
        min_data,
        kernel_only: false,
        value_type,
    }
}

const PIN_PROPERTIES: &[Item] = &[
    prop(pin::CINSTANCES, GET, P_PIN_SIZE, 8, VT_EMPTY),
    prop(pin::CTYPES, GET, IDENTIFIER_SIZE, 4, VT_UI4),
    prop(pin::DATAFLOW, GET, P_PIN_SIZE, 4, VT_UI4),
    prop(pin::DATARANGES, GET, P_PIN_SIZE, 0, VT_EMPTY),
    prop(pin::INTERFACES, GET, P_PIN_SIZE, 0, VT_EMPTY),
    prop(pin::MEDIUMS, GET, P_PIN_SIZE, 0, VT_EMPTY),
    prop(pin::COMMUNICATION, GET, P_PIN_SIZE, 4, VT_UI4),
    prop(pin::GLOBALCINSTANCES, GET, P_PIN_SIZE, 8, VT_EMPTY),
    prop(pin::NECESSARYINSTANCES, GET, P_PIN_SIZE, 4, VT_UI4),
    prop(pin::CATEGORY, GET, P_PIN_SIZE, 16, VT_EMPTY),
    prop(pin::NAME, GET, P_PIN_SIZE, 0, VT_EMPTY),
];

const TOPOLOGY_PROPERTIES: &[Item] = &[
    prop(topology::CATEGORIES, GET, IDENTIFIER_SIZE, 0, VT_EMPTY),
    prop(topology::NODES, GET, IDENTIFIER_SIZE, 0, VT_EMPTY),
    prop(topology::CONNECTIONS, GET, IDENTIFIER_SIZE, 0, VT_EMPTY),
];

const CONNECTION_PROPERTIES: &[Item] = &[
    prop(
        connection::PROPERTY_STATE,
        GET_SET,
        IDENTIFIER_SIZE,
        4,
        VT_UI4,
    ),
    prop(
        connection::PROPERTY_DATAFORMAT,
        GET,
        IDENTIFIER_SIZE,
        64,
        VT_EMPTY,
    ),
    prop(
        connection::PROPERTY_ALLOCATORFRAMING,
        GET,
        IDENTIFIER_SIZE,
        24,
        VT_EMPTY,
    ),
    prop(
        connection::PROPERTY_ALLOCATORFRAMING_EX,
        GET,
        IDENTIFIER_SIZE,
        0,
        VT_EMPTY,
    ),
];

const STREAM_PROPERTIES: &[Item] = &[prop(
    stream::PROPERTY_ALLOCATOR,
    GET_SET,
    IDENTIFIER_SIZE,
    8,
    VT_UI8,
)];

const ALLOCATOR_PROPERTIES: &[Item] = &[
    Item {
        id: stream_allocator::PROPERTY_FUNCTIONTABLE,
        access: GET,
        min_request: IDENTIFIER_SIZE,
        min_data: 16,
        kernel_only: true,
        value_type: VT_EMPTY,
    },
    prop(
        stream_allocator::PROPERTY_STATUS,
        GET,
        IDENTIFIER_SIZE,
        32,
        VT_EMPTY,
    ),
];

/// Kernel-only: they hand out and take back kernel addresses (see
/// [`super::dispatch`], "Requestors").
const ALLOCATOR_METHODS: &[Item] = &[
    Item {
        id: stream_allocator::METHOD_ALLOC,
        access: method_type::WRITE,
        min_request: IDENTIFIER_SIZE,
        min_data: 8,
        kernel_only: true,
        value_type: VT_UI8,
    },
    Item {
        id: stream_allocator::METHOD_FREE,
        access: method_type::READ,
        min_request: IDENTIFIER_SIZE,
        min_data: 8,
        kernel_only: true,
        value_type: VT_UI8,
    },
];

const ALLOCATOR_EVENTS: &[Item] = &[
    // The allocator's own; clients may not enable it (the KS docs). Listed so that
    // BASICSUPPORT and SETSUPPORT describe the set truthfully.
    Item {
        id: stream_allocator::EVENT_INTERNAL_FREEFRAME,
        access: 0,
        min_request: IDENTIFIER_SIZE,
        min_data: EVENT_DATA_SIZE,
        kernel_only: true,
        value_type: VT_EMPTY,
    },
    prop(
        stream_allocator::EVENT_FREEFRAME,
        event_type::ENABLE,
        IDENTIFIER_SIZE,
        EVENT_DATA_SIZE,
        VT_EMPTY,
    ),
];

const FILTER_PROPERTY_SETS: &[Set] = &[
    Set {
        guid: KSPROPSETID_PIN,
        items: PIN_PROPERTIES,
    },
    Set {
        guid: KSPROPSETID_TOPOLOGY,
        items: TOPOLOGY_PROPERTIES,
    },
];
const PIN_PROPERTY_SETS: &[Set] = &[
    Set {
        guid: KSPROPSETID_CONNECTION,
        items: CONNECTION_PROPERTIES,
    },
    Set {
        guid: KSPROPSETID_STREAM,
        items: STREAM_PROPERTIES,
    },
];
const ALLOCATOR_PROPERTY_SETS: &[Set] = &[Set {
    guid: KSPROPSETID_STREAM_ALLOCATOR,
    items: ALLOCATOR_PROPERTIES,
}];
const ALLOCATOR_METHOD_SETS: &[Set] = &[Set {
    guid: KSMETHODSETID_STREAM_ALLOCATOR,
    items: ALLOCATOR_METHODS,
}];
const ALLOCATOR_EVENT_SETS: &[Set] = &[Set {
    guid: KSEVENTSETID_STREAM_ALLOCATOR,
    items: ALLOCATOR_EVENTS,
}];

/// Property sets an object answers.
#[must_use]
pub const fn properties(kind: ObjectKind) -> &'static [Set] {
    match kind {
        ObjectKind::Filter => FILTER_PROPERTY_SETS,
        ObjectKind::Pin => PIN_PROPERTY_SETS,
        ObjectKind::Allocator => ALLOCATOR_PROPERTY_SETS,
    }
}

/// Method sets an object answers.
#[must_use]
pub const fn methods(kind: ObjectKind) -> &'static [Set] {
    match kind {
        ObjectKind::Allocator => ALLOCATOR_METHOD_SETS,
        ObjectKind::Filter | ObjectKind::Pin => &[],
    }
}

/// Event sets an object answers.
#[must_use]
pub const fn events(kind: ObjectKind) -> &'static [Set] {
    match kind {
        ObjectKind::Allocator => ALLOCATOR_EVENT_SETS,
        ObjectKind::Filter | ObjectKind::Pin => &[],
    }
}
