//! The process's own families: CPU time, resident memory and open file
//! descriptors from `/proc/self`, and the heap in use as `crate::memory`
//! counts it.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

use super::encode::gauge;

/// `process_cpu_seconds`, `process_resident_memory_bytes`, the two heap
/// gauges and `process_open_fds`; a `/proc` file that cannot be read leaves
/// its families out rather than exporting a 0.
pub(super) fn process_metrics(enc: &mut DescriptorEncoder) -> std::fmt::Result {
    // /proc/self/stat fields 14,15 (utime, stime, in clock ticks), 24 (rss pages).
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        if let Some(rest) = stat.rsplit(')').next() {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // rest starts at field 3 (state): field n is f[n - 3].
            let ticks = 100.0; // sysconf(_SC_CLK_TCK) on Linux
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let cpu = (num(14 - 3) + num(15 - 3)) as f64 / ticks;
            ConstCounter::new(cpu).encode(enc.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?)?;
            let page = 4096i64;
            gauge(
                enc,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                num(24 - 3) as i64 * page,
            )?;
        }
    }
    let heap = crate::memory::heap_in_use();
    gauge(
        enc,
        "vhub_heap_in_use_bytes",
        "Bytes allocated and not freed (Rust's heap and OpenSSL's): unlike RSS, not inflated by free memory the allocators keep for reuse.",
        heap.total() as i64,
    )?;
    gauge(
        enc,
        "vhub_heap_in_use_libc_bytes",
        "The part of vhub_heap_in_use_bytes allocated through the C library's malloc (OpenSSL).",
        heap.libc as i64,
    )?;
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            enc,
            "process_open_fds",
            "Number of open file descriptors.",
            dir.count() as i64,
        )?;
    }
    Ok(())
}
