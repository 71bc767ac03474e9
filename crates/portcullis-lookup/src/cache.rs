//! A bounded cache with a time to live per entry and single-flight loading.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use quick_cache::Equivalent;
use tokio::sync::OnceCell;

/// A bounded cache whose entries each expire after their own time to live.
///
/// Storage is a [`quick_cache`](https://docs.rs/quick_cache) cache (sharded, lock-striped, CLOCK-Pro eviction):
/// a hit is one shard read and one clock read, a few tens of nanoseconds, which matters because every request
/// passes through several of these caches. (moka was measured first: 0.3 to 0.9 us per hit, most of it in its
/// per-read bookkeeping; see BENCHMARKS.md.)
///
/// # Guarantees
/// - At most `capacity` entries are kept; beyond that the least useful are evicted (CLOCK-Pro keeps entries that
///   are read again over entries seen once), so a flood of distinct keys can neither grow memory nor push out
///   the entries in use.
/// - An entry is never returned after its time to live, whether or not eviction has run: every read checks it.
/// - [`get_or_load`](Self::get_or_load) runs one load per key at a time: concurrent callers for a missing key
///   wait for the same load and share its result, success or failure. A load whose callers all went away (a
///   client hung up) is abandoned and leaves nothing behind.
/// - A failed load is not cached: the next call after it loads again.
pub struct ExpiringCache<K, V> {
    shared: Arc<Shared<K, V>>,
}

struct Shared<K, V> {
    capacity: u64,
    entries: quick_cache::sync::Cache<K, Entry<V>>,
    /// Loads in progress, one per key. Bounded by the number of callers waiting, and emptied as they finish.
    loading: Mutex<HashMap<K, Arc<Load<V>>>>,
}

/// The outcome of one load, shared by its waiters: the value, or `None` when it failed.
type Load<V> = OnceCell<Option<V>>;

#[derive(Clone)]
struct Entry<V> {
    value: V,
    expires: Instant,
}

/// A load failed: this caller's own or the one it waited for. What went wrong is for the load to report (log)
/// itself; callers only learn that there is no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the value could not be loaded")]
#[non_exhaustive]
pub struct LoadFailed;

impl<K, V> ExpiringCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache holding at most `capacity` entries (at least one).
    #[must_use]
    pub fn new(capacity: u64) -> Self {
        let capacity = capacity.clamp(1, 1 << 40);
        let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
        let shards = shards_for(capacity, parallelism);
        // Each of the `shards` shards holds `weight / shards` rounded up; with `weight` as below that is
        // `capacity / shards` rounded down, so the shards together never hold more than `capacity`.
        let weight = capacity - (shards - 1);
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(usize::try_from(capacity).unwrap_or(usize::MAX))
            .weight_capacity(weight)
            .shards(usize::try_from(shards).unwrap_or(1))
            .build()
            .expect("the options are complete");
        Self {
            shared: Arc::new(Shared {
                capacity,
                entries: quick_cache::sync::Cache::with_options(
                    options,
                    quick_cache::UnitWeighter,
                    quick_cache::DefaultHashBuilder::default(),
                    quick_cache::sync::DefaultLifecycle::default(),
                ),
                loading: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The cached value, if present and not expired. `key` may be a borrowed form of the key type (see
    /// [`Equivalent`]): a lookup need not build an owned key.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.get_with_ttl(key).map(|(value, _)| value)
    }

    /// The cached value and how long it has left, if present and not expired; like [`get`](Self::get).
    pub fn get_with_ttl<Q>(&self, key: &Q) -> Option<(V, Duration)>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let entry = self.shared.entries.get(key)?;
        let now = Instant::now();
        if entry.expires > now {
            return Some((entry.value, entry.expires - now));
        }
        // Only the stale entry goes: one stored meanwhile by a concurrent load stays.
        self.shared
            .entries
            .remove_if(key, |entry| entry.expires <= now);
        None
    }

    /// Stores a value for `ttl`.
    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        // Zero stores nothing (and drops what was there); a TTL too large for the clock is as good as a century.
        if ttl.is_zero() {
            self.shared.entries.remove(&key);
            return;
        }
        let now = Instant::now();
        let expires = now
            .checked_add(ttl)
            .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
            .unwrap_or(now);
        self.shared.entries.insert(key, Entry { value, expires });
    }

    /// Stores a value for `ttl` only if an entry for `key` is still there; whether it was. Unlike
    /// [`insert`](Self::insert), this never brings back an entry that another caller invalidated meanwhile.
    pub fn renew(&self, key: K, value: V, ttl: Duration) -> bool {
        let Some(expires) = Instant::now().checked_add(ttl) else {
            return false;
        };
        !ttl.is_zero()
            && self
                .shared
                .entries
                .replace(key, Entry { value, expires }, false)
                .is_ok()
    }

    /// The cached value, or the result of `load`, which returns the value and how long to keep it.
    ///
    /// Concurrent callers for the same missing key share one load: the first one's `load` runs, the others wait
    /// for its outcome (if the first caller goes away mid-load, a waiting one takes over with its own `load`).
    ///
    /// # Errors
    /// [`LoadFailed`] when the load failed, for every caller that waited for it. Failures are not cached.
    pub async fn get_or_load<F, E>(&self, key: K, load: F) -> Result<V, LoadFailed>
    where
        F: Future<Output = Result<(V, Duration), E>>,
    {
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        let waiting = Waiting::join(&self.shared, key);
        let outcome = waiting
            .load()
            .get_or_init(|| async {
                // A load that finished between the first look and joining has already stored its value.
                if let Some(value) = self.get(&waiting.key) {
                    return Some(value);
                }
                match load.await {
                    Ok((value, ttl)) => {
                        self.insert(waiting.key.clone(), value.clone(), ttl);
                        Some(value)
                    }
                    Err(_) => None,
                }
            })
            .await
            .clone();
        outcome.ok_or(LoadFailed)
    }

    /// Removes an entry.
    pub fn invalidate(&self, key: &K) {
        self.shared.entries.remove(key);
    }

    /// The number of entries held (expired ones included until they are read or evicted). For tests and metrics.
    #[must_use]
    pub fn entry_count(&self) -> u64 {
        self.shared.entries.len() as u64
    }

    /// Loads in progress. For tests.
    #[doc(hidden)]
    #[must_use]
    pub fn loads_in_progress(&self) -> usize {
        lock(&self.shared.loading).len()
    }
}

/// One caller's membership of a key's load. Dropping it (finished or cancelled) removes the load from the map
/// once it has an outcome or nobody else waits for it, so that abandoned loads never pile up.
struct Waiting<'a, K: Hash + Eq, V> {
    shared: &'a Shared<K, V>,
    key: K,
    /// Always `Some` until dropped: the reference is given up under the map's lock (see `drop`).
    load: Option<Arc<Load<V>>>,
}

impl<'a, K: Hash + Eq + Clone, V> Waiting<'a, K, V> {
    fn join(shared: &'a Shared<K, V>, key: K) -> Self {
        let mut loading = lock(&shared.loading);
        let load = loading.entry(key.clone()).or_default();
        // A load that failed before this caller came is not this caller's answer: failures are not cached.
        if matches!(load.get(), Some(None)) {
            *load = Arc::default();
        }
        let load = Some(Arc::clone(load));
        Self { shared, key, load }
    }

    fn load(&self) -> &Load<V> {
        self.load.as_deref().expect("present until dropped")
    }
}

impl<K: Hash + Eq, V> Drop for Waiting<'_, K, V> {
    fn drop(&mut self) {
        let mut loading = lock(&self.shared.loading);
        // Our reference goes under the lock, where every waiter joins and leaves, so that the last one to leave
        // sees only the map's reference.
        let Some(ours) = self.load.take() else {
            return;
        };
        let Some(current) = loading.get(&self.key) else {
            return;
        };
        if !Arc::ptr_eq(current, &ours) {
            return;
        }
        drop(ours);
        if current.initialized() || Arc::strong_count(current) == 1 {
            loading.remove(&self.key);
        }
    }
}

/// The shard count for a cache of `capacity` entries: quick_cache's default (four per core, a power of two), but
/// never so many that a shard would hold fewer than 32 entries, and never more shards than entries.
fn shards_for(capacity: u64, parallelism: usize) -> u64 {
    let mut shards = (parallelism.max(1) as u64)
        .saturating_mul(4)
        .next_power_of_two();
    while shards > 1 && (capacity / shards < 32) {
        shards /= 2;
    }
    shards
}

/// The map holds no invariant a panicking holder could break (entries are only added and removed whole).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K, V> Clone for ExpiringCache<K, V> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K, V> fmt::Debug for ExpiringCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpiringCache")
            .field("capacity", &self.shared.capacity)
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
            assert_eq!(task.await.expect("join"), Ok(7));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(cache.loads_in_progress(), 0);
    }

    #[tokio::test]
    async fn a_failure_is_shared_by_the_waiters_and_not_cached() {
        let cache: ExpiringCache<u32, u32> = ExpiringCache::new(10);
        let loads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let cache = cache.clone();
            let loads = Arc::clone(&loads);
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load(1, async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err::<(u32, Duration), _>(std::io::Error::other("down"))
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("join"), Err(LoadFailed));
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "waiters share one failed load"
        );
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.loads_in_progress(), 0);
        let loaded = cache
            .get_or_load(1, async {
                Ok::<_, std::io::Error>((3, Duration::from_secs(60)))
            })
            .await;
        assert_eq!(loaded, Ok(3));
    }

    #[tokio::test]
    async fn an_abandoned_load_leaves_nothing_behind_and_a_waiter_takes_over() {
        let cache: ExpiringCache<u32, u32> = ExpiringCache::new(10);
        // Alone, then cancelled: the map is empty again.
        let alone = cache.get_or_load(1, async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, std::io::Error>((1, Duration::from_secs(60)))
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(20), alone)
                .await
                .is_err()
        );
        assert_eq!(cache.loads_in_progress(), 0);

        // First caller cancelled while a second waits: the second runs its own load.
        let first = tokio::spawn({
            let cache = cache.clone();
            async move {
                cache
                    .get_or_load(2, async {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        Ok::<_, std::io::Error>((1, Duration::from_secs(60)))
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = tokio::spawn({
            let cache = cache.clone();
            async move {
                cache
                    .get_or_load(2, async {
                        Ok::<_, std::io::Error>((22, Duration::from_secs(60)))
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.abort();
        assert_eq!(second.await.expect("join"), Ok(22));
        assert_eq!(cache.get(&2), Some(22));
        assert_eq!(cache.loads_in_progress(), 0);
    }

    #[tokio::test]
    async fn entries_expire_after_their_own_ttl() {
        let cache: ExpiringCache<u32, u32> = ExpiringCache::new(10);
        cache.insert(1, 1, Duration::from_millis(30));
        cache.insert(2, 2, Duration::from_secs(60));
        cache.insert(3, 3, Duration::ZERO);
        cache.insert(4, 4, Duration::MAX);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&2), Some(2));
        assert_eq!(cache.get(&3), None);
        assert_eq!(cache.get(&4), Some(4));
        assert!(cache.renew(2, 22, Duration::from_secs(60)), "present");
        assert!(
            !cache.renew(1, 11, Duration::from_secs(60)),
            "expired and dropped"
        );
        cache.invalidate(&4);
        assert!(!cache.renew(4, 44, Duration::from_secs(60)), "invalidated");
        assert_eq!(
            cache.get(&4),
            None,
            "an invalidated entry is not brought back"
        );
        let (value, left) = cache.get_with_ttl(&2).expect("present");
        assert_eq!(value, 22);
        assert!(
            left <= Duration::from_secs(60) && left > Duration::from_secs(50),
            "{left:?}"
        );
        assert_eq!(cache.get_with_ttl(&1), None);
        // The expired entry was dropped when it was read, and 4 was invalidated.
        assert_eq!(cache.entry_count(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_cancelled_together_leave_nothing_behind() {
        let cache: ExpiringCache<u32, u32> = ExpiringCache::new(1000);
        let mut tasks = Vec::new();
        for key in 0..200 {
            for _ in 0..4 {
                let cache = cache.clone();
                tasks.push(tokio::spawn(async move {
                    cache
                        .get_or_load(key, async {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            Ok::<_, std::io::Error>((1, Duration::from_secs(60)))
                        })
                        .await
                }));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(cache.loads_in_progress(), 200);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            assert!(task.await.is_err_and(|err| err.is_cancelled()));
        }
        assert_eq!(cache.loads_in_progress(), 0);
    }

    #[tokio::test]
    async fn a_failure_finished_before_a_caller_came_is_not_its_answer() {
        let cache: ExpiringCache<u32, u32> = ExpiringCache::new(10);
        // A failed load still in the map (its last waiter not yet gone): a newcomer loads for itself.
        let failed: Arc<Load<u32>> = Arc::default();
        failed.set(None).expect("fresh cell");
        lock(&cache.shared.loading).insert(1, Arc::clone(&failed));
        let loaded = cache
            .get_or_load(1, async {
                Ok::<_, std::io::Error>((5, Duration::from_secs(60)))
            })
            .await;
        assert_eq!(loaded, Ok(5));
        assert_eq!(cache.get(&1), Some(5));
    }

    #[test]
    fn shards_never_make_the_cache_hold_more_than_its_capacity() {
        for parallelism in [1, 2, 3, 4, 6, 8, 16, 64, 256] {
            for capacity in [1, 2, 31, 32, 63, 64, 100, 1000, 1001, 4097, 10_000, 100_000] {
                let shards = shards_for(capacity, parallelism);
                assert!(shards.is_power_of_two());
                assert!(
                    shards == 1 || capacity / shards >= 32,
                    "{capacity}/{parallelism}"
                );
                // What quick_cache gives each shard, times the shards.
                let weight = capacity - (shards - 1);
                let held = shards * weight.div_ceil(shards);
                assert!(held <= capacity, "{capacity}/{parallelism}: {held}");
                assert!(
                    held + shards > capacity,
                    "{capacity}/{parallelism}: {held}, too small"
                );
            }
        }
    }

    #[test]
    fn capacity_bounds_the_number_of_entries() {
        for capacity in [1, 10, 100, 1000, 1001, 4097] {
            let cache: ExpiringCache<u32, u32> = ExpiringCache::new(capacity);
            for i in 0..20_000 {
                cache.insert(i, i, Duration::from_secs(60));
            }
            assert!(
                cache.entry_count() <= capacity,
                "capacity {capacity}: {} entries",
                cache.entry_count()
            );
        }
    }

    #[test]
    fn entries_read_again_survive_a_flood_of_new_keys() {
        let cache: ExpiringCache<u32, u32> = ExpiringCache::new(1000);
        for hot in 0..10 {
            cache.insert(hot, hot, Duration::from_secs(60));
        }
        for i in 10..200_000 {
            if i % 50 == 0 {
                for hot in 0..10 {
                    assert_eq!(cache.get(&hot), Some(hot), "hot entry {hot} at {i}");
                }
            }
            cache.insert(i, i, Duration::from_secs(60));
        }
    }
}
