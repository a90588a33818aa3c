//! Every DDL statement and every query of the aggregator runs on ClickHouse 18.16 (the private
//! server) and on current ClickHouse (26.x in-process through the PyPI wheel chdb-core, driven
//! by `scripts/chdb_compat.py`). The statements come from `teiten-aggregator schema
//! --print-sql`, which prints them from the one module that holds them.

use std::process::Command;

use teiten::clickhouse::Server;
use teiten_store::schema::Layout;
use teiten_store::schema_diff::{differences, ServerColumn, ServerTable};

fn statements() -> String {
    teiten::run_ok(Command::new(teiten::bin("teiten-aggregator")).args(["schema", "--print-sql"]))
}

/// The rows of a `FORMAT JSONEachRow` answer, as one JSON array.
fn json_rows(text: &str) -> serde_json::Value {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .collect()
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
    let mut compare = Vec::new();
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
            if section == "compare" {
                // Bound and run below, on the new and the upgraded database.
                if pass == 0 {
                    compare.push(stmt.to_owned());
                }
                continue;
            }
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
    // What migrate reads of a new and of an upgraded database compares equal to the
    // definition on 18.16 (and names a hand change).
    assert_eq!(compare.len(), 2, "{compare:?}");
    let read = |db: &str| -> (Vec<ServerTable>, Vec<ServerColumn>) {
        let run = |q: &str| {
            ch.query(&format!(
                "{} FORMAT JSONEachRow",
                q.replace('?', &format!("'{db}'"))
            ))
            .unwrap()
        };
        (
            serde_json::from_value(json_rows(&run(&compare[0]))).unwrap(),
            serde_json::from_value(json_rows(&run(&compare[1]))).unwrap(),
        )
    };
    for db in ["teiten", "teiten_v0"] {
        let (tables, columns) = read(db);
        assert!(tables.len() >= 36, "{db}: {tables:?}");
        assert_eq!(
            differences(db, &Layout::Single, &tables, &columns),
            Vec::<String>::new(),
            "{db} on 18.16"
        );
    }
    ch.query("ALTER TABLE teiten_v0.scan_ports_5m MODIFY COLUMN packets UInt32")
        .unwrap();
    let (tables, columns) = read("teiten_v0");
    assert_eq!(
        differences("teiten_v0", &Layout::Single, &tables, &columns),
        ["teiten_v0.scan_ports_5m: column packets: UInt64 in the definition, UInt32 on the server"]
    );
}

#[test]
fn schema_and_queries_run_on_current_clickhouse_via_chdb() {
    let sql = statements();
    let stdout = teiten::chdb::compat(&sql);
    let version = stdout.lines().next().unwrap_or("");
    assert!(version.starts_with("chdb ClickHouse 2"), "{stdout}");
    assert!(
        stdout.contains("ok: 43 DDL (twice), 38 legacy DDL upgraded by 18,"),
        "{stdout}"
    );
    // What migrate reads of the new, the upgraded and the hand-changed database on 26.x,
    // compared with the definition.
    let mut dumps = std::collections::BTreeMap::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("schema-json ") {
            let (label, json) = rest.split_once(' ').unwrap();
            let d: serde_json::Value = serde_json::from_str(json).unwrap();
            let tables: Vec<ServerTable> = serde_json::from_value(d["tables"].clone()).unwrap();
            let columns: Vec<ServerColumn> = serde_json::from_value(d["columns"].clone()).unwrap();
            assert!(tables.len() >= 36, "{label}: {} tables", tables.len());
            let db = if label == "new" {
                "teiten"
            } else {
                "teiten_v0"
            };
            dumps.insert(
                label.to_owned(),
                differences(db, &Layout::Single, &tables, &columns),
            );
        }
    }
    assert_eq!(dumps.len(), 3, "{stdout}");
    assert_eq!(dumps["new"], Vec::<String>::new(), "new database on 26.x");
    assert_eq!(
        dumps["upgraded"],
        Vec::<String>::new(),
        "upgraded database on 26.x"
    );
    assert_eq!(
        dumps["altered"],
        [
            "teiten_v0.sensors: column note: not in the definition, String on the server",
            "teiten_v0.scan_ports_5m: column packets: UInt64 in the definition, UInt32 on the server",
            "teiten_v0.scan_ports_1d: sort key: (bucket, sensor_id, proto, dport) in the definition, \
             (bucket, dport) on the server",
        ]
    );
}
