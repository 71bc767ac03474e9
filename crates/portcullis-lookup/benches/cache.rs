//! The cache behind every lookup, against moka (the first choice), in one criterion group (`cache`):
//!
//! - `hit/expiring_cache`: [`ExpiringCache::get`] of a present entry, keys spread over 50 000 entries;
//! - `hit/moka_future`, `hit/moka_sync`: the same with moka 0.12's caches, built as `ExpiringCache` was
//!   (capacity, per-entry expiry);
//! - `insert/*`: storing a new entry into a full cache.
//!
//! Run with `cargo bench -p portcullis-lookup --bench cache`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_lookup::ExpiringCache;

const ENTRIES: u64 = 50_000;
const CAPACITY: u64 = 100_000;
const TTL: Duration = Duration::from_secs(3600);

/// What the caches hold in the stack: a shared value (a principal, a context), cloned on every hit.
type Value = Arc<String>;

struct Expiry;

impl moka::Expiry<u128, Value> for Expiry {
    fn expire_after_create(&self, _: &u128, _: &Value, _: Instant) -> Option<Duration> {
        Some(TTL)
    }
}

/// Spread keys, as distinct callers' credentials are: a stride through the populated range.
fn next(key: &mut u128) -> u128 {
    *key = (*key + 7919) % u128::from(ENTRIES);
    *key
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let value: Value = Arc::new("principal".to_owned());

    let ours: ExpiringCache<u128, Value> = ExpiringCache::new(CAPACITY);
    let moka_future: moka::future::Cache<u128, Value> = moka::future::Cache::builder()
        .max_capacity(CAPACITY)
        .expire_after(Expiry)
        .build();
    let moka_sync: moka::sync::Cache<u128, Value> = moka::sync::Cache::builder()
        .max_capacity(CAPACITY)
        .expire_after(Expiry)
        .build();
    for key in 0..u128::from(ENTRIES) {
        ours.insert(key, Arc::clone(&value), TTL);
        rt.block_on(moka_future.insert(key, Arc::clone(&value)));
        moka_sync.insert(key, Arc::clone(&value));
    }
    rt.block_on(moka_future.run_pending_tasks());
    moka_sync.run_pending_tasks();

    let mut group = c.benchmark_group("cache");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    let mut key = 0;
    group.bench_function("hit/expiring_cache", |b| {
        b.iter(|| {
            let found = ours.get(&next(&mut key));
            assert!(found.is_some());
            found
        })
    });
    group.bench_function("hit/moka_future", |b| {
        b.to_async(&rt).iter(|| {
            let key = next(&mut key);
            let cache = &moka_future;
            async move {
                let found = cache.get(&key).await;
                assert!(found.is_some());
                found
            }
        })
    });
    group.bench_function("hit/moka_sync", |b| {
        b.iter(|| {
            let found = moka_sync.get(&next(&mut key));
            assert!(found.is_some());
            found
        })
    });

    let mut fresh = u128::from(ENTRIES);
    group.bench_function("insert/expiring_cache", |b| {
        b.iter(|| {
            fresh += 1;
            ours.insert(black_box(fresh), Arc::clone(&value), TTL);
        })
    });
    group.bench_function("insert/moka_sync", |b| {
        b.iter(|| {
            fresh += 1;
            moka_sync.insert(black_box(fresh), Arc::clone(&value));
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
