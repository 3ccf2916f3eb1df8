//! `cargo xtask`: tasks that drive tools beyond cargo.
//!
//! `cargo xtask pe` cross-builds the driver images on Linux and checks them:
//! the same glue as the WDK build, with kernel names from bindings over mingw-w64's DDK
//! headers, built for `x86_64-pc-windows-msvc` with Debian's Rust (`rustc-web`, whose
//! `rust-web-src` gives `-Zbuild-std` the library source) and linked by `lld-link-19`.
//! Then each image must be a native-subsystem driver whose every import names an export
//! of a kernel module.
//!
//! `cargo xtask wdk-check` type-checks both drivers' `--features wdk` build against
//! wdk-sys's generated API on Linux (module `wdk_check`).
//!
//! `cargo xtask reactos` boots those images in ReactOS amd64 under QEMU and reads
//! ksprobe's verdict from COM1 (see `reactos.rs`).

mod exports;
mod image;
mod reactos;
mod wdk_check;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The target every driver image is built for.
pub const TARGET: &str = "x86_64-pc-windows-msvc";
/// Debian's toolchain directory (rustup's comes first on PATH otherwise).
pub const DEBIAN_BIN: &str = "/usr/bin";

/// A driver package built into a `.sys`.
struct Driver {
    package: &'static str,
    library: &'static str,
}

const DRIVERS: &[Driver] = &[
    Driver {
        package: "ksalloc",
        library: "ksalloc",
    },
    Driver {
        package: "ksprobe",
        library: "ksprobe",
    },
];

fn usage() -> ExitCode {
    eprintln!("usage: cargo xtask pe          cross-build the driver images and check them");
    eprintln!("       cargo xtask wdk-check   type-check both drivers' wdk build on Linux");
    eprintln!("       cargo xtask reactos [--timeout SECS]");
    eprintln!(
        "                           boot them in ReactOS under QEMU, run ksprobe's scenarios"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["pe"] => match pe() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask pe: {e}");
                ExitCode::FAILURE
            }
        },
        ["wdk-check"] => match wdk_check::run(&workspace_root()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask wdk-check: {e}");
                ExitCode::FAILURE
            }
        },
        ["reactos", rest @ ..] => match reactos::Options::parse(rest)
            .and_then(|options| reactos::run(&workspace_root(), &options))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask reactos: {e}");
                ExitCode::FAILURE
            }
        },
        _ => usage(),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn pe() -> Result<(), String> {
    let root = workspace_root();
    let target_dir = root.join("target/pe");
    for driver in DRIVERS {
        build(&root, &target_dir, driver)?;
        let dll = target_dir
            .join(TARGET)
            .join("release")
            .join(format!("{}.dll", driver.library));
        let sys = target_dir.join(format!("{}.sys", driver.library));
        std::fs::copy(&dll, &sys)
            .map_err(|e| format!("copy {} -> {}: {e}", dll.display(), sys.display()))?;
        let report = image::check(&sys)?;
        println!("{report}");
    }
    Ok(())
}

/// Debian's cargo in `root`, with its toolchain first on PATH, nothing of rustup's in the
/// environment, and `RUSTC_BOOTSTRAP=1` (its stable toolchain; build-std is unstable).
#[must_use]
pub fn debian_cargo(root: &Path) -> Command {
    let path = format!("{DEBIAN_BIN}:{}", std::env::var("PATH").unwrap_or_default());
    let mut command = Command::new(format!("{DEBIAN_BIN}/cargo"));
    command
        .current_dir(root)
        .env("PATH", path)
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    command
}

fn build(root: &Path, target_dir: &Path, driver: &Driver) -> Result<(), String> {
    let link_args = [
        "/DRIVER",
        "/SUBSYSTEM:NATIVE",
        "/ENTRY:DriverEntry",
        "/NODEFAULTLIB",
        "/RELEASE",
    ]
    .map(|a| format!("\"-Clink-arg={a}\""))
    .join(",");
    let status = debian_cargo(root)
        .args(["build", "--release", "-p", driver.package, "--features", "cross", "--target", TARGET])
        .args(["-Zbuild-std=core,alloc", "-Zbuild-std-features=compiler-builtins-mem"])
        .arg("--target-dir")
        .arg(target_dir)
        .args(["--config", &format!("target.{TARGET}.linker=\"lld-link-19\"")])
        .args(["--config", &format!("target.{TARGET}.rustflags=[{link_args}]")])
        .status()
        .map_err(|e| format!("cannot run {DEBIAN_BIN}/cargo (apt-get install rustc-web rust-web-src cargo-web lld-19 clang-19 libclang-19-dev mingw-w64): {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "building {} for {TARGET} failed ({status})",
            driver.package
        ))
    }
}
