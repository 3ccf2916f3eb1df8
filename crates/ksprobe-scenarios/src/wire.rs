//! The IOCTL between `ksprobe-run` and the ksprobe driver, and its byte format.
//!
//! One METHOD_BUFFERED IOCTL, [`IOCTL_KSPROBE_RUN`], on the control device
//! `\\.\ksprobe`: the input buffer is a [`Request`], the output buffer receives a
//! [`Response`] of `response_len(n)` bytes for the `n` scenarios selected. All
//! integers are little-endian at fixed offsets (no `repr(C)` struct is shared, so
//! neither side depends on the other's padding); both sides check the magic and
//! version first.
//!
//! Request (`REQUEST_HEADER_LEN` bytes, then the optional path):
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `KSPQ` |
//! | 4 | 2 | version |
//! | 6 | 2 | path length in UTF-16 units (0: ksprobe finds the filter itself) |
//! | 8 | 8 | selection mask (bit [`ScenarioId::index`]; 0 = all) |
//! | 16 | 4 | pin id |
//! | 20 | 4 | frames to touch |
//! | 24 | 4 | timing pairs |
//! | 28 | 4 | wait ms |
//! | 32 | 8 | fast-fail limit ns |
//! | 40 | 24 | `KSALLOCATOR_FRAMING` |
//! | 64 | 2n | filter interface path, UTF-16LE |
//!
//! Response (16-byte header, then one 256-byte entry per scenario run):
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `KSPR` |
//! | 4 | 2 | version |
//! | 6 | 2 | entry count |
//! | 8 | 4 | run status (`NTSTATUS`: set-up, e.g. no ksalloc filter found) |
//! | 12 | 4 | reserved |
//!
//! Entry: id u8 @0, outcome u8 @1 (0 pass, 1 fail), flags u8 @2 (1: status present,
//! 2: timings present), status i32 @4, values 2 x u64 @8, elapsed ns u64 @24, samples
//! u32 @32, min/median/p99/max ns u64 @40/48/56/64, reason (len u8 + 91 bytes) @72,
//! note (len u8 + 91 bytes) @164; 256 bytes in all.

use alloc::vec::Vec;

use ks_abi::ks::KsAllocatorFraming;
use ks_abi::NtStatus;

use crate::client::ProbeClient;
use crate::result::{Failure, Outcome, ScenarioResult, Text, Timings, TEXT_CAPACITY};
use crate::scenario::{run_selected, Config, ScenarioId};

/// `FILE_DEVICE_*` type of ksprobe's control device (vendor range 0x8000-0xFFFF).
pub const FILE_DEVICE_KSPROBE: u32 = 0x8B5A;
/// `METHOD_BUFFERED`.
pub const METHOD_BUFFERED: u32 = 0;
/// `FILE_READ_ACCESS | FILE_WRITE_ACCESS`: the handle must be open for both.
pub const FILE_READ_WRITE_ACCESS: u32 = 0x0001 | 0x0002;

/// `CTL_CODE(DeviceType, Function, Method, Access)`.
#[must_use]
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

/// Run scenarios: input [`Request`], output [`Response`].
pub const IOCTL_KSPROBE_RUN: u32 = ctl_code(
    FILE_DEVICE_KSPROBE,
    0x800,
    METHOD_BUFFERED,
    FILE_READ_WRITE_ACCESS,
);

/// Win32 name of the control device.
pub const CONTROL_DEVICE_WIN32: &str = "\\\\.\\ksprobe";
/// NT name of the control device.
pub const CONTROL_DEVICE_NT: &str = "\\Device\\ksprobe";
/// Its symbolic link.
pub const CONTROL_DEVICE_LINK: &str = "\\DosDevices\\ksprobe";

/// Format version; both sides refuse another.
pub const VERSION: u16 = 1;
/// Request magic.
pub const REQUEST_MAGIC: u32 = u32::from_le_bytes(*b"KSPQ");
/// Response magic.
pub const RESPONSE_MAGIC: u32 = u32::from_le_bytes(*b"KSPR");
/// Fixed part of a request.
pub const REQUEST_HEADER_LEN: usize = 64;
/// Longest path a request may carry, in UTF-16 units.
pub const MAX_PATH_UNITS: usize = 1024;
/// Fixed part of a response.
pub const RESPONSE_HEADER_LEN: usize = 16;
/// One result entry.
pub const ENTRY_LEN: usize = 256;
/// Where an entry's reason and note start (each a length byte and the text).
const REASON_AT: usize = 72;
const NOTE_AT: usize = REASON_AT + 1 + TEXT_CAPACITY;
const _: () = assert!(NOTE_AT + 1 + TEXT_CAPACITY == ENTRY_LEN);

/// Bytes of a response with `entries` results.
#[must_use]
pub const fn response_len(entries: usize) -> usize {
    RESPONSE_HEADER_LEN + entries * ENTRY_LEN
}

/// Why bytes did not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than its header or than the lengths it declares.
    Truncated,
    /// Wrong magic.
    BadMagic,
    /// Another format version.
    BadVersion(u16),
    /// A field out of range (named).
    Invalid(&'static str),
}

impl WireError {
    /// The status a driver completes a bad request with.
    #[must_use]
    pub const fn status(self) -> NtStatus {
        match self {
            Self::Truncated => NtStatus::BUFFER_TOO_SMALL,
            Self::BadMagic | Self::BadVersion(_) | Self::Invalid(_) => NtStatus::INVALID_PARAMETER,
        }
    }
}

/// What the runner asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Selection mask; 0 = all.
    pub selection: u64,
    /// Scenario configuration.
    pub config: Config,
    /// The filter's interface path (UTF-16, NT or `\\?\` form); empty: ksprobe finds
    /// the ksalloc filter itself.
    pub path: Vec<u16>,
}

/// What the driver answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Set-up status: success, or why no scenario could run at all.
    pub status: NtStatus,
    /// One result per scenario run, in run order.
    pub results: Vec<ScenarioResult>,
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

fn get<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], WireError> {
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(WireError::Truncated)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, WireError> {
    get(b, at).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, WireError> {
    get(b, at).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, WireError> {
    get(b, at).map(u64::from_le_bytes)
}

fn put_framing(out: &mut [u8], at: usize, f: &KsAllocatorFraming) {
    let fields = [
        f.options_flags,
        f.pool_type,
        f.frames,
        f.frame_size,
        f.file_alignment,
        f.reserved,
    ];
    for (i, v) in fields.into_iter().enumerate() {
        put(out, at + 4 * i, &v.to_le_bytes());
    }
}

fn framing_at(b: &[u8], at: usize) -> Result<KsAllocatorFraming, WireError> {
    Ok(KsAllocatorFraming {
        options_flags: u32_at(b, at)?,
        pool_type: u32_at(b, at + 4)?,
        frames: u32_at(b, at + 8)?,
        frame_size: u32_at(b, at + 12)?,
        file_alignment: u32_at(b, at + 16)?,
        reserved: u32_at(b, at + 20)?,
    })
}

impl Request {
    /// All scenarios, default configuration, ksprobe finds the filter.
    #[must_use]
    pub const fn all() -> Self {
        Self {
            selection: 0,
            config: Config::DEFAULT,
            path: Vec::new(),
        }
    }

    /// The scenarios it selects, in run order.
    #[must_use]
    pub fn scenarios(&self) -> Vec<ScenarioId> {
        ScenarioId::from_mask(self.selection)
    }

    /// The bytes of the request.
    ///
    /// # Panics
    /// If the path is longer than [`MAX_PATH_UNITS`] (the runner checks first).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        assert!(self.path.len() <= MAX_PATH_UNITS, "path too long");
        let mut out = alloc::vec![0u8; REQUEST_HEADER_LEN + 2 * self.path.len()];
        let c = &self.config;
        put(&mut out, 0, &REQUEST_MAGIC.to_le_bytes());
        put(&mut out, 4, &VERSION.to_le_bytes());
        #[allow(clippy::cast_possible_truncation)] // <= MAX_PATH_UNITS.
        put(&mut out, 6, &(self.path.len() as u16).to_le_bytes());
        put(&mut out, 8, &self.selection.to_le_bytes());
        put(&mut out, 16, &c.pin_id.to_le_bytes());
        put(&mut out, 20, &c.frames_to_touch.to_le_bytes());
        put(&mut out, 24, &c.timing_pairs.to_le_bytes());
        put(&mut out, 28, &c.wait_ms.to_le_bytes());
        put(&mut out, 32, &c.fast_fail_ns.to_le_bytes());
        put_framing(&mut out, 40, &c.framing);
        for (i, unit) in self.path.iter().enumerate() {
            put(&mut out, REQUEST_HEADER_LEN + 2 * i, &unit.to_le_bytes());
        }
        out
    }

    /// Decodes and checks a request (what the driver does with the system buffer).
    ///
    /// # Errors
    /// Short, wrong magic or version, an unknown scenario bit, a path too long, or a
    /// configuration [`Config::check`] refuses.
    pub fn decode(b: &[u8]) -> Result<Self, WireError> {
        if u32_at(b, 0)? != REQUEST_MAGIC {
            return Err(WireError::BadMagic);
        }
        let version = u16_at(b, 4)?;
        if version != VERSION {
            return Err(WireError::BadVersion(version));
        }
        if b.len() < REQUEST_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let units = usize::from(u16_at(b, 6)?);
        if units > MAX_PATH_UNITS {
            return Err(WireError::Invalid("path too long"));
        }
        let selection = u64_at(b, 8)?;
        if selection >> ScenarioId::ALL.len() != 0 {
            return Err(WireError::Invalid("selection names an unknown scenario"));
        }
        let config = Config {
            pin_id: u32_at(b, 16)?,
            frames_to_touch: u32_at(b, 20)?,
            timing_pairs: u32_at(b, 24)?,
            wait_ms: u32_at(b, 28)?,
            fast_fail_ns: u64_at(b, 32)?,
            framing: framing_at(b, 40)?,
        };
        config.check().map_err(WireError::Invalid)?;
        let path_bytes = b
            .get(REQUEST_HEADER_LEN..REQUEST_HEADER_LEN + 2 * units)
            .ok_or(WireError::Truncated)?;
        let path = path_bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Ok(Self {
            selection,
            config,
            path,
        })
    }
}

fn put_text(out: &mut [u8], at: usize, text: &Text) {
    let bytes = text.as_bytes();
    #[allow(clippy::cast_possible_truncation)] // <= TEXT_CAPACITY.
    {
        out[at] = bytes.len() as u8;
    }
    put(out, at + 1, bytes);
}

fn text_at(b: &[u8], at: usize) -> Result<Text, WireError> {
    let len = usize::from(*b.get(at).ok_or(WireError::Truncated)?);
    if len > TEXT_CAPACITY {
        return Err(WireError::Invalid("text length"));
    }
    b.get(at + 1..at + 1 + len)
        .map(Text::from_utf8)
        .ok_or(WireError::Truncated)
}

const FLAG_STATUS: u8 = 1;
const FLAG_TIMINGS: u8 = 2;

fn encode_entry(out: &mut [u8], r: &ScenarioResult) {
    out[0] = r.id.index();
    let (failure, outcome) = match &r.outcome {
        Outcome::Pass => (None, 0),
        Outcome::Fail(f) => (Some(f), 1),
    };
    out[1] = outcome;
    let status = failure.and_then(|f| f.status);
    out[2] =
        (u8::from(status.is_some()) * FLAG_STATUS) | (u8::from(r.timings.is_some()) * FLAG_TIMINGS);
    put(out, 4, &status.map_or(0, |s| s.0).to_le_bytes());
    let values = failure.map_or([0; 2], |f| f.values);
    put(out, 8, &values[0].to_le_bytes());
    put(out, 16, &values[1].to_le_bytes());
    put(out, 24, &r.elapsed_ns.to_le_bytes());
    let t = r.timings.unwrap_or_default();
    put(out, 32, &t.samples.to_le_bytes());
    put(out, 40, &t.min_ns.to_le_bytes());
    put(out, 48, &t.median_ns.to_le_bytes());
    put(out, 56, &t.p99_ns.to_le_bytes());
    put(out, 64, &t.max_ns.to_le_bytes());
    put_text(out, REASON_AT, &failure.map_or(Text::EMPTY, |f| f.reason));
    put_text(out, NOTE_AT, &r.note);
}

fn decode_entry(b: &[u8]) -> Result<ScenarioResult, WireError> {
    let id = ScenarioId::from_index(b[0]).ok_or(WireError::Invalid("scenario id"))?;
    let flags = b[2];
    let status = (flags & FLAG_STATUS != 0)
        .then(|| u32_at(b, 4).map(|v| NtStatus(i32::from_le_bytes(v.to_le_bytes()))))
        .transpose()?;
    let outcome = match b[1] {
        0 => Outcome::Pass,
        1 => Outcome::Fail(Failure {
            reason: text_at(b, REASON_AT)?,
            status,
            values: [u64_at(b, 8)?, u64_at(b, 16)?],
        }),
        _ => return Err(WireError::Invalid("outcome")),
    };
    let timings = (flags & FLAG_TIMINGS != 0)
        .then(|| -> Result<Timings, WireError> {
            Ok(Timings {
                samples: u32_at(b, 32)?,
                min_ns: u64_at(b, 40)?,
                median_ns: u64_at(b, 48)?,
                p99_ns: u64_at(b, 56)?,
                max_ns: u64_at(b, 64)?,
            })
        })
        .transpose()?;
    Ok(ScenarioResult {
        id,
        outcome,
        elapsed_ns: u64_at(b, 24)?,
        timings,
        note: text_at(b, NOTE_AT)?,
    })
}

impl Response {
    /// Encodes into `out`, which must be at least [`response_len`] of the result
    /// count; returns the bytes written (the IRP's `Information`).
    ///
    /// # Errors
    /// `Truncated` when `out` is too short (nothing is written then).
    pub fn encode_into(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let len = response_len(self.results.len());
        let count = u16::try_from(self.results.len()).map_err(|_| WireError::Invalid("count"))?;
        let out = out.get_mut(..len).ok_or(WireError::Truncated)?;
        out.fill(0);
        put(out, 0, &RESPONSE_MAGIC.to_le_bytes());
        put(out, 4, &VERSION.to_le_bytes());
        put(out, 6, &count.to_le_bytes());
        put(out, 8, &self.status.0.to_le_bytes());
        for (i, r) in self.results.iter().enumerate() {
            let at = RESPONSE_HEADER_LEN + i * ENTRY_LEN;
            encode_entry(&mut out[at..at + ENTRY_LEN], r);
        }
        Ok(len)
    }

    /// The bytes of the response.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = alloc::vec![0u8; response_len(self.results.len())];
        // The buffer is exactly the length needed.
        let _ = self.encode_into(&mut out);
        out
    }

    /// Decodes a response (what the runner does with the output buffer).
    ///
    /// # Errors
    /// Short, wrong magic or version, or a malformed entry.
    pub fn decode(b: &[u8]) -> Result<Self, WireError> {
        if u32_at(b, 0)? != RESPONSE_MAGIC {
            return Err(WireError::BadMagic);
        }
        let version = u16_at(b, 4)?;
        if version != VERSION {
            return Err(WireError::BadVersion(version));
        }
        let count = usize::from(u16_at(b, 6)?);
        let status = NtStatus(i32::from_le_bytes(get(b, 8)?));
        if b.len() < response_len(count) {
            return Err(WireError::Truncated);
        }
        let results = (0..count)
            .map(|i| {
                let at = RESPONSE_HEADER_LEN + i * ENTRY_LEN;
                decode_entry(&b[at..at + ENTRY_LEN])
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { status, results })
    }
}

/// The driver's side of [`IOCTL_KSPROBE_RUN`].
///
/// METHOD_BUFFERED hands over one system buffer holding the request (`input_len`
/// bytes) that the response overwrites (`output_len` bytes). `open` makes the client
/// for the request (finding the filter, or using the request's path) or says why it
/// cannot.
///
/// Returns the IRP's status and `Information`:
/// - a malformed request: its [`WireError::status`], 0;
/// - an output buffer shorter than [`response_len`] of the selection:
///   `STATUS_BUFFER_TOO_SMALL`, 0 (checked before anything runs);
/// - otherwise `STATUS_SUCCESS` and the response length; a client that could not be
///   made shows as the response's own status with no results.
pub fn serve<C: ProbeClient>(
    buffer: &mut [u8],
    input_len: usize,
    output_len: usize,
    open: impl FnOnce(&Request) -> Result<C, NtStatus>,
) -> (NtStatus, usize) {
    let Some(input) = buffer.get(..input_len) else {
        return (NtStatus::INVALID_PARAMETER, 0);
    };
    // Decoding copies everything out of the buffer the response will overwrite.
    let request = match Request::decode(input) {
        Ok(request) => request,
        Err(error) => return (error.status(), 0),
    };
    let ids = request.scenarios();
    let Some(output) = buffer
        .get_mut(..output_len)
        .filter(|out| out.len() >= response_len(ids.len()))
    else {
        return (NtStatus::BUFFER_TOO_SMALL, 0);
    };
    let response = match open(&request) {
        Ok(client) => Response {
            status: NtStatus::SUCCESS,
            results: run_selected(&client, &ids, &request.config),
        },
        Err(status) => Response {
            status,
            results: Vec::new(),
        },
    };
    match response.encode_into(output) {
        Ok(written) => (NtStatus::SUCCESS, written),
        Err(error) => (error.status(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn ioctl_code_is_buffered_read_write_vendor() {
        assert_eq!(IOCTL_KSPROBE_RUN, 0x8B5A_E000);
        assert_eq!(IOCTL_KSPROBE_RUN & 3, METHOD_BUFFERED);
        assert_eq!((IOCTL_KSPROBE_RUN >> 14) & 3, 3);
        assert_eq!(IOCTL_KSPROBE_RUN >> 16, FILE_DEVICE_KSPROBE);
    }

    #[test]
    fn request_round_trip() {
        let mut request = Request::all();
        assert_eq!(Request::decode(&request.encode()), Ok(request.clone()));
        request.selection =
            ScenarioId::mask_of(&[ScenarioId::CancelPending, ScenarioId::TimeAllocFree]);
        request.config.timing_pairs = 77;
        request.config.framing.frames = 16;
        request.path = "\\??\\ROOT#MEDIA#0000#{x}\\{y}".encode_utf16().collect();
        let bytes = request.encode();
        assert_eq!(bytes.len(), REQUEST_HEADER_LEN + 2 * request.path.len());
        let back = Request::decode(&bytes).unwrap();
        assert_eq!(back, request);
        assert_eq!(
            back.scenarios(),
            [ScenarioId::CancelPending, ScenarioId::TimeAllocFree]
        );
    }

    #[test]
    fn bad_requests_are_refused() {
        let good = Request::all().encode();
        assert_eq!(Request::decode(&good[..10]), Err(WireError::Truncated));
        assert_eq!(Request::decode(&good[..3]), Err(WireError::Truncated));
        let mut b = good.clone();
        b[0] ^= 1;
        assert_eq!(Request::decode(&b), Err(WireError::BadMagic));
        let mut b = good.clone();
        b[4] = 9;
        assert_eq!(Request::decode(&b), Err(WireError::BadVersion(9)));
        let mut b = good.clone();
        b[6] = 4; // declares a path that is not there
        assert_eq!(Request::decode(&b), Err(WireError::Truncated));
        let mut b = good.clone();
        b[15] = 0x80; // unknown scenario bit
        assert!(matches!(Request::decode(&b), Err(WireError::Invalid(_))));
        let mut b = good;
        b[24..28].copy_from_slice(&0u32.to_le_bytes()); // zero timing pairs
        assert!(matches!(Request::decode(&b), Err(WireError::Invalid(_))));
        assert_eq!(WireError::Truncated.status(), NtStatus::BUFFER_TOO_SMALL);
    }

    fn sample_results() -> Vec<ScenarioResult> {
        vec![
            ScenarioResult {
                id: ScenarioId::OpenChain,
                outcome: Outcome::Pass,
                elapsed_ns: 1234,
                timings: None,
                note: Text::EMPTY,
            },
            ScenarioResult {
                id: ScenarioId::ExhaustFailsFast,
                outcome: Outcome::Fail(
                    Failure::status("empty pool: wrong status", NtStatus::CANCELLED)
                        .with_values(7, u64::MAX),
                ),
                elapsed_ns: u64::MAX,
                timings: Some(Timings {
                    samples: 100,
                    min_ns: 1,
                    median_ns: 2,
                    p99_ns: 3,
                    max_ns: 4,
                }),
                note: Text::new(&"n".repeat(200)),
            },
            ScenarioResult {
                id: ScenarioId::TimeAllocFree,
                outcome: Outcome::Fail(Failure::new("no status")),
                elapsed_ns: 0,
                timings: None,
                note: Text::new("é"),
            },
        ]
    }

    #[test]
    fn response_round_trip() {
        let response = Response {
            status: NtStatus::SUCCESS,
            results: sample_results(),
        };
        let bytes = response.encode();
        assert_eq!(bytes.len(), response_len(3));
        assert_eq!(Response::decode(&bytes), Ok(response));
        let empty = Response {
            status: NtStatus::OBJECT_NAME_NOT_FOUND,
            results: Vec::new(),
        };
        assert_eq!(Response::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn response_refuses_short_buffers() {
        let response = Response {
            status: NtStatus::SUCCESS,
            results: sample_results(),
        };
        let mut small = vec![0xAAu8; response_len(2)];
        assert_eq!(response.encode_into(&mut small), Err(WireError::Truncated));
        assert!(small.iter().all(|&b| b == 0xAA), "nothing written");
        let bytes = response.encode();
        assert_eq!(
            Response::decode(&bytes[..bytes.len() - 1]),
            Err(WireError::Truncated)
        );
        let mut bad = bytes;
        bad[RESPONSE_HEADER_LEN] = 200; // unknown scenario id
        assert!(matches!(Response::decode(&bad), Err(WireError::Invalid(_))));
    }
}
