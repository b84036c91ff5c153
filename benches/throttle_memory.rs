//! Bytes per tracked key of the in-memory rate store, measured with a heap
//! profiler (dhat) as the global allocator. `cargo bench --bench throttle_memory`

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tollgate::clock::ManualClock;
use tollgate::throttle::{InMemoryRateStore, Limit, Rate, RateKey};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    println!("keys        heap bytes   bytes/key   after idle sweep");
    for keys in [10_000u32, 100_000, 1_000_000] {
        let clock = ManualClock::at_unix_secs(1_000);
        let store = InMemoryRateStore::with_max_keys(clock.clone(), keys as usize * 2);
        let before = dhat::HeapStats::get().curr_bytes;
        for i in 0..keys {
            let key = RateKey::Client(IpAddr::V4(Ipv4Addr::from(i)));
            store.check_limits(&[Limit {
                key,
                rate: Rate::new(10.0, 20),
            }]);
        }
        let used = dhat::HeapStats::get().curr_bytes - before;
        clock.advance(Duration::from_secs(10));
        store.sweep();
        let after = dhat::HeapStats::get().curr_bytes - before;
        println!(
            "{keys:<11} {used:<12} {:<11.1} {after}",
            used as f64 / f64::from(keys)
        );
    }
}
