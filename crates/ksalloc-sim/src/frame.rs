//! What a frame carries: its sequence number and a fill byte derived from it.
//!
//! The first bytes (up to 8) hold the sequence number, little-endian; every byte after
//! them holds [`fill_byte`]. A frame handed out twice, freed under its owner or
//! overwritten by a neighbour shows up as a mismatch when the consumer checks it.

use ksalloc_model::ModelKernel;

/// Bytes of the sequence-number header (fewer when the frame is smaller).
const HEADER: usize = 8;

/// The fill byte of frame `seq` (never the zero the pool starts with, for small seqs).
#[must_use]
pub const fn fill_byte(seq: u64) -> u8 {
    // Mix the bits so neighbouring frames differ in every byte.
    let mixed = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 56) as u8 ^ 0xA5
}

/// Writes frame `seq`'s content into `bytes`.
pub fn fill(bytes: &mut [u8], seq: u64) {
    let header = bytes.len().min(HEADER);
    let (head, body) = bytes.split_at_mut(header);
    head.copy_from_slice(&seq.to_le_bytes()[..header]);
    body.fill(fill_byte(seq));
}

/// Whether `bytes` hold frame `seq`'s content.
#[must_use]
pub fn check(bytes: &[u8], seq: u64) -> bool {
    let header = bytes.len().min(HEADER);
    let (head, body) = bytes.split_at(header);
    let byte = fill_byte(seq);
    head == &seq.to_le_bytes()[..header] && body.iter().all(|&b| b == byte)
}

/// Fills the frame at `address` (`len` bytes) on the model kernel.
///
/// # Panics
/// If the address is not inside live pool memory (the model's bugcheck).
pub fn write(kernel: &ModelKernel, address: usize, len: usize, seq: u64) {
    kernel.with_bytes(address, len, |bytes| fill(bytes, seq));
}

/// Checks the frame at `address`.
///
/// # Panics
/// As [`write`].
#[must_use]
pub fn verify(kernel: &ModelKernel, address: usize, len: usize, seq: u64) -> bool {
    kernel.with_bytes(address, len, |bytes| check(bytes, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filled_frame_checks_and_another_seq_does_not() {
        for len in [1, 3, 8, 9, 4096] {
            let mut bytes = vec![0; len];
            fill(&mut bytes, 1234);
            assert!(check(&bytes, 1234), "len {len}");
            assert!(!check(&bytes, 1235), "len {len}");
        }
    }

    #[test]
    fn one_flipped_byte_is_caught() {
        let mut bytes = vec![0; 100];
        fill(&mut bytes, 7);
        bytes[77] ^= 1;
        assert!(!check(&bytes, 7));
    }
}
