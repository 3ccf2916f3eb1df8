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
    let mut lists = ExportLists::default();
    let mut report = Report {
        image: path.clone().into_owned(),
        imports: BTreeMap::new(),
        run_time: Vec::new(),
        wine_checked: Path::new(WINE_DIR).is_dir(),
    };
    for (module, names) in &imports {
        if !MODULES.iter().any(|(m, _)| m == module) {
            return Err(format!(
                "{path}: imports from {module}, which is not a kernel module"
            ));
        }
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
            lists.confirm(row)?;
            report
                .imports
                .entry(module.clone())
                .or_default()
                .push((name.clone(), row.columns()));
        }
    }
    // The names the image passes to MmGetSystemRoutineAddress: the table's run-time rows
    // whose UTF-16 text the image holds, each confirmed like an import.
    let bytes = std::fs::read(image).map_err(|e| format!("{path}: {e}"))?;
    for row in exports::EXPORTS.iter().filter(|r| r.how == Use::RunTime) {
        let utf16: Vec<u8> = row.name.bytes().flat_map(|b| [b, 0]).collect();
        if bytes.windows(utf16.len()).any(|w| w == utf16.as_slice()) {
            lists.confirm(row)?;
            report.run_time.push((row.name.to_owned(), row.columns()));
        }
    }
    Ok(report)
}

/// The export lists this machine has for each kernel module, each read once.
#[derive(Default)]
struct ExportLists {
    /// Per module: mingw-w64's import library (Windows), and Wine's module if installed.
    modules: BTreeMap<&'static str, (BTreeSet<String>, Option<BTreeSet<String>>)>,
}

impl ExportLists {
    fn of(
        &mut self,
        module: &'static str,
    ) -> Result<&(BTreeSet<String>, Option<BTreeSet<String>>), String> {
        if !self.modules.contains_key(module) {
            let lib = MODULES
                .iter()
                .find(|(m, _)| *m == module)
                .map(|(_, lib)| *lib)
                .ok_or_else(|| format!("unknown kernel module {module}"))?;
            let wine_module = Path::new(WINE_DIR).join(module);
            let wine = if wine_module.exists() {
                Some(module_exports(&wine_module)?)
            } else {
                None
            };
            self.modules
                .insert(module, (import_library_exports(lib)?, wine));
        }
        Ok(&self.modules[module])
    }

    /// Compares a table row with the export lists the machine has.
    fn confirm(&mut self, row: &exports::Export) -> Result<(), String> {
        let (windows, wine) = self.of(row.module)?;
        let mismatch = |kernel: &str, says: bool, source: &str| {
            let verb = if says { "exports" } else { "does not export" };
            format!(
                "exports.rs says {kernel} {verb} {}, {source} says otherwise",
                row.name
            )
        };
        if windows.contains(row.name) != row.windows {
            return Err(mismatch(
                "Windows",
                row.windows,
                "mingw-w64's import library",
            ));
        }
        if wine
            .as_ref()
            .is_some_and(|w| w.contains(row.name) != row.wine)
        {
            return Err(mismatch("Wine", row.wine, "Wine's installed module"));
        }
        Ok(())
    }
}
