//! Build script of the driver package.
//!
//! With the `wdk` feature (set only by Makefile.toml, inside an eWDK prompt) it hands the
//! build to wdk-build, which finds the WDK and emits the link arguments for a WDM driver.
//! Without it (Linux host builds) there is nothing to configure.

// Without the feature the body cannot fail; with it, wdk-build's errors pass through.
#[allow(clippy::unnecessary_wraps)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(feature = "wdk")]
    wdk_build::configure_wdk_binary_build()?;
    Ok(())
}
