// The one switch between the builds, shared by the build scripts of wdm-nt, ksalloc and
// ksprobe (each `include!`s this file):
//
// | feature | who builds | `cfg(driver)` | kernel names from |
// |---|---|---|---|
// | `wdk` | `cargo make` in an eWDK prompt (`cargo xtask wdk-check` on Linux) | yes | wdk-sys |
// | `cross` | `cargo xtask pe` on Linux | yes | bindgen over mingw-w64's DDK headers |
// | neither | every Linux host build | no | (plain library) |

/// Which driver build this is, if any.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DriverBuild {
    Wdk,
    Cross,
}

/// Reads the package's features, declares and sets `cfg(driver)` and
/// `cfg(nt_source = "wdk" | "mingw")`, and says which build this is.
fn driver_build() -> Result<Option<DriverBuild>, Box<dyn std::error::Error>> {
    println!("cargo::rustc-check-cfg=cfg(driver)");
    println!("cargo::rustc-check-cfg=cfg(nt_source, values(\"wdk\", \"mingw\"))");
    let wdk = std::env::var_os("CARGO_FEATURE_WDK").is_some();
    let cross = std::env::var_os("CARGO_FEATURE_CROSS").is_some();
    let build = match (wdk, cross) {
        (true, true) => {
            return Err("features `wdk` and `cross` are two different builds; pick one".into())
        }
        (true, false) => Some(DriverBuild::Wdk),
        (false, true) => Some(DriverBuild::Cross),
        (false, false) => None,
    };
    if let Some(build) = build {
        println!("cargo::rustc-cfg=driver");
        let source = if build == DriverBuild::Wdk { "wdk" } else { "mingw" };
        println!("cargo::rustc-cfg=nt_source=\"{source}\"");
    }
    Ok(build)
}
