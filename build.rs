//! Build script of the driver package, and the one place that decides what is built.
//!
//! `cfg(driver)` turns the Windows glue in `src/` on; `cfg(nt_source = ...)` says where
//! its kernel names come from:
//!
//! | feature | who builds | `cfg(driver)` | names from |
//! |---|---|---|---|
//! | `wdk` | `cargo make` in an eWDK prompt | yes | wdk-sys (the WDK's headers) |
//! | `cross` | `cargo xtask pe` on Linux | yes | bindgen over mingw-w64's DDK headers |
//! | neither | every Linux host build | no | (plain library) |
//!
//! Both driver builds compile the SEH capture unit `src/seh/capture.c`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rustc-check-cfg=cfg(driver)");
    println!("cargo::rustc-check-cfg=cfg(nt_source, values(\"wdk\", \"mingw\"))");
    let wdk = std::env::var_os("CARGO_FEATURE_WDK").is_some();
    let cross = std::env::var_os("CARGO_FEATURE_CROSS").is_some();
    if wdk && cross {
        return Err(
            "features `wdk` and `cross` are two different builds of the driver; pick one".into(),
        );
    }
    if wdk || cross {
        println!("cargo::rustc-cfg=driver");
        println!("cargo::rerun-if-changed=src/seh/capture.c");
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

/// mingw-w64's headers, as Debian's mingw-w64 package installs them.
#[cfg(feature = "cross")]
const MINGW_INCLUDE: &str = "/usr/share/mingw-w64/include";

#[cfg(feature = "cross")]
fn cross_build_steps() -> Result<(), Box<dyn std::error::Error>> {
    use std::path::PathBuf;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let ddk = format!("{MINGW_INCLUDE}/ddk");
    let bindings = bindgen::Builder::default()
        .header_contents("nt_mingw.h", "#include <ntddk.h>\n")
        .clang_args(["--target=x86_64-w64-windows-gnu", "-I", &ddk, "-I", MINGW_INCLUDE])
        .use_core()
        .ctypes_prefix("core::ffi")
        .layout_tests(false)
        .derive_default(true)
        .generate_comments(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .blocklist_type("__tile1024i.*")
        // mingw-w64's x64 wdm.h defines KfRaiseIrql and KeLowerIrql as inline cr8 writes;
        // the WDK (NTDDI_WIN8 and later) declares them as ntoskrnl exports, and Wine
        // exports them too. This makes bindgen declare the inline ones, and raw-dylib
        // below binds them to the exports. Only allowlisted names are emitted.
        .generate_inline_functions(true)
        .allowlist_function(
            "Ex(AllocatePoolWithTag|FreePoolWithTag)|Io(AcquireCancelSpinLock|AcquireRemoveLockEx|\
             AttachDeviceToDeviceStack|CreateDevice|DeleteDevice|DetachDevice|ForwardIrpSynchronously|\
             InitializeRemoveLockEx|RegisterDeviceInterface|ReleaseCancelSpinLock|\
             ReleaseRemoveLockAndWaitEx|ReleaseRemoveLockEx|SetDeviceInterfaceState|fCallDriver|\
             fCompleteRequest)|Ke(AcquireSpinLockRaiseToDpc|BugCheckEx|\
             InitializeEvent|LowerIrql|ReleaseSpinLock|SetEvent)|KfRaiseIrql|\
             Ob(ReferenceObjectByHandle|fDereferenceObject|fReferenceObject)|Po(CallDriver|\
             StartNextPowerIrp)|Rtl(FreeUnicodeString|InitUnicodeString)|MmGetSystemRoutineAddress|Zw(Close|OpenKey|QueryValueKey)|Io(CreateSymbolicLink|DeleteSymbolicLink)",
        )
        .allowlist_type(
            "_?(DEVICE_OBJECT|DRIVER_OBJECT|FILE_OBJECT|GUID|IO_REMOVE_LOCK|IO_STACK_LOCATION|IRP|KEVENT|\
             UNICODE_STRING|OBJECT_TYPE|OBJECT_ATTRIBUTES)|P(CUNICODE_STRING|DEVICE_OBJECT|DRIVER_CANCEL|IRP|VOID|OBJECT_TYPE)|\
             BOOLEAN|CCHAR|HANDLE|KIRQL|KSPIN_LOCK|NTSTATUS",
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
