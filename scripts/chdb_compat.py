#!/usr/bin/env python3
"""Runs every SQL statement teiten's aggregator uses on current ClickHouse (chdb-core, in-process).

Input (stdin or a file argument): the output of `teiten-aggregator schema --print-sql`:
`-- section` comment lines, then one statement per line ending in `;`. The DDL is run twice
(the second run must change nothing: every step is idempotent); the legacy schema (the release
before the `withheld` column) is created in its own database and upgraded with the `upgrade`
statements, which must leave it with the same tables, views and `scan_events` columns as the
new one; then the sample rows are inserted, then every query is run and must succeed. Checks that the materialized views filled
the rollups. Prints the ClickHouse version and a summary; exits non-zero on the first failure,
naming the statement.

The `compare` statements (how `migrate` reads `system.tables` and `system.columns`, `?` the
database) are run on the new database, on the upgraded legacy one and, at the end, on the
legacy one changed by hand (a column's type, an extra column, another sort key); each answer
is printed as one line `schema-json <label> {"tables": [...], "columns": [...]}` for
`tests/aggregator_chdb.rs`, which compares it with the definition in Rust.

Needs `pip install chdb-core`.
"""
import json
import sys
import tempfile


def main() -> int:
    try:
        import chdb
        from chdb import session
    except ImportError:
        print("chdb-core is not installed: pip install chdb-core", file=sys.stderr)
        return 2
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    sections = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("--"):
            current = line[2:].strip().split()[0]
            sections.setdefault(current, [])
            continue
        if current is None:
            print(f"statement before any section: {line}", file=sys.stderr)
            return 2
        sections[current].append(line.rstrip(";"))
    for needed in ("ddl", "legacy", "upgrade", "compare", "sample", "queries"):
        if not sections.get(needed):
            print(f"no `-- {needed}` statements in the input", file=sys.stderr)
            return 2

    with tempfile.TemporaryDirectory() as d:
        s = session.Session(d)

        def run(sql: str, fmt: str = "TSV") -> str:
            try:
                # Binary columns (FixedString addresses) are not UTF-8 text.
                return s.query(sql, fmt).bytes().decode("utf-8", "replace")
            except Exception as e:  # chdb raises its own error types
                raise SystemExit(f"FAILED on ClickHouse {version}:\n  {sql}\n  {e}")

        schema_dumps = []

        def dump_schema(label: str, db: str) -> None:
            tables_sql, columns_sql = sections["compare"]
            rows = lambda sql: [json.loads(l) for l in run(sql.replace("?", f"'{db}'"), "JSONEachRow").splitlines() if l.strip()]
            schema_dumps.append(f"schema-json {label} " + json.dumps({"tables": rows(tables_sql), "columns": rows(columns_sql)}))

        version = "?"
        version = run("SELECT version()").strip()
        print(f"chdb ClickHouse {version}")
        for sql in sections["ddl"]:
            run(sql)
        tables_before = run("SELECT name, engine FROM system.tables WHERE database = 'teiten' ORDER BY name")
        for sql in sections["ddl"]:
            run(sql)
        tables_after = run("SELECT name, engine FROM system.tables WHERE database = 'teiten' ORDER BY name")
        if tables_before != tables_after:
            raise SystemExit("second DDL run changed the schema")
        for sql in sections["legacy"]:
            run(sql)
        old_db = sections["legacy"][0].split()[-1]
        for sql in sections["upgrade"]:
            run(sql)
        upgraded = run(f"SELECT name, engine FROM system.tables WHERE database = '{old_db}' ORDER BY name")
        if upgraded != tables_after:
            raise SystemExit(f"the upgraded {old_db} differs from a new database:\n{upgraded}")
        cols = "SELECT name, type FROM system.columns WHERE database = '{}' AND table = 'scan_events' ORDER BY name"
        if run(cols.format(old_db)) != run(cols.format("teiten")):
            raise SystemExit(f"{old_db}.scan_events has other columns than a new one")
        dump_schema("new", "teiten")
        dump_schema("upgraded", old_db)
        for sql in sections["sample"]:
            run(sql)
        for sql in sections["queries"]:
            run(sql)
        raw = run("SELECT count() FROM teiten.scan_events").strip()
        # The last query dropped the sample day's scan_events partition; the views' rows stay.
        r5 = run("SELECT countMerge(packets) FROM teiten.scan_rollup_5m").strip()
        r1 = run("SELECT countMerge(packets) FROM teiten.scan_rollup_1h").strip()
        if r5 != "2" or r1 != "2":
            raise SystemExit(f"rollups not filled by the views: 5m={r5} 1h={r1}")
        # Hand changes to the upgraded database, which the comparison must name.
        run(f"ALTER TABLE {old_db}.scan_ports_5m MODIFY COLUMN packets UInt32")
        run(f"ALTER TABLE {old_db}.sensors ADD COLUMN note String")
        create = next(q for q in sections["legacy"] if f" {old_db}.scan_ports_1d (" in q)
        run(create.replace(f"{old_db}.scan_ports_1d (", f"{old_db}.scan_ports_1d_new (")
            .replace("ORDER BY (bucket, sensor_id, proto, dport)", "ORDER BY (bucket, dport)"))
        run(f"RENAME TABLE {old_db}.scan_ports_1d TO {old_db}.scan_ports_1d_old, "
            f"{old_db}.scan_ports_1d_new TO {old_db}.scan_ports_1d")
        dump_schema("altered", old_db)
        print(f"ok: {len(sections['ddl'])} DDL (twice), {len(sections['legacy'])} legacy DDL "
              f"upgraded by {len(sections['upgrade'])}, {len(sections['sample'])} inserts, "
              f"{len(sections['queries'])} queries; raw rows after drop: {raw}; rollup packets {r5}/{r1}")
        print(tables_after, end="")
        for line in schema_dumps:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
