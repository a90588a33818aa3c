//! Harness shared by teiten's end-to-end tests (`tests/`) and benchmarks (`benches/`):
//! helpers that start the real parts (a private ClickHouse server, a network-namespace lab,
//! the project's own binaries) for a test and tear them down afterwards.

pub mod browser;
pub mod chain;
pub mod chdb;
pub mod clamd;
pub mod clickhouse;
mod daemon;
pub mod gpg;
pub mod intelmq;
pub mod lab;
pub mod login;
pub mod measure;
pub mod pcapgen;
pub mod receiver;
pub mod slapd;
pub mod smtp;
pub mod tls;
pub mod zookeeper;

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/conformance` beside the workspace (read-only reference material).
pub fn conformance() -> PathBuf {
    root().join("../shared/conformance")
}

/// The path of one of the workspace's binaries, in the same profile as the running test or
/// benchmark. `cargo test` builds only the binaries of the package under test, so the first
/// call in a process runs `cargo build --workspace --bins` (a no-op when they are up to date);
/// panics with a clear message if that fails.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let dir = BUILT
        .get_or_init(build_bins)
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "binary {} not built: `cargo build --workspace --bins` did not produce it",
        path.display()
    );
    path
}

fn build_bins() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("test executable path: {e}"))?;
    // target/<profile>/deps/<test> (tests, benches) or target/<profile>/examples/<example>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .ok_or("test executable does not live in target/<profile>/deps")?
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--workspace", "--bins", "--manifest-path"])
        .arg(root().join("Cargo.toml"));
    if dir.file_name().is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    if let Some(target) = dir.parent() {
        cmd.arg("--target-dir").arg(target);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !status.success() {
        return Err(format!("{cmd:?} failed with {status}"));
    }
    Ok(dir)
}

/// Runs a command to completion and returns its standard output; panics with the command,
/// status and standard error when it fails or cannot start.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    try_run(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a command to completion: its standard output, or what went wrong (the command, and its
/// status and standard error, or why it could not start).
pub fn try_run(cmd: &mut std::process::Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{cmd:?} printed no UTF-8: {e}"))
}

/// The command `teiten-... --config CONFIG` of the built binary `name`, to add arguments to.
pub fn configured(name: &str, config: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin(name));
    cmd.arg("--config").arg(config);
    cmd
}

/// Panics unless `tool` is on PATH, naming the Debian package that provides it.
pub fn require_tool(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: `apt-get install {package}` (scripts/test does this)"
    );
}

/// A number as tshark prints it in `-T fields` output: decimal, `0x` hex, or empty (0).
pub fn tshark_number(s: &str) -> u64 {
    if s.is_empty() {
        0
    } else if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16).unwrap_or_else(|_| panic!("bad hex {s:?} from tshark"))
    } else {
        s.parse()
            .unwrap_or_else(|_| panic!("bad number {s:?} from tshark"))
    }
}

/// tshark's `-T fields` dump of a capture: one line a packet, the first occurrence of each of
/// `fields` separated by commas. `options` stand before the output options (a display filter
/// `-Y ...`, preferences `-o ...`); names are not resolved.
pub fn tshark_fields(file: &Path, options: &[&str], fields: &[&str]) -> String {
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r").arg(file).arg("-n").args(options).args([
        "-T",
        "fields",
        "-E",
        "separator=,",
        "-E",
        "occurrence=f",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    run_ok(&mut cmd)
}
