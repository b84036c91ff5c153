//! Memory of the in-memory rate store, measured with a heap profiler (dhat)
//! as the global allocator of this test binary.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tollgate::clock::ManualClock;
use tollgate::throttle::{InMemoryRateStore, Limit, Rate, RateKey};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const KEYS: u32 = 1_000_000;

#[test]
fn a_million_one_off_keys_are_evicted_once_idle() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let clock = ManualClock::at_unix_secs(1_000);
    let store = InMemoryRateStore::with_max_keys(clock.clone(), 2 * KEYS as usize);
    let rate = Rate::new(10.0, 20);
    let baseline = dhat::HeapStats::get().curr_bytes;

    // A flood of one-off client addresses, all at one instant.
    for i in 0..KEYS {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i));
        let out = store.check_limits(&[Limit {
            key: RateKey::Client(ip),
            rate,
        }]);
        assert!(out.admitted);
    }
    assert_eq!(store.len(), KEYS as usize);
    let peak = dhat::HeapStats::get().curr_bytes - baseline;
    let per_key = peak as f64 / f64::from(KEYS);
    println!("tracked {KEYS} keys in {peak} bytes: {per_key:.1} bytes per key");
    assert!(per_key < 100.0, "{per_key:.1} bytes per key");

    // Idle long enough for every bucket to be full again: the keys are
    // equivalent to absent, and a sweep gives their memory back.
    clock.advance(Duration::from_secs(3));
    let evicted = store.sweep();
    assert_eq!(evicted, KEYS as usize);
    assert_eq!(store.len(), 0);
    let after = dhat::HeapStats::get().curr_bytes - baseline;
    println!("after the sweep: {after} bytes");
    assert!(after < 64 * 1024, "{after} bytes still held after eviction");
}

#[test]
fn touching_a_shard_later_sweeps_it_without_an_explicit_call() {
    let clock = ManualClock::at_unix_secs(1_000);
    let store = InMemoryRateStore::new(clock.clone());
    let rate = Rate::new(10.0, 20);
    for i in 0..100_000u32 {
        store.check_limits(&[Limit {
            key: RateKey::Client(IpAddr::V4(Ipv4Addr::from(i))),
            rate,
        }]);
    }
    assert_eq!(store.len(), 100_000);
    clock.advance(Duration::from_secs(5));
    // Ordinary traffic on a few keys touches every shard over time.
    for i in 0..2_000u32 {
        store.check_limits(&[Limit {
            key: RateKey::Client(IpAddr::V4(Ipv4Addr::from(i))),
            rate,
        }]);
    }
    assert!(store.len() <= 2_000, "{} keys still tracked", store.len());
}
