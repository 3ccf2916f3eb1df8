//! The two sources of kernel names in `src/nt.rs` must offer the same names: the glue
//! is compiled against the mingw-w64 set on Linux (`cargo xtask pe`), but the wdk-sys set
//! only in an eWDK prompt, so a name added to one list and not the other would break the
//! Windows build where nobody here can see it. The only differences allowed are the
//! ones `nt.rs` documents, each standing in for the other source's own spelling.

use std::collections::BTreeSet;

/// Names one list re-exports and the other replaces with a hand-written item of the same
/// role (`allocate_nonpaged`, `KeGetCurrentIrql`, `event_object_type`, the cross-build's
/// panic handler).
const WDK_ONLY: &[&str] = &["ExAllocatePool2", "KeGetCurrentIrql"];
const MINGW_ONLY: &[&str] = &[
    "ExAllocatePoolWithTag",
    "KeBugCheckEx",
    "MmGetSystemRoutineAddress",
];

fn names_in(source: &str, opening: &str) -> BTreeSet<String> {
    let start = source
        .find(opening)
        .unwrap_or_else(|| panic!("`{opening}` not in src/nt.rs"));
    let block = &source[start + opening.len()..];
    let block = &block[..block.find("};").expect("the use list ends")];
    block
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty() && !["ntddk"].contains(w))
        .map(str::to_owned)
        .collect()
}

#[test]
fn both_name_sources_offer_the_same_names() {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/nt.rs")).unwrap();
    let wdk = names_in(&source, "pub use wdk_sys::{");
    let mingw = names_in(&source, "pub use mingw::{");
    let set = |names: &[&str]| {
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>()
    };
    let only_wdk: BTreeSet<_> = wdk.difference(&mingw).cloned().collect();
    let only_mingw: BTreeSet<_> = mingw.difference(&wdk).cloned().collect();
    assert_eq!(only_wdk, set(WDK_ONLY), "names only the wdk-sys build has");
    assert_eq!(
        only_mingw,
        set(MINGW_ONLY),
        "names only the mingw-w64 build has"
    );
    assert!(wdk.len() > 30, "parsed the wdk list: {wdk:?}");
}
