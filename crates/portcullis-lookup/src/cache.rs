//! A bounded cache with a time to live per entry and single-flight loading.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

/// A bounded cache whose entries each expire after their own time to live.
///
/// # Guarantees
/// - At most `capacity` entries are kept; beyond that the least useful are evicted (moka's TinyLFU), so a flood
///   of distinct keys cannot grow memory.
/// - [`get_or_load`](Self::get_or_load) runs one load per key at a time: concurrent callers for a missing key
///   wait for the same load and share its result.
/// - A failed load is returned to every waiting caller and is not cached; the next call loads again.
pub struct ExpiringCache<K, V> {
    inner: Cache<K, Entry<V>>,
}

#[derive(Clone)]
struct Entry<V> {
    value: V,
    ttl: Duration,
}

struct PerEntryTtl;

impl<K, V> Expiry<K, Entry<V>> for PerEntryTtl {
    fn expire_after_create(&self, _key: &K, entry: &Entry<V>, _now: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &K,
        entry: &Entry<V>,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

impl<K, V> ExpiringCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache holding at most `capacity` entries.
    #[must_use]
    pub fn new(capacity: u64) -> Self {
        Self {
            inner: Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntryTtl)
                .build(),
        }
    }

    /// The cached value, if present and not expired.
    pub async fn get(&self, key: &K) -> Option<V> {
        self.inner.get(key).await.map(|entry| entry.value)
    }

    /// Stores a value for `ttl`.
    pub async fn insert(&self, key: K, value: V, ttl: Duration) {
        self.inner.insert(key, Entry { value, ttl }).await;
    }

    /// The cached value, or the result of `load`, which returns the value and how long to keep it.
    ///
    /// # Errors
    /// The load's error, shared by every caller that waited for it. Errors are not cached.
    pub async fn get_or_load<F, E>(&self, key: K, load: F) -> Result<V, Arc<E>>
    where
        F: Future<Output = Result<(V, Duration), E>>,
        E: Send + Sync + 'static,
    {
        self.inner
            .try_get_with(key, async move {
                load.await.map(|(value, ttl)| Entry { value, ttl })
            })
            .await
            .map(|entry| entry.value)
    }

    /// Removes an entry.
    pub async fn invalidate(&self, key: &K) {
        self.inner.invalidate(key).await;
    }

    /// The number of entries, after pending evictions have run. For tests and metrics.
    pub async fn entry_count(&self) -> u64 {
        self.inner.run_pending_tasks().await;
        self.inner.entry_count()
    }
}

impl<K, V> Clone for ExpiringCache<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> fmt::Debug for ExpiringCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpiringCache")
            .field("capacity", &self.inner.policy().max_capacity())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_misses_load_once() {
        let cache: ExpiringCache<u32, u32> = ExpiringCache::new(10);
        let loads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let cache = cache.clone();
            let loads = Arc::clone(&loads);
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load(1, async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, std::io::Error>((7, Duration::from_secs(60)))
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("join").expect("loaded"), 7);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let cache: ExpiringCache<u32, u32> = ExpiringCache::new(10);
        let failed = cache
            .get_or_load(1, async {
                Err::<(u32, Duration), _>(std::io::Error::other("down"))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(cache.get(&1).await, None);
        let loaded = cache
            .get_or_load(1, async {
                Ok::<_, std::io::Error>((3, Duration::from_secs(60)))
            })
            .await;
        assert_eq!(loaded.ok(), Some(3));
    }

    #[tokio::test]
    async fn entries_expire_after_their_own_ttl() {
        let cache: ExpiringCache<u32, u32> = ExpiringCache::new(10);
        cache.insert(1, 1, Duration::from_millis(30)).await;
        cache.insert(2, 2, Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(cache.get(&1).await, None);
        assert_eq!(cache.get(&2).await, Some(2));
    }

    #[tokio::test]
    async fn capacity_bounds_the_number_of_entries() {
        let cache: ExpiringCache<u32, u32> = ExpiringCache::new(100);
        for i in 0..10_000 {
            cache.insert(i, i, Duration::from_secs(60)).await;
        }
        assert!(cache.entry_count().await <= 100);
    }
}
