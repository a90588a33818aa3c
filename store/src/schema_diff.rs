//! Compares the tables and views a server has with the schema's definition ([`Shape`] of each
//! creating step of [`crate::schema::steps`]): columns (name, type, default, order), engine
//! with its arguments, partition key, sort key, `index_granularity` and the settings the
//! definition names; for a materialized view, the table it writes to and its query.
//!
//! The server's side is read from `system.tables` (`engine`, `engine_full`, `partition_key`,
//! `sorting_key`, `create_table_query`) and `system.columns` (`type`, `default_kind`,
//! `default_expression`), which 18.16 and 26.x both have ([`crate::queries::schema_tables`],
//! [`crate::queries::schema_columns`]). Both sides are normalised before comparing: whitespace,
//! identifier quoting (backticks, double quotes), the brackets around a sort key, quoted
//! Distributed arguments, the ZooKeeper path and replica of a Replicated engine (the server may
//! expand macros), the view's column list (18.16 writes `DateTime('Etc/UTC')` there). The
//! differences are reported in the definition's and the server's own text.

use std::collections::HashSet;

use clickhouse::Row;
use serde::Deserialize;

use crate::schema::{steps, Layout, Shape, When};

/// A table or view as `system.tables` describes it ([`crate::queries::schema_tables`]).
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct ServerTable {
    /// The table's name.
    pub name: String,
    /// The engine's name (`ReplacingMergeTree`, `MaterializedView`).
    pub engine: String,
    /// The engine with its arguments, keys and settings (empty for views).
    pub engine_full: String,
    /// The partition key expression (empty when none).
    pub partition_key: String,
    /// The sort key, without brackets (empty when none).
    pub sorting_key: String,
    /// The `CREATE` statement as the server keeps it.
    pub create_table_query: String,
}

/// A column as `system.columns` describes it ([`crate::queries::schema_columns`]), in its
/// table's order.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct ServerColumn {
    /// The table.
    pub table: String,
    /// The column's name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: String,
    /// `DEFAULT`, `MATERIALIZED`, `ALIAS` or empty.
    pub default_kind: String,
    /// The default's expression (empty when none).
    pub default_expression: String,
}

/// How the comparison treats what migration steps still have to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Before migrating: a missing object is created, a missing column with a
    /// [`When::ColumnMissing`] step is added; neither is a difference.
    Before,
    /// After migrating: the server must have every object of the definition as defined.
    After,
}

/// Every difference between the schema of database `db` in `layout` and what the server has,
/// as `db.object: what differs`, for a database that migrations have brought up to date
/// (an object of the definition that is missing is a difference too). Objects the server has
/// and the definition does not name (views replaced by an upgrade, tables of other programs)
/// are not compared.
pub fn differences(
    db: &str,
    layout: &Layout,
    tables: &[ServerTable],
    columns: &[ServerColumn],
) -> Vec<String> {
    compare(db, layout, tables, columns, Stage::After)
}

pub(crate) fn compare(
    db: &str,
    layout: &Layout,
    tables: &[ServerTable],
    columns: &[ServerColumn],
    stage: Stage,
) -> Vec<String> {
    let all = steps(db, layout);
    let mut out = Vec::new();
    for step in &all {
        let Some(shape) = &step.shape else { continue };
        let Some(table) = tables.iter().find(|t| t.name == step.object) else {
            if stage == Stage::After {
                out.push(format!(
                    "{db}.{}: in the definition, missing on the server",
                    step.object
                ));
            }
            continue;
        };
        let pending: Vec<&str> = match stage {
            Stage::Before => all
                .iter()
                .filter_map(|s| match s.when {
                    When::ColumnMissing(c) if s.object == step.object => Some(c),
                    _ => None,
                })
                .collect(),
            Stage::After => Vec::new(),
        };
        let cols: Vec<&ServerColumn> = columns.iter().filter(|c| c.table == table.name).collect();
        for d in object_differences(shape, table, &cols, &pending) {
            out.push(format!("{db}.{}: {d}", step.object));
        }
    }
    out
}

/// The differences of one object; `pending`: columns a migration step adds to it (not
/// differences when missing).
fn object_differences(
    shape: &Shape,
    table: &ServerTable,
    columns: &[&ServerColumn],
    pending: &[&str],
) -> Vec<String> {
    let mut out = Vec::new();
    match shape {
        Shape::View { target, select } => {
            if table.engine != "MaterializedView" {
                out.push(format!(
                    "engine: MaterializedView in the definition, {} on the server",
                    table.engine
                ));
                return out;
            }
            let (server_target, server_select) = view_parts(&table.create_table_query);
            if norm(target) != norm(&server_target) {
                out.push(format!(
                    "view target: {target} in the definition, {} on the server",
                    if server_target.is_empty() {
                        "none (an inner table)"
                    } else {
                        &server_target
                    }
                ));
            }
            if norm(select) != norm(&server_select) {
                out.push(format!(
                    "view query: `{select}` in the definition, `{}` on the server",
                    server_select
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
        }
        Shape::Table {
            columns: defined,
            engine,
            partition,
            order,
            settings,
        } => {
            out.extend(engine_differences(engine, table));
            if !table_engine_matches(engine, &table.engine) {
                // Keys and settings of another engine say nothing more.
                out.extend(column_differences(defined, columns, pending));
                return out;
            }
            if key(partition) != key(&table.partition_key) {
                out.push(format!(
                    "partition key: {} in the definition, {} on the server",
                    shown(partition),
                    shown(&table.partition_key)
                ));
            }
            if key(order) != key(&table.sorting_key) {
                out.push(format!(
                    "sort key: ({}) in the definition, ({}) on the server",
                    unbracket(order),
                    table.sorting_key
                ));
            }
            out.extend(setting_differences(settings, engine, &table.engine_full));
            out.extend(column_differences(defined, columns, pending));
        }
    }
    out
}

fn shown(key: &str) -> &str {
    if key.is_empty() {
        "none"
    } else {
        key
    }
}

/// Whether the engine family of the definition is the server's.
fn table_engine_matches(defined: &str, server: &str) -> bool {
    engine_parts(defined).0 == server
}

fn engine_differences(defined: &str, table: &ServerTable) -> Vec<String> {
    let (name, args) = engine_parts(defined);
    let server_full = if table.engine_full.trim().is_empty() {
        table.engine.as_str()
    } else {
        table.engine_full.as_str()
    };
    let (server_name, server_args) = engine_parts(server_full);
    let server_name = if table.engine.is_empty() {
        server_name
    } else {
        table.engine.clone()
    };
    let comparable = |name: &str, args: Vec<String>| -> Vec<String> {
        let skip = if name.starts_with("Replicated") { 2 } else { 0 };
        args.into_iter()
            .skip(skip)
            .map(|a| {
                if name == "Distributed" {
                    a.trim_matches('\'').to_owned()
                } else {
                    a
                }
            })
            .collect()
    };
    if name != server_name || comparable(&name, args) != comparable(&server_name, server_args) {
        vec![format!(
            "engine: {defined} in the definition, {} on the server",
            engine_text(server_full)
        )]
    } else {
        Vec::new()
    }
}

/// The engine and its arguments at the start of `engine_full` (before its keys).
fn engine_text(engine_full: &str) -> &str {
    let s = engine_full.trim_start();
    let name_len = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    let rest = &s[name_len..];
    if rest.trim_start().starts_with('(') {
        let open = name_len + (rest.len() - rest.trim_start().len());
        if let Some(close) = matching_paren(s, open) {
            return &s[..=close];
        }
    }
    &s[..name_len]
}

/// The engine's name and its normalised arguments.
fn engine_parts(engine_full: &str) -> (String, Vec<String>) {
    let text = engine_text(engine_full);
    match text.find('(') {
        Some(open) => (
            text[..open].trim().to_owned(),
            split_top_level(&text[open + 1..text.len() - 1], ',')
                .into_iter()
                .map(norm)
                .filter(|a| !a.is_empty())
                .collect(),
        ),
        None => (text.trim().to_owned(), Vec::new()),
    }
}

/// `index_granularity` (8192 when not named) and every setting the definition names, against
/// the `SETTINGS` of `engine_full` (MergeTree family only).
fn setting_differences(defined: &str, engine: &str, engine_full: &str) -> Vec<String> {
    if !engine_parts(engine).0.ends_with("MergeTree") {
        return Vec::new();
    }
    let defined = settings(defined);
    let server = match find_top_level(engine_full, " SETTINGS ") {
        Some(i) => settings(&engine_full[i + " SETTINGS ".len()..]),
        None => Vec::new(),
    };
    let mut wanted = defined.clone();
    if !wanted.iter().any(|(k, _)| k == "index_granularity") {
        wanted.push(("index_granularity".to_owned(), "8192".to_owned()));
    }
    let mut out = Vec::new();
    for (k, v) in wanted {
        let on_server = server
            .iter()
            .find(|(sk, _)| *sk == k)
            .map(|(_, sv)| sv.clone())
            .or_else(|| (k == "index_granularity").then(|| "8192".to_owned()));
        if on_server.as_deref() != Some(v.as_str()) {
            out.push(format!(
                "setting {k}: {v} in the definition, {} on the server",
                on_server.as_deref().unwrap_or("not set")
            ));
        }
    }
    out
}

/// `k = v, ...` into normalised pairs.
fn settings(text: &str) -> Vec<(String, String)> {
    split_top_level(text, ',')
        .into_iter()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((norm(k), norm(v)))
        })
        .collect()
}

/// A column of the definition: name, type, default kind, default expression.
fn defined_columns(text: &str) -> Vec<(String, String, String, String)> {
    split_top_level(text, ',')
        .into_iter()
        .filter_map(|c| {
            let c = c.trim();
            let (name, rest) = c.split_once(char::is_whitespace)?;
            let name = name.trim_matches(|ch| ch == '`' || ch == '"').to_owned();
            let rest = rest.trim();
            for kind in ["DEFAULT", "MATERIALIZED", "ALIAS"] {
                if let Some(i) = find_top_level(rest, &format!(" {kind} ")) {
                    return Some((
                        name,
                        rest[..i].trim().to_owned(),
                        kind.to_owned(),
                        rest[i + kind.len() + 2..].trim().to_owned(),
                    ));
                }
            }
            Some((name, rest.to_owned(), String::new(), String::new()))
        })
        .collect()
}

fn column_differences(defined: &str, server: &[&ServerColumn], pending: &[&str]) -> Vec<String> {
    let defined = defined_columns(defined);
    let mut out = Vec::new();
    let mut missing = HashSet::new();
    for (name, ty, kind, expr) in &defined {
        let Some(s) = server.iter().find(|s| s.name == *name) else {
            missing.insert(name.as_str());
            if !pending.contains(&name.as_str()) {
                out.push(format!(
                    "column {name}: {ty} in the definition, missing on the server \
                     (no migration step of this release adds it)"
                ));
            }
            continue;
        };
        if norm(ty) != norm(&s.ty) {
            out.push(format!(
                "column {name}: {ty} in the definition, {} on the server",
                s.ty
            ));
        }
        if kind != &s.default_kind || norm(expr) != norm(&s.default_expression) {
            let show = |k: &str, e: &str| {
                if k.is_empty() {
                    "no default".to_owned()
                } else {
                    format!("{k} {e}")
                }
            };
            out.push(format!(
                "column {name}: {} in the definition, {} on the server",
                show(kind, expr),
                show(&s.default_kind, &s.default_expression)
            ));
        }
    }
    for s in server {
        if !defined.iter().any(|(name, ..)| *name == s.name) {
            out.push(format!(
                "column {}: not in the definition, {} on the server",
                s.name, s.ty
            ));
        }
    }
    if out.is_empty() {
        let want: Vec<&str> = defined
            .iter()
            .map(|(n, ..)| n.as_str())
            .filter(|n| !missing.contains(n))
            .collect();
        let have: Vec<&str> = server.iter().map(|s| s.name.as_str()).collect();
        if want != have {
            out.push(format!(
                "column order: {} in the definition, {} on the server (rollup rebuilds insert \
                 by position)",
                want.join(", "),
                have.join(", ")
            ));
        }
    }
    out
}

/// The target (`db.table`) and the query of a materialized view's `CREATE` statement.
fn view_parts(create: &str) -> (String, String) {
    let target = find_top_level(create, " TO ")
        .map(|i| {
            let rest = create[i + 4..].trim_start();
            rest.split(|c: char| c.is_whitespace() || c == '(')
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default();
    let select = find_top_level(create, " AS SELECT ")
        .map(|i| create[i + 4..].trim().to_owned())
        .unwrap_or_default();
    (target, select)
}

/// A key as compared: normalised, without the brackets around it.
fn key(k: &str) -> String {
    unbracket(&norm(k)).to_owned()
}

/// `(a, b)` without the brackets that enclose all of it.
fn unbracket(s: &str) -> &str {
    let mut s = s.trim();
    while s.starts_with('(') && matching_paren(s, 0) == Some(s.len() - 1) {
        s = s[1..s.len() - 1].trim();
    }
    s
}

/// SQL text as the comparison sees it: identifier quotes (backticks, double quotes) removed,
/// whitespace dropped except one space between two words; quoted strings kept as they are.
pub(crate) fn norm(s: &str) -> String {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '\'' || c == '.';
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                if space && out.chars().last().is_some_and(word) {
                    out.push(' ');
                }
                space = false;
                out.push(c);
                while let Some(q) = chars.next() {
                    out.push(q);
                    if q == '\\' {
                        if let Some(e) = chars.next() {
                            out.push(e);
                        }
                    } else if q == '\'' {
                        break;
                    }
                }
            }
            '`' | '"' => {}
            c if c.is_whitespace() => space = true,
            c => {
                if space && word(c) && out.chars().last().is_some_and(word) {
                    out.push(' ');
                }
                space = false;
                out.push(c);
            }
        }
    }
    out
}

/// The index of the `)` that closes the `(` at `open`, skipping quoted strings.
fn matching_paren(s: &str, open: usize) -> Option<usize> {
    if !s[open..].starts_with('(') {
        return None;
    }
    unquoted(&s[open..])
        .find(|&(_, c, depth)| matches!(c, ')' | ']') && depth == 0)
        .map(|(i, ..)| open + i)
}

/// Where `needle` first occurs outside brackets and quoted strings.
fn find_top_level(s: &str, needle: &str) -> Option<usize> {
    top_level_chars(s)
        .find(|&(i, _)| s[i..].starts_with(needle))
        .map(|(i, _)| i)
}

/// `s` split at `sep` outside brackets and quoted strings.
fn split_top_level(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in top_level_chars(s).filter(|&(_, c)| c == sep) {
        out.push(&s[start..i]);
        start = i + c.len_utf8();
    }
    out.push(&s[start..]);
    out
}

/// The characters of `s` outside brackets and quoted strings, with their byte offsets; the
/// brackets and quotes themselves are left out.
fn top_level_chars(s: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    unquoted(s)
        .filter(|&(_, c, depth)| depth == 0 && !matches!(c, '(' | ')' | '[' | ']'))
        .map(|(i, c, _)| (i, c))
}

/// The characters of `s` outside quoted strings (the quotes left out), with their byte offsets
/// and the bracket depth after each.
fn unquoted(s: &str) -> impl Iterator<Item = (usize, char, usize)> + '_ {
    let (mut depth, mut quote, mut escaped) = (0usize, false, false);
    s.char_indices().filter_map(move |(i, c)| {
        if quote {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '\'') => quote = false,
                _ => {}
            }
            return None;
        }
        match c {
            '\'' => {
                quote = true;
                return None;
            }
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        Some((i, c, depth))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_and_quotes_are_skipped() {
        let s = "f(a, 'x)(', [b, c]) AS y, g(')'), z";
        assert_eq!(matching_paren(s, 1), Some(18));
        assert_eq!(&s[..=18], "f(a, 'x)(', [b, c])");
        assert_eq!(matching_paren(s, 0), None, "not at a `(`");
        assert_eq!(matching_paren("(a, (b)", 0), None, "unclosed");
        assert_eq!(
            split_top_level(s, ','),
            ["f(a, 'x)(', [b, c]) AS y", " g(')')", " z"]
        );
        assert_eq!(find_top_level(s, "AS"), Some(20));
        assert_eq!(find_top_level("g('AS') AS", "AS"), Some(8));
        assert_eq!(split_top_level(r"'a\',b', c", ','), [r"'a\',b'", " c"]);
    }
    use crate::schema::create_sql;

    /// What 18.16 reports for a table made by the definition's DDL (as read from a server).
    fn server_18_16(db: &str, layout: &Layout) -> (Vec<ServerTable>, Vec<ServerColumn>) {
        let mut tables = Vec::new();
        let mut columns = Vec::new();
        for step in steps(db, layout) {
            let Some(shape) = step.shape else { continue };
            match shape {
                Shape::Table {
                    columns: cols,
                    engine,
                    partition,
                    order,
                    settings,
                } => {
                    let name = engine_parts(&engine).0;
                    let settings = if settings.is_empty() {
                        "index_granularity = 8192".to_owned()
                    } else {
                        settings
                    };
                    let full = if partition.is_empty() {
                        engine.clone()
                    } else {
                        format!(
                            "{engine} PARTITION BY {partition} ORDER BY {order} SETTINGS {settings}"
                        )
                    };
                    tables.push(ServerTable {
                        name: step.object.clone(),
                        engine: name,
                        engine_full: full,
                        partition_key: partition.clone(),
                        sorting_key: unbracket(&order).to_owned(),
                        create_table_query: step.sql.clone(),
                    });
                    for (n, ty, ..) in defined_columns(&cols) {
                        columns.push(ServerColumn {
                            table: step.object.clone(),
                            name: n,
                            ty,
                            default_kind: String::new(),
                            default_expression: String::new(),
                        });
                    }
                }
                Shape::View { target, select } => tables.push(ServerTable {
                    name: step.object.clone(),
                    engine: "MaterializedView".into(),
                    engine_full: String::new(),
                    partition_key: String::new(),
                    sorting_key: String::new(),
                    // 18.16's form: a column list with the time zone, doubled spaces.
                    create_table_query: format!(
                        "CREATE MATERIALIZED VIEW {db}.{} TO {target} ( bucket DateTime('Etc/UTC'),  \
                         proto UInt8) AS {}",
                        step.object,
                        select.replace(" GROUP BY", "  GROUP BY")
                    ),
                }),
            }
        }
        (tables, columns)
    }

    #[test]
    fn normalisation() {
        assert_eq!(
            norm("Enum8( 'scan' = 0,  'back scatter' = 1 )"),
            "Enum8('scan'=0,'back scatter'=1)"
        );
        assert_eq!(
            norm("AggregateFunction(uniq,FixedString(16))"),
            norm("AggregateFunction(uniq, FixedString(16))")
        );
        assert_eq!(norm("`bucket`  DateTime"), "bucket DateTime");
        assert_eq!(norm("Nullable( String )"), "Nullable(String)");
        assert_eq!(norm("'it\\'s  x'"), "'it\\'s  x'");
        assert_ne!(norm("UInt16"), norm("UInt32"));
        assert_eq!(key("(sensor_id, epoch)"), key("sensor_id, epoch"));
        assert_eq!(key("sensor_id"), key("(sensor_id)"));
        assert_eq!(key("tuple()"), "tuple()");
        assert_ne!(key("(a, b)"), key("(b, a)"));
        assert_eq!(unbracket("(a) + (b)"), "(a) + (b)");
        assert_eq!(
            engine_parts("ReplacingMergeTree(sealed) PARTITION BY toYYYYMM(bucket) ORDER BY x"),
            ("ReplacingMergeTree".to_owned(), vec!["sealed".to_owned()])
        );
        assert_eq!(
            engine_parts("MergeTree PARTITION BY tuple() ORDER BY (a, b)"),
            ("MergeTree".to_owned(), vec![])
        );
        assert_eq!(
            engine_text("Distributed('c1', 'db', 'scan_events_local', cityHash64(src))"),
            "Distributed('c1', 'db', 'scan_events_local', cityHash64(src))"
        );
        assert_eq!(
            split_top_level("a Enum8('x, y' = 0), b Array(UInt16)", ','),
            ["a Enum8('x, y' = 0)", " b Array(UInt16)"]
        );
        assert_eq!(
            defined_columns("`n` UInt8 DEFAULT 1, m String"),
            [
                ("n".into(), "UInt8".into(), "DEFAULT".into(), "1".into()),
                ("m".into(), "String".into(), String::new(), String::new())
            ]
        );
        let (target, select) = view_parts(
            "CREATE MATERIALIZED VIEW d.v TO d.t (`bucket` DateTime, `x` UInt8) AS SELECT \
             toStartOfHour(ts) AS bucket, x FROM d.e GROUP BY bucket, x",
        );
        assert_eq!(target, "d.t");
        assert_eq!(
            select,
            "SELECT toStartOfHour(ts) AS bucket, x FROM d.e GROUP BY bucket, x"
        );
    }

    #[test]
    fn a_database_as_defined_has_no_difference() {
        for layout in [
            Layout::Single,
            Layout::Cluster {
                name: "c1".into(),
                replicated: false,
            },
            Layout::Cluster {
                name: "c1".into(),
                replicated: true,
            },
        ] {
            let (tables, columns) = server_18_16("db", &layout);
            assert_eq!(
                differences("db", &layout, &tables, &columns),
                Vec::<String>::new(),
                "{layout:?}"
            );
        }
        // Every table and view of the new database is compared.
        let (tables, _) = server_18_16("db", &Layout::Single);
        // The database and two backfills are not objects.
        assert_eq!(tables.len(), create_sql("db", &Layout::Single).len() - 3);
    }

    #[test]
    fn current_clickhouse_forms_compare_equal() {
        let (mut tables, columns) = server_18_16("db", &Layout::Single);
        for t in &mut tables {
            if t.engine == "MaterializedView" {
                // 26.x: backticks and types without the time zone in the column list.
                t.create_table_query = t
                    .create_table_query
                    .replace(
                        "( bucket DateTime('Etc/UTC'),  proto UInt8)",
                        "(`bucket` DateTime)",
                    )
                    .replace("  GROUP BY", " GROUP BY");
            }
        }
        assert_eq!(
            differences("db", &Layout::Single, &tables, &columns),
            Vec::<String>::new()
        );
        // A Distributed table with quoted arguments, a replicated one with expanded macros.
        let cluster = Layout::Cluster {
            name: "c1".into(),
            replicated: true,
        };
        let (mut tables, columns) = server_18_16("db", &cluster);
        for t in &mut tables {
            t.engine_full = t
                .engine_full
                .replace("Distributed(c1, db, ", "Distributed('c1', 'db', '")
                .replace("_local, ", "_local', ")
                .replace("{shard}", "01")
                .replace("{replica}", "node-1");
        }
        assert_eq!(
            differences("db", &cluster, &tables, &columns),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_difference_is_named() {
        let layout = Layout::Single;
        let (mut tables, mut columns) = server_18_16("db", &layout);
        let col = |columns: &mut Vec<ServerColumn>, t: &str, n: &str| {
            let i = columns
                .iter()
                .position(|c| c.table == t && c.name == n)
                .unwrap();
            columns.remove(i)
        };
        for c in &mut columns {
            if c.table == "scan_ports_5m" && c.name == "dport" {
                c.ty = "UInt32".into();
            }
        }
        col(&mut columns, "exchange_log", "error");
        columns.push(ServerColumn {
            table: "sensors".into(),
            name: "note".into(),
            ty: "String".into(),
            default_kind: String::new(),
            default_expression: String::new(),
        });
        let moved = col(&mut columns, "sensor_reports", "epoch");
        columns.push(moved);
        col(&mut columns, "scan_events", "withheld");
        for t in &mut tables {
            match t.name.as_str() {
                "scan_ports_1d" => {
                    t.sorting_key = "bucket, dport".into();
                    t.engine_full = t.engine_full.replace(
                        "ORDER BY (bucket, sensor_id, proto, dport)",
                        "ORDER BY (bucket, dport)",
                    );
                }
                "sensors" => {
                    t.engine = "MergeTree".into();
                    t.engine_full = t
                        .engine_full
                        .replace("ReplacingMergeTree(version)", "MergeTree");
                }
                "scan_port_digests_1d" => {
                    t.engine_full = t.engine_full.replace("(sealed)", "(total)");
                    t.partition_key = "toYYYYMMDD(bucket)".into();
                }
                "scan_ports_1h" => {
                    t.engine_full = t
                        .engine_full
                        .replace("index_granularity = 256", "index_granularity = 8192");
                }
                "scan_ports_5m_mv" => {
                    t.create_table_query = t.create_table_query.replace("count()", "sum(1)");
                }
                _ => {}
            }
        }
        tables.retain(|t| t.name != "internal_reports");
        let d = differences("db", &layout, &tables, &columns);
        let expected = [
            "db.scan_events: column withheld: UInt8 in the definition, missing on the server (no migration step of this release adds it)",
            "db.sensors: engine: ReplacingMergeTree(version) in the definition, MergeTree on the server",
            "db.sensors: column note: not in the definition, String on the server",
            "db.sensor_reports: column order: sensor_id, epoch, batch_seq, received, sealed_us, events, unknown_country, packets_captured, kernel_drops, events_recorded, filtered, malformed, spool_bytes, spool_dropped_events in the definition, sensor_id, batch_seq, received, sealed_us, events, unknown_country, packets_captured, kernel_drops, events_recorded, filtered, malformed, spool_bytes, spool_dropped_events, epoch on the server (rollup rebuilds insert by position)",
            "db.exchange_log: column error: String in the definition, missing on the server (no migration step of this release adds it)",
            "db.internal_reports: in the definition, missing on the server",
            "db.scan_ports_5m: column dport: UInt16 in the definition, UInt32 on the server",
            "db.scan_ports_1h: setting index_granularity: 256 in the definition, 8192 on the server",
            "db.scan_ports_1d: sort key: (bucket, sensor_id, proto, dport) in the definition, (bucket, dport) on the server",
            "db.scan_port_digests_1d: engine: ReplacingMergeTree(sealed) in the definition, ReplacingMergeTree(total) on the server",
            "db.scan_port_digests_1d: partition key: toYYYYMM(bucket) in the definition, toYYYYMMDD(bucket) on the server",
            "db.scan_ports_5m_mv: view query: `SELECT toStartOfFiveMinute(ts) AS bucket, proto, dport, sensor_id, count() AS packets FROM db.scan_events GROUP BY bucket, proto, dport, sensor_id` in the definition, `SELECT toStartOfFiveMinute(ts) AS bucket, proto, dport, sensor_id, sum(1) AS packets FROM db.scan_events GROUP BY bucket, proto, dport, sensor_id` on the server",
        ];
        let d: Vec<&str> = d.iter().map(String::as_str).collect();
        for e in &expected {
            assert!(d.contains(e), "missing {e}\nin {d:#?}");
        }
        assert_eq!(d.len(), expected.len(), "{d:#?}");
        // Before migrating, the column a step adds is no difference; a missing table neither.
        let before = compare("db", &layout, &tables, &columns, Stage::Before);
        assert!(
            !before.iter().any(|d| d.contains("withheld")),
            "{before:#?}"
        );
        assert!(!before.iter().any(|d| d.contains("internal_reports")));
        assert_eq!(before.len(), d.len() - 2, "{before:#?}");
    }
}
