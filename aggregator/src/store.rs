//! Storing batches in ClickHouse, exactly once.
//!
//! # The guarantee
//! Every event row carries its batch's `(sensor_id, epoch, batch_seq)` and its index `idx` in
//! the batch, and `scan_events` is ordered by those columns. The events table itself is
//! therefore the deduplication state: it survives aggregator crashes and restarts, and is
//! shared by aggregators running side by side.
//!
//! For every batch that this process has not itself seen committed, the aggregator asks
//! ClickHouse how many rows of it are stored ([`teiten_store::queries::batch_rows`]) before writing:
//! - all of them: the batch is acknowledged as a duplicate;
//! - none: all events are written;
//! - some (an INSERT that died half-way: ClickHouse commits an INSERT block by block and part by
//!   part, so a crash can leave a prefix of a batch): the stored indexes are read and only the
//!   missing events are written.
//!
//! A batch is acknowledged only after the INSERT holding its rows ended successfully. While a
//! batch is being written, a second copy of it (the sensor timed out and re-sent it) is answered
//! 503 so that it cannot be written twice. Rows reach the rollups through materialized views
//! fired by the same INSERT.
//!
//! # Failures
//! A failed ClickHouse request is classified ([`teiten_store::Cause`]) and the class travels
//! with [`StoreError::ClickHouse`] to the answer: transient errors are retried by the sensor,
//! permanent ones (schema, data, access) refuse the batch. An INSERT carries several batches;
//! when it fails with a permanent error that may be one batch's fault ([`Category::Data`]),
//! its batches are answered [`StoreError::Unattributed`] and each is written in an INSERT of
//! its own when it comes again, so that only the guilty batch is refused. Every ClickHouse
//! error is counted once in `clickhouse_errors` and logged once per INSERT or query.
//!
//! Limits of the guarantee: two aggregators receiving the same batch *at the same moment*
//! (a sensor failing over while the first is still writing) can both find it absent; the
//! sensor's request timeout must exceed `insert.timeout_secs` + `ingest.ack_timeout_secs`.
//! A crash between ClickHouse writing a part of `scan_events` and writing the views' parts
//! leaves those rows out of the rollups (the raw table stays exact). Empty batches (counters
//! only) cannot be recognised again; a re-sent one adds one more `sensor_reports` row.
//!
//! A batch's `sensor_reports` row is written only once its events' INSERT succeeded (a batch
//! whose INSERT failed comes again and is reported then), and a failed reports INSERT keeps
//! its rows for the next one (at most [`MAX_PENDING_REPORTS`]), so that losing ClickHouse or
//! ZooKeeper for a while neither doubles nor loses reports.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clickhouse::inserter::Inserter;
use clickhouse::{Client, Row};
use serde::Serialize;
use teiten_wire::{Batch, BatchId};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::config::Settings;
use crate::metrics::{Metrics, ReasonLabel};
use teiten_store::events::EventRow;
use teiten_store::geo::address_bytes;
use teiten_store::queries;
use teiten_store::sources::Withheld;
use teiten_store::time::{self, day_of_us};
use teiten_store::{Category, Cause, Class, Error, Result};

/// One row of `sensor_reports`: a batch's counters as the sensor reported them.
#[derive(Debug, Row, Serialize)]
pub(crate) struct ReportRow {
    sensor_id: String,
    epoch: u64,
    batch_seq: u64,
    received: u32,
    sealed_us: i64,
    events: u32,
    unknown_country: u32,
    packets_captured: u64,
    kernel_drops: u64,
    events_recorded: u64,
    filtered: u64,
    malformed: u64,
    spool_bytes: u64,
    spool_dropped_events: u64,
}

/// A decoded batch with the source country of each event.
#[derive(Debug)]
pub struct Enriched {
    /// The batch.
    pub batch: Batch,
    /// `countries[i]` is the country of `batch.events[i]`'s source.
    pub countries: Vec<[u8; 2]>,
    /// `asns[i]` is the autonomous system of `batch.events[i]`'s source (0: unknown).
    pub asns: Vec<u32>,
    /// How many of them are unknown.
    pub unknown: u32,
    /// `withheld[i]` is why `batch.events[i]`'s source is withheld ([`teiten_store::sources`]).
    pub withheld: Vec<Withheld>,
}

/// How a batch was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now, with this many events (fewer than the batch's when a partly stored batch
    /// was completed).
    Stored(u64),
    /// Stored before.
    Duplicate,
}

/// Why a batch was not acknowledged. The sensor should retry later, except after a
/// [`StoreError::is_permanent`] one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Too many requests or events are waiting for ClickHouse.
    #[error("the aggregator is busy: too many batches waiting for ClickHouse")]
    Busy,
    /// Another copy of this batch is being written now.
    #[error("this batch is being stored by another request")]
    InFlight,
    /// ClickHouse failed or is unreachable; [`Error::class`] says whether retrying may help.
    /// Shared by the batches of one INSERT.
    #[error(transparent)]
    ClickHouse(Arc<Error>),
    /// The INSERT that carried this batch with others failed with a permanent error that may
    /// be another batch's; sent again, the batch is written alone.
    #[error("the INSERT of this batch and others failed; the batch will be written alone: {0}")]
    Unattributed(Arc<Error>),
    /// No answer from the writer within the acknowledgement timeout.
    #[error("the batch was not committed within {0:?}")]
    Timeout(Duration),
    /// The aggregator is shutting down.
    #[error("the aggregator is shutting down")]
    ShuttingDown,
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        StoreError::ClickHouse(Arc::new(e))
    }
}

impl StoreError {
    /// Whether the batch must not be sent again (a permanent ClickHouse error).
    pub fn is_permanent(&self) -> bool {
        matches!(self, StoreError::ClickHouse(e) if e.class() == Class::Permanent)
    }

    /// The cause of a ClickHouse error.
    pub fn cause(&self) -> Option<Cause> {
        match self {
            StoreError::ClickHouse(e) | StoreError::Unattributed(e) => e.cause(),
            _ => None,
        }
    }
}

type Key = (String, u64, u64);

struct Job {
    data: Enriched,
    /// Indexes already stored (a repair), or none.
    skip: Option<HashSet<u32>>,
    /// Write it in an INSERT of its own (its last INSERT with others failed).
    alone: bool,
    done: oneshot::Sender<Result<u64, StoreError>>,
    _permit: OwnedSemaphorePermit,
    _inflight: InflightGuard,
}

struct InflightGuard {
    shared: Arc<Shared>,
    key: Key,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.shared
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// Seqs remembered as committed per (sensor, epoch).
const RECENT_SEQS: usize = 32;
/// (sensor, epoch) pairs remembered; beyond it the memory is cleared (ClickHouse still knows).
const RECENT_KEYS: usize = 100_000;

#[derive(Default)]
struct Shared {
    inflight: Mutex<HashSet<Key>>,
    committed: Mutex<HashMap<(String, u64), VecDeque<u64>>>,
    /// Batches to write alone when they come again ([`StoreError::Unattributed`]).
    alone: Mutex<HashSet<Key>>,
    healthy: AtomicBool,
}

impl Shared {
    fn is_committed(&self, id: &BatchId) -> bool {
        let c = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        c.get(&(id.sensor_id.clone(), id.epoch))
            .is_some_and(|q| q.contains(&id.seq))
    }

    /// Whether `key` is to be written alone; forgets it.
    fn take_alone(&self, key: &Key) -> bool {
        self.alone
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
    }

    fn mark_alone(&self, key: Key) {
        let mut a = self.alone.lock().unwrap_or_else(|e| e.into_inner());
        if a.len() >= RECENT_KEYS {
            a.clear();
        }
        a.insert(key);
    }

    fn mark_committed(&self, id: &BatchId) {
        let mut c = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() >= RECENT_KEYS {
            c.clear();
        }
        let q = c.entry((id.sensor_id.clone(), id.epoch)).or_default();
        if !q.contains(&id.seq) {
            if q.len() >= RECENT_SEQS {
                q.pop_front();
            }
            q.push_back(id.seq);
        }
    }
}

/// The storage side of the aggregator: deduplication, backpressure and the writer task.
pub struct Store {
    client: Client,
    db: String,
    tx: mpsc::Sender<Job>,
    pending: Arc<Semaphore>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    ack_timeout: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("db", &self.db).finish()
    }
}

/// The writer tasks' handle: set the stop flag to `true`, then wait on the handle; it ends
/// when every writer has drained the queue and ended its INSERTs.
pub type WriterHandle = tokio::task::JoinHandle<()>;

/// Tells the writers to stop taking new batches.
pub type WriterStop = watch::Sender<bool>;

type SharedRx = Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>;

impl Store {
    /// Starts `insert.writers` writer tasks. `client` must have the database set.
    ///
    /// Several writers keep INSERTs in flight side by side: while ClickHouse processes one
    /// (18.16 parses an INSERT on one thread), the next batches are already streamed into
    /// another.
    pub fn start(
        client: Client,
        settings: &Settings,
        metrics: Arc<Metrics>,
    ) -> (Arc<Store>, WriterHandle, WriterStop) {
        let cfg = &settings.config;
        let (tx, rx) = mpsc::channel(4096);
        let rx: SharedRx = Arc::new(tokio::sync::Mutex::new(rx));
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared::default());
        shared.healthy.store(true, Ordering::Relaxed);
        let writers: Vec<_> = (0..cfg.insert.writers)
            .map(|_| {
                let writer = Writer {
                    client: client.clone(),
                    max_rows: cfg.insert.max_rows,
                    max_bytes: cfg.insert.max_bytes,
                    period: settings.insert_period,
                    timeout: settings.insert_timeout,
                    shared: shared.clone(),
                    metrics: metrics.clone(),
                };
                tokio::spawn(writer.run(rx.clone(), stop_rx.clone()))
            })
            .collect();
        let handle = tokio::spawn(async move {
            for w in writers {
                let _ = w.await;
            }
        });
        let store = Store {
            client,
            db: cfg.clickhouse.database.clone(),
            tx,
            pending: Arc::new(Semaphore::new(cfg.ingest.max_pending_events)),
            shared,
            metrics,
            ack_timeout: settings.ack_timeout,
        };
        (Arc::new(store), handle, stop_tx)
    }

    /// Whether the last ClickHouse operation succeeded.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }

    /// Whether ClickHouse answers a trivial query within two seconds.
    pub async fn ping(&self) -> bool {
        let st = queries::ping();
        let q = st.fetch_one::<u8>(&self.client);
        let ok = matches!(
            tokio::time::timeout(Duration::from_secs(2), q).await,
            Ok(Ok(1))
        );
        self.shared.healthy.store(ok, Ordering::Relaxed);
        ok
    }

    /// Stores a batch exactly once and returns once it is committed.
    pub async fn submit(&self, data: Enriched) -> Result<Outcome, StoreError> {
        let id = data.batch.id.clone();
        if self.shared.is_committed(&id) {
            self.metrics.batches_duplicate.inc();
            return Ok(Outcome::Duplicate);
        }
        let key: Key = (id.sensor_id.clone(), id.epoch, id.seq);
        if !self
            .shared
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone())
        {
            return Err(StoreError::InFlight);
        }
        let alone = self.shared.take_alone(&key);
        let guard = InflightGuard {
            shared: self.shared.clone(),
            key,
        };
        let n = data.batch.events.len();
        let skip = if n == 0 {
            None
        } else {
            match self.stored_rows(&id).await? {
                0 => None,
                s if s as usize >= n => {
                    if s as usize > n {
                        tracing::error!(
                            sensor = %id.sensor_id, epoch = id.epoch, seq = id.seq, stored = s, events = n,
                            "Batch has more rows stored than it holds"
                        );
                    }
                    self.shared.mark_committed(&id);
                    self.metrics.batches_duplicate.inc();
                    return Ok(Outcome::Duplicate);
                }
                s => {
                    tracing::warn!(
                        sensor = %id.sensor_id, epoch = id.epoch, seq = id.seq, stored = s, events = n,
                        "Batch is partly stored; writing the missing events"
                    );
                    Some(self.stored_indexes(&id).await?)
                }
            }
        };
        let to_write = n - skip.as_ref().map_or(0, |s| s.len());
        let permits = u32::try_from(to_write.max(1)).map_err(|_| StoreError::Busy)?;
        let permit = match self.pending.clone().try_acquire_many_owned(permits) {
            Ok(p) => p,
            Err(TryAcquireError::NoPermits) => return Err(StoreError::Busy),
            Err(TryAcquireError::Closed) => return Err(StoreError::ShuttingDown),
        };
        let (done, wait) = oneshot::channel();
        let job = Job {
            data,
            skip,
            alone,
            done,
            _permit: permit,
            _inflight: guard,
        };
        self.metrics.pending_events.inc_by(to_write as i64);
        if let Err(e) = self.tx.try_send(job) {
            self.metrics.pending_events.dec_by(to_write as i64);
            return Err(match e {
                mpsc::error::TrySendError::Full(_) => StoreError::Busy,
                mpsc::error::TrySendError::Closed(_) => StoreError::ShuttingDown,
            });
        }
        match tokio::time::timeout(self.ack_timeout, wait).await {
            Ok(Ok(Ok(stored))) => Ok(Outcome::Stored(stored)),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(StoreError::ShuttingDown),
            Err(_) => Err(StoreError::Timeout(self.ack_timeout)),
        }
    }

    async fn stored_rows(&self, id: &BatchId) -> Result<u64> {
        let what = "checking whether a batch is stored";
        let st = queries::batch_rows(&self.db, &id.sensor_id, id.epoch, id.seq);
        let q = st.fetch_one::<u64>(&self.client);
        let r = match tokio::time::timeout(self.ack_timeout, q).await {
            Ok(r) => r.map_err(Error::ch(what)),
            Err(_) => Err(Error::ch(what)(clickhouse::error::Error::TimedOut)),
        };
        self.shared.healthy.store(r.is_ok(), Ordering::Relaxed);
        self.count_error(&r);
        r
    }

    /// Counts a failed query of the ingest path.
    fn count_error<T>(&self, r: &Result<T>) {
        if let Some(cause) = r.as_ref().err().and_then(Error::cause) {
            self.metrics.clickhouse_error(&cause);
        }
    }

    async fn stored_indexes(&self, id: &BatchId) -> Result<HashSet<u32>> {
        let r = queries::batch_indexes(&self.db, &id.sensor_id, id.epoch, id.seq)
            .fetch_all::<u32>(&self.client)
            .await
            .map_err(Error::ch(
                "reading the stored events of a partly stored batch",
            ));
        self.count_error(&r);
        Ok(r?.into_iter().collect())
    }
}

/// Most sensor reports kept for the next INSERT while their INSERTs fail (beyond it the
/// oldest are dropped, and logged).
const MAX_PENDING_REPORTS: usize = 100_000;

/// The reports of batches whose events are stored, waiting for their INSERT.
///
/// A report INSERT that fails may still have been stored (the answer lost with a replica
/// that died, a timeout while the server committed). Its block is therefore sent again exactly
/// as it was, and alone, until it is stored: ClickHouse's insert deduplication drops a block
/// a replicated table already holds, which it cannot do if the retry carries more rows.
struct Reports {
    /// The block last sent and not known to be stored.
    block: Vec<ReportRow>,
    /// The rows that came since, for the next block.
    rows: Vec<ReportRow>,
    /// Rows not kept because [`MAX_PENDING_REPORTS`] were waiting.
    dropped: u64,
    /// When the last INSERT of reports was tried.
    last: Instant,
}

impl Reports {
    fn new() -> Self {
        Reports {
            block: Vec::new(),
            rows: Vec::new(),
            dropped: 0,
            last: Instant::now(),
        }
    }

    fn is_empty(&self) -> bool {
        self.block.is_empty() && self.rows.is_empty()
    }

    fn push(&mut self, row: ReportRow) {
        if self.block.len() + self.rows.len() < MAX_PENDING_REPORTS {
            self.rows.push(row);
        } else {
            self.dropped += 1;
        }
    }

    /// The block to send: the unstored one again, or else the rows that came since.
    fn next_block(&mut self) -> &[ReportRow] {
        if self.block.is_empty() {
            self.block = std::mem::take(&mut self.rows);
        }
        &self.block
    }

    /// The block from [`Reports::next_block`] is stored.
    fn stored(&mut self) {
        self.block.clear();
    }
}

/// The `sensor_reports` row of a batch.
fn report_row(data: &Enriched) -> ReportRow {
    let b = &data.batch;
    let s = &b.stats;
    ReportRow {
        sensor_id: b.id.sensor_id.clone(),
        epoch: b.id.epoch,
        batch_seq: b.id.seq,
        received: unix_now(),
        sealed_us: b.sealed_us,
        events: u32::try_from(b.events.len()).unwrap_or(u32::MAX),
        unknown_country: data.unknown,
        packets_captured: s.packets_captured,
        kernel_drops: s.kernel_drops,
        events_recorded: s.events_recorded,
        filtered: s.filtered,
        malformed: s.malformed,
        spool_bytes: s.spool_bytes,
        spool_dropped_events: s.spool_dropped_events,
    }
}

struct Writer {
    client: Client,
    max_rows: u64,
    max_bytes: u64,
    period: Duration,
    timeout: Duration,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

/// The outcome of ending an events INSERT.
fn ended(
    r: std::result::Result<clickhouse::inserter::Quantities, clickhouse::error::Error>,
) -> Result<()> {
    r.map(|_| ()).map_err(Error::ch("inserting events"))
}

fn unix_now() -> u32 {
    u32::try_from(time::now()).unwrap_or(u32::MAX)
}

impl Writer {
    fn events_inserter(&self) -> Inserter<EventRow<'static>> {
        self.client
            .inserter("scan_events")
            .with_max_rows(self.max_rows)
            .with_max_bytes(self.max_bytes)
            .with_period(Some(self.period))
            .with_timeouts(Some(self.timeout), Some(self.timeout))
    }

    /// One INSERT of every pending report; the rows stay pending if it fails.
    async fn insert_reports(
        &self,
        rows: &[ReportRow],
    ) -> std::result::Result<(), clickhouse::error::Error> {
        let mut insert = self
            .client
            .insert::<ReportRow>("sensor_reports")
            .await?
            .with_timeouts(Some(self.timeout), Some(self.timeout));
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    }

    /// Receives jobs and writes them; an INSERT ends when its limits are reached or when no
    /// job is waiting, and its jobs are answered then. After `stop`, takes no new job, drains
    /// the queue and ends the open INSERTs.
    async fn run(self, rx: SharedRx, mut stop: watch::Receiver<bool>) {
        let mut events = self.events_inserter();
        let mut reports = Reports::new();
        let mut open: Vec<(Job, u64)> = Vec::new();
        let mut started: Option<Instant> = None;
        let mut stopping = false;
        loop {
            let job = if !open.is_empty() {
                // Take another waiting batch into this INSERT, without waiting: if the queue
                // is empty or another (idle) writer is waiting on it, end the INSERT now.
                let next = match rx.try_lock() {
                    Ok(mut rx) => rx.try_recv().ok(),
                    Err(_) => None,
                };
                match next {
                    Some(j) => Some(j),
                    None => {
                        let r = events.force_commit().await;
                        self.finish(&mut open, &mut started, ended(r), &mut events, &mut reports);
                        self.flush_reports(&mut reports, false).await;
                        continue;
                    }
                }
            } else {
                let mut rx = rx.lock().await;
                if stopping || *stop.borrow() {
                    stopping = true;
                    rx.close();
                    rx.recv().await
                } else {
                    tokio::select! {
                        j = rx.recv() => j,
                        _ = stop.changed() => {
                            stopping = true;
                            continue;
                        }
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {
                            drop(rx);
                            self.flush_reports(&mut reports, false).await;
                            continue;
                        }
                    }
                }
            };
            let Some(job) = job else { break };
            let alone = job.alone;
            if alone && !open.is_empty() {
                let r = events.force_commit().await;
                self.finish(&mut open, &mut started, ended(r), &mut events, &mut reports);
            }
            started.get_or_insert_with(Instant::now);
            match self.write_job(&mut events, &job).await {
                Ok(n) => open.push((job, n)),
                Err(e) => {
                    // The open INSERT is aborted with everything written into it.
                    open.push((job, 0));
                    self.finish(&mut open, &mut started, Err(e), &mut events, &mut reports);
                    continue;
                }
            }
            if alone {
                let r = events.force_commit().await;
                self.finish(&mut open, &mut started, ended(r), &mut events, &mut reports);
                continue;
            }
            match events.commit().await {
                Ok(q) if q.transactions > 0 || q.rows > 0 => {
                    self.finish(&mut open, &mut started, Ok(()), &mut events, &mut reports);
                }
                Ok(_) => {}
                Err(e) => self.finish(
                    &mut open,
                    &mut started,
                    ended(Err(e)),
                    &mut events,
                    &mut reports,
                ),
            }
        }
        if !open.is_empty() {
            let r = events.force_commit().await;
            self.finish(&mut open, &mut started, ended(r), &mut events, &mut reports);
        }
        self.flush_reports(&mut reports, true).await;
        if let Err(e) = events.end().await {
            tracing::error!(error = %e, "Ending the events INSERT failed");
        }
        tracing::info!("Writer stopped");
    }

    /// Inserts the pending reports, at most once a second unless `force`: the block that
    /// failed last time first, unchanged, then the rows that came since.
    async fn flush_reports(&self, reports: &mut Reports, force: bool) {
        if reports.is_empty() || (!force && reports.last.elapsed() < Duration::from_secs(1)) {
            return;
        }
        reports.last = Instant::now();
        while !reports.is_empty() {
            let block = reports.next_block();
            match self.insert_reports(block).await {
                Ok(()) => reports.stored(),
                Err(e) => {
                    self.metrics.insert_errors.inc();
                    self.metrics.clickhouse_error(&Cause::of(&e));
                    tracing::error!(
                        error = %e, block = reports.block.len(), waiting = reports.rows.len(),
                        dropped = reports.dropped,
                        "Inserting sensor reports failed; the same block is sent again later"
                    );
                    return;
                }
            }
        }
    }

    /// Answers the jobs of the INSERT that just ended.
    fn finish(
        &self,
        open: &mut Vec<(Job, u64)>,
        started: &mut Option<Instant>,
        result: Result<()>,
        events: &mut Inserter<EventRow<'static>>,
        reports: &mut Reports,
    ) {
        if let Some(t) = started.take() {
            self.metrics
                .insert_seconds
                .observe(t.elapsed().as_secs_f64());
        }
        self.shared.healthy.store(result.is_ok(), Ordering::Relaxed);
        // The error, shared by the answers of every batch of the INSERT, and whether each
        // batch is to blame for it.
        let mut failed: Option<(Arc<Error>, bool)> = None;
        if let Err(e) = result {
            self.metrics.insert_errors.inc();
            let cause = e.cause();
            if let Some(c) = &cause {
                self.metrics.clickhouse_error(c);
            }
            let class = cause.as_ref().map_or(Class::Transient, |c| c.class);
            let category = cause.as_ref().map(|c| c.category);
            let public = cause.as_ref().map(Cause::public).unwrap_or_default();
            // A data error of an INSERT of several batches may be one batch's fault.
            let attributable = open.len() == 1 || category != Some(Category::Data);
            // If ClickHouse died during the INSERT, some of its parts may be stored: the
            // re-sent batches complete the raw rows, but the views' parts may be missing.
            let mut days: Vec<u32> = open
                .iter()
                .flat_map(|(j, _)| j.data.batch.events.iter().map(|e| day_of_us(e.ts_us)))
                .collect();
            days.sort_unstable();
            days.dedup();
            let code = cause.as_ref().and_then(|c| c.code);
            if class == Class::Transient {
                tracing::error!(
                    error = %e, class = class.name(), cause = %public, code, batches = open.len(), ?days,
                    "INSERT failed; its batches will be re-sent. If ClickHouse crashed, run \
                     `teiten-aggregator rebuild-rollups` for these days once they are over"
                );
            } else if attributable {
                tracing::error!(
                    error = %e, class = class.name(), cause = %public, code, batches = open.len(),
                    "INSERT refused by ClickHouse; its batches are refused and the sensors set \
                     them aside until an operator fixes the cause and re-delivers them"
                );
            } else {
                tracing::error!(
                    error = %e, class = class.name(), cause = %public, code, batches = open.len(),
                    "INSERT of several batches refused by ClickHouse; each is written alone \
                     when it comes again, to find the one at fault"
                );
            }
            *events = self.events_inserter();
            failed = Some((Arc::new(e), attributable));
        }
        for (job, n) in open.drain(..) {
            self.metrics.pending_events.dec_by(
                (job.data.batch.events.len() - job.skip.as_ref().map_or(0, |s| s.len())) as i64,
            );
            let answer = match &failed {
                None => {
                    self.shared.mark_committed(&job.data.batch.id);
                    reports.push(report_row(&job.data));
                    self.metrics.batches_stored.inc();
                    self.metrics.events_stored.inc_by(n);
                    for (i, w) in job.data.withheld.iter().enumerate() {
                        let skipped = job.skip.as_ref().is_some_and(|s| s.contains(&(i as u32)));
                        if *w != Withheld::No && !skipped {
                            self.metrics
                                .events_withheld
                                .get_or_create(&ReasonLabel { reason: w.name() })
                                .inc();
                        }
                    }
                    if job.skip.is_some() {
                        self.metrics.events_repaired.inc_by(n);
                    }
                    Ok(n)
                }
                Some((e, true)) => Err(StoreError::ClickHouse(e.clone())),
                Some((e, false)) => {
                    let id = &job.data.batch.id;
                    self.shared
                        .mark_alone((id.sensor_id.clone(), id.epoch, id.seq));
                    Err(StoreError::Unattributed(e.clone()))
                }
            };
            // The request may have timed out and gone; the batch is committed regardless.
            let _ = job.done.send(answer);
        }
    }

    async fn write_job(&self, events: &mut Inserter<EventRow<'static>>, job: &Job) -> Result<u64> {
        let b = &job.data.batch;
        let mut written = 0u64;
        for (i, (((e, country), withheld), asn)) in b
            .events
            .iter()
            .zip(&job.data.countries)
            .zip(&job.data.withheld)
            .zip(&job.data.asns)
            .enumerate()
        {
            let idx = i as u32;
            if job.skip.as_ref().is_some_and(|s| s.contains(&idx)) {
                continue;
            }
            let secs = e.ts_us.div_euclid(1_000_000);
            let row = EventRow {
                sensor_id: &b.id.sensor_id,
                epoch: b.id.epoch,
                batch_seq: b.id.seq,
                idx,
                ts: u32::try_from(secs).unwrap_or(u32::MAX),
                usec: e.ts_us.rem_euclid(1_000_000) as u32,
                proto: e.proto,
                src: address_bytes(e.src),
                dst: address_bytes(e.dst),
                sport: e.sport,
                dport: e.dport,
                tcp_flags: e.tcp_flags,
                ttl: e.ttl,
                ip_id: e.ip_id,
                ip_len: e.ip_len,
                tcp_seq: e.seq,
                window: e.window,
                class: e.class as u8 as i8,
                tags: e.tags.bits(),
                country: *country,
                withheld: *withheld as u8,
                src_asn: *asn,
            };
            events
                .write(&row)
                .await
                .map_err(Error::ch("writing events"))?;
            written += 1;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_rows_have_the_store_columns() {
        // The row type and the store's column list (the sample rows) agree.
        assert_eq!(
            <ReportRow as clickhouse::Row>::COLUMN_NAMES.join(", "),
            teiten_store::queries::SENSOR_REPORTS_INSERT_COLUMNS
        );
    }

    fn report(seq: u64) -> ReportRow {
        ReportRow {
            sensor_id: "s".into(),
            epoch: 1,
            batch_seq: seq,
            received: 0,
            sealed_us: 0,
            events: 0,
            unknown_country: 0,
            packets_captured: 0,
            kernel_drops: 0,
            events_recorded: 0,
            filtered: 0,
            malformed: 0,
            spool_bytes: 0,
            spool_dropped_events: 0,
        }
    }

    fn seqs(rows: &[ReportRow]) -> Vec<u64> {
        rows.iter().map(|r| r.batch_seq).collect()
    }

    #[test]
    fn a_failed_report_block_is_sent_again_unchanged() {
        let mut r = Reports::new();
        r.push(report(1));
        r.push(report(2));
        assert_eq!(seqs(r.next_block()), [1, 2]);
        // The INSERT failed; a report comes meanwhile: the retry is the same block.
        r.push(report(3));
        assert_eq!(seqs(r.next_block()), [1, 2]);
        r.stored();
        assert!(!r.is_empty());
        assert_eq!(seqs(r.next_block()), [3]);
        r.stored();
        assert!(r.is_empty());
    }

    #[test]
    fn pending_reports_are_bounded() {
        let mut r = Reports::new();
        for seq in 0..MAX_PENDING_REPORTS as u64 - 1 {
            r.push(report(seq));
        }
        assert_eq!(r.next_block().len(), MAX_PENDING_REPORTS - 1);
        r.push(report(u64::MAX - 1));
        r.push(report(u64::MAX));
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.dropped, 1);
    }
}
