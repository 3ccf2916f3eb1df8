//! Target `ksprobe_wire`: the bytes ksprobe's control device takes from user mode
//! (`wire::Request::decode`, then the interface-path helpers on the path it carries),
//! and the bytes the runner takes back from the driver (`wire::Response::decode`).
//!
//! Input: the buffer, given to both decoders. Invariants: no panic; whatever decodes
//! re-encodes to bytes that decode to the same value; a decoded request's path is at
//! most `MAX_PATH_UNITS` and its configuration passes `Config::check`; encoding a
//! response into a short buffer fails with `Truncated` and writes nothing.

use ksprobe_scenarios::path;
use ksprobe_scenarios::wire::{
    response_len, Request, Response, WireError, MAX_PATH_UNITS, REQUEST_HEADER_LEN,
};

/// Runs one input.
///
/// # Panics
/// When an invariant breaks.
pub fn run(bytes: &[u8]) {
    if let Ok(request) = Request::decode(bytes) {
        assert!(request.path.len() <= MAX_PATH_UNITS);
        assert!(
            request.config.check().is_ok(),
            "decoded config fails its check"
        );
        let encoded = request.encode();
        assert_eq!(encoded.len(), REQUEST_HEADER_LEN + 2 * request.path.len());
        assert_eq!(
            &encoded[..],
            &bytes[..encoded.len()],
            "request re-encodes to its bytes"
        );
        assert_eq!(
            Request::decode(&encoded).as_ref(),
            Ok(&request),
            "request round trip"
        );
        let nt = path::to_nt_path(&request.path);
        assert!(nt.len() <= request.path.len());
        let _ = path::is_filter_interface(&request.path);
        let candidates = path::filter_candidates(&request.path).count();
        assert!(candidates <= path::multi_sz(&request.path).count());
        let _ = path::is_ksalloc_driver(&request.path);
    }
    if let Ok(response) = Response::decode(bytes) {
        let encoded = response.encode();
        assert_eq!(encoded.len(), response_len(response.results.len()));
        assert_eq!(
            Response::decode(&encoded).as_ref(),
            Ok(&response),
            "response round trip"
        );
        if !encoded.is_empty() {
            let mut short = vec![0xEEu8; encoded.len() - 1];
            assert_eq!(response.encode_into(&mut short), Err(WireError::Truncated));
            assert!(short.iter().all(|&b| b == 0xEE), "a refused encode wrote");
        }
    }
}
