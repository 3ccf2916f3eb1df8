//! Cross-checks `abi_table` against an independent source: mingw-w64's DDK headers.
//!
//! From the same table `layout.rs` uses, this writes C translation units that include
//! `ntddk.h` (first, so `ks.h` shows its kernel-only `_NTDDK_` part), `ks.h` and
//! `ksmedia.h`, and state every size, alignment, field offset, field size, IOCTL code,
//! NTSTATUS, flag and id as `_Static_assert`s that must agree with both the Rust value and
//! the table's reference value. `x86_64-w64-mingw32-gcc -S` compiles them; a failed
//! assertion fails the test, and the test then recompiles with `-DKSA_VALUES` (assertions
//! off, every C value emitted as data) to print which numbers disagree.
//!
//! GUIDs are compared twice: statically, field by field, against mingw's `STATIC_<name>`
//! initializer lists, and in memory, by defining `const GUID ksa_guid_<name> =
//! { STATIC_<name> };`, reading the bytes gcc emits from the assembly and comparing them to
//! `Guid::to_bytes()`. `CLSID_Proxy` lives in `ksproxy.h`, a user-mode COM header, so it is
//! checked in a second, user-mode translation unit.
//!
//! The compiler is `x86_64-w64-mingw32-gcc` (override: `KSALLOC_MINGW_CC`); the DDK include
//! directory is found from the compiler's search path (override: `KSALLOC_MINGW_DDK`). If
//! either is missing the tests fail, unless `KSALLOC_SKIP_MINGW=1` is set. CI installs
//! mingw-w64 (`.ci/run`), so there they always run.

mod abi_table;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use abi_table::{Constant, Headers, ALIASES, FLAGS_AND_IDS, GUIDS, IOCTLS, STATUSES, STRUCTS};

/// The compiler and the DDK include directory to use.
struct Mingw {
    /// Compiler executable.
    cc: String,
    /// Directory holding `ntddk.h`.
    ddk: PathBuf,
}

/// Finds mingw-w64, or returns `None` (after saying so) when it is absent and the caller set
/// `KSALLOC_SKIP_MINGW=1`. Panics with instructions when it is absent otherwise.
fn mingw() -> Option<Mingw> {
    let skip = std::env::var("KSALLOC_SKIP_MINGW").is_ok_and(|v| v == "1");
    let cc = std::env::var("KSALLOC_MINGW_CC").unwrap_or_else(|_| "x86_64-w64-mingw32-gcc".into());
    let absent = |what: String| -> Option<Mingw> {
        assert!(
            skip,
            "{what}\nThe ks-abi cross-check against mingw-w64's headers needs it: install it with \
             `sudo apt-get install mingw-w64` (or run `bash .ci/run`, which does), or set \
             KSALLOC_SKIP_MINGW=1 to skip this check knowingly."
        );
        eprintln!("SKIPPED (KSALLOC_SKIP_MINGW=1): {what}");
        None
    };
    let version = Command::new(&cc).arg("--version").output();
    match version {
        Ok(out) if out.status.success() => {}
        Ok(out) => return absent(format!("`{cc} --version` failed: {}", out.status)),
        Err(e) => return absent(format!("mingw-w64 C compiler `{cc}` not found ({e}).")),
    }
    let ddk = match std::env::var_os("KSALLOC_MINGW_DDK") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => find_ddk(&cc),
    };
    match ddk {
        Some(ddk) if ddk.join("ntddk.h").is_file() => Some(Mingw { cc, ddk }),
        Some(ddk) => absent(format!("{} has no ntddk.h", ddk.display())),
        None => absent(format!("no ddk/ntddk.h next to `{cc}`'s system headers")),
    }
}

/// The `ddk` directory beside one of the compiler's system include directories.
fn find_ddk(cc: &str) -> Option<PathBuf> {
    let out = Command::new(cc)
        .args(["-E", "-v", "-x", "c", "-o", "/dev/null", "/dev/null"])
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let search = stderr
        .lines()
        .skip_while(|l| !l.starts_with("#include <...> search starts here:"))
        .skip(1)
        .take_while(|l| !l.starts_with("End of search list."))
        .map(|l| PathBuf::from(l.trim()));
    search
        .chain([PathBuf::from("/usr/share/mingw-w64/include")])
        .map(|dir| dir.join("ddk"))
        .find(|ddk| ddk.join("ntddk.h").is_file())
}

/// Kernel-mode prelude: the include order a KS driver uses.
const KERNEL_PRELUDE: &str = "\
#include <ntddk.h>   /* first: ks.h declares its kernel-only part under _NTDDK_ */
#include <windef.h>  /* ksmedia.h uses DWORD, BYTE, RECT... which ntddk.h does not define */
#include <tchar.h>   /* ksmedia.h uses TCHAR */
#include <ks.h>
#include <ksmedia.h>
#include <stddef.h>
";

/// User-mode prelude, for `ksproxy.h` (COM; it cannot be included after `ntddk.h`).
const USER_PRELUDE: &str = "\
#include <windows.h>
#include <ks.h>
#include <ksproxy.h>
";

/// The assertion macro both modes share.
const CHECK_MACRO: &str = "\
#ifdef KSA_VALUES
/* Diagnostic mode: no assertions, every C value emitted as data for the test to read. */
#define KSA_CHECK(id, expr, rust, table, msg) const unsigned long long id = (unsigned long long)(expr);
#else
#define KSA_CHECK(id, expr, rust, table, msg) \\
  _Static_assert((unsigned long long)(expr) == (rust) && (unsigned long long)(expr) == (table), msg);
#endif
/* GUID components: the STATIC_<name> list against the Rust value, field by field. */
#define KSA_GUID_EQ_(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, \\
                     b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11) \\
  ((ULONG)(a1) == (ULONG)(b1) && (USHORT)(a2) == (USHORT)(b2) && (USHORT)(a3) == (USHORT)(b3) && \\
   (UCHAR)(a4) == (UCHAR)(b4) && (UCHAR)(a5) == (UCHAR)(b5) && (UCHAR)(a6) == (UCHAR)(b6) && \\
   (UCHAR)(a7) == (UCHAR)(b7) && (UCHAR)(a8) == (UCHAR)(b8) && (UCHAR)(a9) == (UCHAR)(b9) && \\
   (UCHAR)(a10) == (UCHAR)(b10) && (UCHAR)(a11) == (UCHAR)(b11))
#define KSA_GUID_EQ(...) KSA_GUID_EQ_(__VA_ARGS__)
";

/// One numeric fact: a C expression and the two numbers it must equal.
struct Check {
    /// What is being checked, for messages.
    what: String,
    /// C expression.
    expr: String,
    /// The Rust value.
    rust: u64,
    /// The table's reference value.
    table: u64,
    /// Print the numbers in hex (codes and flags) rather than decimal (sizes, offsets).
    hex: bool,
}

impl Check {
    /// A number as this check prints it.
    fn show(&self, v: u64) -> String {
        if self.hex {
            format!("{v:#010X}")
        } else {
            v.to_string()
        }
    }
}

/// A generated C translation unit.
struct Unit {
    /// File stem under the test's scratch directory.
    name: &'static str,
    /// Which headers it includes.
    headers: Headers,
    /// Numeric checks (`KSA_CHECK`).
    checks: Vec<Check>,
    /// GUIDs to compare: C name, Rust name, Rust bytes, the table's braced form.
    guids: Vec<(&'static str, &'static str, [u8; 16], &'static str)>,
}

impl Unit {
    const fn new(name: &'static str, headers: Headers) -> Self {
        Self {
            name,
            headers,
            checks: Vec::new(),
            guids: Vec::new(),
        }
    }

    fn check(&mut self, what: String, expr: String, rust: usize, table: usize) {
        let wide = |v: usize| u64::try_from(v).expect("usize fits u64");
        self.checks.push(Check {
            what,
            expr,
            rust: wide(rust),
            table: wide(table),
            hex: false,
        });
    }

    fn constant(&mut self, c: &Constant) {
        self.checks.push(Check {
            what: format!("{} (Rust {})", c.c, c.rust),
            expr: format!("(ULONG)({})", c.c),
            rust: u64::from(c.value),
            table: u64::from(c.expected),
            hex: true,
        });
    }

    /// The C source (both modes; `-DKSA_VALUES` switches to the diagnostic one).
    fn source(&self) -> String {
        let mut c = String::from(
            "/* Generated by crates/ks-abi/tests/mingw_crosscheck.rs from tests/abi_table. */\n",
        );
        c.push_str(match self.headers {
            Headers::Kernel => KERNEL_PRELUDE,
            Headers::User => USER_PRELUDE,
        });
        c.push_str(CHECK_MACRO);
        for (i, k) in self.checks.iter().enumerate() {
            let msg = format!(
                "{}: mingw-w64 disagrees with Rust ({}) or with the table ({})",
                k.what,
                k.show(k.rust),
                k.show(k.table)
            );
            writeln!(
                c,
                "KSA_CHECK(ksa_v_{i}, {}, {:#X}ULL, {:#X}ULL, {})",
                k.expr,
                k.rust,
                k.table,
                c_string(&msg)
            )
            .expect("writing to a String");
        }
        for (name, rust, bytes, expected) in &self.guids {
            let g = ks_abi::Guid::from_bytes(bytes);
            let d4: Vec<String> = g.data4.iter().map(|b| format!("0x{b:02X}")).collect();
            let msg = format!(
                "{name}: STATIC_{name} in mingw-w64 disagrees with Rust {rust} = {g:?} (table: {expected})"
            );
            writeln!(
                c,
                "#ifndef KSA_VALUES\n_Static_assert(KSA_GUID_EQ(STATIC_{name}, 0x{:08X}, 0x{:04X}, 0x{:04X}, {}), {});\n#endif\n\
                 const GUID ksa_guid_{name} = {{ STATIC_{name} }};",
                g.data1,
                g.data2,
                g.data3,
                d4.join(", "),
                c_string(&msg)
            )
            .expect("writing to a String");
        }
        c
    }
}

/// A C string literal.
fn c_string(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// Compiles `unit` to assembly; returns the assembly text, or gcc's diagnostics.
fn compile(m: &Mingw, unit: &Unit, values: bool) -> Result<String, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ks-abi-mingw");
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    let suffix = if values { "-values" } else { "" };
    let c_file = dir.join(format!("{}{suffix}.c", unit.name));
    let s_file = dir.join(format!("{}{suffix}.s", unit.name));
    std::fs::write(&c_file, unit.source()).expect("write C file");
    let mut cmd = Command::new(&m.cc);
    cmd.args(["-S", "-std=gnu11", "-o"]).arg(&s_file);
    if unit.headers == Headers::Kernel {
        cmd.arg("-I").arg(&m.ddk);
    }
    if values {
        cmd.arg("-DKSA_VALUES");
    }
    let out = cmd
        .arg(&c_file)
        .output()
        .expect("run the mingw-w64 compiler");
    if out.status.success() {
        Ok(std::fs::read_to_string(&s_file).expect("read assembly"))
    } else {
        Err(format!(
            "{} failed on {}:\n{}",
            m.cc,
            c_file.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The bytes gcc emitted for each `ksa_*` data label in GNU assembler output.
fn data_labels(asm: &str) -> HashMap<String, Vec<u8>> {
    let mut labels = HashMap::new();
    let mut current: Option<(String, Vec<u8>)> = None;
    for line in asm.lines().map(str::trim) {
        if let Some(label) = line.strip_suffix(':').filter(|l| l.starts_with("ksa_")) {
            if let Some((name, bytes)) = current.take() {
                labels.insert(name, bytes);
            }
            current = Some((label.to_owned(), Vec::new()));
            continue;
        }
        let Some((_, bytes)) = current.as_mut() else {
            continue;
        };
        let (directive, operand) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let operand = operand.trim();
        let width = match directive {
            ".byte" => 1,
            ".word" | ".short" | ".value" | ".2byte" => 2,
            ".long" | ".int" | ".4byte" => 4,
            ".quad" | ".8byte" => 8,
            ".ascii" | ".string" | ".asciz" => {
                bytes.extend(unescape_gas_string(operand));
                if directive != ".ascii" {
                    bytes.push(0);
                }
                continue;
            }
            ".zero" | ".space" => {
                let n: usize = operand.parse().expect(".zero count");
                bytes.resize(bytes.len() + n, 0);
                continue;
            }
            _ => {
                // Any other directive or label ends the object.
                if let Some((name, b)) = current.take() {
                    labels.insert(name, b);
                }
                continue;
            }
        };
        for item in operand.split(',').map(str::trim) {
            let value = parse_int(item).unwrap_or_else(|| panic!("cannot read `{line}`"));
            bytes.extend_from_slice(&value.to_le_bytes()[..width]);
        }
    }
    if let Some((name, bytes)) = current {
        labels.insert(name, bytes);
    }
    labels
}

/// A decimal or `0x` hexadecimal integer, possibly negative, as its two's-complement bits.
fn parse_int(s: &str) -> Option<u64> {
    let (neg, digits) = s.strip_prefix('-').map_or((false, s), |d| (true, d));
    let magnitude = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    Some(if neg {
        magnitude.wrapping_neg()
    } else {
        magnitude
    })
}

/// The bytes of a GNU assembler string operand (`"\245\326(\333\4\301\0\0"`).
fn unescape_gas_string(operand: &str) -> Vec<u8> {
    let inner = operand
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .expect("quoted string");
    let mut out = Vec::new();
    let mut chars = inner.bytes().peekable();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match chars.next().expect("escape") {
            d @ b'0'..=b'7' => {
                let mut v = u32::from(d - b'0');
                for _ in 0..2 {
                    match chars.peek() {
                        Some(&n @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(n - b'0');
                            chars.next();
                        }
                        _ => break,
                    }
                }
                out.push(u8::try_from(v).expect("octal escape fits a byte"));
            }
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            other => out.push(other),
        }
    }
    out
}

/// Compiles `unit`; on a failed assertion recompiles in value mode and reports every
/// disagreeing number. Then compares the emitted GUID bytes. Returns the number of facts
/// checked.
fn run(m: &Mingw, unit: &Unit) -> usize {
    let asm = match compile(m, unit, false) {
        Ok(asm) => asm,
        Err(diagnostics) => {
            let mut report = String::new();
            match compile(m, unit, true) {
                Ok(asm) => {
                    let values = data_labels(&asm);
                    for (i, k) in unit.checks.iter().enumerate() {
                        let c = values.get(&format!("ksa_v_{i}")).map(|b| {
                            u64::from_le_bytes(b.as_slice().try_into().expect("8-byte value"))
                        });
                        if c != Some(k.rust) || c != Some(k.table) {
                            writeln!(
                                report,
                                "  {}: mingw-w64 {}, Rust {}, table {}",
                                k.what,
                                c.map_or_else(|| "?".into(), |v| k.show(v)),
                                k.show(k.rust),
                                k.show(k.table)
                            )
                            .expect("writing to a String");
                        }
                    }
                }
                Err(e) => writeln!(report, "  (value mode did not compile either)\n{e}")
                    .expect("writing to a String"),
            }
            panic!(
                "mingw-w64 cross-check `{}` failed.\nDisagreements:\n{report}\n{diagnostics}",
                unit.name
            );
        }
    };
    let labels = data_labels(&asm);
    for (name, rust, bytes, _) in &unit.guids {
        let emitted = labels.get(&format!("ksa_guid_{name}"));
        assert_eq!(
            emitted.map(Vec::as_slice),
            Some(&bytes[..]),
            "{name}: bytes gcc emits for mingw-w64's value vs Rust {rust}.to_bytes()"
        );
    }
    unit.checks.len() + unit.guids.len()
}

#[test]
fn layouts_match_mingw_headers() {
    let Some(m) = mingw() else { return };
    let mut unit = Unit::new("layouts", Headers::Kernel);
    for s in STRUCTS {
        let t = s.c;
        unit.check(
            format!("sizeof({t}) (Rust {})", s.rust),
            format!("sizeof({t})"),
            s.rust_size,
            s.expected_size,
        );
        unit.check(
            format!("_Alignof({t}) (Rust {})", s.rust),
            format!("_Alignof({t})"),
            s.rust_align,
            s.expected_align,
        );
        for f in s.fields {
            // A Rust padding field has no C member: C leaves that gap implicit.
            let Some(path) = f.c else { continue };
            unit.check(
                format!("offsetof({t}, {path}) (Rust {}.{})", s.rust, f.rust),
                format!("offsetof({t}, {path})"),
                f.rust_offset,
                f.expected_offset,
            );
            // The reference gives no field sizes; the Rust field size must match C's.
            unit.check(
                format!("sizeof({t}.{path}) (Rust {}.{})", s.rust, f.rust),
                format!("sizeof((({t} *)0)->{path})"),
                f.rust_size,
                f.rust_size,
            );
        }
    }
    for a in ALIASES {
        let target = STRUCTS
            .iter()
            .find(|s| s.c == a.target)
            .expect("alias target in table");
        let t = a.c;
        unit.check(
            format!("sizeof({t}) (Rust {})", a.rust),
            format!("sizeof({t})"),
            a.rust_size,
            target.expected_size,
        );
        unit.check(
            format!("_Alignof({t}) (Rust {})", a.rust),
            format!("_Alignof({t})"),
            a.rust_align,
            target.expected_align,
        );
    }
    let n = run(&m, &unit);
    assert!(n > 200, "suspiciously few layout checks: {n}");
    eprintln!("{n} layout facts agree with mingw-w64");
}

#[test]
fn constants_match_mingw_headers() {
    let Some(m) = mingw() else { return };
    let mut unit = Unit::new("constants", Headers::Kernel);
    for c in IOCTLS.iter().chain(STATUSES).chain(FLAGS_AND_IDS) {
        unit.constant(c);
    }
    let n = run(&m, &unit);
    assert_eq!(n, IOCTLS.len() + STATUSES.len() + FLAGS_AND_IDS.len());
    eprintln!("{n} IOCTL codes, NTSTATUS values, flags and ids agree with mingw-w64");
}

#[test]
fn guids_match_mingw_headers() {
    let Some(m) = mingw() else { return };
    let mut total = 0;
    for (name, headers) in [
        ("guids-kernel", Headers::Kernel),
        ("guids-user", Headers::User),
    ] {
        let mut unit = Unit::new(name, headers);
        unit.guids = GUIDS
            .iter()
            .filter(|g| g.headers == headers)
            .map(|g| (g.c, g.rust, g.value.to_bytes(), g.expected))
            .collect();
        total += run(&m, &unit);
    }
    assert_eq!(total, GUIDS.len());
    eprintln!("{total} GUIDs agree with mingw-w64, by value and by emitted bytes");
}

#[test]
fn assembly_reader_understands_gcc_data() {
    // What x86_64-w64-mingw32-gcc 12 emits for `const GUID x = { STATIC_KSNAME_Allocator };`
    // and for a `const unsigned long long`, plus the other forms the reader accepts.
    let asm = "\
\t.globl\tksa_guid_KSNAME_Allocator
\t.section .rdata,\"dr\"
\t.align 16
ksa_guid_KSNAME_Allocator:
\t.long\t1680825600
\t.word\t18321
\t.word\t4560
\t.ascii \"\\245\\326(\\333\\4\\301\\0\\0\"
\t.globl\tksa_v_0
\t.align 8
ksa_v_0:
\t.quad\t24
ksa_v_1:
\t.word\t-4905
\t.byte\t1, 0x2
\t.zero\t3
\t.ascii \"\\\"\\\\\"
\t.ident\t\"GCC\"
";
    let labels = data_labels(asm);
    assert_eq!(
        labels["ksa_guid_KSNAME_Allocator"],
        ks_abi::guid::KSNAME_ALLOCATOR.to_bytes()
    );
    assert_eq!(labels["ksa_v_0"], 24u64.to_le_bytes());
    assert_eq!(labels["ksa_v_1"], [0xD7, 0xEC, 1, 2, 0, 0, 0, b'"', b'\\']);
    assert_eq!(labels.len(), 3);
}
