//! IRP_MJ_CREATE: which object a create names, and its parameters.
//!
//! KS names child objects by a braced GUID string in the file name, followed for pins
//! and allocators by a backslash and the raw create structure (`KsCreatePin`,
//! `KsCreateAllocator` append the bytes as if they were WCHARs):
//!
//! | parent | file name | object |
//! |---|---|---|
//! | none (device interface) | empty, or `\{KSNAME_Filter}` | filter |
//! | filter | `\{KSNAME_Pin}\` + `KSPIN_CONNECT` + `KSDATAFORMAT` | pin |
//! | pin | `\{KSNAME_Allocator}\` + `KSALLOCATOR_FRAMING` | allocator |
//!
//! The leading backslash is optional. Statuses, in the order they are checked:
//!
//! | input | status |
//! |---|---|
//! | name not UTF-16 (odd length), GUID text malformed, no `\` before parameters | `STATUS_OBJECT_NAME_INVALID` |
//! | a well-formed GUID the parent does not create | `STATUS_OBJECT_NAME_NOT_FOUND` |
//! | parameters missing or of the wrong size | `STATUS_INVALID_PARAMETER` |
//! | pin id out of range, `PinToHandle` set (our pins are sinks), `FormatSize` not 64 | `STATUS_INVALID_PARAMETER` |
//! | interface or medium not standard streaming, format outside the data range | `STATUS_NO_MATCH` |
//! | every instance of that pin factory open | `STATUS_INSUFFICIENT_RESOURCES` |
//! | framing rules | see [`crate::framing`] |
//! | then, in this order: [`MAX_ALLOCATORS_PER_PIN`] allocators live on the pin, the driver's frame budget spent, the requestor's quota or the pool exhausted | `STATUS_INSUFFICIENT_RESOURCES` |
//!
//! The parent object is valid for the create only (`RelatedFileObject`, "FILE_OBJECT
//! structure" page): a child takes its own reference on what it needs of it (see
//! [`super`], "Lifetime rules").
//!
//! [`MAX_ALLOCATORS_PER_PIN`]: crate::limits::MAX_ALLOCATORS_PER_PIN

use ks_abi::guid::{
    KSINTERFACESETID_STANDARD, KSMEDIUMSETID_STANDARD, KSNAME_ALLOCATOR, KSNAME_FILTER, KSNAME_PIN,
};
use ks_abi::{Guid, NtStatus};

use super::filter::{AllocatorSlot, Filter, Pin, PinInstance, DATA_RANGE, PINS};
use super::KsObject;
use crate::allocator::Allocator;
use crate::framing::Framing;
use crate::platform::{Irql, Platform, Requestor};
use crate::wire;

const BACKSLASH: [u8; 2] = [b'\\', 0];
/// Bytes of a braced GUID in UTF-16.
const GUID_TEXT_BYTES: usize = 38 * 2;

/// A parsed create name: the object class GUID and the parameter bytes after it.
#[derive(Debug, PartialEq, Eq)]
pub struct CreateName<'a> {
    /// The object class (`KSNAME_*`), `None` for an empty name.
    pub class: Option<Guid>,
    /// The bytes after `\{GUID}\` (empty when there is no separator).
    pub params: &'a [u8],
    /// Whether a `\` separated parameters from the GUID.
    pub has_params: bool,
}

/// Parses a create file name (UTF-16LE bytes, `UNICODE_STRING.Length` long).
///
/// # Errors
/// `STATUS_OBJECT_NAME_INVALID` for a name that is not `[\]{GUID}[\params]`.
pub fn parse_name(name: &[u8]) -> Result<CreateName<'_>, NtStatus> {
    if name.len() % 2 != 0 {
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    let rest = name.strip_prefix(&BACKSLASH[..]).unwrap_or(name);
    if rest.is_empty() {
        return Ok(CreateName {
            class: None,
            params: &[],
            has_params: false,
        });
    }
    let (text, tail) = rest
        .split_at_checked(GUID_TEXT_BYTES)
        .ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let class = parse_guid_utf16(text).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    match tail.strip_prefix(&BACKSLASH[..]) {
        Some(params) => Ok(CreateName {
            class: Some(class),
            params,
            has_params: true,
        }),
        None if tail.is_empty() => Ok(CreateName {
            class: Some(class),
            params: &[],
            has_params: false,
        }),
        None => Err(NtStatus::OBJECT_NAME_INVALID),
    }
}

/// Reads `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}` from UTF-16LE, any hex case.
fn parse_guid_utf16(text: &[u8]) -> Option<Guid> {
    let mut ascii = [0u8; 38];
    for (dst, unit) in ascii.iter_mut().zip(text.chunks_exact(2)) {
        if unit[1] != 0 || !unit[0].is_ascii() {
            return None;
        }
        *dst = unit[0].to_ascii_uppercase();
    }
    if ascii[0] != b'{' || ascii[37] != b'}' {
        return None;
    }
    let mut value: u128 = 0;
    for (i, &c) in ascii[1..37].iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let digit = char::from(c).to_digit(16)?;
        value = (value << 4) | u128::from(digit);
    }
    let guid = Guid::from_u128(value);
    // Round-trip: rejects anything the digit loop let through oddly.
    (guid.to_braced_ascii() == ascii).then_some(guid)
}

impl<P: Platform> KsObject<P> {
    /// IRP_MJ_CREATE: builds the object `name` (and `params` after it) asks for, with
    /// `parent` the object of the related file object (valid for this call only) and
    /// `requestor` the create's `Irp->RequestorMode`. PASSIVE_LEVEL, in the requestor's
    /// context (its process is charged the quota of a user-mode create).
    ///
    /// # Errors
    /// See the module table; nothing is allocated or counted on failure.
    pub fn create(
        platform: &P,
        parent: Option<&Self>,
        name: &[u8],
        requestor: Requestor,
    ) -> Result<Self, NtStatus> {
        platform.check_irql(Irql::Passive);
        let parsed = parse_name(name)?;
        let wants = |class: Guid| parsed.class == Some(class);
        let params = || {
            parsed
                .has_params
                .then_some(parsed.params)
                .ok_or(NtStatus::INVALID_PARAMETER)
        };
        match parent {
            None if parsed.class.is_none() || (wants(KSNAME_FILTER) && !parsed.has_params) => {
                let filter = shared(platform, Filter::new())?;
                Ok(Self::Filter(filter))
            }
            Some(Self::Filter(filter)) if wants(KSNAME_PIN) => {
                let (pin, instance) = create_pin::<P>(filter, params()?)?;
                Ok(Self::Pin(shared(platform, pin)?, instance))
            }
            Some(Self::Pin(pin, _)) if wants(KSNAME_ALLOCATOR) => {
                let raw = allocator_framing(params()?)?;
                // Bad framing gets its own status before any limit is looked at.
                Framing::validate(&raw).map_err(crate::framing::FramingError::status)?;
                let slot = AllocatorSlot::take(pin).ok_or(NtStatus::INSUFFICIENT_RESOURCES)?;
                let allocator = Allocator::create_for(platform.clone(), &raw, requestor)?;
                Ok(Self::Allocator(allocator, slot))
            }
            _ => Err(NtStatus::OBJECT_NAME_NOT_FOUND),
        }
    }
}

/// `value` in a [`Platform::Shared`], or `STATUS_INSUFFICIENT_RESOURCES`.
fn shared<P: Platform, T: Send + Sync>(platform: &P, value: T) -> Result<P::Shared<T>, NtStatus> {
    platform
        .share(value)
        .map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)
}

fn allocator_framing(params: &[u8]) -> Result<ks_abi::ks::KsAllocatorFraming, NtStatus> {
    if params.len() != wire::FRAMING_SIZE {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    wire::framing(params).ok_or(NtStatus::INVALID_PARAMETER)
}

/// `KsValidateConnectRequest` for our pin factories, then takes an instance.
fn create_pin<P: Platform>(
    filter: &P::Shared<Filter>,
    params: &[u8],
) -> Result<(Pin, PinInstance<P>), NtStatus> {
    if params.len() < wire::PIN_CONNECT_SIZE + wire::DATA_FORMAT_SIZE {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let connect = wire::pin_connect(params).ok_or(NtStatus::INVALID_PARAMETER)?;
    let format =
        wire::data_format_at(params, wire::PIN_CONNECT_SIZE).ok_or(NtStatus::INVALID_PARAMETER)?;
    if connect.pin_id as usize >= PINS.len() || connect.pin_to_handle != 0 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    // Our one range has no specifier data: the format is exactly a KSDATAFORMAT.
    if format.format_size as usize != wire::DATA_FORMAT_SIZE
        || params.len() != wire::PIN_CONNECT_SIZE + wire::DATA_FORMAT_SIZE
    {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let standard = |m: &ks_abi::ks::KsPinMedium, set: Guid| m.set == set && m.id == 0;
    if !standard(&connect.interface, KSINTERFACESETID_STANDARD)
        || !standard(&connect.medium, KSMEDIUMSETID_STANDARD)
    {
        return Err(NtStatus::NO_MATCH);
    }
    if format.major_format != DATA_RANGE.major_format
        || format.sub_format != DATA_RANGE.sub_format
        || format.specifier != DATA_RANGE.specifier
    {
        return Err(NtStatus::NO_MATCH);
    }
    let instance =
        PinInstance::take(filter, connect.pin_id).ok_or(NtStatus::INSUFFICIENT_RESOURCES)?;
    Ok((Pin::new(connect.pin_id, format), instance))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn utf16(s: &str) -> alloc::vec::Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn names_parse_with_or_without_the_leading_backslash_and_any_case() {
        for text in [
            "\\{9b365890-165f-11d0-a195-0020afd156e4}",
            "{9B365890-165F-11D0-A195-0020AFD156E4}",
        ] {
            let name = utf16(text);
            let parsed = parse_name(&name).unwrap();
            assert_eq!(parsed.class, Some(KSNAME_FILTER));
            assert!(!parsed.has_params);
        }
        let mut name = utf16("\\{642F5D00-4791-11D0-A5D6-28DB04C10000}\\");
        name.extend_from_slice(&[1, 2, 3, 4]);
        let parsed = parse_name(&name).unwrap();
        assert_eq!(
            (parsed.class, parsed.params),
            (Some(KSNAME_ALLOCATOR), &[1u8, 2, 3, 4][..])
        );
    }

    #[test]
    fn malformed_names_are_invalid() {
        for text in [
            "\\{9B365890-165F-11D0-A195-0020AFD156E}",
            "\\{9B365890+165F-11D0-A195-0020AFD156E4}",
            "\\{9B365890-165F-11D0-A195-0020AFD156EG}",
            "\\{9B365890-165F-11D0-A195-0020AFD156E4}x",
        ] {
            assert_eq!(
                parse_name(&utf16(text)),
                Err(NtStatus::OBJECT_NAME_INVALID),
                "{text}"
            );
        }
        assert_eq!(
            parse_name(b"\\"),
            Err(NtStatus::OBJECT_NAME_INVALID),
            "odd length"
        );
    }
}
