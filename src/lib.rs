//! Harness shared by teiten's end-to-end tests (`tests/`) and benchmarks (`benches/`):
//! helpers that start the real parts (a private ClickHouse server, a network-namespace lab,
//! the project's own binaries) for a test and tear them down afterwards.

pub mod chain;
pub mod clickhouse;
pub mod lab;
pub mod measure;
pub mod pcapgen;
pub mod receiver;

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/conformance` beside the workspace (read-only reference material).
pub fn conformance() -> PathBuf {
    root().join("../shared/conformance")
}

/// The path of one of the workspace's binaries, built by the same `cargo test` or `cargo bench`
/// run (`cargo test --workspace` builds every binary). Panics with a clear message if missing.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "binary {} not built: run the tests with `cargo test --workspace` (or build it first)",
        path.display()
    );
    path
}

/// Runs a command to completion and returns its standard output; panics with the command,
/// status and standard error when it fails or cannot start.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("command printed UTF-8")
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
