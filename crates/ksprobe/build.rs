//! Build script of ksprobe: decides what is built, as the root package's build.rs does.
//!
//! | feature | who builds | `cfg(driver)` | kernel names from |
//! |---|---|---|---|
//! | `wdk` | `cargo make` in an eWDK prompt | yes | wdk-sys (the WDK's headers) |
//! | `cross` | the Linux cross-build (README.md) | yes | bindgen over mingw-w64's DDK headers |
//! | neither | every Linux host build | no | (empty library) |

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rustc-check-cfg=cfg(driver)");
    println!("cargo::rustc-check-cfg=cfg(nt_source, values(\"wdk\", \"mingw\"))");
    let wdk = std::env::var_os("CARGO_FEATURE_WDK").is_some();
    let cross = std::env::var_os("CARGO_FEATURE_CROSS").is_some();
    if wdk && cross {
        return Err("features `wdk` and `cross` are two different builds; pick one".into());
    }
    if wdk || cross {
        println!("cargo::rustc-cfg=driver");
    }
    if wdk {
        println!("cargo::rustc-cfg=nt_source=\"wdk\"");
        wdk_build_steps()?;
    }
    if cross {
        println!("cargo::rustc-cfg=nt_source=\"mingw\"");
        cross_build_steps()?;
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

/// mingw-w64's headers, as Debian's mingw-w64 package installs them.
#[cfg(feature = "cross")]
const MINGW_INCLUDE: &str = "/usr/share/mingw-w64/include";

#[cfg(feature = "cross")]
fn cross_build_steps() -> Result<(), Box<dyn std::error::Error>> {
    use std::path::PathBuf;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let ddk = format!("{MINGW_INCLUDE}/ddk");
    let bindings = bindgen::Builder::default()
        .header_contents("ksprobe_mingw.h", "#include <ntddk.h>\n")
        .clang_args(["--target=x86_64-w64-windows-gnu", "-I", &ddk, "-I", MINGW_INCLUDE])
        .use_core()
        .ctypes_prefix("core::ffi")
        .layout_tests(false)
        .derive_default(true)
        .generate_comments(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .blocklist_type("__tile1024i.*")
        .allowlist_function(
            "Ex(AllocatePoolWithTag|FreePoolWithTag)|Io(BuildDeviceIoControlRequest|CancelIrp|\
             CreateDevice|CreateSymbolicLink|DeleteDevice|DeleteSymbolicLink|GetDeviceInterfaces|\
             GetRelatedDeviceObject|fCallDriver|fCompleteRequest)|Ke(BugCheckEx|ClearEvent|\
             EnterGuardedRegion|InitializeEvent|LeaveGuardedRegion|ReadStateEvent|\
             WaitForSingleObject)|MmIsAddressValid|Ob(ReferenceObjectByHandle|\
             fDereferenceObject|fReferenceObject)|Zw(Close|CreateFile)",
        )
        .allowlist_type(
            "_?(DEVICE_OBJECT|DRIVER_OBJECT|FILE_OBJECT|GUID|IO_STACK_LOCATION|IO_STATUS_BLOCK|IRP|\
             KEVENT|LARGE_INTEGER|OBJECT_ATTRIBUTES|UNICODE_STRING)|P(DEVICE_OBJECT|FILE_OBJECT|IRP|\
             KEVENT|VOID)|BOOLEAN|CCHAR|EVENT_TYPE|HANDLE|KIRQL|KWAIT_REASON|NTSTATUS|POOL_TYPE",
        )
        .generate()
        .map_err(|e| format!("bindgen over mingw-w64's ntddk.h failed: {e}"))?;
    // Every kernel import resolves against ntoskrnl.exe by name (raw-dylib: no import
    // library needed; +verbatim keeps the ".exe").
    let text = bindings.to_string().replace(
        "unsafe extern \"C\" {",
        "#[link(name = \"ntoskrnl.exe\", kind = \"raw-dylib\", modifiers = \"+verbatim\")]\nunsafe extern \"C\" {",
    );
    std::fs::write(out.join("nt_mingw.rs"), text)?;
    Ok(())
}

#[cfg(not(feature = "cross"))]
#[allow(clippy::unnecessary_wraps)] // Same shape as the real one.
const fn cross_build_steps() -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}
