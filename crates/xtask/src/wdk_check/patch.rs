//! The patched copy of wdk-build 0.6.0 the type-check hands to cargo.
//!
//! wdk-build 0.6.0 does not build off Windows, but only its host plumbing is in the way
//! (shared/reference/wdk-typecheck-on-linux.md): an unconditional `windows` dependency,
//! registry look-ups, `compile_error!` in the non-Windows `set_var`/`remove_var`, and a
//! Windows-only symlink call. The copy is unpacked from the registry's own `.crate`
//! (the one Cargo.lock pins) into the target dir and edited by exact string
//! replacements, each of which must match as often as expected or the check stops: a
//! new wdk-build version needs a new, reviewed patch. Nothing about binding generation
//! changes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The wdk-build version Cargo.lock pins (`=0.6.0` in both drivers' manifests).
pub const WDK_BUILD: &str = "wdk-build-0.6.0";

/// Bumped whenever [`EDITS`] change, so a stale copy is rebuilt.
const REVISION: &str = "ksalloc-patch-2";

/// The body wdk-build puts in its non-Windows `set_var` and `remove_var`.
const COMPILE_ERROR: &str = "    compile_error!(
        \"windows-drivers-rs is designed to be run on a Windows host machine in a WDK environment. \\
         Please build using a Windows target.\"
    );
";

/// One exact replacement in one file of the crate.
struct Edit {
    file: &'static str,
    from: &'static str,
    to: &'static str,
    /// How many times `from` must occur.
    count: usize,
    why: &'static str,
}

const EDITS: &[Edit] = &[
    Edit {
        file: "Cargo.toml",
        from: "[dependencies.windows]\n",
        to: "[target.'cfg(windows)'.dependencies.windows]\n",
        count: 1,
        why: "windows-future 0.3 does not compile off Windows",
    },
    Edit {
        file: "src/utils.rs",
        from: "use windows::{\n",
        to: "#[cfg(windows)]\nuse windows::{\n",
        count: 1,
        why: "the registry API exists only on Windows",
    },
    Edit {
        file: "src/utils.rs",
        from: "    if let Some(path) = read_registry_key_string_value(\n",
        to: "    #[cfg(windows)]\n    if let Some(path) = read_registry_key_string_value(\n",
        count: 2,
        why: "the two registry fallbacks for the WDK root",
    },
    Edit {
        file: "src/utils.rs",
        from: "\nfn read_registry_key_string_value(\n",
        to: "\n#[cfg(windows)]\nfn read_registry_key_string_value(\n",
        count: 1,
        why: "the registry reader itself",
    },
    Edit {
        file: "src/utils.rs",
        from: concat!(
            "pub fn set_var<K, V>(_key: K, _value: V)\nwhere\n    K: AsRef<OsStr>,\n",
            "    V: AsRef<OsStr>,\n{\n"
        ),
        to: concat!(
            "pub fn set_var<K, V>(_key: K, _value: V)\nwhere\n    K: AsRef<OsStr>,\n",
            "    V: AsRef<OsStr>,\n{\n",
            "    // SAFETY: patched for the Linux type-check; build scripts set variables from\n",
            "    // one thread, as on Windows.\n",
            "    unsafe { env::set_var(_key, _value) };\n}\n#[cfg(any())]\nfn _unpatched_set_var() {\n"
        ),
        count: 1,
        why: "set_var's non-Windows body is a compile_error!",
    },
    Edit {
        file: "src/utils.rs",
        from: "pub fn remove_var<K>(_key: K)\nwhere\n    K: AsRef<OsStr>,\n{\n",
        to: concat!(
            "pub fn remove_var<K>(_key: K)\nwhere\n    K: AsRef<OsStr>,\n{\n",
            "    // SAFETY: as in set_var above.\n",
            "    unsafe { env::remove_var(_key) };\n}\n#[cfg(any())]\nfn _unpatched_remove_var() {\n"
        ),
        count: 1,
        why: "remove_var's non-Windows body is a compile_error!",
    },
    Edit {
        file: "src/cargo_make.rs",
        from: "std::os::windows::fs::symlink_file(",
        to: "symlink_file(",
        count: 2,
        why: "the makefile symlink; on unix through the import appended below",
    },
];

/// Appended to `src/cargo_make.rs`: which `symlink_file` the edited calls use.
const SYMLINK_IMPORT: &str = "
// Patched for the Linux type-check (ksalloc's cargo xtask wdk-check).
#[cfg(windows)]
use std::os::windows::fs::symlink_file;
#[cfg(unix)]
use std::os::unix::fs::symlink as symlink_file;
";

/// Applies one edit to `text`, or says exactly what did not match.
fn apply(text: &str, edit: &Edit) -> Result<String, String> {
    let found = text.matches(edit.from).count();
    if found != edit.count {
        return Err(format!(
            "{WDK_BUILD}/{}: expected {} occurrence(s) of {:?} ({}), found {found}; \
             the patch is written for {WDK_BUILD} only",
            edit.file, edit.count, edit.from, edit.why
        ));
    }
    Ok(text.replace(edit.from, edit.to))
}

/// Both `compile_error!`s sit right after the bodies the edits open, inside the
/// `#[cfg(any())]` functions the edits add, so they are compiled out; check that the
/// crate still has exactly those two.
fn check_compile_errors(utils: &str) -> Result<(), String> {
    let found = utils.matches(COMPILE_ERROR).count();
    if found == 2 {
        Ok(())
    } else {
        Err(format!(
            "{WDK_BUILD}/src/utils.rs: expected the 2 non-Windows compile_error! bodies, found {found}"
        ))
    }
}

/// The registry's cached `.crate` of wdk-build 0.6.0 (after `cargo fetch`).
fn find_crate_file() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let cache = home.join("registry/cache");
    std::fs::read_dir(cache)
        .ok()?
        .filter_map(Result::ok)
        .map(|index| index.path().join(format!("{WDK_BUILD}.crate")))
        .find(|p| p.is_file())
}

/// `cargo fetch`: Cargo.lock pins wdk-build, so this puts its `.crate` in the cache.
fn fetch(root: &Path) -> Result<(), String> {
    let status = Command::new("cargo")
        .current_dir(root)
        .arg("fetch")
        .status()
        .map_err(|e| format!("cannot run cargo fetch: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo fetch failed ({status})"))
    }
}

/// Unpacks and patches wdk-build into `dir`; returns the patched crate's directory.
/// A copy with the current [`REVISION`] is reused.
pub fn prepare(root: &Path, dir: &Path) -> Result<PathBuf, String> {
    let patched = dir.join(format!("{WDK_BUILD}-patched"));
    let stamp = patched.join(".ksalloc-patch");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == REVISION) {
        return Ok(patched);
    }
    let crate_file = if let Some(file) = find_crate_file() {
        file
    } else {
        fetch(root)?;
        find_crate_file().ok_or_else(|| {
            format!("{WDK_BUILD}.crate is not in the cargo registry cache after cargo fetch")
        })?
    };
    let unpack = dir.join("unpack");
    let _ = std::fs::remove_dir_all(&unpack);
    let _ = std::fs::remove_dir_all(&patched);
    std::fs::create_dir_all(&unpack).map_err(|e| format!("mkdir {}: {e}", unpack.display()))?;
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&crate_file)
        .arg("-C")
        .arg(&unpack)
        .status()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    if !status.success() {
        return Err(format!(
            "tar -xzf {} failed ({status})",
            crate_file.display()
        ));
    }
    let source = unpack.join(WDK_BUILD);
    for edit in EDITS {
        let path = source.join(edit.file);
        // The published sources have CRLF line ends; the edits are written with LF.
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("read {}: {e}", path.display()))?
            .replace("\r\n", "\n");
        let text = apply(&text, edit)?;
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    let utils = std::fs::read_to_string(source.join("src/utils.rs"))
        .map_err(|e| format!("read utils.rs: {e}"))?;
    check_compile_errors(&utils)?;
    let cargo_make = source.join("src/cargo_make.rs");
    let mut text = std::fs::read_to_string(&cargo_make)
        .map_err(|e| format!("read {}: {e}", cargo_make.display()))?;
    text.push_str(SYMLINK_IMPORT);
    std::fs::write(&cargo_make, text).map_err(|e| format!("write cargo_make.rs: {e}"))?;
    std::fs::rename(&source, &patched).map_err(|e| format!("rename: {e}"))?;
    std::fs::write(&stamp, REVISION).map_err(|e| format!("write stamp: {e}"))?;
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_that_does_not_match_stops_the_patch() {
        let edit = &EDITS[0];
        assert!(apply("[dependencies.other]\n", edit).is_err());
        assert!(apply("[dependencies.windows]\n[dependencies.windows]\n", edit).is_err());
        assert_eq!(
            apply("a\n[dependencies.windows]\nb", edit).unwrap(),
            "a\n[target.'cfg(windows)'.dependencies.windows]\nb"
        );
    }
}
