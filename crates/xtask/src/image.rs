//! Checks of a driver image: a PE32+ with the native subsystem and an entry point, whose
//! imports all come from kernel modules and all name exports those modules have.
//!
//! Export lists come from mingw-w64's import libraries (`libntoskrnl.a`, `libhal.a`)
//! and, where Wine is installed, from Wine's own `ntoskrnl.exe` and `hal.dll`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::process::Command;

/// Kernel modules a driver may import from, with mingw-w64's import library for each.
const MODULES: &[(&str, &str)] = &[
    ("ntoskrnl.exe", "/usr/x86_64-w64-mingw32/lib/libntoskrnl.a"),
    ("hal.dll", "/usr/x86_64-w64-mingw32/lib/libhal.a"),
];
/// Where Debian's wine64 keeps the PE modules it loads drivers against.
const WINE_DIR: &str = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows";

/// What the check found.
pub struct Report {
    image: String,
    imports: BTreeMap<String, Vec<String>>,
    wine: Option<Vec<String>>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count: usize = self.imports.values().map(Vec::len).sum();
        writeln!(
            f,
            "{}: native subsystem, entry point set, {count} imports",
            self.image
        )?;
        for (module, names) in &self.imports {
            writeln!(
                f,
                "  {module}: {} (all exported by mingw-w64's import library)",
                names.len()
            )?;
        }
        match &self.wine {
            None => write!(
                f,
                "  Wine's modules not installed: Wine export check skipped"
            ),
            Some(missing) if missing.is_empty() => {
                write!(f, "  every import is exported by Wine's modules")
            }
            Some(missing) => write!(
                f,
                "  not exported by Wine's modules: {}",
                missing.join(", ")
            ),
        }
    }
}

fn run(tool: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {tool}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{tool} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Names exported through an import library (`__imp_<name>` symbols).
fn import_library_exports(lib: &str) -> Result<BTreeSet<String>, String> {
    let nm = run("llvm-nm-19", &["--defined-only", "--just-symbol-name", lib])?;
    Ok(nm
        .lines()
        .filter_map(|l| l.strip_prefix("__imp_"))
        .map(str::to_owned)
        .collect())
}

/// Names a PE module exports.
fn module_exports(module: &Path) -> Result<BTreeSet<String>, String> {
    let out = run(
        "llvm-readobj-19",
        &["--coff-exports", &module.to_string_lossy()],
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Name: "))
        .map(str::to_owned)
        .collect())
}

/// Checks one image.
pub fn check(image: &Path) -> Result<Report, String> {
    let path = image.to_string_lossy();
    let headers = run("llvm-readobj-19", &["--file-headers", &path])?;
    if !headers.contains("IMAGE_SUBSYSTEM_NATIVE") {
        return Err(format!("{path}: not a native-subsystem image"));
    }
    let entry = headers
        .lines()
        .find_map(|l| l.trim().strip_prefix("AddressOfEntryPoint: "))
        .ok_or_else(|| format!("{path}: no entry point in the optional header"))?;
    if u64::from_str_radix(entry.trim_start_matches("0x"), 16).unwrap_or(0) == 0 {
        return Err(format!("{path}: entry point is zero"));
    }
    let listing = run("llvm-readobj-19", &["--coff-imports", &path])?;
    let mut imports: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut module = String::new();
    for line in listing.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("Name: ") {
            module = name.to_ascii_lowercase();
        } else if let Some(symbol) = line.strip_prefix("Symbol: ") {
            let symbol = symbol.split_whitespace().next().unwrap_or(symbol);
            imports
                .entry(module.clone())
                .or_default()
                .push(symbol.to_owned());
        }
    }
    let mut wine_missing = Vec::new();
    let mut wine_seen = false;
    for (module, names) in &imports {
        let Some((_, lib)) = MODULES.iter().find(|(m, _)| m == module) else {
            return Err(format!(
                "{path}: imports from {module}, which is not a kernel module"
            ));
        };
        let exported = import_library_exports(lib)?;
        let missing: Vec<_> = names.iter().filter(|n| !exported.contains(*n)).collect();
        if !missing.is_empty() {
            return Err(format!("{path}: {module} does not export {missing:?}"));
        }
        let wine_module = Path::new(WINE_DIR).join(module);
        if wine_module.exists() {
            wine_seen = true;
            let exported = module_exports(&wine_module)?;
            wine_missing.extend(
                names
                    .iter()
                    .filter(|n| !exported.contains(*n))
                    .map(|n| format!("{module}!{n}")),
            );
        }
    }
    Ok(Report {
        image: path.into_owned(),
        imports,
        wine: wine_seen.then_some(wine_missing),
    })
}
