//! IntelMQ, the tool most national CSIRTs take feeds in with, reading our partner files: its own
//! parser bots run offline under its own test harness (`tests/partners/intelmq_check.py`).
//! `scripts/test` installs IntelMQ 3.5 (the JSON parser) and 3.0 (the last release that ships
//! the Shadowserver report mappings) into `.ci/intelmq`, for Debian's `/usr/bin/python3`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Which of IntelMQ's parser bots reads the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parser {
    /// `intelmq.bots.parsers.json.parser` (one event a line).
    Json,
    /// `intelmq.bots.parsers.shadowserver.parser` (report type from the file name).
    Shadowserver,
}

fn packages() -> PathBuf {
    std::env::var_os("TEITEN_INTELMQ")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join(".ci/intelmq"))
}

/// The events IntelMQ's parser made of `file`, as JSON objects; panics with the bot's own
/// output when it logged an error or a warning, raised, or made fewer events than lines.
/// As root the bot runs as `nobody` (IntelMQ refuses root); the file goes on its standard
/// input.
pub fn parse(parser: Parser, file: &Path) -> Vec<serde_json::Value> {
    let root = packages();
    assert!(
        root.join("current/intelmq").is_dir(),
        "IntelMQ is not installed in {}: run scripts/test (it installs it)",
        root.display()
    );
    let (kind, path) = match parser {
        Parser::Json => ("json", format!("{}/current", root.display())),
        Parser::Shadowserver => (
            "shadowserver",
            format!("{0}/v3.0:{0}/current", root.display()),
        ),
    };
    let script = crate::root().join("tests/partners/intelmq_check.py");
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    // SAFETY: geteuid has no preconditions.
    let root_user = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root_user {
        crate::require_tool("setpriv", "util-linux");
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "/usr/bin/python3",
        ]);
        c
    } else {
        Command::new("/usr/bin/python3")
    };
    let out = cmd
        .arg(&script)
        .args([kind, &name])
        .env("PYTHONPATH", path)
        .stdin(std::fs::File::open(file).expect("the partner file opens"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "IntelMQ's {kind} parser refused {}:\n{stderr}",
        file.display()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("the check prints JSON lines"))
        .collect()
}
