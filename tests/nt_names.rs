//! The two sources of kernel names in `src/nt.rs` must offer the same names: the glue
//! is compiled against the mingw-w64 set on Linux (`cargo xtask pe`), but the wdk-sys set
//! only in an eWDK prompt, so a name added to one list and not the other would break the
//! Windows build where nobody here can see it. The only differences allowed are the
//! ones `nt.rs` documents, each standing in for the other source's own spelling.

use std::collections::BTreeSet;

/// Names one list re-exports and the other replaces with a hand-written item of the same
/// role (`allocate_nonpaged`, `KeGetCurrentIrql`, `event_object_type`, the cross-build's
/// panic handler). `KfRaiseIrql` and `KeLowerIrql` are not among them: see
/// [`irql_raise_and_lower_are_imports_in_both_builds`].
const WDK_ONLY: &[&str] = &["ExAllocatePool2", "KeGetCurrentIrql"];
const MINGW_ONLY: &[&str] = &[
    "ExAllocatePoolWithTag",
    "KeBugCheckEx",
    "MmGetSystemRoutineAddress",
];

/// Kernel exports `nt.rs` takes from both sources, never hand-written (see its module docs).
const IMPORTED_BY_BOTH: &[&str] = &[
    "KeGetCurrentProcessorNumberEx",
    "KeLowerIrql",
    "KeQueryMaximumProcessorCountEx",
    "KfRaiseIrql",
];

fn nt_source() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/nt.rs")).unwrap()
}

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
    let source = nt_source();
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

/// The WDK (NTDDI_WIN8 and later) declares these ntoskrnl exports; mingw-w64's header
/// writes cr8 inline instead, so the cross-build imports them too rather than standing
/// in for them: the Wine run then makes the same calls as Windows.
#[test]
fn irql_raise_and_lower_are_imports_in_both_builds() {
    let source = nt_source();
    for opening in ["pub use wdk_sys::{", "pub use mingw::{"] {
        let names = names_in(&source, opening);
        for name in IMPORTED_BY_BOTH {
            assert!(names.contains(*name), "`{name}` not in `{opening}`");
        }
    }
}
