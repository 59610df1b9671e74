//! The hub's memory, seen from inside: how much is in use (not what the
//! allocators keep cached) and giving free memory back to the system.
//!
//! Two allocators live in the process: mimalloc for Rust (the global
//! allocator of the `vhub` binary, wrapped in [`Counting`]) and glibc's
//! malloc for OpenSSL. Both keep freed memory for reuse, so RSS stays near
//! its peak after a load spike and cannot tell a leak from a cache; the
//! count of bytes in use can. [`give_back_free_memory`] runs from each
//! shard's housekeeping after sessions end or buffers are freed.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes allocated through [`Counting`] and not yet freed.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// mimalloc, counting the bytes in use. One relaxed add per allocation and
/// per free: the hub allocates per session and per batch, not per frame,
/// so this is off the hot path.
pub struct Counting(mimalloc::MiMalloc);

impl Counting {
    pub const fn new() -> Self {
        Counting(mimalloc::MiMalloc)
    }
}

impl Default for Counting {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call is forwarded to mimalloc with the same arguments; the
// counter is only arithmetic on sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { self.0.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Bytes in use, without the free memory the allocators keep: Rust's heap
/// (when [`Counting`] is the global allocator, as in `vhub`; 0 otherwise)
/// and glibc malloc's (OpenSSL's state and buffers).
#[derive(Clone, Copy, Debug)]
pub struct HeapInUse {
    pub rust: u64,
    pub libc: u64,
}

impl HeapInUse {
    pub fn total(self) -> u64 {
        self.rust + self.libc
    }
}

pub fn heap_in_use() -> HeapInUse {
    let rust = LIVE.load(Ordering::Relaxed) as u64;
    #[cfg(target_env = "gnu")]
    let libc = {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let m = unsafe { libc::mallinfo2() };
        (m.uordblks + m.hblkhd) as u64
    };
    #[cfg(not(target_env = "gnu"))]
    let libc = 0;
    HeapInUse { rust, libc }
}

/// Hands free memory back to the system: mimalloc's free pages of the
/// calling thread's heap (each shard calls it for its own) and glibc's
/// free pages in all its arenas. Without it the hub's RSS stays at its
/// peak after sessions end.
pub fn give_back_free_memory() {
    // SAFETY: both only release memory that is free; no pointer is passed.
    unsafe {
        libmimalloc_sys::mi_collect(true);
        #[cfg(target_env = "gnu")]
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_allocations_are_counted() {
        let before = heap_in_use().libc;
        // Through glibc's malloc, as OpenSSL allocates.
        // SAFETY: a plain malloc/free pair.
        let p = unsafe { libc::malloc(64 << 20) };
        assert!(!p.is_null());
        let during = heap_in_use().libc;
        // SAFETY: p came from malloc above.
        unsafe { libc::free(p) };
        let after = heap_in_use().libc;
        // Other test threads allocate too: 64 MiB against 16 MiB of slack.
        assert!(during >= before + (48 << 20), "{before} -> {during}");
        assert!(after + (48 << 20) <= during, "{during} -> {after}");
        give_back_free_memory();
    }

    #[test]
    fn counting_allocator_counts_and_forwards() {
        let a = Counting::new();
        let base = LIVE.load(Ordering::Relaxed);
        let l = Layout::from_size_align(1000, 8).unwrap();
        // SAFETY: alloc/realloc/dealloc with matching layouts.
        unsafe {
            let p = a.alloc(l);
            assert!(!p.is_null());
            p.write_bytes(7, 1000);
            let p = a.realloc(p, l, 5000);
            assert_eq!(*p.add(999), 7, "realloc keeps the contents");
            let l2 = Layout::from_size_align(5000, 8).unwrap();
            // Only this test touches LIVE here (the test binary's global
            // allocator is the system one).
            assert_eq!(LIVE.load(Ordering::Relaxed), base + 5000);
            let p = a.realloc(p, l2, 100);
            assert_eq!(LIVE.load(Ordering::Relaxed), base + 100);
            a.dealloc(p, Layout::from_size_align(100, 8).unwrap());
        }
        assert_eq!(LIVE.load(Ordering::Relaxed), base);
    }
}
