//! Reading a partner's outbox (`<outbox>/<partner>/`) for those who fetch files instead of
//! receiving them: the days it holds, newest first, each with its day index
//! ([`DayIndex`]), and the one file a request names, only if it is a plain, finished, regular
//! file of that directory (no temporary `.<name>.tmp`, no hidden file, no symbolic link, no
//! path).

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Serialize;

use super::export::{index_name, manifest_path, DayIndex, IndexEntry};

/// A plain file or directory name: no separator, no `.` or `..`, printable, at most 128 bytes.
pub fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

/// One day of a partner's outbox as a download listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The day index's file name.
    pub index: String,
    /// Its detached signature, when files are signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_signature: Option<String>,
    /// The files of the day.
    pub files: Vec<Listed>,
}

/// One file of a [`Day`]: its index entry and its manifest's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// As the day index has it.
    #[serde(flatten)]
    pub entry: IndexEntry,
    /// `<file>.manifest.json`.
    pub manifest: String,
}

/// The date of a day index's file name of `partner`, if it is one.
fn index_date(partner: &str, name: &str) -> Option<NaiveDate> {
    let date = name
        .strip_prefix("teiten-")?
        .strip_prefix(partner)?
        .strip_prefix('-')?
        .strip_suffix(".index.json")?;
    let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    (index_name(partner, d) == name).then_some(d)
}

/// The days of `partner` in `dir` from `from` to `to` (inclusive), newest first, at most
/// `limit`, and whether more matched. A missing directory holds no day; an index that cannot
/// be read is left out and logged.
pub fn list_days(
    dir: &Path,
    partner: &str,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    limit: usize,
) -> std::io::Result<(Vec<Day>, bool)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), false)),
        Err(e) => return Err(e),
    };
    let mut dates = Vec::new();
    for e in entries {
        let e = e?;
        if let Some(d) = e.file_name().to_str().and_then(|n| index_date(partner, n)) {
            if from.is_none_or(|f| d >= f) && to.is_none_or(|t| d <= t) {
                dates.push(d);
            }
        }
    }
    dates.sort_unstable_by(|a, b| b.cmp(a));
    let more = dates.len() > limit;
    let mut days = Vec::new();
    for d in dates.into_iter().take(limit) {
        let index = index_name(partner, d);
        let Some(path) = file(dir, &index) else {
            continue;
        };
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<DayIndex>(&t).map_err(|e| e.to_string()));
        let day = match parsed {
            Ok(day) => day,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "A day index cannot be read; left out of the listing");
                continue;
            }
        };
        let signature = format!("{index}.asc");
        days.push(Day {
            date: d.format("%Y-%m-%d").to_string(),
            index_signature: file(dir, &signature).map(|_| signature),
            index,
            files: day
                .files
                .into_iter()
                .map(|entry| Listed {
                    manifest: manifest_path(Path::new(&entry.file))
                        .to_string_lossy()
                        .into_owned(),
                    entry,
                })
                .collect(),
        });
    }
    Ok((days, more))
}

/// The path of `name` in `dir` if a partner may fetch it: a plain name, not hidden (which
/// leaves out temporary files and locks), not a temporary file, and a regular file rather
/// than a link or a directory.
pub fn file(dir: &Path, name: &str) -> Option<PathBuf> {
    if !plain_name(name) || name.starts_with('.') || name.ends_with(".tmp") {
        return None;
    }
    let path = dir.join(name);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    meta.file_type().is_file().then_some(path)
}

/// Opens `name` in `dir` for a partner if [`file`] allows it, refusing a link planted between
/// the check and the open (`O_NOFOLLOW`).
pub fn open(dir: &Path, name: &str) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = file(dir, name)?;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()
}

/// The media type of an outbox file, from its name.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("");
    match ext {
        "xml" => "application/xml",
        "gz" => "application/gzip",
        "json" => "application/json",
        "jsonl" => "application/x-ndjson",
        "csv" => "text/csv; charset=utf-8",
        "asc" => "application/pgp-signature",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_finished_regular_files_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("teiten-au-2026-12-01.xml"), "x").unwrap();
        std::fs::write(d.join(".teiten-au-2026-12-02.xml.tmp"), "x").unwrap();
        std::fs::write(d.join("half.tmp"), "x").unwrap();
        std::fs::write(d.join(".deliver.lock"), "").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("passwd.xml")).unwrap();
        assert!(file(d, "teiten-au-2026-12-01.xml").is_some());
        assert!(open(d, "teiten-au-2026-12-01.xml").is_some());
        assert!(open(d, "passwd.xml").is_none());
        for bad in [
            ".teiten-au-2026-12-02.xml.tmp",
            "half.tmp",
            ".deliver.lock",
            "sub",
            "passwd.xml",
            "../etc/passwd",
            "..",
            "a/b",
            "",
            "missing.xml",
        ] {
            assert!(file(d, bad).is_none(), "{bad} served");
        }
    }

    #[test]
    fn days_are_listed_newest_first_within_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for day in ["2026-11-29", "2026-11-30", "2026-12-01"] {
            let index = DayIndex {
                partner: "au-cert".into(),
                date: day.into(),
                files: vec![IndexEntry {
                    file: format!("teiten-au-cert-{day}.xml"),
                    format: "iodef2".into(),
                    records: "packet".into(),
                    sha256: "00".into(),
                    bytes: 1,
                    revision: 1,
                    signature: None,
                }],
            };
            std::fs::write(
                d.join(format!("teiten-au-cert-{day}.index.json")),
                serde_json::to_string(&index).unwrap(),
            )
            .unwrap();
        }
        // Another partner's index whose id starts the same, and a broken one.
        std::fs::write(d.join("teiten-au-cert-x-2026-12-01.index.json"), "{}").unwrap();
        std::fs::write(d.join("teiten-au-cert-2026-11-28.index.json"), "{").unwrap();
        let (days, more) = list_days(d, "au-cert", None, None, 10).unwrap();
        let dates: Vec<_> = days.iter().map(|d| d.date.as_str()).collect();
        assert_eq!(dates, ["2026-12-01", "2026-11-30", "2026-11-29"]);
        assert!(!more);
        assert_eq!(
            days[0].files[0].manifest,
            "teiten-au-cert-2026-12-01.xml.manifest.json"
        );
        let day = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        let (days, more) =
            list_days(d, "au-cert", day("2026-11-30"), day("2026-12-01"), 1).unwrap();
        assert_eq!(days.len(), 1);
        assert_eq!(days[0].date, "2026-12-01");
        assert!(more);
        let (days, _) = list_days(&d.join("none"), "au-cert", None, None, 10).unwrap();
        assert!(days.is_empty());
    }
}
