//! Target `ks_ioctl`: one IRP_MJ_DEVICE_CONTROL with fuzzed request and data buffers on
//! a filter, pin or allocator of a fresh graph.
//!
//! Input layout (missing bytes read as zero):
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 1 | object: bits 0-1 = 0 filter, 1 pin, 2/3 allocator; bit 7: the allocator had IRP_MJ_CLEANUP first |
//! | 1 | 1 | bit 0: user-mode requestor |
//! | 2 | 1 | code: index into [`crate::common::CODES`], or `0xFF` then a raw `u32` |
//! | .. | 2 | request length `n` (LE, clamped to what is left) |
//! | .. | n | request (`Type3InputBuffer`) |
//! | .. | rest | data buffer (`UserBuffer`; its length is `OutputBufferLength`) |
//!
//! Invariants: no panic (the model panics on a second completion, a write past the
//! data buffer, a wrong IRQL); every IRP completes exactly once (only an ALLOC may
//! pend, and then cancelling it completes it); on success `Information` never exceeds
//! the data buffer and an ALLOC's frame lies inside live pool memory; a user-mode
//! requestor never receives a function-table address; a refused request changes no
//! state (allocator snapshot except the rejection counters, pin state and allocator
//! handle, STATUS, pin instances, pool blocks, files, IRPs); a success leaves the
//! allocator conserved; after closing everything `assert_no_leaks`.

use ks_abi::ioctl::IOCTL_KS_METHOD;
use ks_abi::NtStatus;
use ksalloc_model::irp::RequestorMode;
use ksalloc_model::Handle;

use crate::common::{assert_no_kernel_address, code_of, touch_frame, Graph, RAW_CODE};

/// Which object of the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    /// The filter.
    Filter,
    /// Pin 0.
    Pin,
    /// The allocator.
    Allocator,
}

/// A decoded input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input<'a> {
    /// Target object.
    pub object: Object,
    /// Run IRP_MJ_CLEANUP on the allocator first.
    pub cleanup_first: bool,
    /// Requestor mode.
    pub mode: RequestorMode,
    /// IOCTL code.
    pub code: u32,
    /// Request bytes.
    pub input: &'a [u8],
    /// Data buffer bytes.
    pub data: &'a [u8],
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.0 = rest;
        first
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }
}

impl<'a> Input<'a> {
    /// Decodes `bytes` (never fails: short inputs read zeros).
    #[must_use]
    pub fn parse(bytes: &'a [u8]) -> Self {
        let mut c = Cursor(bytes);
        let object_byte = c.byte();
        let object = match object_byte & 3 {
            0 => Object::Filter,
            1 => Object::Pin,
            _ => Object::Allocator,
        };
        let mode = if c.byte() & 1 == 1 {
            RequestorMode::User
        } else {
            RequestorMode::Kernel
        };
        let selector = c.byte();
        let code = code_of(selector).unwrap_or_else(|| {
            let raw = c.take(4);
            let mut word = [0u8; 4];
            word[..raw.len()].copy_from_slice(raw);
            u32::from_le_bytes(word)
        });
        let len = u16::from_le_bytes([c.byte(), c.byte()]);
        let input = c.take(usize::from(len));
        Self {
            object,
            cleanup_first: object_byte & 0x80 != 0,
            mode,
            code,
            input,
            data: c.0,
        }
    }

    /// Encodes (the inverse of [`Input::parse`] for inputs it produced).
    ///
    /// # Panics
    /// If the request is longer than 65535 bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let object = match self.object {
            Object::Filter => 0,
            Object::Pin => 1,
            Object::Allocator => 2,
        } | if self.cleanup_first { 0x80 } else { 0 };
        let mut out = vec![object, u8::from(self.mode == RequestorMode::User)];
        let selector = crate::common::selector_of(self.code);
        out.push(selector);
        if selector == RAW_CODE {
            out.extend_from_slice(&self.code.to_le_bytes());
        }
        let len = u16::try_from(self.input.len()).expect("request too long");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(self.input);
        out.extend_from_slice(self.data);
        out
    }
}

/// Runs one input.
///
/// # Panics
/// When an invariant breaks.
pub fn run(bytes: &[u8]) {
    let io = Input::parse(bytes);
    let graph = Graph::new();
    if io.cleanup_first {
        graph.allocator.object().cleanup();
    }
    let file: &Handle = match io.object {
        Object::Filter => &graph.filter,
        Object::Pin => &graph.pin,
        Object::Allocator => &graph.allocator,
    };
    let before = graph.observe();
    let outstanding_before = graph.engine().snapshot().outstanding;
    let irp = graph
        .client
        .driver()
        .device_control(file, io.code, io.input, io.data, io.mode);
    let completion = if let Some(done) = irp.completion() {
        done
    } else {
        assert!(
            io.object == Object::Allocator && io.code == IOCTL_KS_METHOD,
            "only an ALLOC may pend"
        );
        irp.cancel();
        let done = irp.completion().expect("a cancelled ALLOC completes");
        assert_eq!(done.status, NtStatus::CANCELLED, "cancelled ALLOC status");
        done
    };
    if io.mode == RequestorMode::User {
        assert_no_kernel_address(&graph.kernel, io.data, &irp.output(), "ks_ioctl");
    }
    if completion.status.is_success() {
        assert!(
            completion.information <= io.data.len(),
            "Information {} past a {}-byte data buffer (status {:?})",
            completion.information,
            io.data.len(),
            completion.status
        );
        let snap = graph.engine().snapshot();
        assert!(snap.conserved(), "not conserved after success: {snap:?}");
        assert_eq!(
            snap.counters.frees, 0,
            "a FREE succeeded on an allocator with no frame out"
        );
        if snap.outstanding > outstanding_before {
            assert_eq!(
                snap.outstanding,
                outstanding_before + 1,
                "one ALLOC, one frame"
            );
            let address = irp
                .allocated_frame()
                .expect("ALLOC success carries a frame");
            touch_frame(
                &graph.kernel,
                address,
                graph.engine().framing().frame_size(),
            );
            ksalloc_model::driver::at_dispatch(|| graph.engine().free(address))
                .expect("the frame ALLOC returned frees");
        }
    } else {
        let after = graph.observe();
        assert_eq!(
            before, after,
            "refused request ({:?}) changed state",
            completion.status
        );
    }
    graph.teardown();
}
