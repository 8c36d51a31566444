//! Resource probes read at span boundaries: the calling thread's CPU clock, the process's CPU
//! time and RSS high-water mark, and its current RSS. Each is one system call; none allocates.
//! On platforms without them a probe answers `None` and the attribute it feeds is left off.

#[cfg(target_os = "linux")]
use std::fs::File;
#[cfg(target_os = "linux")]
use std::os::unix::fs::FileExt as _;

/// CPU time consumed by the calling thread, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
#[inline]
pub(crate) fn thread_cpu_ns() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc == 0 {
            return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
        }
        None
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The monotonic clock (`CLOCK_MONOTONIC`, what `Instant::now()` reads on Unix) in nanoseconds,
/// without `Instant`'s `timespec` arithmetic; elsewhere, nanoseconds since the first call.
#[inline]
pub(crate) fn monotonic_ns() -> u64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
    #[cfg(not(unix))]
    {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        ORIGIN
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
}

/// Process CPU time (user + system, all threads) and the RSS high-water mark, from one
/// `getrusage(RUSAGE_SELF)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessSample {
    pub cpu_ns: u64,
    pub max_rss_bytes: u64,
}

pub(crate) fn process_sample() -> Option<ProcessSample> {
    #[cfg(unix)]
    {
        // SAFETY: an all-zero rusage is a valid value for the kernel to overwrite.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable rusage.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        if rc != 0 {
            return None;
        }
        let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
        // Linux reports ru_maxrss in KiB, macOS in bytes.
        let max_rss_bytes = if cfg!(target_os = "macos") {
            ru.ru_maxrss as u64
        } else {
            ru.ru_maxrss as u64 * 1024
        };
        Some(ProcessSample {
            cpu_ns: tv(ru.ru_utime) + tv(ru.ru_stime),
            max_rss_bytes,
        })
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Current resident set size, read from a `/proc/self/statm` descriptor kept open (one `pread`
/// per read, no open/close).
#[derive(Debug)]
pub(crate) struct RssReader {
    #[cfg(target_os = "linux")]
    statm: Option<File>,
    #[cfg(target_os = "linux")]
    page_size: u64,
}

impl RssReader {
    pub(crate) fn open() -> Self {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: sysconf with a constant name has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            RssReader {
                statm: File::open("/proc/self/statm").ok(),
                page_size: if page > 0 { page as u64 } else { 4096 },
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            RssReader {}
        }
    }

    /// Resident bytes now, `None` when unreadable.
    pub(crate) fn rss_bytes(&self) -> Option<u64> {
        #[cfg(target_os = "linux")]
        {
            let file = self.statm.as_ref()?;
            let mut buf = [0u8; 128];
            let n = file.read_at(&mut buf, 0).ok()?;
            // "size resident shared text lib data dt": the second field, in pages.
            let text = std::str::from_utf8(&buf[..n]).ok()?;
            let resident: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
            Some(resident * self.page_size)
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_clock_advances_with_work_only() {
        let a = thread_cpu_ns().unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = thread_cpu_ns().unwrap();
        assert!(b > a);
        let c = thread_cpu_ns().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let d = thread_cpu_ns().unwrap();
        assert!(d - c < 20_000_000, "sleeping used {} ns of CPU", d - c);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn rss_follows_touched_memory_and_rereads() {
        let r = RssReader::open();
        let before = r.rss_bytes().unwrap();
        let v = vec![7u8; 32 << 20];
        let after = r.rss_bytes().unwrap();
        assert!(after >= before + (30 << 20), "{before} -> {after}");
        drop(v);
        // The high-water mark is kept lazily by some kernels (and sandboxes), so only its
        // presence is certain here; the layer uses it only when it rose during a span.
        let p = process_sample().unwrap();
        assert!(p.max_rss_bytes > 0 && p.cpu_ns > 0);
    }
}
