//! Running SQL through `scripts/chdb_compat.py`: chdb, an embedded current ClickHouse, checks
//! that the statements written for the 18.16 server still run on a current one.

use std::io::Write;
use std::process::{Command, Stdio};

/// Feeds `sql` (statements separated as `scripts/chdb_compat.py` reads them) to the script
/// on its stdin and returns what it printed: its first line names the chdb ClickHouse
/// version, the rest counts what ran. Panics, with the script's output, if python3 cannot
/// be started or the script fails (e.g. chdb is not installed: `pip install chdb-core`).
pub fn compat(sql: &str) -> String {
    let script = crate::root().join("scripts/chdb_compat.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 {}: {e}", script.display()));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(sql.as_bytes())
        .unwrap_or_else(|e| panic!("writing the statements to {}: {e}", script.display()));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chdb compatibility check failed (needs `pip install chdb-core`):\n{stdout}\n{stderr}"
    );
    stdout
}
