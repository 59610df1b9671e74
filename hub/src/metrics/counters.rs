//! A shard's counters: [`Local`], plain `u64`s it adds to while it works,
//! and [`ShardCounters`], their published atomic form, one per shard,
//! padded so that no two shards write the same cache line. A shard
//! publishes once per processed chunk; a scrape sums the snapshots.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($name:ident { $($field:ident),* $(,)? }) => {
        /// Plain counters a shard accumulates while it works…
        #[derive(Default, Debug, Clone, Copy)]
        pub struct $name { $(pub $field: u64,)* }
        paste_atomic!($name { $($field),* });
    };
}

macro_rules! paste_atomic {
    ($name:ident { $($field:ident),* }) => {
        /// …and their published, atomic form (one per shard, padded).
        #[derive(Default, Debug)]
        #[repr(align(128))]
        pub struct ShardCounters { $(pub $field: AtomicU64,)* }
        impl ShardCounters {
            /// Adds `local` and zeroes it.
            pub fn publish(&self, local: &mut $name) {
                $( if local.$field != 0 { self.$field.fetch_add(local.$field, Relaxed); } )*
                *local = $name::default();
            }
            pub fn snapshot(&self) -> $name {
                $name { $($field: self.$field.load(Relaxed),)* }
            }
        }
        impl std::ops::AddAssign for $name {
            fn add_assign(&mut self, o: Self) { $( self.$field += o.$field; )* }
        }
    };
}

counters!(Local {
    frames_in,
    bytes_in,
    frames_out,
    bytes_out,
    drop_runt,
    drop_queue_full,
    drop_stale_port,
    drop_bad_offload,
    drop_memory,
    drop_too_long,
    gso_segments,
    handoff_batches,
    handoff_frames,
    handoff_queue_full,
    keepalive_timeouts,
    resumes,
    resend_frames,
    lost_on_resume,
    protocol_errors,
    migrations,
    wakeups,
    busy_poll_ns,
    busy_poll_hits,
});
