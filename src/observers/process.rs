//! The process sampler: this process only (never a scan of all processes). One `getrusage`,
//! `/proc/self/statm`, `/proc/self/status`, `/proc/self/io` and a count of `/proc/self/fd` per
//! pass, about 30 µs together (sysinfo's own-process refresh costs about 45 µs and has no
//! user/system split, context switches or page faults).

use std::time::{Instant, SystemTime};

use super::procfs;

/// Everything the process sampler read in one pass.
#[derive(Debug, Clone)]
pub struct ProcessSample {
    /// When the pass finished (monotonic).
    pub at: Instant,
    /// When the pass finished (wall clock).
    pub wall: SystemTime,
    /// Cumulative user CPU time, seconds.
    pub cpu_user_s: f64,
    /// Cumulative system CPU time, seconds.
    pub cpu_system_s: f64,
    /// `(user, system)` share of the CPUs available to the process since the previous sample
    /// (0..1 together); `None` on the first sample.
    pub cpu_utilization: Option<(f64, f64)>,
    /// Resident set size, bytes.
    pub memory_rss: Option<u64>,
    /// Virtual memory size, bytes.
    pub memory_virtual: Option<u64>,
    /// Bytes read from and written to storage (`/proc/self/io`; `None` where it is not readable).
    pub disk_io: Option<procfs::ProcIo>,
    /// Threads.
    pub threads: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Voluntary context switches.
    pub voluntary_switches: u64,
    /// Involuntary context switches.
    pub involuntary_switches: u64,
    /// Major page faults.
    pub major_faults: u64,
    /// Minor page faults.
    pub minor_faults: u64,
    /// Seconds since the observers started (semconv allows the SDK's own start).
    pub uptime_s: f64,
}

impl ProcessSample {
    /// Total CPU share (user + system), 0..1.
    pub fn cpu_total_utilization(&self) -> Option<f64> {
        self.cpu_utilization.map(|(u, s)| u + s)
    }
}

/// Reads [`ProcessSample`]s of the calling process.
///
/// ```
/// let mut sampler = genscope::observers::ProcessSampler::new();
/// let s = sampler.sample();
/// assert!(s.memory_rss.unwrap_or(0) > 0);
/// ```
#[derive(Debug)]
pub struct ProcessSampler {
    buf: String,
    page_size: u64,
    started: Instant,
    cpus: f64,
    previous: Option<(Instant, f64, f64)>,
}

impl ProcessSampler {
    /// A sampler for this process.
    pub fn new() -> ProcessSampler {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        ProcessSampler {
            buf: String::with_capacity(4096),
            page_size: if page > 0 { page as u64 } else { 4096 },
            started: Instant::now(),
            // The CPUs this process may run on (affinity and cgroup quota aware).
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as f64)
                .unwrap_or(1.0),
            previous: None,
        }
    }

    /// One pass.
    pub fn sample(&mut self) -> ProcessSample {
        // SAFETY: an all-zero rusage is a valid value for the kernel to overwrite.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable rusage.
        let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0;
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let (user, system) = if ok {
            (secs(ru.ru_utime), secs(ru.ru_stime))
        } else {
            (0.0, 0.0)
        };
        let now = Instant::now();
        let cpu_utilization = match self.previous {
            Some((at, u0, s0)) if ok => {
                let wall = now.duration_since(at).as_secs_f64() * self.cpus;
                (wall > 0.0).then(|| {
                    (
                        ((user - u0).max(0.0) / wall).min(1.0),
                        ((system - s0).max(0.0) / wall).min(1.0),
                    )
                })
            }
            _ => None,
        };
        if ok {
            self.previous = Some((now, user, system));
        }
        let (memory_virtual, memory_rss) =
            match procfs::read_into("/proc/self/statm", &mut self.buf)
                .ok()
                .and_then(|_| procfs::parse_statm(&self.buf))
            {
                Some((size, resident)) => {
                    (Some(size * self.page_size), Some(resident * self.page_size))
                }
                None => (None, None),
            };
        let threads = procfs::read_into("/proc/self/status", &mut self.buf)
            .ok()
            .and_then(|_| procfs::parse_status_threads(&self.buf));
        let disk_io = procfs::read_into("/proc/self/io", &mut self.buf)
            .ok()
            .and_then(|_| procfs::parse_proc_io(&self.buf));
        // The directory handle itself is one of the entries while it is open.
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count().saturating_sub(1) as u64);
        ProcessSample {
            at: Instant::now(),
            wall: SystemTime::now(),
            cpu_user_s: user,
            cpu_system_s: system,
            cpu_utilization,
            memory_rss,
            memory_virtual,
            disk_io,
            threads,
            open_fds,
            voluntary_switches: if ok { ru.ru_nvcsw as u64 } else { 0 },
            involuntary_switches: if ok { ru.ru_nivcsw as u64 } else { 0 },
            major_faults: if ok { ru.ru_majflt as u64 } else { 0 },
            minor_faults: if ok { ru.ru_minflt as u64 } else { 0 },
            uptime_s: self.started.elapsed().as_secs_f64(),
        }
    }
}

impl Default for ProcessSampler {
    fn default() -> Self {
        ProcessSampler::new()
    }
}

impl ProcessSampler {
    #[cfg(test)]
    fn started_at(&mut self, ago: std::time::Duration) {
        self.started = Instant::now() - ago;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reads_this_process() {
        let mut s = ProcessSampler::new();
        s.started_at(Duration::from_secs(2));
        let a = s.sample();
        assert!(a.cpu_utilization.is_none());
        assert!(a.memory_rss.unwrap() > 1 << 20);
        assert!(a.memory_virtual.unwrap() >= a.memory_rss.unwrap());
        assert!(a.threads.unwrap() >= 1);
        assert!(a.open_fds.unwrap() >= 3);
        assert!(a.uptime_s >= 2.0);
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let b = s.sample();
        let (u, sys) = b.cpu_utilization.unwrap();
        assert!(u + sys > 0.0 && u + sys <= 1.0, "{u} {sys} {x}");
        assert!(b.cpu_user_s >= a.cpu_user_s);
    }
}
