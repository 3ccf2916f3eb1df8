//! `cargo xtask reactos`: boots the cross-built ksalloc.sys and ksprobe.sys in a real NT
//! kernel, ReactOS amd64 under QEMU (software emulation), and reads ksprobe's verdict from
//! COM1.
//!
//! Steps (facts in `shared/reactos/README.md`): unpack the shared LiveCD image, copy both
//! drivers into `system32\drivers`, add them to the SYSTEM hive as system-start services
//! (ksalloc with its named test device, ksprobe in boot mode), repack with the shared
//! ReactOS mkisofs (Debian's xorriso makes images ReactOS's boot sector cannot read), boot
//! with TCG and read the serial log until ksprobe's summary line, a bugcheck, a fall into
//! the kernel debugger, or the timeout.
//!
//! What this is not: ReactOS is an independent NT kernel with its own bugs and gaps, not
//! Windows; Driver Verifier does not exist there.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The services the run adds, as `hivexsh` sees them: (name, extra DWORD values).
const SERVICES: &[(&str, &[(&str, u32)])] = &[
    // No PnP enumerates a root device for us: the legacy named device (src/legacy.rs).
    ("ksalloc", &[("TestDevice", 1)]),
    // Boot mode: a system thread runs every scenario once ksalloc's device exists.
    // SkipFaultingCases: ReactOS amd64 cannot dispatch an exception raised inside the
    // driver's __try (crates/ksprobe/src/boot.rs has the evidence).
    ("ksprobe", &[("BootRun", 1), ("SkipFaultingCases", 1)]),
];

/// What ends a run badly when it shows on COM1: a bugcheck, or the kernel debugger's prompt
/// (a debug build breaks into kdb on an unhandled exception or an assertion).
const FATAL_MARKS: &[&str] = &[
    "Fatal System Error",
    "BugCheck",
    "kdb:>",
    "Entered debugger on",
];

/// Default time to wait for ksprobe's summary (first COM1 line ~9 s, drivers ~20 s).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Options of the command.
pub struct Options {
    /// Give up after this long.
    pub timeout: Duration,
}

impl Options {
    /// Parses `--timeout SECS`.
    pub fn parse(args: &[&str]) -> Result<Self, String> {
        let mut timeout = DEFAULT_TIMEOUT;
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            match *arg {
                "--timeout" => {
                    let secs = rest
                        .next()
                        .and_then(|s| s.parse::<u64>().ok())
                        .filter(|&s| s > 0)
                        .ok_or("--timeout takes a whole number of seconds")?;
                    timeout = Duration::from_secs(secs);
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(Self { timeout })
    }
}

/// The outcome of reading the serial log.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// ksprobe's summary with no failure.
    Passed { passed: u32 },
    /// ksprobe's summary with failures.
    Failed { passed: u32, failed: u32 },
    /// A bugcheck or the debugger prompt, with the line that showed it.
    Crashed(String),
    /// A driver did not load (ReactOS's loader names the missing import).
    NotLoaded(String),
}

/// Reads what COM1 has shown so far; `None` while nothing decides the run.
fn judge(log: &str) -> Option<Verdict> {
    for line in log.lines() {
        if FATAL_MARKS.iter().any(|m| line.contains(m)) {
            return Some(Verdict::Crashed(line.trim().to_owned()));
        }
        let lower = line.to_ascii_lowercase();
        // The loader names the module and the import it could not bind.
        let missing = lower.contains("missing api") || lower.contains("missing driver");
        if missing
            && ["ksalloc", "ksprobe", "ntoskrnl", "hal.dll"]
                .iter()
                .any(|m| lower.contains(m))
        {
            return Some(Verdict::NotLoaded(line.trim().to_owned()));
        }
        if let Some(summary) = line.split("ksprobe: ").nth(1) {
            if let Some((passed, failed)) = parse_summary(summary) {
                return Some(if failed == 0 && passed > 0 {
                    Verdict::Passed { passed }
                } else {
                    Verdict::Failed { passed, failed }
                });
            }
        }
    }
    None
}

/// `N passed, M failed` (the line's end may carry COM1's `\r`).
fn parse_summary(text: &str) -> Option<(u32, u32)> {
    let text = text.trim();
    let (passed, failed) = text.split_once(" passed, ")?;
    let failed = failed.strip_suffix(" failed")?;
    Some((passed.trim().parse().ok()?, failed.trim().parse().ok()?))
}

fn tool(root: &Path, what: &str, cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run {what}: {e} (bash .ci/install --reactos installs it)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The hivexsh script that adds one system-start kernel service.
fn service_script(name: &str, values: &[(&str, u32)]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "cd \\ControlSet001\\Services");
    let _ = writeln!(s, "add {name}");
    let _ = writeln!(s, "cd {name}");
    // One `setval` with every pair: hivexsh replaces all values of the node with it.
    // Type 1 = kernel driver; Start 1 = system start (loaded by the kernel before any
    // user mode); ErrorControl 1 = log and go on, so a failed load still reaches COM1.
    let dwords: Vec<(&str, u32)> = [("Type", 1), ("Start", 1), ("ErrorControl", 1)]
        .into_iter()
        .chain(values.iter().copied())
        .collect();
    let _ = writeln!(s, "setval {}", dwords.len() + 2);
    for (value, data) in dwords {
        let _ = writeln!(s, "{value}\ndword:{data:#x}");
    }
    let _ = writeln!(
        s,
        "Group\nstring:Base\nImagePath\nexpandstring:system32\\drivers\\{name}.sys"
    );
    s
}

fn shared_dir(root: &Path) -> PathBuf {
    std::env::var_os("KSALLOC_SHARED").map_or_else(|| root.join("../shared"), PathBuf::from)
}

/// Builds the boot image with both drivers; returns its path.
fn build_image(root: &Path, work: &Path) -> Result<PathBuf, String> {
    let shared = shared_dir(root).join("reactos");
    let base = work.join("base.iso");
    if !base.exists() {
        let xz = shared.join("reactos-livecd-amd64-debug.iso.xz");
        let file = std::fs::File::create(&base).map_err(|e| format!("{}: {e}", base.display()))?;
        let status = Command::new("xz")
            .arg("-dc")
            .arg(&xz)
            .stdout(file)
            .status()
            .map_err(|e| format!("xz: {e}"))?;
        if !status.success() {
            let _ = std::fs::remove_file(&base);
            return Err(format!("xz -dc {} failed ({status})", xz.display()));
        }
    }
    let tree = work.join("tree");
    if tree.exists() {
        std::fs::remove_dir_all(&tree).map_err(|e| format!("{}: {e}", tree.display()))?;
    }
    tool(
        root,
        "xorriso",
        Command::new("xorriso")
            .args(["-osirrox", "on", "-indev"])
            .arg(&base)
            .args(["-extract", "/"])
            .arg(&tree),
    )?;
    tool(
        root,
        "chmod",
        Command::new("chmod").arg("-R").arg("u+w").arg(&tree),
    )?;
    let drivers = tree.join("reactos/system32/drivers");
    for (name, _) in SERVICES {
        let sys = root.join("target/pe").join(format!("{name}.sys"));
        std::fs::copy(&sys, drivers.join(format!("{name}.sys")))
            .map_err(|e| format!("{}: {e} (run `cargo xtask pe` first)", sys.display()))?;
    }
    let mut script = String::new();
    for (name, values) in SERVICES {
        script.push_str(&service_script(name, values));
    }
    script.push_str("commit\n");
    let hive = tree.join("reactos/system32/config/system");
    let mut child = Command::new("hivexsh")
        .arg("-w")
        .arg(&hive)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run hivexsh: {e} (apt-get install libhivex-bin)"))?;
    child
        .stdin
        .take()
        .ok_or("hivexsh: no stdin")?
        .write_all(script.as_bytes())
        .map_err(|e| format!("hivexsh: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("hivexsh: {e}"))?;
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(format!(
            "hivexsh could not add the services ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let iso = work.join("ksalloc-reactos.iso");
    tool(
        root,
        "ReactOS's mkisofs",
        Command::new(shared.join("mkisofs"))
            .args(["-quiet", "-o"])
            .arg(&iso)
            .args([
                "-iso-level",
                "4",
                "-eltorito-boot",
                "loader/isoboot.bin",
                "-no-emul-boot",
                "-boot-load-size",
                "4",
                "-hide",
                "boot.catalog",
                "-no-cache-inodes",
            ])
            .arg(&tree),
    )?;
    // The tree is 500 MB and rebuilt each run.
    let _ = std::fs::remove_dir_all(&tree);
    Ok(iso)
}

/// Starts QEMU (unpacked by `.ci/install --reactos` into target/qemu) on `iso`.
fn boot(root: &Path, iso: &Path, serial: &Path) -> Result<Child, String> {
    let qemu = root.join("target/qemu");
    let libs = format!(
        "{}:{}",
        qemu.join("usr/lib/x86_64-linux-gnu").display(),
        qemu.join("lib/x86_64-linux-gnu").display()
    );
    Command::new(qemu.join("usr/bin/qemu-system-x86_64"))
        .env("LD_LIBRARY_PATH", libs)
        .arg("-L")
        .arg(qemu.join("usr/share/seabios"))
        .arg("-L")
        .arg(qemu.join("usr/share/qemu"))
        // Software emulation only: the nested /dev/kvm here cannot run ReactOS (README).
        .args([
            "-machine", "pc", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "1024",
        ])
        .arg("-cdrom")
        .arg(iso)
        .args([
            "-boot",
            "d",
            "-display",
            "none",
            "-nodefaults",
            "-device",
            "VGA",
        ])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-no-reboot")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start QEMU from {}: {e} (bash .ci/install --reactos)",
                qemu.display()
            )
        })
}

/// The lines of the serial log our drivers (and the loader, about them) wrote.
fn driver_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("ksalloc") || l.contains("ksprobe")
        })
        .collect()
}

/// Runs the whole boot test.
pub fn run(root: &Path, options: &Options) -> Result<(), String> {
    let work = root.join("target/reactos");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let iso = build_image(root, &work)?;
    let serial = work.join("serial.log");
    let _ = std::fs::remove_file(&serial);
    let started = Instant::now();
    let mut qemu = boot(root, &iso, &serial)?;
    let verdict = loop {
        std::thread::sleep(Duration::from_secs(1));
        let log = String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
        if let Some(v) = judge(&log) {
            break Ok(v);
        }
        if let Ok(Some(status)) = qemu.try_wait() {
            break Err(format!("QEMU stopped before a verdict ({status})"));
        }
        if started.elapsed() > options.timeout {
            break Err(format!("no verdict within {} s", options.timeout.as_secs()));
        }
    };
    let _ = qemu.kill();
    let _ = qemu.wait();
    let log = String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
    println!(
        "== ReactOS COM1, driver lines ({} s):",
        started.elapsed().as_secs()
    );
    for line in driver_lines(&log) {
        println!("{}", line.trim_end());
    }
    let tail = || {
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    match verdict {
        Ok(Verdict::Passed { passed }) => {
            println!(
                "reactos: {passed} passed, 0 failed (serial log: {})",
                serial.display()
            );
            Ok(())
        }
        Ok(Verdict::Failed { passed, failed }) => Err(format!(
            "ksprobe reported {passed} passed, {failed} failed on ReactOS"
        )),
        Ok(Verdict::Crashed(line)) => Err(format!("the kernel stopped: {line}\n{}", tail())),
        Ok(Verdict::NotLoaded(line)) => Err(format!("a driver did not load: {line}")),
        Err(why) => Err(format!("{why}; last COM1 lines:\n{}", tail())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines_decide_the_run() {
        assert_eq!(
            judge("x\nksprobe: 12 passed, 0 failed\r\n"),
            Some(Verdict::Passed { passed: 12 })
        );
        assert_eq!(
            judge("ksprobe: 11 passed, 1 failed\n"),
            Some(Verdict::Failed {
                passed: 11,
                failed: 1
            })
        );
        // No check ran: not a pass.
        assert_eq!(
            judge("ksprobe: 0 passed, 0 failed\n"),
            Some(Verdict::Failed {
                passed: 0,
                failed: 0
            })
        );
        assert_eq!(judge("ksprobe: PASS open filter\n"), None);
    }

    #[test]
    fn crashes_and_missing_imports_end_the_run() {
        assert!(matches!(
            judge("*** Fatal System Error: 0x0000007e\n"),
            Some(Verdict::Crashed(_))
        ));
        assert!(matches!(judge("kdb:> "), Some(Verdict::Crashed(_))));
        assert!(matches!(
            judge("Missing driver 'ntoskrnl.exe', missing API 'KeGetCurrentProcessorNumberEx'\n"),
            Some(Verdict::NotLoaded(_))
        ));
    }

    #[test]
    fn services_are_system_start_kernel_drivers() {
        let script = service_script("ksprobe", &[("BootRun", 1)]);
        assert!(script.contains("add ksprobe\n"));
        assert!(script.contains("setval 6\n"));
        assert!(
            service_script("ksprobe", &[("BootRun", 1), ("SkipFaultingCases", 1)])
                .contains("setval 7\n")
        );
        assert!(script.contains("Start\ndword:0x1\n"));
        assert!(script.contains("BootRun\ndword:0x1\n"));
        assert!(script.contains("expandstring:system32\\drivers\\ksprobe.sys"));
    }
}
