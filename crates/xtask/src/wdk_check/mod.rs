//! `cargo xtask wdk-check`: type-checks both drivers' `wdk` build on Linux.
//!
//! wdk-sys 0.5.2's own build script generates its bindings from a stand-in WDK made of
//! mingw-w64's headers ([`standin`]), with a copy of wdk-build 0.6.0 patched in host
//! plumbing only ([`patch`]); then `cargo check --features wdk --target
//! x86_64-pc-windows-msvc` runs through the real wdk glue of ksalloc and ksprobe.
//! Any error, and any warning from this repository's own sources, fails the check.
//!
//! What it proves and what it cannot: README.md, "Type-checking the WDK build on Linux".

mod patch;
mod standin;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{DEBIAN_BIN, TARGET};

/// The driver packages the check covers.
const PACKAGES: &[&str] = &["ksalloc", "ksprobe"];
/// Where Debian's libclang-19-dev puts libclang (bindgen, in wdk-sys's build script).
const LIBCLANG_PATH: &str = "/usr/lib/llvm-19/lib";

/// What the compiler said about this repository's sources.
#[derive(Default)]
struct Findings {
    errors: usize,
    warnings: usize,
    /// Warnings from other packages, by package (not ours to fix; listed for the record).
    elsewhere: std::collections::BTreeMap<String, usize>,
}

/// Runs the whole check from the workspace root.
pub fn run(root: &Path) -> Result<(), String> {
    let root = &root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let root = &root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    // Inside the repository: wdk-build finds the workspace manifest by walking up from
    // OUT_DIR to a Cargo.lock.
    let dir = root.join("target/wdk-check");
    let wdk = standin::prepare(&dir)?;
    let wdk_build = patch::prepare(root, &dir)?;
    // `--config patch...` makes cargo rewrite Cargo.lock's wdk-build entry as a path
    // package; the repository's lock file must stay the registry's.
    let lock = root.join("Cargo.lock");
    let locked = std::fs::read(&lock).map_err(|e| format!("read {}: {e}", lock.display()))?;
    let checked = cargo_check(root, &dir, &wdk, &wdk_build);
    std::fs::write(&lock, locked).map_err(|e| format!("restore {}: {e}", lock.display()))?;
    let findings = checked?;
    println!(
        "wdk-check: {} for {TARGET} with --features wdk: {} error(s), {} warning(s) from our \
         sources (dependencies, not ours: [{}])",
        PACKAGES.join(", "),
        findings.errors,
        findings.warnings,
        findings
            .elsewhere
            .iter()
            .map(|(package, n)| format!("{n} from {package}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if findings.errors + findings.warnings > 0 {
        return Err("the wdk build has errors or warnings in our sources (above)".into());
    }
    Ok(())
}

fn clang_resource_dir() -> Result<String, String> {
    let out = Command::new("clang-19")
        .arg("-print-resource-dir")
        .output()
        .map_err(|e| format!("cannot run clang-19 (apt-get install clang-19): {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn cargo_check(root: &Path, dir: &Path, wdk: &Path, wdk_build: &Path) -> Result<Findings, String> {
    // wdk-build turns bindgen's include detection off and mingw-w64's headers parse only
    // in GNU mode; -ffreestanding settles a _setjmp clash; the supplement comes first.
    let bindgen_args = format!(
        "-isystem{}/include -D__GNUC__=4 -D__GNUC_MINOR__=9 -ffreestanding -include {}",
        clang_resource_dir()?,
        standin::supplement(wdk).display()
    );
    let features = PACKAGES
        .iter()
        .map(|p| format!("{p}/wdk"))
        .collect::<Vec<_>>()
        .join(",");
    let mut command = crate::debian_cargo(root);
    command
        .env("WDKContentRoot", wdk)
        .env("Version_Number", standin::VERSION)
        .env("LIBCLANG_PATH", LIBCLANG_PATH)
        .env(
            "BINDGEN_EXTRA_CLANG_ARGS_x86_64_pc_windows_msvc",
            bindgen_args,
        )
        // build.rs's cc steps (the SEH unit) in MSVC mode.
        .env("CC_x86_64_pc_windows_msvc", "clang-cl-19")
        .env("AR_x86_64_pc_windows_msvc", "llvm-lib-19")
        // configure_wdk_binary_build insists on a static CRT.
        .env(
            "CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_RUSTFLAGS",
            "-Ctarget-feature=+crt-static",
        )
        .arg("check");
    for package in PACKAGES {
        command.args(["-p", package]);
    }
    command
        .args(["--features", &features, "--target", TARGET])
        .arg("-Zbuild-std=core,alloc")
        .arg("--message-format=json")
        .arg("--target-dir")
        .arg(dir.join("target"))
        .args([
            "--config",
            &format!("patch.crates-io.wdk-build.path=\"{}\"", wdk_build.display()),
        ])
        .stdout(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {DEBIAN_BIN}/cargo (apt-get install cargo-web): {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout from cargo")?;
    let ours = root;
    let mut findings = Findings::default();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading cargo's output: {e}"))?;
        record(&line, ours, &mut findings);
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for cargo: {e}"))?;
    if !status.success() && findings.errors == 0 {
        // A build script failed (its output is on stderr above), or cargo itself did.
        findings.errors += 1;
    }
    Ok(findings)
}

/// Classifies one line of cargo's JSON output, printing what concerns us.
fn record(line: &str, ours: &Path, findings: &mut Findings) {
    let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
        // Not JSON: a build script's or cargo's own text.
        println!("{line}");
        return;
    };
    if message["reason"] != "compiler-message" {
        return;
    }
    let manifest = message["manifest_path"].as_str().unwrap_or_default();
    let level = message["message"]["level"].as_str().unwrap_or_default();
    let rendered = message["message"]["rendered"].as_str().unwrap_or_default();
    let is_ours = is_our_manifest(Path::new(manifest), ours);
    match level {
        "error" => {
            findings.errors += 1;
            print!("{rendered}");
        }
        "warning" if is_ours => {
            findings.warnings += 1;
            print!("{rendered}");
        }
        "warning" => {
            let package = message["package_id"].as_str().unwrap_or("?");
            *findings.elsewhere.entry(package_name(package)).or_default() += 1;
        }
        _ => {}
    }
}

/// `wdk-sys@0.5.2` from a package id such as
/// `registry+https://github.com/rust-lang/crates.io-index#wdk-sys@0.5.2` or
/// `path+file:///dir#name@0.1.0` (or the older `name 0.1.0 (source)` form).
fn package_name(id: &str) -> String {
    let tail = id.rsplit('#').next().unwrap_or(id);
    tail.split_whitespace().next().unwrap_or(tail).to_owned()
}

/// A package of this repository: its manifest is under the root but not under
/// `target/` (where the patched wdk-build copy lives).
fn is_our_manifest(manifest: &Path, ours: &Path) -> bool {
    manifest.starts_with(ours) && !manifest.starts_with(ours.join("target"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_count_only_from_our_packages_and_errors_always() {
        let ours = Path::new("/repo");
        let mut findings = Findings::default();
        let message = |manifest: &str, level: &str| {
            format!(
                r#"{{"reason":"compiler-message","manifest_path":"{manifest}","message":{{"level":"{level}","rendered":""}}}}"#
            )
        };
        record(&message("/repo/Cargo.toml", "warning"), ours, &mut findings);
        record(
            &message("/repo/crates/ksprobe/Cargo.toml", "warning"),
            ours,
            &mut findings,
        );
        record(
            &message(
                "/repo/target/wdk-check/wdk-build-0.6.0-patched/Cargo.toml",
                "warning",
            ),
            ours,
            &mut findings,
        );
        record(
            &message("/home/.cargo/registry/wdk-sys/Cargo.toml", "warning"),
            ours,
            &mut findings,
        );
        record(
            &message("/home/.cargo/registry/wdk-sys/Cargo.toml", "error"),
            ours,
            &mut findings,
        );
        record(r#"{"reason":"compiler-artifact"}"#, ours, &mut findings);
        assert_eq!((findings.errors, findings.warnings), (1, 2));
        assert_eq!(findings.elsewhere.values().sum::<usize>(), 2);
    }
}
