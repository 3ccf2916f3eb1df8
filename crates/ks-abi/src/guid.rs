//! `GUID` and the KS GUIDs the driver names.

/// A Windows `GUID` (16 bytes, align 4).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Guid {
    /// First 32 bits, stored little-endian like every other field.
    pub data1: u32,
    /// Next 16 bits.
    pub data2: u16,
    /// Next 16 bits.
    pub data3: u16,
    /// Last 64 bits, in textual byte order.
    pub data4: [u8; 8],
}

impl Guid {
    /// `GUID_NULL`, also KS's "don't care" / wildcard.
    pub const NULL: Self = Self::from_u128(0);

    /// Builds a GUID from its textual form read as one big number, e.g.
    /// `0xcf6e4342_ec87_11cf_a130_0020afd156e4`.
    #[must_use]
    #[allow(clippy::cast_possible_truncation)] // Each field takes exactly its bits.
    pub const fn from_u128(v: u128) -> Self {
        let tail = (v as u64).to_be_bytes();
        Self {
            data1: (v >> 96) as u32,
            data2: (v >> 80) as u16,
            data3: (v >> 64) as u16,
            data4: tail,
        }
    }

    /// The GUID's bytes as they lie in memory (the wire form inside a KS request).
    #[must_use]
    pub const fn to_bytes(&self) -> [u8; 16] {
        let a = self.data1.to_le_bytes();
        let b = self.data2.to_le_bytes();
        let c = self.data3.to_le_bytes();
        let d = self.data4;
        [
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5],
            d[6], d[7],
        ]
    }

    /// Reads a GUID from its in-memory bytes.
    #[must_use]
    pub const fn from_bytes(b: &[u8; 16]) -> Self {
        Self {
            data1: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            data2: u16::from_le_bytes([b[4], b[5]]),
            data3: u16::from_le_bytes([b[6], b[7]]),
            data4: [b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]],
        }
    }

    /// Writes the registry form `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}` (38 characters,
    /// upper case) into `out`, as KS create names spell it.
    #[must_use]
    pub const fn to_braced_ascii(&self) -> [u8; 38] {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let b = self.to_bytes();
        // Textual byte order: data1..3 are printed big-endian.
        let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
        let mut out = [0u8; 38];
        out[0] = b'{';
        out[37] = b'}';
        let mut pos = 1;
        let mut i = 0;
        while i < 16 {
            if i == 4 || i == 6 || i == 8 || i == 10 {
                out[pos] = b'-';
                pos += 1;
            }
            let byte = b[order[i]];
            out[pos] = HEX[(byte >> 4) as usize];
            out[pos + 1] = HEX[(byte & 0xF) as usize];
            pos += 2;
            i += 1;
        }
        out
    }
}

impl core::fmt::Debug for Guid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.to_braced_ascii();
        // The array holds only ASCII hex digits, braces and dashes.
        f.write_str(core::str::from_utf8(&s).unwrap_or("{?}"))
    }
}

/// `KSPROPSETID_StreamAllocator`.
pub const KSPROPSETID_STREAM_ALLOCATOR: Guid =
    Guid::from_u128(0xcf6e4342_ec87_11cf_a130_0020afd156e4);
/// `KSMETHODSETID_StreamAllocator`.
pub const KSMETHODSETID_STREAM_ALLOCATOR: Guid =
    Guid::from_u128(0xcf6e4341_ec87_11cf_a130_0020afd156e4);
/// `KSEVENTSETID_StreamAllocator`.
pub const KSEVENTSETID_STREAM_ALLOCATOR: Guid =
    Guid::from_u128(0x75d95571_073c_11d0_a161_0020afd156e4);
/// `KSPROPSETID_Stream`.
pub const KSPROPSETID_STREAM: Guid = Guid::from_u128(0x65aaba60_98ae_11cf_a10d_0020afd156e4);
/// `KSPROPSETID_Connection`.
pub const KSPROPSETID_CONNECTION: Guid = Guid::from_u128(0x1d58c920_ac9b_11cf_a5d6_28db04c10000);
/// `KSPROPSETID_Pin`.
pub const KSPROPSETID_PIN: Guid = Guid::from_u128(0x8c134960_51ad_11cf_878a_94f801c10000);
/// `KSPROPSETID_Topology`.
pub const KSPROPSETID_TOPOLOGY: Guid = Guid::from_u128(0x720d4ac0_7533_11d0_a5d6_28db04c10000);
/// `KSPROPSETID_General`.
pub const KSPROPSETID_GENERAL: Guid = Guid::from_u128(0x1464eda5_6a8f_11d1_9aa7_00a0c9223196);
/// `KSPROPTYPESETID_General`: the `PropTypeSet` of a BASICSUPPORT description.
pub const KSPROPTYPESETID_GENERAL: Guid = Guid::from_u128(0x97e99ba0_bdea_11cf_a5d6_28db04c10000);

/// `KSNAME_Filter`: reference string of the filter's device interface.
pub const KSNAME_FILTER: Guid = Guid::from_u128(0x9b365890_165f_11d0_a195_0020afd156e4);
/// `KSNAME_Pin`: create name of a pin (relative to the filter).
pub const KSNAME_PIN: Guid = Guid::from_u128(0x146f1a80_4791_11d0_a5d6_28db04c10000);
/// `KSNAME_Allocator`: create name of an allocator (relative to a pin).
pub const KSNAME_ALLOCATOR: Guid = Guid::from_u128(0x642f5d00_4791_11d0_a5d6_28db04c10000);

/// `KSCATEGORY_DATATRANSFORM`: the category ksalloc's filter registers under.
pub const KSCATEGORY_DATATRANSFORM: Guid = Guid::from_u128(0x2eb07ea0_7e70_11d0_a5d6_28db04c10000);
/// `KSCATEGORY_BRIDGE`.
pub const KSCATEGORY_BRIDGE: Guid = Guid::from_u128(0x085aff00_62ce_11cf_a5d6_28db04c10000);

/// `KSINTERFACESETID_Standard`.
pub const KSINTERFACESETID_STANDARD: Guid = Guid::from_u128(0x1a8766a0_62ce_11cf_a5d6_28db04c10000);
/// `KSMEDIUMSETID_Standard`.
pub const KSMEDIUMSETID_STANDARD: Guid = Guid::from_u128(0x4747b320_62ce_11cf_a5d6_28db04c10000);
/// `KSDATAFORMAT_TYPE_STREAM`.
pub const KSDATAFORMAT_TYPE_STREAM: Guid = Guid::from_u128(0xe436eb83_524f_11ce_9f53_0020af0ba770);
/// `KSDATAFORMAT_SUBTYPE_NONE`.
pub const KSDATAFORMAT_SUBTYPE_NONE: Guid = Guid::from_u128(0xe436eb8e_524f_11ce_9f53_0020af0ba770);
/// `KSDATAFORMAT_SPECIFIER_NONE`.
pub const KSDATAFORMAT_SPECIFIER_NONE: Guid =
    Guid::from_u128(0x0f6417d6_c318_11d0_a43f_00a0c9223196);
/// `KSMEMORY_TYPE_KERNEL_NONPAGED`.
pub const KSMEMORY_TYPE_KERNEL_NONPAGED: Guid =
    Guid::from_u128(0x4a6d5fc4_7895_11d1_b069_00a0c9062802);
/// `CLSID_Proxy` (ksproxy.ax), the CLSID a KS interface key names for DirectShow.
pub const CLSID_PROXY: Guid = Guid::from_u128(0x17cca71b_ecd7_11d0_b908_00a0c9223196);
