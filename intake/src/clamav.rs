//! ClamAV detections through clamd's own hook, `VirusEvent`.
//!
//! clamd runs its `VirusEvent` command for every detection with the file and the signature in
//! `CLAM_VIRUSEVENT_FILENAME` and `CLAM_VIRUSEVENT_VIRUSNAME`. `teiten-intake clamav-event
//! --spool DIR` is that command: it writes the detection, with the host and the file's
//! SHA-256, as one small JSON file into the spool directory ([`spool_event`]: written under a
//! temporary name, synced, then renamed, so a half-written event is never read) and exits. It
//! needs no network and no configuration, so it stays quick and harmless in clamd's context.
//! `teiten-intake run` files the spooled events in the order they came ([`Spool`]) and removes
//! each one only once the aggregator has stored it. A report's id is a digest of the event, so
//! an event filed again after a crash between the store and the removal is stored once.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use teiten_exchange::reports::{Indicators, ReportInput};

/// The environment variable clamd sets to the infected file.
pub const FILE_VAR: &str = "CLAM_VIRUSEVENT_FILENAME";
/// The environment variable clamd sets to the signature name.
pub const VIRUS_VAR: &str = "CLAM_VIRUSEVENT_VIRUSNAME";
/// Files larger than this are not hashed by the hook (the report then has no hash).
pub const MAX_HASHED: u64 = 256 << 20;
/// Largest spooled event read back (an event is a few hundred bytes).
const MAX_EVENT: u64 = 64 << 10;
/// Suffix of spooled events; anything else in the directory is left alone.
const SUFFIX: &str = ".json";

/// One detection as the hook spools it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// When the hook ran (Unix nanoseconds).
    pub time_ns: i64,
    /// The host clamd runs on.
    pub host: String,
    /// The infected file as clamd named it.
    pub file: String,
    /// The signature that matched.
    pub virus: String,
    /// Hex SHA-256 of the file, when it could be read (and is at most [`MAX_HASHED`]).
    #[serde(default)]
    pub sha256: Option<String>,
}

/// Why the hook could not spool.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// clamd did not set a variable.
    #[error("{0} is not set: run this as clamd's VirusEvent")]
    Missing(&'static str),
    /// The spool directory could not be written.
    #[error("spool {path}: {source}")]
    Spool {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The host name of this machine (`/proc/sys/kernel/hostname`), `localhost` when unknown.
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The event of the current clamd detection, from clamd's variables in `var`.
pub fn event_from(
    var: impl Fn(&str) -> Option<String>,
    host: &str,
    time_ns: i64,
) -> Result<Event, HookError> {
    let file = var(FILE_VAR)
        .filter(|v| !v.is_empty())
        .ok_or(HookError::Missing(FILE_VAR))?;
    let virus = var(VIRUS_VAR)
        .filter(|v| !v.is_empty())
        .ok_or(HookError::Missing(VIRUS_VAR))?;
    let sha256 = hash_file(Path::new(&file));
    Ok(Event {
        time_ns,
        host: host.to_owned(),
        file,
        virus,
        sha256,
    })
}

fn hash_file(path: &Path) -> Option<String> {
    let f = std::fs::File::open(path).ok()?;
    if f.metadata().ok()?.len() > MAX_HASHED {
        return None;
    }
    let mut h = Sha256::new();
    let mut r = f.take(MAX_HASHED + 1);
    let mut buf = vec![0; 64 << 10];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(_) => return None,
        }
    }
    Some(hex::encode(h.finalize()))
}

/// Writes `event` into `dir` (created if missing) as a new file: temporary name, sync,
/// rename, directory sync. Returns the file.
pub fn spool_event(dir: &Path, event: &Event) -> Result<PathBuf, HookError> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| HookError::Spool { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let name = format!("{:020}-{}", event.time_ns, std::process::id());
    let tmp = dir.join(format!(".{name}.tmp"));
    let done = dir.join(format!("{name}{SUFFIX}"));
    let mut f = std::fs::File::create(&tmp).map_err(err(&tmp))?;
    let body = serde_json::to_vec(event).expect("an event serialises");
    f.write_all(&body).map_err(err(&tmp))?;
    f.sync_all().map_err(err(&tmp))?;
    std::fs::rename(&tmp, &done).map_err(err(&done))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(done)
}

/// How spooled events become reports.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// TLP label of the reports.
    pub tlp: String,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            tlp: "amber".into(),
        }
    }
}

impl Mapping {
    /// The report of a detection: source `antivirus`, category `malware`, the host, the
    /// signature and file in the description, the file's hash as indicator.
    pub fn report(&self, e: &Event) -> ReportInput {
        let mut id = Sha256::new();
        id.update(
            serde_json::to_vec(&(&e.host, &e.file, &e.virus, e.time_ns))
                .expect("an event serialises"),
        );
        let detected = chrono::DateTime::from_timestamp_nanos(e.time_ns)
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        ReportInput {
            id: Some(format!("clamav-{}", hex::encode(&id.finalize()[..16]))),
            detected,
            source: "antivirus".into(),
            host: e.host.clone(),
            category: "malware".into(),
            description: format!("ClamAV found {} in {}", e.virus, e.file),
            indicators: Indicators {
                hashes: e.sha256.iter().cloned().collect(),
                ..Indicators::default()
            },
            tlp: self.tlp.clone(),
        }
    }
}

/// A spooled event read back.
#[derive(Debug)]
pub struct Spooled {
    /// Its file.
    pub path: PathBuf,
    /// The event, or why it cannot be read.
    pub event: Result<Event, String>,
}

/// The spool directory as `run` reads it.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// The spool at `dir`, created (mode 0770) when missing.
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o770)
            .create(dir)?;
        Ok(Spool {
            dir: dir.to_owned(),
        })
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The oldest `max` events, in the order they were spooled.
    pub fn oldest(&self, max: usize) -> std::io::Result<Vec<Spooled>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(SUFFIX) && !n.starts_with('.'))
            })
            .collect();
        names.sort();
        names.truncate(max);
        Ok(names
            .into_iter()
            .map(|path| {
                let event = read_event(&path);
                Spooled { path, event }
            })
            .collect())
    }

    /// Removes a filed event.
    pub fn done(&self, s: &Spooled) -> std::io::Result<()> {
        match std::fs::remove_file(&s.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves an event that cannot be filed aside, into `rejected/`, so it is kept for a look
    /// but not read again.
    pub fn reject(&self, s: &Spooled) -> std::io::Result<PathBuf> {
        let dir = self.dir.join("rejected");
        std::fs::create_dir_all(&dir)?;
        let to = dir.join(s.path.file_name().unwrap_or_default());
        std::fs::rename(&s.path, &to)?;
        Ok(to)
    }
}

fn read_event(path: &Path) -> Result<Event, String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = Vec::new();
    f.take(MAX_EVENT + 1)
        .read_to_end(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_EVENT {
        return Err(format!("larger than {MAX_EVENT} bytes"));
    }
    serde_json::from_slice(&text).map_err(|e| format!("not a spooled ClamAV event: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(file: &str, virus: &str) -> impl Fn(&str) -> Option<String> {
        let (file, virus) = (file.to_owned(), virus.to_owned());
        move |k| match k {
            FILE_VAR => Some(file.clone()),
            VIRUS_VAR => Some(virus.clone()),
            _ => None,
        }
    }

    #[test]
    fn the_hook_needs_clamds_variables() {
        let e = event_from(|_| None, "h", 1).unwrap_err();
        assert!(e.to_string().contains(FILE_VAR), "{e}");
        let only_file = |k: &str| (k == FILE_VAR).then(|| "/x".to_owned());
        assert!(event_from(only_file, "h", 1)
            .unwrap_err()
            .to_string()
            .contains(VIRUS_VAR));
    }

    #[test]
    fn events_are_spooled_whole_and_read_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sample.exe");
        std::fs::write(&f, b"abc").unwrap();
        let spool = Spool::open(&dir.path().join("spool")).unwrap();
        let a = event_from(vars(f.to_str().unwrap(), "Eicar"), "pc-17", 2_000).unwrap();
        assert_eq!(
            a.sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        let b = event_from(vars("/gone/file", "Other"), "pc-17", 1_000).unwrap();
        assert_eq!(b.sha256, None, "an unreadable file has no hash");
        spool_event(spool.dir(), &a).unwrap();
        spool_event(spool.dir(), &b).unwrap();
        std::fs::write(spool.dir().join(".half.tmp"), b"{").unwrap();
        std::fs::write(spool.dir().join("junk.json"), b"{\"x\":1}").unwrap();
        let got = spool.oldest(10).unwrap();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].event.as_ref().unwrap(), &b, "oldest first");
        assert_eq!(got[1].event.as_ref().unwrap(), &a);
        assert!(got[2].event.as_ref().unwrap_err().contains("not a spooled"));
        spool.done(&got[0]).unwrap();
        let moved = spool.reject(&got[2]).unwrap();
        assert!(moved.exists());
        assert_eq!(spool.oldest(10).unwrap().len(), 1);
    }

    #[test]
    fn reports_carry_the_detection_and_a_stable_id() {
        let e = Event {
            time_ns: 1_764_000_000_123_456_789,
            host: "pc-17.corp.example".into(),
            file: "/media/usb0/setup.exe".into(),
            virus: "Win.Trojan.Agent-1".into(),
            sha256: Some("ab".repeat(32)),
        };
        let m = Mapping::default();
        let r = m.report(&e);
        assert_eq!(r.id, m.report(&e).id);
        assert_ne!(
            r.id,
            m.report(&Event {
                time_ns: e.time_ns + 1,
                ..e.clone()
            })
            .id
        );
        assert_eq!(
            (r.source.as_str(), r.category.as_str(), r.host.as_str()),
            ("antivirus", "malware", "pc-17.corp.example")
        );
        assert_eq!(r.detected, "2025-11-24T16:00:00.123456789Z");
        assert!(r
            .description
            .contains("Win.Trojan.Agent-1 in /media/usb0/setup.exe"));
        r.check().expect("the aggregator accepts it");
    }
}
