//! The kernel names of `crates/wdm-nt/src/bindings.rs` must be the same in both builds:
//! the glue is compiled against the mingw-w64 set by `cargo xtask pe` and against the
//! wdk-sys set only by `cargo xtask wdk-check` (and in an eWDK prompt), so a name one build
//! lacks would break the other. Most names are listed once, in the `kernel_names!` call
//! that re-exports them from either source; this test checks that every name taken from
//! one source only is supplied by hand in the other.

fn bindings() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/wdm-nt/src/bindings.rs"
    ))
    .unwrap()
}

/// The words of the first `{ ... }` list after `opening`.
fn names_after(source: &str, opening: &str) -> Vec<String> {
    let start = source
        .find(opening)
        .unwrap_or_else(|| panic!("`{opening}` not in bindings.rs"));
    let block = &source[start + opening.len()..];
    let block = &block[..block.find('}').expect("the list ends")];
    block
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn names_from_one_source_are_supplied_by_hand_in_the_other() {
    let source = bindings();
    let wdk_only = names_after(&source, "pub use wdk_sys::ntddk::{");
    assert_eq!(
        wdk_only,
        [
            "DbgPrint",
            "KeGetCurrentIrql",
            "KeQueryPerformanceCounter",
            "ZwCreateEvent"
        ]
    );
    for name in &wdk_only {
        assert!(
            source.contains(&format!("pub unsafe fn {name}("))
                || source.contains(&format!("pub fn {name}(")),
            "the cross-build has no hand-written `{name}`"
        );
    }
    // wdk-sys blocklists the deprecated pool routines: the WDK build declares them by hand.
    let mingw_only = names_after(&source, "\npub use mingw::{");
    assert_eq!(
        mingw_only,
        ["ExAllocatePoolWithQuotaTag", "ExAllocatePoolWithTag"]
    );
    for name in &mingw_only {
        assert!(
            source.contains(&format!("pub fn {name}(")),
            "the WDK build has no hand-written `{name}`"
        );
    }
    // ksprobe's hand-built IRPs: wdk-sys names in wdm-nt, hand-written in ksprobe's nt.rs
    // for the cross-build.
    let ksprobe = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/ksprobe/src/nt.rs"
    ))
    .unwrap();
    let source_after_first = &source[source.find("pub use wdk_sys::ntddk::{").unwrap() + 1..];
    let ksprobe_only = names_after(source_after_first, "pub use wdk_sys::ntddk::{");
    assert_eq!(
        ksprobe_only,
        [
            "IoAllocateIrp",
            "IoFreeIrp",
            "ZwAllocateVirtualMemory",
            "ZwFreeVirtualMemory"
        ]
    );
    for name in &ksprobe_only {
        assert!(
            ksprobe.contains(&format!("pub fn {name}(")),
            "ksprobe's cross-build has no hand-written `{name}`"
        );
    }
}

/// The WDK (NTDDI_WIN8 and later) declares these ntoskrnl exports; mingw-w64's header
/// writes cr8 inline instead, so the cross-build imports them too rather than standing
/// in for them: the Wine run then makes the same calls as Windows.
#[test]
fn irql_raise_and_lower_are_imports_in_both_builds() {
    let source = bindings();
    let start = source.find("kernel_names! {").expect("the shared list");
    let functions = names_after(&source[start..], "functions:");
    assert!(
        functions.len() > 40,
        "parsed the shared list: {functions:?}"
    );
    for name in ["KfRaiseIrql", "KeLowerIrql"] {
        assert!(functions.iter().any(|f| f == name), "`{name}` not shared");
    }
}
