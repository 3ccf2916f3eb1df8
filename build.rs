//! Build script of the driver package, and the one place that decides what is built.
//!
//! `cfg(driver)` turns the Windows glue in `src/` on. It is set when the `wdk` feature
//! is on (Makefile.toml sets it, in an eWDK prompt): wdk-build then finds the WDK and
//! emits the link arguments of a WDM driver, and the SEH capture unit is compiled with
//! the WDK's compiler. Without it (every Linux host build) the package is a plain
//! library and there is nothing to configure.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rustc-check-cfg=cfg(driver)");
    if std::env::var_os("CARGO_FEATURE_WDK").is_some() {
        println!("cargo::rustc-cfg=driver");
        configure_wdk()?;
    }
    Ok(())
}

#[cfg(feature = "wdk")]
fn configure_wdk() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rerun-if-changed=src/seh/capture.c");
    cc::Build::new()
        .file("src/seh/capture.c")
        .compile("ksalloc_seh");
    wdk_build::configure_wdk_binary_build()?;
    Ok(())
}

#[cfg(not(feature = "wdk"))]
#[allow(clippy::unnecessary_wraps)] // Same shape as the wdk build's.
const fn configure_wdk() -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}
