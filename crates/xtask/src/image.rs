//! Checks of a driver image: a PE32+ with the native subsystem and an entry point, whose
//! imports all come from kernel modules and are exported by every kernel the drivers
//! target (Windows, Wine, ReactOS; the facts are in `exports.rs`).
//!
//! The table's Windows column is confirmed against mingw-w64's import libraries
//! (`libntoskrnl.a`, `libhal.a`) and its Wine column against Wine's own `ntoskrnl.exe`
//! and `hal.dll` where Wine is installed; its ReactOS column is kept by hand. Names
//! looked up at run time are found as UTF-16 text in the image and listed too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::process::Command;

use crate::exports::{self, Use};

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
    /// Per module, each import with its table row's columns.
    imports: BTreeMap<String, Vec<(String, String)>>,
    /// Names the image looks up at run time, with their columns.
    run_time: Vec<(String, String)>,
    wine_checked: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count: usize = self.imports.values().map(Vec::len).sum();
        writeln!(
            f,
            "{}: native subsystem, entry point set, {count} imports, each exported by Windows, \
             Wine and ReactOS{}",
            self.image,
            if self.wine_checked {
                " (Wine's column checked against its installed modules)"
            } else {
                " (Wine not installed: Wine's column not checked)"
            }
        )?;
        writeln!(
            f,
            "  (Windows: x64 from build 16299, the INF's floor; Wine 8; ReactOS amd64)"
        )?;
        for (module, names) in &self.imports {
            writeln!(f, "  {module}: {}", names.len())?;
            for (name, columns) in names {
                writeln!(f, "    {name:<32} {columns}")?;
            }
        }
        write!(
            f,
            "  looked up at run time (MmGetSystemRoutineAddress, with fallbacks):"
        )?;
        if self.run_time.is_empty() {
            write!(f, " none")?;
        }
        for (name, columns) in &self.run_time {
            write!(f, "\n    {name:<32} {columns}")?;
        }
        Ok(())
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
    let mut report = Report {
        image: path.clone().into_owned(),
        imports: BTreeMap::new(),
        run_time: Vec::new(),
        wine_checked: false,
    };
    for (module, names) in &imports {
        let Some((_, lib)) = MODULES.iter().find(|(m, _)| m == module) else {
            return Err(format!(
                "{path}: imports from {module}, which is not a kernel module"
            ));
        };
        let windows = import_library_exports(lib)?;
        let wine_module = Path::new(WINE_DIR).join(module);
        let wine = if wine_module.exists() {
            report.wine_checked = true;
            Some(module_exports(&wine_module)?)
        } else {
            None
        };
        for name in names {
            let row = exports::find(module, name).ok_or_else(|| {
                format!(
                    "{path}: imports {module}!{name}, which crates/xtask/src/exports.rs does \
                     not list: add it with the kernels that export it"
                )
            })?;
            if row.how == Use::RunTime {
                return Err(format!(
                    "{path}: imports {name}, which is meant to be looked up at run time"
                ));
            }
            if !row.everywhere() {
                return Err(format!(
                    "{path}: imports {name}, which not every kernel exports ({}); look it up \
                     at DriverEntry with a fallback instead",
                    row.columns()
                ));
            }
            confirm(row, &windows, wine.as_ref())?;
            report
                .imports
                .entry(module.clone())
                .or_default()
                .push((name.clone(), row.columns()));
        }
    }
    report.run_time = run_time_names(image, &path)?;
    Ok(report)
}

/// Compares a table row with the export lists the machine has.
fn confirm(
    row: &exports::Export,
    windows: &BTreeSet<String>,
    wine: Option<&BTreeSet<String>>,
) -> Result<(), String> {
    if windows.contains(row.name) != row.windows {
        return Err(format!(
            "exports.rs says Windows {} {}, mingw-w64's import library says otherwise",
            if row.windows {
                "exports"
            } else {
                "does not export"
            },
            row.name
        ));
    }
    if let Some(wine) = wine {
        if wine.contains(row.name) != row.wine {
            return Err(format!(
                "exports.rs says Wine {} {}, Wine's installed module says otherwise",
                if row.wine {
                    "exports"
                } else {
                    "does not export"
                },
                row.name
            ));
        }
    }
    Ok(())
}

/// The run-time names of the table whose UTF-16 text the image holds (the names it
/// passes to MmGetSystemRoutineAddress), each confirmed like an import.
fn run_time_names(image: &Path, path: &str) -> Result<Vec<(String, String)>, String> {
    let bytes = std::fs::read(image).map_err(|e| format!("{path}: {e}"))?;
    let mut found = Vec::new();
    for row in exports::EXPORTS.iter().filter(|r| r.how == Use::RunTime) {
        let utf16: Vec<u8> = row.name.bytes().flat_map(|b| [b, 0]).collect();
        if bytes.windows(utf16.len()).any(|w| w == utf16.as_slice()) {
            let lib = MODULES
                .iter()
                .find(|(m, _)| *m == row.module)
                .map(|(_, lib)| *lib)
                .ok_or_else(|| format!("{}: unknown module {}", row.name, row.module))?;
            let wine_module = Path::new(WINE_DIR).join(row.module);
            let wine = if wine_module.exists() {
                Some(module_exports(&wine_module)?)
            } else {
                None
            };
            confirm(row, &import_library_exports(lib)?, wine.as_ref())?;
            found.push((row.name.to_owned(), row.columns()));
        }
    }
    Ok(found)
}
