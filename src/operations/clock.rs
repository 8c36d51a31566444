//! The usage clock: a background thread that samples the process's CPU time, RSS and RSS
//! high-water mark every few milliseconds into atomics, so that starting a watched span costs
//! no system call. A span reads the clock's last sample at its start and, when it lasted long
//! enough to be worth one, reads the probes directly at its close.
//!
//! Cost: one `getrusage` and one `/proc/self/statm` read per tick (about 1.4 µs here,
//! `benches/operations.rs`), 100 ticks a second at the default 10 ms: about 0.014% of one core. The thread holds only a weak
//! reference and exits when the layer is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::probe::{ProcessSample, RssReader, monotonic_ns, process_sample};

/// One sample: when, process CPU, high-water mark, RSS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClockSample {
    /// Nanoseconds since the clock's origin.
    pub at_ns: u64,
    pub process: Option<ProcessSample>,
    pub rss_bytes: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct UsageClock {
    origin: Instant,
    /// [`monotonic_ns`] at `origin`.
    origin_ns: u64,
    // A sample is published as a whole under a sequence number (odd while being written).
    seq: AtomicU64,
    at_ns: AtomicU64,
    cpu_ns: AtomicU64,
    max_rss: AtomicU64,
    rss: AtomicU64,
    has_process: AtomicBool,
    has_rss: AtomicBool,
    rss_reader: RssReader,
    /// The last direct read made for a span's close ([`UsageClock::read_for_close`]).
    last_direct: Mutex<Option<ClockSample>>,
}

/// A direct read another close made at most this long ago stands for one now...
const REUSE_MAX_NS: u64 = 1_000_000;
/// ...and at most this fraction (1/64) of the closing span's length ago.
const REUSE_FRACTION: u64 = 64;

impl UsageClock {
    /// Starts the clock thread (ticking every `interval`). Without a thread (spawn refused), the
    /// clock keeps the sample taken here, and spans fall back to direct reads.
    pub(crate) fn start(interval: Duration) -> Arc<UsageClock> {
        let clock = Arc::new(UsageClock {
            origin_ns: monotonic_ns(),
            origin: Instant::now(),
            seq: AtomicU64::new(0),
            at_ns: AtomicU64::new(0),
            cpu_ns: AtomicU64::new(0),
            max_rss: AtomicU64::new(0),
            rss: AtomicU64::new(0),
            has_process: AtomicBool::new(false),
            has_rss: AtomicBool::new(false),
            rss_reader: RssReader::open(),
            last_direct: Mutex::new(None),
        });
        clock.tick();
        let weak: Weak<UsageClock> = Arc::downgrade(&clock);
        let spawned = std::thread::Builder::new()
            .name("genscope-usage-clock".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(interval);
                    match weak.upgrade() {
                        Some(clock) => clock.tick(),
                        None => return,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(target: "genscope", error = %e, "usage clock thread not started; spans read probes directly");
        }
        clock
    }

    /// Nanoseconds since the origin.
    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        monotonic_ns().saturating_sub(self.origin_ns)
    }

    /// Nanoseconds since the origin at the [`monotonic_ns`] reading `at` (at least 1, so that 0
    /// can mean "never").
    #[inline]
    pub(crate) fn ns_at(&self, at: u64) -> u64 {
        at.saturating_sub(self.origin_ns).max(1)
    }

    /// The origin-relative time of an instant.
    pub(crate) fn instant(&self, at_ns: u64) -> Instant {
        self.origin + Duration::from_nanos(at_ns)
    }

    /// A fresh sample read directly (system calls), not published.
    pub(crate) fn read_now(&self) -> ClockSample {
        ClockSample {
            at_ns: self.now_ns(),
            process: process_sample(),
            rss_bytes: self.rss_reader.rss_bytes(),
        }
    }

    /// The sample a span of `span_ns` closing now ends with: a direct read, or the direct read
    /// another close made at most `min(1 ms, span_ns / 64)` ago (spans that close together, a
    /// request's HTTP and GenAI spans, share one pair of system calls; the error this adds is
    /// under 1/64 of the span's length).
    pub(crate) fn read_for_close(&self, span_ns: u64) -> ClockSample {
        let now = self.now_ns();
        let max_age = (span_ns / REUSE_FRACTION).min(REUSE_MAX_NS);
        // Contended: read without sharing rather than wait.
        let Ok(mut last) = self.last_direct.try_lock() else {
            return self.read_now();
        };
        if let Some(s) = *last
            && now.saturating_sub(s.at_ns) <= max_age
        {
            return s;
        }
        let s = self.read_now();
        *last = Some(s);
        s
    }

    fn tick(&self) {
        let s = self.read_now();
        // Single writer (the clock thread, or `start` before it exists).
        self.seq.fetch_add(1, Ordering::AcqRel);
        self.at_ns.store(s.at_ns, Ordering::Relaxed);
        if let Some(p) = s.process {
            self.cpu_ns.store(p.cpu_ns, Ordering::Relaxed);
            self.max_rss.store(p.max_rss_bytes, Ordering::Relaxed);
        }
        self.has_process
            .store(s.process.is_some(), Ordering::Relaxed);
        if let Some(r) = s.rss_bytes {
            self.rss.store(r, Ordering::Relaxed);
        }
        self.has_rss.store(s.rss_bytes.is_some(), Ordering::Relaxed);
        self.seq.fetch_add(1, Ordering::AcqRel);
    }

    /// The last published sample: atomics only (hot path).
    #[inline]
    pub(crate) fn last(&self) -> ClockSample {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let s = ClockSample {
                at_ns: self.at_ns.load(Ordering::Relaxed),
                process: self
                    .has_process
                    .load(Ordering::Relaxed)
                    .then(|| ProcessSample {
                        cpu_ns: self.cpu_ns.load(Ordering::Relaxed),
                        max_rss_bytes: self.max_rss.load(Ordering::Relaxed),
                    }),
                rss_bytes: self
                    .has_rss
                    .load(Ordering::Relaxed)
                    .then(|| self.rss.load(Ordering::Relaxed)),
            };
            if self.seq.load(Ordering::Acquire) == before {
                return s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_ticks_and_stops_with_its_owner() {
        let clock = UsageClock::start(Duration::from_millis(2));
        let first = clock.last();
        std::thread::sleep(Duration::from_millis(30));
        let later = clock.last();
        assert!(later.at_ns > first.at_ns, "{first:?} -> {later:?}");
        assert!(later.process.is_some());
        // A close right after another shares its read; a short span does not.
        let a = clock.read_for_close(1_000_000_000);
        let b = clock.read_for_close(1_000_000_000);
        assert_eq!(a, b, "a 1 s span reuses a read taken within 1 ms");
        std::thread::sleep(Duration::from_millis(2));
        let c = clock.read_for_close(1_000_000_000);
        assert!(c.at_ns > a.at_ns, "older than 1 ms: read again");
        let d = clock.read_for_close(1_000);
        assert!(
            d.at_ns > c.at_ns,
            "a 1 µs span may reuse only a read under 15 ns old"
        );
        let weak = Arc::downgrade(&clock);
        drop(clock);
        std::thread::sleep(Duration::from_millis(10));
        assert!(weak.upgrade().is_none());
    }
}
