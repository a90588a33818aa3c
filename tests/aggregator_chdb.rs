//! Every DDL statement and every query of the aggregator runs on ClickHouse 18.16 (the private
//! server) and on current ClickHouse (26.x in-process through the PyPI wheel chdb-core, driven
//! by `scripts/chdb_compat.py`). The statements come from `teiten-aggregator schema
//! --print-sql`, which prints them from the one module that holds them.

use std::io::Write;
use std::process::{Command, Stdio};

use teiten::clickhouse::Server;

fn statements() -> String {
    teiten::run_ok(Command::new(teiten::bin("teiten-aggregator")).args(["schema", "--print-sql"]))
}

#[test]
fn schema_and_queries_run_on_clickhouse_18_16() {
    let sql = statements();
    let ch = Server::start().expect("private ClickHouse starts");
    let mut n = 0;
    let objects = |db: &str| {
        ch.query(&format!(
            "SELECT name, engine FROM system.tables WHERE database = '{db}' ORDER BY name"
        ))
        .unwrap()
    };
    for pass in 0..2 {
        let mut section = "";
        for line in sql.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(header) = line.strip_prefix("-- ") {
                if section == "upgrade" && pass == 0 {
                    // The legacy schema, upgraded, is the new one.
                    assert_eq!(objects("teiten_v0"), objects("teiten"));
                }
                section = header.split_whitespace().next().unwrap_or("");
                continue;
            }
            let stmt = line.trim_end_matches(';');
            // The second pass re-runs the new schema's DDL only (idempotence).
            if pass == 1 && !(section == "ddl" && stmt.starts_with("CREATE")) {
                continue;
            }
            ch.query(stmt)
                .unwrap_or_else(|e| panic!("18.16 refused:\n{stmt}\n{e}"));
            n += 1;
        }
    }
    assert!(n > 30, "only {n} statements");
    let columns = |db: &str| {
        ch.query(&format!("DESCRIBE TABLE {db}.scan_events"))
            .unwrap()
    };
    assert_eq!(columns("teiten_v0"), columns("teiten"));
    assert_eq!(
        ch.query("SELECT countMerge(packets) FROM teiten.scan_rollup_1h")
            .unwrap(),
        "2\n"
    );
}

#[test]
fn schema_and_queries_run_on_current_clickhouse_via_chdb() {
    let sql = statements();
    let script = teiten::root().join("scripts/chdb_compat.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chdb compatibility check failed (needs `pip install chdb-core`):\n{stdout}\n{stderr}"
    );
    let version = stdout.lines().next().unwrap_or("");
    assert!(version.starts_with("chdb ClickHouse 2"), "{stdout}");
    assert!(
        stdout.contains("ok: 38 DDL (twice), 37 legacy DDL upgraded by 13,"),
        "{stdout}"
    );
}
