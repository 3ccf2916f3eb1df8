//! Build script of ksprobe. The build switch is shared with ksalloc and wdm-nt
//! (`../wdm-nt/driver_build.rs`); the kernel names come from wdm-nt. ksprobe's own step
//! is the WDK build's binary configuration and its one static library.

include!("../wdm-nt/driver_build.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if driver_build()? == Some(DriverBuild::Wdk) {
        wdk_build_steps()?;
    }
    Ok(())
}

#[cfg(feature = "wdk")]
fn wdk_build_steps() -> Result<(), Box<dyn std::error::Error>> {
    wdk_build::configure_wdk_binary_build()?;
    // IoCreateDeviceSecure is not part of the kernel: it lives in the WDK's static
    // library wdmsec.lib (in the km library directory wdk-build already searches).
    println!("cargo::rustc-link-lib=static=wdmsec");
    Ok(())
}

#[cfg(not(feature = "wdk"))]
#[allow(clippy::unnecessary_wraps)] // Same shape as the real one.
const fn wdk_build_steps() -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}
