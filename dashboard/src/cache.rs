//! The brief per-query cache of graph data, rendered images and the sensor list, on top of
//! [`moka`]: entries live for the configured TTL (`cache.ttl_secs`), at most `cache.max_entries`
//! of them, and concurrent misses of one key share one fetch, so a burst of identical requests
//! costs ClickHouse one query.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

/// Longest cache key, in bytes: longer keys are neither cached nor shared (fetched directly),
/// so that no request can make the cache hold large keys.
pub const MAX_KEY_BYTES: usize = 1024;

/// An error a failed fetch gives every request that waited for it. The first request gets the
/// error itself; the others, which share it, get [`Shared::from_shared`].
pub trait Shared: Sized {
    /// This error, from the copy shared by the requests that waited for one fetch.
    fn from_shared(shared: Arc<Self>) -> Self;
}

/// A TTL cache of `Arc<V>` by string key, single-flight on misses, counting its hits and
/// misses (`/metrics`).
pub struct Cache<V> {
    /// With a zero TTL its capacity is zero: nothing is kept, but concurrent misses of one
    /// key still wait for one fetch.
    entries: moka::future::Cache<String, Arc<V>>,
    hits: Counter,
    misses: Counter,
}

impl<V> std::fmt::Debug for Cache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.entries.entry_count())
            .field("hits", &self.hits.get())
            .field("misses", &self.misses.get())
            .finish()
    }
}

impl<V: Send + Sync + 'static> Cache<V> {
    /// A cache keeping entries for `ttl` (zero: none are kept, but concurrent misses of one
    /// key still share a fetch), at most `max` of them.
    pub fn new(ttl: Duration, max: usize) -> Cache<V> {
        let max = if ttl.is_zero() { 0 } else { max.max(1) as u64 };
        Cache {
            entries: moka::future::Cache::builder()
                .max_capacity(max)
                .time_to_live(ttl.max(Duration::from_millis(1)))
                .build(),
            hits: Counter::default(),
            misses: Counter::default(),
        }
    }

    /// The same cache, counting its hits and misses of [`Cache::get_or_fetch`] in these
    /// counters.
    pub fn counted(mut self, hits: Counter, misses: Counter) -> Cache<V> {
        self.hits = hits;
        self.misses = misses;
        self
    }

    /// The fresh entry of `key`, or the value of `fetch`, stored. A miss while another request
    /// fetches the same key waits for that fetch and takes its value or its error; a failed
    /// fetch is not stored, so the next request tries again. A request served by another's
    /// fetch counts as a hit.
    pub async fn get_or_fetch<E: Shared + Send + Sync + 'static>(
        &self,
        key: String,
        fetch: impl std::future::Future<Output = Result<V, E>>,
    ) -> Result<Arc<V>, E> {
        if key.len() > MAX_KEY_BYTES {
            self.misses.inc();
            return fetch.await.map(Arc::new);
        }
        let entry = self
            .entries
            .entry(key)
            .or_try_insert_with(async { fetch.await.map(Arc::new) })
            .await
            .map_err(E::from_shared)?;
        if entry.is_fresh() {
            self.misses.inc();
        } else {
            self.hits.inc();
        }
        Ok(entry.into_value())
    }

    /// A fresh entry, if any.
    pub async fn get(&self, key: &str) -> Option<Arc<V>> {
        self.entries.get(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, PartialEq)]
    struct Down(&'static str);

    impl Shared for Down {
        fn from_shared(shared: Arc<Down>) -> Down {
            Down(shared.0)
        }
    }

    async fn fetch(c: &Cache<u32>, key: &str, v: u32) -> Arc<u32> {
        c.get_or_fetch(key.into(), async { Ok::<_, Down>(v) })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn entries_expire_and_are_bounded() {
        let c: Cache<u32> = Cache::new(Duration::from_millis(100), 2);
        assert_eq!(*fetch(&c, "a", 1).await, 1);
        assert_eq!(*fetch(&c, "a", 2).await, 1, "cached");
        for k in 0..50 {
            fetch(&c, &format!("k{k}"), k).await;
        }
        c.entries.run_pending_tasks().await;
        assert!(c.entries.entry_count() <= 2, "bounded");
        fetch(&c, "z", 9).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(c.get("z").await.is_none(), "expired");
        assert_eq!(*fetch(&c, "z", 10).await, 10, "fetched anew");
        let off: Cache<u32> = Cache::new(Duration::ZERO, 2);
        fetch(&off, "a", 1).await;
        off.entries.run_pending_tasks().await;
        assert_eq!(*fetch(&off, "a", 2).await, 2, "zero TTL keeps nothing");
    }

    /// Many concurrent misses of one key: one fetch, every request gets its value; a failed
    /// fetch is not kept; over-long keys are not cached.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn misses_are_single_flight() {
        for ttl in [Duration::from_secs(60), Duration::ZERO] {
            let (hits, misses) = (Counter::default(), Counter::default());
            let c: Arc<Cache<u32>> =
                Arc::new(Cache::new(ttl, 10).counted(hits.clone(), misses.clone()));
            let fetches = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..50 {
                let (c, fetches) = (c.clone(), fetches.clone());
                tasks.push(tokio::spawn(async move {
                    c.get_or_fetch("k".into(), async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Ok::<u32, Down>(7)
                    })
                    .await
                }));
            }
            for t in tasks {
                assert_eq!(*t.await.unwrap().unwrap(), 7);
            }
            assert_eq!(fetches.load(Ordering::SeqCst), 1, "ttl {ttl:?}");
            assert_eq!((misses.get(), hits.get()), (1, 49), "ttl {ttl:?}");
        }
        let c: Cache<u32> = Cache::new(Duration::from_secs(60), 10);
        let e = c
            .get_or_fetch("k".into(), async { Err::<u32, _>(Down("down")) })
            .await;
        assert_eq!(e.unwrap_err(), Down("down"));
        assert_eq!(*fetch(&c, "k", 1).await, 1, "the failure was not kept");
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        fetch(&c, &long, 2).await;
        assert!(
            c.get(&long).await.is_none(),
            "over-long keys are not cached"
        );
    }
}
