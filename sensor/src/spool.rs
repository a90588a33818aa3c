//! The durable on-disk spool of sealed, unacknowledged batches.
//!
//! Layout of the spool directory:
//! - `epoch`: this spool's incarnation (random, written once);
//! - `next_seq`: the next batch number, updated (atomically) *before* a batch file is written,
//!   so a number is never used twice even if every batch has been acknowledged and removed;
//! - `NNNNNNNNNNNNNNNNNNNN.ttb`: one encoded batch (the exact HTTP body), named by number;
//! - `rejected/`: batches the aggregator refused (malformed, or refused by its ClickHouse
//!   with a permanent error), kept for inspection; moved back into the directory while the
//!   sensor is stopped, a batch is delivered again at the next start.
//!
//! Every file is written to a temporary name, fsynced, renamed and the directory fsynced.

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use teiten_wire::BatchId;

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// A file operation failed.
    #[error("spool {path}: {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A state file holds something unexpected.
    #[error("spool {path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> SpoolError {
    let path = path.to_owned();
    move |source| SpoolError::Io {
        path,
        action,
        source,
    }
}

/// What [`Spool::push`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Stored durably under this number.
    Stored(u64),
    /// Dropped: the spool is full.
    Full,
}

struct State {
    next_seq: u64,
    /// (seq, bytes), oldest first.
    files: VecDeque<(u64, u64)>,
    bytes: u64,
}

/// The spool. Shared between the batcher (which pushes) and the shipper (which drains).
pub struct Spool {
    dir: PathBuf,
    sensor_id: String,
    epoch: u64,
    max_bytes: u64,
    state: Mutex<State>,
    changed: Condvar,
}

const SUFFIX: &str = ".ttb";

impl Spool {
    /// Opens (or creates) the spool in `dir`, resuming what a previous run left.
    pub fn open(dir: &Path, sensor_id: &str, max_bytes: u64) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir.join("rejected")).map_err(io(dir, "create directory"))?;
        let epoch_path = dir.join("epoch");
        let epoch = match fs::read_to_string(&epoch_path) {
            Ok(text) => text.trim().parse().map_err(|_| SpoolError::Corrupt {
                path: epoch_path.clone(),
                message: format!("epoch {:?} is not a number", text.trim()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let epoch = rand::random::<u64>() >> 1;
                write_atomic(dir, "epoch", epoch.to_string().as_bytes())?;
                epoch
            }
            Err(e) => return Err(io(&epoch_path, "read")(e)),
        };
        let seq_path = dir.join("next_seq");
        let mut next_seq = match fs::read_to_string(&seq_path) {
            Ok(text) => text.trim().parse().map_err(|_| SpoolError::Corrupt {
                path: seq_path.clone(),
                message: format!("next_seq {:?} is not a number", text.trim()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
            Err(e) => return Err(io(&seq_path, "read")(e)),
        };
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(io(dir, "list"))? {
            let entry = entry.map_err(io(dir, "list"))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                // A write that never completed: its batch number was never handed out.
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let Some(seq) = name
                .strip_suffix(SUFFIX)
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let len = entry.metadata().map_err(io(&entry.path(), "stat"))?.len();
            files.push((seq, len));
        }
        files.sort_unstable();
        if let Some(&(last, _)) = files.last() {
            next_seq = next_seq.max(last + 1);
        }
        let bytes = files.iter().map(|f| f.1).sum();
        Ok(Spool {
            dir: dir.to_owned(),
            sensor_id: sensor_id.to_owned(),
            epoch,
            max_bytes,
            state: Mutex::new(State {
                next_seq,
                files: files.into(),
                bytes,
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This spool's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Numbers, encodes (with `encode`) and durably stores a batch, unless the spool is full.
    pub fn push(&self, encode: impl FnOnce(BatchId) -> Vec<u8>) -> Result<Pushed, SpoolError> {
        let mut st = self.lock();
        let seq = st.next_seq;
        let body = encode(BatchId {
            sensor_id: self.sensor_id.clone(),
            epoch: self.epoch,
            seq,
        });
        let len = body.len() as u64;
        if st.bytes + len > self.max_bytes {
            return Ok(Pushed::Full);
        }
        write_atomic(&self.dir, "next_seq", (seq + 1).to_string().as_bytes())?;
        st.next_seq = seq + 1;
        write_atomic(&self.dir, &file_name(seq), &body)?;
        st.files.push_back((seq, len));
        st.bytes += len;
        drop(st);
        self.changed.notify_all();
        Ok(Pushed::Stored(seq))
    }

    /// The oldest batch and its path, waiting up to `wait` for one to arrive.
    pub fn oldest(&self, wait: Duration) -> Option<(u64, PathBuf)> {
        let st = self.lock();
        let (st, _) = self
            .changed
            .wait_timeout_while(st, wait, |st| st.files.is_empty())
            .unwrap_or_else(|p| p.into_inner());
        st.files
            .front()
            .map(|&(seq, _)| (seq, self.dir.join(file_name(seq))))
    }

    /// Removes an acknowledged batch.
    pub fn ack(&self, seq: u64) -> Result<(), SpoolError> {
        self.remove(seq, None)
    }

    /// Moves a refused batch to `rejected/`.
    pub fn reject(&self, seq: u64) -> Result<(), SpoolError> {
        self.remove(seq, Some(self.dir.join("rejected").join(file_name(seq))))
    }

    fn remove(&self, seq: u64, keep_at: Option<PathBuf>) -> Result<(), SpoolError> {
        let path = self.dir.join(file_name(seq));
        match keep_at {
            Some(to) => fs::rename(&path, &to).map_err(io(&path, "move to rejected/"))?,
            None => fs::remove_file(&path).map_err(io(&path, "remove"))?,
        }
        let mut st = self.lock();
        if let Some(pos) = st.files.iter().position(|f| f.0 == seq) {
            let (_, len) = st.files.remove(pos).expect("position is in range");
            st.bytes -= len;
        }
        drop(st);
        self.changed.notify_all();
        Ok(())
    }

    /// Bytes and batches waiting.
    pub fn backlog(&self) -> (u64, usize) {
        let st = self.lock();
        (st.bytes, st.files.len())
    }

    /// Waits until the spool is empty or `wait` has passed; true when empty.
    pub fn wait_empty(&self, wait: Duration) -> bool {
        let st = self.lock();
        let (st, _) = self
            .changed
            .wait_timeout_while(st, wait, |st| !st.files.is_empty())
            .unwrap_or_else(|p| p.into_inner());
        st.files.is_empty()
    }
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}{SUFFIX}")
}

fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<(), SpoolError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    let mut f = fs::File::create(&tmp).map_err(io(&tmp, "create"))?;
    f.write_all(data).map_err(io(&tmp, "write"))?;
    f.sync_all().map_err(io(&tmp, "fsync"))?;
    drop(f);
    fs::rename(&tmp, &dst).map_err(io(&dst, "rename"))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "fsync directory"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(id: BatchId) -> Vec<u8> {
        format!("{}:{}:{}", id.sensor_id, id.epoch, id.seq).into_bytes()
    }

    #[test]
    fn numbers_persist_and_resume() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), "s1", 1 << 20).unwrap();
        let epoch = s.epoch();
        assert_eq!(s.push(body).unwrap(), Pushed::Stored(1));
        assert_eq!(s.push(body).unwrap(), Pushed::Stored(2));
        let (seq, path) = s.oldest(Duration::ZERO).unwrap();
        assert_eq!(seq, 1);
        assert_eq!(
            fs::read(path).unwrap(),
            format!("s1:{epoch}:1").into_bytes()
        );
        s.ack(1).unwrap();
        s.ack(2).unwrap();
        assert!(s.oldest(Duration::from_millis(1)).is_none());
        drop(s);
        // Reopened with every batch acknowledged: numbering goes on, epoch is kept.
        let s = Spool::open(dir.path(), "s1", 1 << 20).unwrap();
        assert_eq!(s.epoch(), epoch);
        assert_eq!(s.push(body).unwrap(), Pushed::Stored(3));
    }

    #[test]
    fn unacked_batches_survive_a_restart_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), "s1", 1 << 20).unwrap();
        for _ in 0..5 {
            s.push(body).unwrap();
        }
        s.ack(1).unwrap();
        drop(s);
        fs::write(dir.path().join("junk.tmp"), b"partial").unwrap();
        let s = Spool::open(dir.path(), "s1", 1 << 20).unwrap();
        assert_eq!(s.backlog().1, 4);
        assert_eq!(s.oldest(Duration::ZERO).unwrap().0, 2);
        assert!(!dir.path().join("junk.tmp").exists());
    }

    #[test]
    fn full_spool_drops_without_using_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), "s1", 30).unwrap();
        assert_eq!(s.push(body).unwrap(), Pushed::Stored(1));
        assert_eq!(s.push(|_| vec![0; 29]).unwrap(), Pushed::Full);
        s.ack(1).unwrap();
        assert_eq!(s.push(body).unwrap(), Pushed::Stored(2));
    }

    #[test]
    fn rejected_batches_are_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), "s1", 1 << 20).unwrap();
        s.push(body).unwrap();
        s.reject(1).unwrap();
        assert_eq!(s.backlog(), (0, 0));
        assert!(dir.path().join("rejected").join(file_name(1)).exists());
    }

    #[test]
    fn corrupt_state_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("epoch"), "banana").unwrap();
        let err = Spool::open(dir.path(), "s1", 1 << 20).err().unwrap();
        assert!(
            err.to_string().contains("epoch \"banana\" is not a number"),
            "{err}"
        );
    }
}
