//! A statement with its bound values: the SQL text with `?` placeholders and the values for
//! them, in order, built in one place.
//!
//! Production runs a statement through [`Statement::query`], which hands the text to the
//! `clickhouse` crate and binds each value with `.bind()` (the crate escapes them on the client:
//! 18.16 has no server-side parameters). `schema --print-sql` and the compatibility tests print
//! the same statement with [`Statement::to_sql_literal`], which fills the placeholders with the
//! values as escaped literals, the way the crate does.
//!
//! Placeholders follow the crate: `?` is a value, `??` a literal `?`, `?fields` the crate's
//! column list (not used here, and refused). A statement whose placeholders and values differ in
//! number is an error ([`StatementError`]), found before anything is sent.

use std::fmt;

use clickhouse::query::Query;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A string.
    Str(String),
    /// An array of strings (`['a', 'b']`).
    Strs(Vec<String>),
    /// An array of unsigned integers (`[1, 2]`).
    UInts(Vec<u64>),
}

macro_rules! from_int {
    ($variant:ident: $($t:ty),*) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::$variant(v.into())
            }
        })*
    };
}

from_int!(Int: i8, i16, i32, i64);
from_int!(UInt: u8, u16, u32, u64);

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Str(v.clone())
    }
}

impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Value {
        Value::Strs(v)
    }
}

impl From<&[String]> for Value {
    fn from(v: &[String]) -> Value {
        Value::Strs(v.to_vec())
    }
}

impl From<&[&str]> for Value {
    fn from(v: &[&str]) -> Value {
        Value::Strs(v.iter().map(|s| (*s).to_owned()).collect())
    }
}

impl From<&[u16]> for Value {
    fn from(v: &[u16]) -> Value {
        Value::UInts(v.iter().map(|p| u64::from(*p)).collect())
    }
}

/// Writes a string literal as the `clickhouse` crate does: quoted, with `\`, `'`, `` ` ``, tab
/// and newline escaped by a backslash.
fn write_string(out: &mut String, s: &str) {
    out.push('\'');
    for c in s.chars() {
        if matches!(c, '\\' | '\'' | '`' | '\t' | '\n') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
}

impl Value {
    /// The value as a SQL literal.
    pub fn to_sql_literal(&self) -> String {
        let mut out = String::new();
        match self {
            Value::Int(v) => out.push_str(&v.to_string()),
            Value::UInt(v) => out.push_str(&v.to_string()),
            Value::Str(s) => write_string(&mut out, s),
            Value::Strs(v) => {
                out.push('[');
                for (i, s) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(&mut out, s);
                }
                out.push(']');
            }
            Value::UInts(v) => {
                out.push('[');
                for (i, n) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&n.to_string());
                }
                out.push(']');
            }
        }
        out
    }

    fn bind_to(&self, q: Query) -> Query {
        match self {
            Value::Int(v) => q.bind(*v),
            Value::UInt(v) => q.bind(*v),
            Value::Str(s) => q.bind(s.as_str()),
            Value::Strs(v) => q.bind(v),
            Value::UInts(v) => q.bind(v),
        }
    }
}

/// A statement whose placeholders and bound values do not match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("statement has {placeholders} placeholders and {values} bound values: {sql}")]
pub struct StatementError {
    /// Placeholders in the text.
    pub placeholders: usize,
    /// Values bound.
    pub values: usize,
    /// The text (no values: they may be request data).
    pub sql: String,
}

/// One part of a statement's text.
enum Part<'a> {
    Text(&'a str),
    Placeholder,
}

/// The text split at its placeholders, as the `clickhouse` crate splits it (`??` is a literal
/// `?`; `?fields` counts as a placeholder here, so that a statement using it is refused).
fn parts(sql: &str) -> Vec<Part<'_>> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(i) = rest.find('?') {
        if rest[i + 1..].starts_with('?') {
            out.push(Part::Text(&rest[..i + 1]));
            rest = &rest[i + 2..];
            continue;
        }
        if i > 0 {
            out.push(Part::Text(&rest[..i]));
        }
        out.push(Part::Placeholder);
        rest = &rest[i + 1..];
    }
    if !rest.is_empty() {
        out.push(Part::Text(rest));
    }
    out
}

/// SQL text with `?` placeholders and the values bound to them, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    sql: String,
    binds: Vec<Value>,
}

impl Statement {
    /// A statement without values yet.
    pub fn new(sql: impl Into<String>) -> Statement {
        Statement {
            sql: sql.into(),
            binds: Vec::new(),
        }
    }

    /// Binds the next placeholder.
    #[must_use]
    pub fn bind(mut self, value: impl Into<Value>) -> Statement {
        self.binds.push(value.into());
        self
    }

    /// Binds the next placeholders, one value each.
    #[must_use]
    pub fn bind_all<V: Into<Value>>(mut self, values: impl IntoIterator<Item = V>) -> Statement {
        self.binds.extend(values.into_iter().map(Into::into));
        self
    }

    /// Appends text (with its own placeholders, bound after the ones before it).
    #[must_use]
    pub fn push_sql(mut self, sql: &str) -> Statement {
        self.sql.push_str(sql);
        self
    }

    /// The text, with its placeholders.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The bound values, in order.
    pub fn binds(&self) -> &[Value] {
        &self.binds
    }

    /// The number of placeholders in the text.
    pub fn placeholders(&self) -> usize {
        parts(&self.sql)
            .iter()
            .filter(|p| matches!(p, Part::Placeholder))
            .count()
    }

    /// Whether every placeholder has a value and every value a placeholder.
    pub fn check(&self) -> Result<(), StatementError> {
        let placeholders = self.placeholders();
        if placeholders == self.binds.len() && !self.sql.contains("?fields") {
            Ok(())
        } else {
            Err(StatementError {
                placeholders,
                values: self.binds.len(),
                sql: self.sql.clone(),
            })
        }
    }

    /// The `clickhouse` query: the text with each value bound with `.bind()`, in order. A
    /// mismatch ([`Statement::check`]) is the crate's `InvalidParams` error, as an unbound
    /// placeholder would be when the query runs.
    pub fn query(&self, client: &clickhouse::Client) -> clickhouse::error::Result<Query> {
        self.check()
            .map_err(|e| clickhouse::error::Error::InvalidParams(Box::new(e)))?;
        Ok(self
            .binds
            .iter()
            .fold(client.query(&self.sql), |q, v| v.bind_to(q)))
    }

    /// Runs the statement, returning every row.
    pub async fn fetch_all<T>(
        &self,
        client: &clickhouse::Client,
    ) -> clickhouse::error::Result<Vec<T>>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        self.query(client)?.fetch_all().await
    }

    /// Runs the statement, returning its one row.
    pub async fn fetch_one<T>(&self, client: &clickhouse::Client) -> clickhouse::error::Result<T>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        self.query(client)?.fetch_one().await
    }

    /// Runs the statement, returning its first row if any.
    pub async fn fetch_optional<T>(
        &self,
        client: &clickhouse::Client,
    ) -> clickhouse::error::Result<Option<T>>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        self.query(client)?.fetch_optional().await
    }

    /// Runs a statement that returns no rows.
    pub async fn execute(&self, client: &clickhouse::Client) -> clickhouse::error::Result<()> {
        self.query(client)?.execute().await
    }

    /// The text with every placeholder replaced by its value as an escaped literal (what the
    /// `clickhouse` crate sends): for printing and the compatibility tests.
    pub fn to_sql_literal(&self) -> Result<String, StatementError> {
        self.check()?;
        let mut values = self.binds.iter();
        let mut out = String::with_capacity(self.sql.len());
        for part in parts(&self.sql) {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Placeholder => {
                    if let Some(v) = values.next() {
                        out.push_str(&v.to_sql_literal());
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The statement with its values filled in ([`Statement::to_sql_literal`]), or, when they do
/// not match, the text and the error.
impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_sql_literal() {
            Ok(sql) => f.write_str(&sql),
            Err(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_in_order() {
        let s = Statement::new("SELECT ? + ?, ?")
            .bind(1u8)
            .bind(-2i64)
            .bind("x");
        assert_eq!(s.placeholders(), 3);
        assert_eq!(
            s.binds(),
            [Value::UInt(1), Value::Int(-2), Value::Str("x".into())]
        );
        assert_eq!(s.to_sql_literal().unwrap(), "SELECT 1 + -2, 'x'");
        let list = Statement::new("SELECT has(?, 'a'), ? IN (?, ?)")
            .bind(vec!["AU".to_owned(), "JP".to_owned()])
            .bind_all([23u16, 22, 445]);
        assert_eq!(
            list.to_string(),
            "SELECT has(['AU','JP'], 'a'), 23 IN (22, 445)"
        );
    }

    #[test]
    fn literals_are_escaped() {
        let s = Statement::new("SELECT ?, ?")
            .bind(r"it's a \ back`slash")
            .bind(vec!["tab\there".to_owned(), "new\nline".to_owned()]);
        assert_eq!(
            s.to_sql_literal().unwrap(),
            r"SELECT 'it\'s a \\ back\`slash', ['tab\	here','new\
line']"
        );
        // `??` is a literal `?`, not a placeholder.
        let q = Statement::new("SELECT '??', ?").bind(1u32);
        assert_eq!(q.placeholders(), 1);
        assert_eq!(q.to_sql_literal().unwrap(), "SELECT '?', 1");
    }

    #[test]
    fn literals_match_what_the_crate_sends() {
        let client = clickhouse::Client::default();
        let s = Statement::new("SELECT ?, ?, ?, ?, ? FROM t WHERE x IN ?")
            .bind(r"a'b\c`d")
            .bind(u64::MAX)
            .bind(i64::MIN)
            .bind(vec!["x'y".to_owned(), String::new()])
            .bind(&[1u16, 65535][..])
            .bind(Vec::<String>::new());
        let q = s.query(&client).unwrap();
        assert_eq!(q.sql_display().to_string(), s.to_sql_literal().unwrap());
    }

    #[test]
    fn placeholder_count_mismatch_is_an_error() {
        let few = Statement::new("SELECT ?, ?").bind(1u8);
        let e = few.to_sql_literal().unwrap_err();
        assert_eq!((e.placeholders, e.values), (2, 1));
        assert!(few.query(&clickhouse::Client::default()).is_err());
        assert!(few
            .to_string()
            .contains("2 placeholders and 1 bound values"));
        let many = Statement::new("SELECT 1").bind("secret");
        let e = many.check().unwrap_err();
        assert_eq!((e.placeholders, e.values), (0, 1));
        // The error names the text, never the values.
        assert!(!e.to_string().contains("secret"));
        assert!(Statement::new("SELECT ?fields FROM t").check().is_err());
    }
}
