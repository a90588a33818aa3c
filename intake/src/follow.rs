//! Following a log file as it grows, line by line, with the position kept in a state file so
//! that every line is handed on once across restarts, rotation and truncation.
//!
//! - The position is the file's identity (device and inode) and the byte offset after the
//!   last line handed on. It is written to the state file (a temporary file, fsync, rename)
//!   after each round and at the end.
//! - Rotation by rename (logrotate's default; Suricata reopens on SIGHUP): the old file is
//!   read to its end, and once it has stopped growing for one round, the follower moves to
//!   the new file at its start. After a restart, the old file is found by its inode among the
//!   files beside the path (`eve.json.1`, `eve.json-20251121`, ...) and finished first. A
//!   rotated file that was compressed or deleted while the follower was down cannot be
//!   finished; that is logged.
//! - Truncation (`copytruncate`): a file shorter than the position is read again from its
//!   start.
//! - Only complete lines are handed on: a line still being written waits for its newline. A
//!   line longer than [`MAX_LINE`] is skipped (and logged), so memory stays bounded.
//!
//! A line is consumed when the handler returns `Ok`; when it returns `Err`, the round stops
//! at that line and the next round starts with it again (the aggregator was unavailable).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The longest line handed on (Suricata's alert records are a few KiB).
pub const MAX_LINE: usize = 1 << 20;
/// What is read at once.
const CHUNK: usize = 256 << 10;

/// Bytes of a file's start kept with the position, to tell a file truncated and written
/// again past the position from the same file grown.
const HEAD: usize = 64;

/// Where the follower is: a file's identity and the offset after the last line consumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The file's device.
    pub dev: u64,
    /// The file's inode.
    pub ino: u64,
    /// Bytes consumed.
    pub offset: u64,
    /// The file's first bytes (up to 64, at most `offset`).
    #[serde(default)]
    pub head: Vec<u8>,
}

/// A line handed on, with where it is.
#[derive(Debug)]
pub struct Line<'a> {
    /// Its bytes, without the newline.
    pub bytes: &'a [u8],
    /// The file it was read from.
    pub file: &'a Path,
    /// Its offset in that file.
    pub offset: u64,
}

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Lines consumed.
    pub lines: u64,
    /// Lines skipped as longer than [`MAX_LINE`].
    pub too_long: u64,
    /// Whether the handler stopped the round.
    pub stopped: bool,
}

/// Why following failed.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// A file could not be read or the state not written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The state file is not one of ours.
    #[error("state file {path}: {message}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> FollowError {
    let what = what.into();
    move |source| FollowError::Io { what, source }
}

struct Open {
    file: File,
    name: PathBuf,
    dev: u64,
    ino: u64,
    offset: u64,
    /// The file's first bytes, up to [`HEAD`] and at most `offset`.
    head: Vec<u8>,
    /// Skipping the rest of a line longer than [`MAX_LINE`].
    skipping: bool,
}

impl Open {
    fn position(&self) -> Position {
        Position {
            dev: self.dev,
            ino: self.ino,
            offset: self.offset,
            head: self.head.clone(),
        }
    }

    /// The file's first `n` bytes (fewer if it is shorter).
    fn first_bytes(&mut self, n: usize) -> Result<Vec<u8>, FollowError> {
        let mut b = Vec::with_capacity(n);
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| (&mut self.file).take(n as u64).read_to_end(&mut b))
            .map_err(io(format!("reading {}", self.name.display())))?;
        Ok(b)
    }

    /// Whether the file was truncated (shorter than the position, or its start rewritten):
    /// then it is read from its start again.
    fn check_truncated(&mut self) -> Result<bool, FollowError> {
        let len = self
            .file
            .metadata()
            .map_err(io(format!("reading {}", self.name.display())))?
            .len();
        let truncated = len < self.offset || {
            let n = self.head.len();
            self.first_bytes(n)? != self.head
        };
        if truncated {
            tracing::warn!(file = %self.name.display(), offset = self.offset, len, "The file was truncated: reading it from its start");
            self.offset = 0;
            self.head.clear();
        }
        Ok(truncated)
    }

    /// Keeps the file's first bytes once they are consumed.
    fn note_head(&mut self) -> Result<(), FollowError> {
        let want = HEAD.min(usize::try_from(self.offset).unwrap_or(HEAD));
        if self.head.len() < want {
            self.head = self.first_bytes(want)?;
        }
        Ok(())
    }
}

/// A file followed.
pub struct Follower {
    path: PathBuf,
    state: PathBuf,
    cur: Option<Open>,
    saved: Option<Position>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("path", &self.path)
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

/// Reads a state file: `None` if there is none yet.
pub fn read_state(path: &Path) -> Result<Option<Position>, FollowError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| FollowError::State {
                path: path.to_owned(),
                message: format!("not a position ({e}); remove it to read the file from its start"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("reading state file {}", path.display()))(e)),
    }
}

/// Writes a state file atomically and durably.
fn write_state(path: &Path, p: &Position) -> Result<(), FollowError> {
    let what = || format!("writing state file {}", path.display());
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io(what()))?;
    f.write_all(&serde_json::to_vec(p).expect("a position serialises"))
        .and_then(|()| f.sync_all())
        .map_err(io(what()))?;
    std::fs::rename(&tmp, path).map_err(io(what()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(what()))?;
    }
    Ok(())
}

/// The file beside `path` (same directory) with this identity, if any.
fn find_by_inode(path: &Path, dev: u64, ino: u64) -> Option<PathBuf> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::read_dir(dir).ok()?.find_map(|e| {
        let e = e.ok()?;
        let m = e.metadata().ok()?;
        (m.is_file() && m.dev() == dev && m.ino() == ino).then(|| e.path())
    })
}

fn open_at(name: &Path, at: Option<&Position>) -> Result<Option<Open>, FollowError> {
    let file = match File::open(name) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("opening {}", name.display()))(e)),
    };
    let m = file
        .metadata()
        .map_err(io(format!("reading {}", name.display())))?;
    let mut open = Open {
        file,
        name: name.to_owned(),
        dev: m.dev(),
        ino: m.ino(),
        offset: at.map_or(0, |p| p.offset),
        head: at.map(|p| p.head.clone()).unwrap_or_default(),
        skipping: false,
    };
    open.check_truncated()?;
    Ok(Some(open))
}

impl Follower {
    /// Follows `path`, keeping the position in `state` (from where it says, or the start).
    pub fn new(path: &Path, state: &Path) -> Result<Follower, FollowError> {
        let saved = read_state(state)?;
        Ok(Follower {
            path: path.to_owned(),
            state: state.to_owned(),
            cur: None,
            saved,
            buf: Vec::new(),
        })
    }

    /// The position now (`None` before the file was first seen).
    pub fn position(&self) -> Option<Position> {
        self.cur
            .as_ref()
            .map(Open::position)
            .or_else(|| self.saved.clone())
    }

    /// Opens the file the saved position names, or the path.
    fn open(&mut self) -> Result<(), FollowError> {
        let Some(p) = self.saved.clone() else {
            self.cur = open_at(&self.path, None)?;
            return Ok(());
        };
        let at_path = std::fs::metadata(&self.path)
            .ok()
            .is_some_and(|m| m.dev() == p.dev && m.ino() == p.ino);
        if at_path {
            self.cur = open_at(&self.path, Some(&p))?;
        } else if let Some(old) = find_by_inode(&self.path, p.dev, p.ino) {
            tracing::info!(file = %old.display(), offset = p.offset, "Finishing the rotated file first");
            self.cur = open_at(&old, Some(&p))?;
        } else if !self.path.exists() {
            // Between a rotation and the new file: wait for it.
        } else {
            tracing::error!(
                path = %self.path.display(), offset = p.offset,
                "The file last read was rotated away and is gone (compressed or deleted): what \
                 was written to it after the position is lost; reading the new file from its start"
            );
            self.cur = open_at(&self.path, None)?;
        }
        Ok(())
    }

    /// Hands on the complete lines of the current file from the position; returns the bytes
    /// consumed and whether the handler stopped.
    fn drain<E>(
        &mut self,
        round: &mut Round,
        handle: &mut impl FnMut(Line<'_>) -> Result<(), E>,
    ) -> Result<u64, FollowError> {
        let Some(cur) = self.cur.as_mut() else {
            return Ok(0);
        };
        let start = cur.offset;
        loop {
            self.buf.clear();
            cur.file
                .seek(SeekFrom::Start(cur.offset))
                .map_err(io(format!("reading {}", cur.name.display())))?;
            (&mut cur.file)
                .take((CHUNK + MAX_LINE) as u64)
                .read_to_end(&mut self.buf)
                .map_err(io(format!("reading {}", cur.name.display())))?;
            if self.buf.is_empty() {
                return Ok(cur.offset - start);
            }
            let mut at = 0usize;
            while let Some(nl) = self.buf[at..].iter().position(|&b| b == b'\n') {
                let line = &self.buf[at..at + nl];
                let offset = cur.offset + at as u64;
                if cur.skipping {
                    cur.skipping = false;
                } else if line.iter().any(|b| !b.is_ascii_whitespace()) {
                    let l = Line {
                        bytes: line,
                        file: &cur.name,
                        offset,
                    };
                    if handle(l).is_err() {
                        cur.offset += at as u64;
                        round.stopped = true;
                        return Ok(cur.offset - start);
                    }
                    round.lines += 1;
                }
                at += nl + 1;
            }
            let full = self.buf.len() == CHUNK + MAX_LINE;
            if cur.skipping {
                // Still inside an overlong line.
                at = self.buf.len();
            } else if self.buf.len() - at >= MAX_LINE {
                // No newline in MAX_LINE bytes: skip this line to its end.
                tracing::error!(file = %cur.name.display(), offset = cur.offset + at as u64, "A line longer than 1 MiB: skipped");
                round.too_long += 1;
                cur.skipping = true;
                at = self.buf.len();
            }
            cur.offset += at as u64;
            if !full {
                // Only a line still being written is left.
                return Ok(cur.offset - start);
            }
        }
    }

    /// One round: hands on every complete line written since the last, following rotation
    /// and truncation, then saves the position.
    pub fn round<E>(
        &mut self,
        mut handle: impl FnMut(Line<'_>) -> Result<(), E>,
    ) -> Result<Round, FollowError> {
        let mut round = Round::default();
        if self.cur.is_none() {
            self.open()?;
        }
        // Enough passes for a rotated file and its successor (and a truncation).
        for _ in 0..4 {
            let read = self.drain(&mut round, &mut handle)?;
            if round.stopped {
                break;
            }
            let Some(cur) = self.cur.as_mut() else {
                break;
            };
            match std::fs::metadata(&self.path) {
                Ok(m) if m.dev() == cur.dev && m.ino() == cur.ino => {
                    if cur.check_truncated()? {
                        continue;
                    }
                    cur.note_head()?;
                    break;
                }
                Ok(_) if read == 0 => {
                    // Rotated, and the old file has stopped growing: on to the new one.
                    tracing::info!(old = %cur.name.display(), new = %self.path.display(), "The file was rotated: reading the new one");
                    self.cur = open_at(&self.path, None)?;
                }
                // Rotated but the old file still grows (the writer has not reopened yet),
                // or the new file is not there yet: next round.
                _ => break,
            }
        }
        self.save()?;
        Ok(round)
    }

    /// Writes the position if it changed.
    pub fn save(&mut self) -> Result<(), FollowError> {
        let Some(c) = &mut self.cur else {
            return Ok(());
        };
        c.note_head()?;
        let p = c.position();
        if self.saved.as_ref() != Some(&p) {
            write_state(&self.state, &p)?;
            self.saved = Some(p);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn append(path: &Path, text: &str) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn lines(f: &mut Follower) -> Vec<String> {
        let mut got = Vec::new();
        f.round(|l| {
            got.push(String::from_utf8(l.bytes.to_vec()).unwrap());
            Ok::<(), ()>(())
        })
        .unwrap();
        got
    }

    #[test]
    fn lines_once_across_partial_writes_rotation_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("eve.json");
        let state = dir.path().join("eve.pos");
        let mut f = Follower::new(&log, &state).unwrap();
        assert!(lines(&mut f).is_empty(), "no file yet");
        append(&log, "a\nb\npart");
        assert_eq!(lines(&mut f), ["a", "b"]);
        append(&log, "ial\n\n");
        assert_eq!(lines(&mut f), ["partial"]);
        // A restart resumes where the state says.
        append(&log, "c\n");
        let mut f = Follower::new(&log, &state).unwrap();
        assert_eq!(lines(&mut f), ["c"]);
        // Rotation: the old file gets more before the writer reopens; then the new file.
        std::fs::rename(&log, dir.path().join("eve.json.1")).unwrap();
        append(&dir.path().join("eve.json.1"), "d\n");
        append(&log, "e\n");
        assert_eq!(lines(&mut f), ["d"]);
        assert_eq!(lines(&mut f), ["e"]);
        // Rotation while the follower is down, twice over: the old file is found by inode.
        append(&log, "f\n");
        drop(f);
        std::fs::rename(dir.path().join("eve.json.1"), dir.path().join("eve.json.2")).unwrap();
        std::fs::rename(&log, dir.path().join("eve.json.1")).unwrap();
        append(&log, "g\n");
        let mut f = Follower::new(&log, &state).unwrap();
        assert_eq!(lines(&mut f), ["f"]);
        assert_eq!(lines(&mut f), ["g"]);
        // Truncation (copytruncate): from the start again.
        std::fs::write(&log, "").unwrap();
        append(&log, "h\n");
        assert_eq!(lines(&mut f), ["h"]);
    }

    #[test]
    fn a_stopped_round_resumes_at_the_refused_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("eve.json");
        append(&log, "1\n2\n3\n");
        let mut f = Follower::new(&log, &dir.path().join("s")).unwrap();
        let mut seen = Vec::new();
        let r = f
            .round(|l| {
                if l.bytes == b"2" {
                    return Err(());
                }
                seen.push(l.offset);
                Ok(())
            })
            .unwrap();
        assert!(r.stopped);
        assert_eq!((r.lines, seen), (1, vec![0]));
        assert_eq!(
            read_state(&dir.path().join("s")).unwrap().unwrap().offset,
            2
        );
        assert_eq!(lines(&mut f), ["2", "3"]);
    }

    #[test]
    fn overlong_lines_are_skipped_in_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("eve.json");
        append(&log, "x\n");
        append(&log, &"y".repeat(3 * MAX_LINE));
        let mut f = Follower::new(&log, &dir.path().join("s")).unwrap();
        assert_eq!(lines(&mut f), ["x"]);
        append(&log, "\nz\n");
        let mut round = Round::default();
        let mut got = Vec::new();
        f.round(|l| {
            got.push(l.bytes.to_vec());
            Ok::<(), ()>(())
        })
        .map(|r| round = r)
        .unwrap();
        assert_eq!(got, [b"z".to_vec()]);
        assert!(f.buf.capacity() <= 2 * (CHUNK + MAX_LINE));
    }

    #[test]
    fn a_bad_state_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("s");
        std::fs::write(&s, "garbage").unwrap();
        let e = Follower::new(&dir.path().join("l"), &s)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a position") && e.contains("remove it"),
            "{e}"
        );
    }
}
