//! Build script of the driver package. The build switch (`cfg(driver)`, `cfg(nt_source)`)
//! is shared with ksprobe and wdm-nt (`crates/wdm-nt/driver_build.rs`); the kernel names
//! come from wdm-nt. What is ksalloc's own: the SEH capture unit `src/seh/capture.c`,
//! compiled with the kernel flags in both driver builds, and wdk-build's binary
//! configuration in the WDK build.

include!("crates/wdm-nt/driver_build.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match driver_build()? {
        Some(DriverBuild::Wdk) => wdk_build_steps(),
        Some(DriverBuild::Cross) => cross_build_steps(),
        None => Ok(()),
    }
}

#[cfg(feature = "wdk")]
fn wdk_build_steps() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rerun-if-changed=src/seh/capture.c");
    // The kernel flags, as in the cross-build below: /kernel (no C++ exceptions or RTTI,
    // kernel-safe code generation) and /GS- (a Rust driver links no security-cookie
    // library for /GS to call into).
    cc::Build::new()
        .flag("/kernel")
        .flag("/GS-")
        .file("src/seh/capture.c")
        .compile("ksalloc_seh");
    wdk_build::configure_wdk_binary_build()?;
    Ok(())
}

#[cfg(not(feature = "wdk"))]
#[allow(clippy::unnecessary_wraps)] // Same shape as the real one.
const fn wdk_build_steps() -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}

#[cfg(feature = "cross")]
fn cross_build_steps() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rerun-if-changed=src/seh/capture.c");
    // clang-cl speaks MSVC's flags and __try/__except; llvm-lib archives for lld-link.
    cc::Build::new()
        .compiler("clang-cl-19")
        .archiver("llvm-lib-19")
        .target("x86_64-pc-windows-msvc")
        .flag("/kernel")
        .flag("/GS-")
        .file("src/seh/capture.c")
        .compile("ksalloc_seh");
    // The C unit's own imports (ProbeForRead, __C_specific_handler) are not declared in
    // Rust, so raw-dylib does not cover them: mingw-w64's import library does.
    println!("cargo::rustc-link-arg=/usr/x86_64-w64-mingw32/lib/libntoskrnl.a");
    Ok(())
}

#[cfg(not(feature = "cross"))]
#[allow(clippy::unnecessary_wraps)] // Same shape as the real one.
const fn cross_build_steps() -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}
