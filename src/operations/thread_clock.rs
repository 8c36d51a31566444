//! The calling thread's CPU clock, read without a system call while the thread has not been
//! switched out.
//!
//! `clock_gettime(CLOCK_THREAD_CPUTIME_ID)` has no vDSO fast path on Linux: every read is a
//! system call (about 406 ns on the reference machine, `benches/operations.rs` group `probe`),
//! and a watched span reads the clock at every enter and exit. Between two context switches,
//! though, a thread's CPU clock advances exactly as the wall clock does: the thread is on a CPU
//! the whole time. So each thread keeps one exact reading, the *base*, and answers a later read
//! as `base + wall time since the base` (one `CLOCK_MONOTONIC` read, a vDSO call) when both hold:
//!
//! 1. the thread has not been switched out since the base. The detector is the sequence word
//!    of a perf-event page: the software task-clock event opened on the calling thread
//!    (`perf_event_open`, user-space only, no sampling) and its control page mapped read-only.
//!    The kernel rewrites that page whenever it schedules the thread in, so an unchanged word
//!    means no switch; checking it is one memory load;
//! 2. the base is younger than [`MAX_EXTRAPOLATION`] (1 ms).
//!
//! Otherwise the read is the exact system call, and it becomes the new base.
//!
//! **Error bound.** An extrapolated read counts as the thread's CPU time whatever was taken from
//! it *without* a context switch since the last exact read (at most 1 ms earlier): interrupt
//! handling and, on a virtual machine, time the hypervisor gave the vCPU to someone else
//! (steal). Reads more than 1 ms apart, and every read after a switch, are exact. A span's CPU
//! time is a difference of two reads, so a span shorter than 1 ms that ran without being
//! switched out reports its wall time, which is what it used up to that interrupt and steal
//! time. The clock never goes back: an extrapolated read that counted steal time is not followed
//! by a smaller exact one.
//!
//! **Fallback.** Where the page cannot be had (not Linux, `perf_event_paranoid` above 2, a
//! seccomp filter refusing `perf_event_open`, no file descriptor left, or more than
//! [`MAX_PAGES`] threads holding one), every read is the exact system call: the same answers
//! at the old cost. Each thread that reads the clock holds one file descriptor and one mapped
//! page until it exits.
//!
//! Written here rather than taken from a perf crate: the crates read counters (`read(2)`,
//! `rdpmc`, ring buffers); the only thing used here is the control page's sequence word as a
//! context-switch detector, which is one `perf_event_open`, one `mmap` and one load.

use std::cell::RefCell;
use std::time::Duration;

use super::probe;

/// How long after an exact reading the clock may extrapolate from it with the wall clock.
pub const MAX_EXTRAPOLATION: Duration = Duration::from_millis(1);
const MAX_EXTRAPOLATION_NS: u64 = MAX_EXTRAPOLATION.as_nanos() as u64;

/// At most this many threads hold a perf-event page (one file descriptor each) at once; later
/// threads read the exact system call.
pub const MAX_PAGES: usize = 1024;

/// CPU time the calling thread has used, in nanoseconds: exact, or extrapolated with the wall
/// clock while the thread has not been switched out (see the module docs for the bound).
/// `None` where the platform has no thread CPU clock.
#[inline]
pub(crate) fn thread_cpu_ns() -> Option<u64> {
    thread_cpu_ns_and_wall().0
}

/// [`thread_cpu_ns`], and the monotonic clock (`probe::monotonic_ns`) at the reading when the read took one (the
/// switch-detected path always does), so that a caller needing both reads the wall clock once.
#[inline]
pub(crate) fn thread_cpu_ns_and_wall() -> (Option<u64>, Option<u64>) {
    CLOCK
        .try_with(|c| match c.try_borrow_mut() {
            Ok(mut c) => c.read(),
            Err(_) => (probe::thread_cpu_ns(), None),
        })
        .unwrap_or_else(|_| (probe::thread_cpu_ns(), None))
}

#[cfg(test)]
/// Whether the calling thread reads its CPU clock through the context-switch detector (opening
/// it if it was not yet).
pub(crate) fn fast_path_active() -> bool {
    CLOCK
        .try_with(|c| {
            c.try_borrow_mut()
                .map(|mut c| c.page().is_some())
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

thread_local! {
    static CLOCK: RefCell<ThreadClock> = const { RefCell::new(ThreadClock::new()) };
}

enum Page {
    Unopened,
    #[cfg(target_os = "linux")]
    Open(linux::SwitchPage),
    Unavailable,
}

struct ThreadClock {
    page: Page,
    base_cpu_ns: u64,
    /// `probe::monotonic_ns` at the base.
    base_wall: Option<u64>,
    base_seq: u32,
    /// The last answer: an extrapolated read that counted steal time can be ahead of the
    /// next exact one, and the clock never goes back.
    last_ns: u64,
}

impl ThreadClock {
    const fn new() -> Self {
        ThreadClock {
            page: Page::Unopened,
            base_cpu_ns: 0,
            base_wall: None,
            base_seq: 0,
            last_ns: 0,
        }
    }

    #[inline]
    fn monotonic(&mut self, ns: u64) -> u64 {
        self.last_ns = self.last_ns.max(ns);
        self.last_ns
    }

    /// The switch detector, opened on first use (and again in a forked child).
    #[cfg(target_os = "linux")]
    #[inline]
    fn page(&mut self) -> Option<&linux::SwitchPage> {
        match &self.page {
            Page::Open(p) if p.is_current() => {}
            Page::Unavailable => return None,
            _ => {
                self.base_wall = None;
                self.page = match linux::SwitchPage::open() {
                    Some(p) => Page::Open(p),
                    None => Page::Unavailable,
                };
            }
        }
        match &self.page {
            Page::Open(p) => Some(p),
            _ => None,
        }
    }

    #[cfg(not(target_os = "linux"))]
    #[inline]
    fn page(&mut self) -> Option<&()> {
        self.page = Page::Unavailable;
        None
    }

    #[cfg(target_os = "linux")]
    #[inline]
    fn read(&mut self) -> (Option<u64>, Option<u64>) {
        use std::sync::atomic::{Ordering, compiler_fence};
        if self.page().is_none() {
            return (probe::thread_cpu_ns(), None);
        }
        let Page::Open(page) = &self.page else {
            return (probe::thread_cpu_ns(), None);
        };
        if let Some(base_wall) = self.base_wall {
            // Wall clock first, then the sequence word: a switch between the two changes the
            // word, so the extrapolation never spans time off the CPU.
            let now = probe::monotonic_ns();
            compiler_fence(Ordering::SeqCst);
            if page.seq() == self.base_seq {
                let since = now.saturating_sub(base_wall);
                if since < MAX_EXTRAPOLATION_NS {
                    let cpu = self.monotonic(self.base_cpu_ns + since);
                    return (Some(cpu), Some(now));
                }
            }
        }
        // A new base: the word before the exact read, so that a switch anywhere after it
        // forces the next read to be exact as well.
        let seq = page.seq();
        compiler_fence(Ordering::SeqCst);
        let Some(cpu) = probe::thread_cpu_ns() else {
            return (None, None);
        };
        compiler_fence(Ordering::SeqCst);
        let wall = probe::monotonic_ns();
        self.base_wall = Some(wall);
        self.base_cpu_ns = cpu;
        self.base_seq = seq;
        (Some(self.monotonic(cpu)), Some(wall))
    }

    #[cfg(not(target_os = "linux"))]
    #[inline]
    fn read(&mut self) -> Option<u64> {
        let _ = (
            self.base_cpu_ns,
            self.base_wall,
            self.base_seq,
            self.last_ns,
        );
        probe::thread_cpu_ns()
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    use std::ptr::NonNull;
    use std::sync::Once;
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

    use super::MAX_PAGES;

    /// `struct perf_event_attr` up to `PERF_ATTR_SIZE_VER0` (64 bytes); the kernel takes the
    /// size from the `size` field and treats every later field as zero.
    #[repr(C)]
    #[derive(Default)]
    struct PerfEventAttr {
        kind: u32,
        size: u32,
        config: u64,
        sample_period: u64,
        sample_type: u64,
        read_format: u64,
        flags: u64,
        wakeup_events: u32,
        bp_type: u32,
        config1: u64,
    }

    const PERF_TYPE_SOFTWARE: u32 = 1;
    const PERF_COUNT_SW_TASK_CLOCK: u64 = 1;
    // Bits of `flags`: counting user space only needs no privilege at perf_event_paranoid 2.
    const EXCLUDE_KERNEL: u64 = 1 << 5;
    const EXCLUDE_HV: u64 = 1 << 6;
    const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
    /// Offset of `lock` in `struct perf_event_mmap_page` (after `version`, `compat_version`).
    const LOCK_OFFSET: usize = 8;

    /// Pages open in this process; reset in a forked child, whose inherited pages belong to the
    /// parent's threads.
    static OPEN: AtomicUsize = AtomicUsize::new(0);
    /// Bumped in every forked child.
    static FORK_GENERATION: AtomicU32 = AtomicU32::new(0);
    static AT_FORK: Once = Once::new();

    extern "C" fn in_forked_child() {
        // Async-signal-safe: atomics only.
        FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
        OPEN.store(0, Ordering::Relaxed);
    }

    /// The calling thread's task-clock event and its mapped control page.
    pub(super) struct SwitchPage {
        _fd: OwnedFd,
        page: NonNull<libc::c_void>,
        len: usize,
        generation: u32,
    }

    impl SwitchPage {
        pub(super) fn open() -> Option<SwitchPage> {
            AT_FORK.call_once(|| {
                // SAFETY: registers a handler that only touches atomics; no preconditions.
                unsafe { libc::pthread_atfork(None, None, Some(in_forked_child)) };
            });
            if OPEN.fetch_add(1, Ordering::Relaxed) >= MAX_PAGES {
                OPEN.fetch_sub(1, Ordering::Relaxed);
                return None;
            }
            let page = Self::map();
            if page.is_none() {
                OPEN.fetch_sub(1, Ordering::Relaxed);
            }
            page
        }

        fn map() -> Option<SwitchPage> {
            let attr = PerfEventAttr {
                kind: PERF_TYPE_SOFTWARE,
                size: std::mem::size_of::<PerfEventAttr>() as u32,
                config: PERF_COUNT_SW_TASK_CLOCK,
                flags: EXCLUDE_KERNEL | EXCLUDE_HV,
                ..PerfEventAttr::default()
            };
            // SAFETY: `attr` is a valid perf_event_attr of the size it states, alive for the
            // call; pid 0 and cpu -1 mean the calling thread on any CPU; group fd -1: none.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_perf_event_open,
                    &attr as *const PerfEventAttr,
                    0 as libc::pid_t,
                    -1 as libc::c_int,
                    -1 as libc::c_int,
                    PERF_FLAG_FD_CLOEXEC,
                )
            };
            if fd < 0 {
                return None;
            }
            // SAFETY: a successful perf_event_open returned a new descriptor we now own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
            // SAFETY: sysconf with a constant name has no preconditions.
            let len = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
                n if n > 0 => n as usize,
                _ => return None,
            };
            // SAFETY: maps the event's control page (no data pages) read-only; the kernel
            // checks the descriptor and size, and failure is MAP_FAILED.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if ptr == libc::MAP_FAILED {
                return None;
            }
            Some(SwitchPage {
                _fd: fd,
                page: NonNull::new(ptr)?,
                len,
                generation: FORK_GENERATION.load(Ordering::Relaxed),
            })
        }

        /// False in a forked child: the page measures the parent's thread.
        #[inline]
        pub(super) fn is_current(&self) -> bool {
            self.generation == FORK_GENERATION.load(Ordering::Relaxed)
        }

        /// The page's sequence word; it changes whenever the kernel schedules the thread in.
        #[inline]
        pub(super) fn seq(&self) -> u32 {
            // SAFETY: the mapping is at least one page long and stays mapped while `self`
            // lives; `lock` is a naturally aligned u32 at offset 8 that only the kernel writes.
            let word =
                unsafe { &*(self.page.as_ptr().cast::<u8>().add(LOCK_OFFSET) as *const AtomicU32) };
            word.load(Ordering::Relaxed)
        }
    }

    impl Drop for SwitchPage {
        fn drop(&mut self) {
            // SAFETY: unmaps exactly the mapping made in `map`, which nothing else references.
            unsafe { libc::munmap(self.page.as_ptr(), self.len) };
            if self.is_current() {
                OPEN.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn burn(iterations: u64) -> u64 {
        let mut x = 0u64;
        for i in 0..iterations {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        x
    }

    #[test]
    fn reads_follow_the_exact_clock_while_running() {
        if !fast_path_active() {
            eprintln!("perf-event page unavailable here: only the exact clock is in use");
        }
        // Many short intervals of work, each read both ways: the sum of the fast readings
        // must match the exact clock's over the same stretch.
        let exact_start = probe::thread_cpu_ns().unwrap();
        let fast_start = thread_cpu_ns().unwrap();
        let mut last = fast_start;
        for _ in 0..2_000 {
            burn(2_000);
            let now = thread_cpu_ns().unwrap();
            assert!(now >= last, "the clock went back: {last} -> {now}");
            last = now;
        }
        let exact = probe::thread_cpu_ns().unwrap() - exact_start;
        let fast = thread_cpu_ns().unwrap() - fast_start;
        let diff = fast.abs_diff(exact) as f64;
        // Interrupt and steal time in sub-millisecond stretches is the only difference.
        assert!(
            diff <= exact as f64 * 0.10 + 200_000.0,
            "fast {fast} ns vs exact {exact} ns"
        );
    }

    #[test]
    fn a_switch_forces_an_exact_read() {
        let active = fast_path_active();
        // Each sleep is shorter than the extrapolation window: only the switch detector keeps
        // the sleep out of the CPU time.
        let mut slept_cpu = 0;
        for _ in 0..50 {
            let a = thread_cpu_ns().unwrap();
            std::thread::sleep(Duration::from_micros(300));
            let b = thread_cpu_ns().unwrap();
            slept_cpu += b - a;
        }
        // 50 x 300 us = 15 ms of sleep; the wake-ups themselves cost a few microseconds each.
        assert!(
            slept_cpu < 5_000_000,
            "sleeping counted {slept_cpu} ns of CPU (fast path {active})"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_detector_is_available_here_and_counts_a_switch() {
        // CI and development machines run Linux with perf_event_paranoid <= 2; where they do
        // not, this says so instead of passing silently.
        if !fast_path_active() {
            let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid");
            eprintln!("no perf-event page (perf_event_paranoid: {paranoid:?}); skipped");
            return;
        }
        let seq = || {
            CLOCK.with(|c| match &c.borrow().page {
                Page::Open(p) => p.seq(),
                _ => unreachable!("checked above"),
            })
        };
        let before = seq();
        std::thread::sleep(Duration::from_millis(2));
        assert_ne!(before, seq(), "a sleep is a context switch");
    }

    #[test]
    fn many_threads_each_get_their_own_clock() {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    let a = thread_cpu_ns().unwrap();
                    burn(3_000_000);
                    let b = thread_cpu_ns().unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                    let c = thread_cpu_ns().unwrap();
                    (b - a, c - b)
                })
            })
            .collect();
        for h in handles {
            let (work, sleep) = h.join().unwrap();
            assert!(work > 0);
            assert!(sleep < 5_000_000, "20 ms of sleep counted {sleep} ns");
        }
    }
}
