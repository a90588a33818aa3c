//! Every SQL statement of the dashboard runs on ClickHouse 18.16 (the private server) and on
//! current ClickHouse (26.x in-process through chdb-core, driven by `scripts/chdb_compat.py`),
//! over the aggregator's schema and sample rows. The statements come from
//! `teiten-dashboard print-sql`, which prints the statements production runs, built with sample
//! values by the one module that holds them (`store/src/reads.rs`).

use std::process::Command;

use teiten::clickhouse::Server;

fn aggregator_sql() -> String {
    teiten::run_ok(Command::new(teiten::bin("teiten-aggregator")).args(["schema", "--print-sql"]))
}

fn dashboard_sql() -> String {
    teiten::run_ok(Command::new(teiten::bin("teiten-dashboard")).arg("print-sql"))
}

/// The `-- ddl` and `-- sample rows` sections of `schema --print-sql`.
fn new_database_sql(text: &str) -> String {
    let mut keep = false;
    let mut out = String::new();
    for line in text.lines() {
        if let Some(section) = line.strip_prefix("-- ") {
            keep = section.starts_with("ddl") || section.starts_with("sample rows");
            continue;
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn statements(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect()
}

#[test]
fn dashboard_queries_run_on_clickhouse_18_16() {
    let ch = Server::start().expect("private ClickHouse starts");
    // The aggregator's DDL and sample rows, without its queries (one of them drops a partition).
    // (The new database's DDL and the sample rows only: the legacy and upgrade sections are
    // the aggregator's own compatibility test.)
    for stmt in statements(&new_database_sql(&aggregator_sql()))
        .iter()
        .filter(|s| s.starts_with("CREATE") || s.starts_with("INSERT"))
    {
        ch.query(stmt).unwrap_or_else(|e| panic!("{stmt}\n{e}"));
    }
    let queries = statements(&dashboard_sql());
    assert_eq!(
        queries.len(),
        67,
        "9 graph statements x 2 bucket widths x 2 filter shapes + 4 public statements x 2 x 2 \
         + 2 daily top ports + 2 x 2 digest statements + 5 others + 2 network statements x 2 \
         filter shapes"
    );
    let mut nonempty = 0;
    for q in &queries {
        let out = ch
            .query(q)
            .unwrap_or_else(|e| panic!("18.16 refused:\n{q}\n{e}"));
        if !out.trim().is_empty() {
            nonempty += 1;
        }
    }
    // The samples match the sample rows: most statements find them.
    assert!(nonempty >= 12, "only {nonempty} statements returned rows");
}

#[test]
fn dashboard_queries_run_on_current_clickhouse_via_chdb() {
    let sql = aggregator_sql() + &dashboard_sql();
    let stdout = teiten::chdb::compat(&sql);
    assert!(stdout.starts_with("chdb ClickHouse 2"), "{stdout}");
    assert_eq!(statements(&dashboard_sql()).len(), 67);
    // The script counts the statements of every `-- queries` section.
    let mut section = "";
    let mut queries = 0;
    for line in sql.lines() {
        if let Some(name) = line.strip_prefix("--") {
            section = name.split_whitespace().next().unwrap_or("");
        } else if section == "queries" && !line.trim().is_empty() {
            queries += 1;
        }
    }
    assert!(
        stdout.contains(&format!("{queries} queries")),
        "the dashboard's statements ran too ({queries} expected): {stdout}"
    );
}
