//! The host sampler: CPU, memory, swap, disks, filesystems, network, load and uptime, read in one
//! pass on the sampler thread and kept as a [`HostSample`]. Never runs in a metric callback.
//!
//! Sources: `/proc/stat`, `/proc/meminfo`, `/proc/diskstats`, `/proc/net/dev`, `/proc/uptime`,
//! `/proc/cpuinfo` (every tenth sample), sysinfo for the load average, the physical core count
//! and the list of mounted filesystems (refreshed every minute), `statvfs` per filesystem.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use super::procfs::{self, CpuTicks, DiskStat, MemInfo, NetDev};

/// CPU time per semconv `cpu.mode`, in seconds. softirq is folded into `interrupt` (semconv has
/// no member for it; guest time is already inside user and nice).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuModes {
    /// `user`.
    pub user: f64,
    /// `nice`.
    pub nice: f64,
    /// `system`.
    pub system: f64,
    /// `idle`.
    pub idle: f64,
    /// `iowait`.
    pub iowait: f64,
    /// `interrupt` (irq + softirq).
    pub interrupt: f64,
    /// `steal`.
    pub steal: f64,
}

impl CpuModes {
    /// `(cpu.mode value, value)` pairs, in a fixed order.
    pub fn pairs(&self) -> [(&'static str, f64); 7] {
        [
            ("user", self.user),
            ("nice", self.nice),
            ("system", self.system),
            ("idle", self.idle),
            ("iowait", self.iowait),
            ("interrupt", self.interrupt),
            ("steal", self.steal),
        ]
    }

    fn from_ticks(t: &CpuTicks, tick_s: f64) -> CpuModes {
        CpuModes {
            user: t.user as f64 * tick_s,
            nice: t.nice as f64 * tick_s,
            system: t.system as f64 * tick_s,
            idle: t.idle as f64 * tick_s,
            iowait: t.iowait as f64 * tick_s,
            interrupt: (t.irq + t.softirq) as f64 * tick_s,
            steal: t.steal as f64 * tick_s,
        }
    }

    /// Share of each mode in the time between `earlier` and `self` (0..1, summing to 1).
    /// `None` when no time passed.
    fn utilization_since(&self, earlier: &CpuModes) -> Option<CpuModes> {
        let d = |a: f64, b: f64| (a - b).max(0.0);
        let delta = CpuModes {
            user: d(self.user, earlier.user),
            nice: d(self.nice, earlier.nice),
            system: d(self.system, earlier.system),
            idle: d(self.idle, earlier.idle),
            iowait: d(self.iowait, earlier.iowait),
            interrupt: d(self.interrupt, earlier.interrupt),
            steal: d(self.steal, earlier.steal),
        };
        let total: f64 = delta.pairs().iter().map(|(_, v)| v).sum();
        (total > 0.0).then(|| CpuModes {
            user: delta.user / total,
            nice: delta.nice / total,
            system: delta.system / total,
            idle: delta.idle / total,
            iowait: delta.iowait / total,
            interrupt: delta.interrupt / total,
            steal: delta.steal / total,
        })
    }

    /// Busy share: everything but idle and iowait.
    pub fn busy(&self) -> f64 {
        self.user + self.nice + self.system + self.interrupt + self.steal
    }
}

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq)]
pub struct Filesystem {
    /// Device (`/dev/vda1`, `tmpfs`, ...).
    pub device: String,
    /// Mount point.
    pub mountpoint: String,
    /// Filesystem type (`ext4`, `xfs`, ...).
    pub fs_type: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Bytes used.
    pub used: u64,
    /// Bytes free to unprivileged users.
    pub free: u64,
    /// Bytes free but reserved for root.
    pub reserved: u64,
}

impl Filesystem {
    /// used + free + reserved.
    pub fn limit(&self) -> u64 {
        self.used + self.free + self.reserved
    }
}

/// Everything the host sampler read in one pass.
#[derive(Debug, Clone)]
pub struct HostSample {
    /// When the pass finished (monotonic).
    pub at: Instant,
    /// When the pass finished (wall clock).
    pub wall: SystemTime,
    /// Cumulative CPU time per mode over all CPUs (`system.cpu.time`).
    pub cpu_time: CpuModes,
    /// Cumulative CPU time per mode and logical CPU, when per-CPU series are on.
    pub cpu_time_per_cpu: Vec<(u32, CpuModes)>,
    /// Share of each mode since the previous sample; `None` on the first sample.
    pub cpu_utilization: Option<CpuModes>,
    /// Per logical CPU, when per-CPU series are on; empty on the first sample.
    pub cpu_utilization_per_cpu: Vec<(u32, CpuModes)>,
    /// Current frequency per logical CPU, in Hz (empty where the kernel does not say).
    pub cpu_frequency_hz: Vec<(u32, i64)>,
    /// Logical CPUs.
    pub logical_cpus: i64,
    /// Physical cores, where known.
    pub physical_cpus: Option<i64>,
    /// `/proc/meminfo`.
    pub memory: MemInfo,
    /// 1, 5 and 15 minute load averages.
    pub load_average: Option<[f64; 3]>,
    /// Seconds since boot.
    pub uptime_s: Option<f64>,
    /// Whole disks (loop, RAM and partitions left out).
    pub disks: Vec<DiskStat>,
    /// Mounted filesystems.
    pub filesystems: Vec<Filesystem>,
    /// Network interfaces.
    pub networks: Vec<NetDev>,
}

impl HostSample {
    /// Host CPU busy share (0..1) since the previous sample.
    pub fn cpu_busy(&self) -> Option<f64> {
        self.cpu_utilization.as_ref().map(CpuModes::busy)
    }

    /// `used / total` memory, 0..1.
    pub fn memory_utilization(&self) -> Option<f64> {
        (self.memory.total > 0).then(|| self.memory.used() as f64 / self.memory.total as f64)
    }
}

/// Reads [`HostSample`]s; keeps the previous CPU reading for utilization and the caches that make
/// a pass cheap. [`Observers`](super::Observers) runs one on its host thread; use one directly
/// to sample on demand.
///
/// ```
/// let mut sampler = genscope::observers::HostSampler::new(false);
/// let first = sampler.sample();
/// assert!(first.cpu_utilization.is_none(), "no utilization from a single reading");
/// assert!(first.memory.total > 0);
/// ```
#[derive(Debug)]
pub struct HostSampler {
    per_cpu: bool,
    buf: String,
    tick_s: f64,
    previous: Option<(CpuModes, Vec<(u32, CpuModes)>)>,
    physical_cpus: Option<i64>,
    whole_disk: HashMap<String, bool>,
    mounts: Vec<(String, String, String, bool)>,
    mounts_read_at: Option<Instant>,
    frequency: Vec<(u32, i64)>,
    passes: u64,
}

const MOUNT_REFRESH: Duration = Duration::from_secs(60);

impl HostSampler {
    /// A sampler; `per_cpu` adds per-logical-CPU times and utilization.
    pub fn new(per_cpu: bool) -> HostSampler {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        HostSampler {
            per_cpu,
            buf: String::with_capacity(16 * 1024),
            tick_s: 1.0 / if ticks > 0 { ticks as f64 } else { 100.0 },
            previous: None,
            physical_cpus: sysinfo::System::physical_core_count()
                .ok()
                .map(|n| n as i64),
            whole_disk: HashMap::new(),
            mounts: Vec::new(),
            mounts_read_at: None,
            frequency: Vec::new(),
            passes: 0,
        }
    }

    /// One pass. Files that cannot be read leave their part empty; the rest is still reported.
    pub fn sample(&mut self) -> HostSample {
        self.passes += 1;
        let (cpu_time, per_cpu, logical) = match procfs::read_into("/proc/stat", &mut self.buf) {
            Ok(()) => {
                let stat = procfs::parse_stat(&self.buf);
                let per: Vec<(u32, CpuModes)> = stat
                    .per_cpu
                    .iter()
                    .map(|(n, t)| (*n, CpuModes::from_ticks(t, self.tick_s)))
                    .collect();
                (
                    CpuModes::from_ticks(&stat.total, self.tick_s),
                    per,
                    stat.per_cpu.len() as i64,
                )
            }
            Err(_) => (CpuModes::default(), Vec::new(), 0),
        };
        let (cpu_utilization, cpu_utilization_per_cpu) = match &self.previous {
            Some((prev_total, prev_per)) if logical > 0 => {
                let total = cpu_time.utilization_since(prev_total);
                let per = if self.per_cpu {
                    per_cpu
                        .iter()
                        .filter_map(|(n, now)| {
                            let (_, before) = prev_per.iter().find(|(m, _)| m == n)?;
                            Some((*n, now.utilization_since(before)?))
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                (total, per)
            }
            _ => (None, Vec::new()),
        };
        if logical > 0 {
            self.previous = Some((cpu_time, per_cpu.clone()));
        }
        let memory = procfs::read_into("/proc/meminfo", &mut self.buf)
            .map(|_| procfs::parse_meminfo(&self.buf))
            .unwrap_or_default();
        let uptime_s = procfs::read_into("/proc/uptime", &mut self.buf)
            .ok()
            .and_then(|_| procfs::parse_uptime(&self.buf));
        let load_average = sysinfo::System::load_average()
            .ok()
            .map(|l| [l.one, l.five, l.fifteen]);
        if self.passes % 10 == 1 {
            self.frequency = procfs::read_into("/proc/cpuinfo", &mut self.buf)
                .map(|_| procfs::parse_cpuinfo_frequencies(&self.buf))
                .unwrap_or_default();
        }
        let disks = match procfs::read_into("/proc/diskstats", &mut self.buf) {
            Ok(()) => {
                let whole_disk = &mut self.whole_disk;
                procfs::parse_diskstats(&self.buf, |name| {
                    *whole_disk.entry(name.to_string()).or_insert_with(|| {
                        !procfs::is_virtual_block_device(name)
                            && std::path::Path::new("/sys/block").join(name).exists()
                    })
                })
            }
            Err(_) => Vec::new(),
        };
        let networks = procfs::read_into("/proc/net/dev", &mut self.buf)
            .map(|_| procfs::parse_net_dev(&self.buf))
            .unwrap_or_default();
        let filesystems = self.filesystems();
        HostSample {
            at: Instant::now(),
            wall: SystemTime::now(),
            cpu_time,
            cpu_time_per_cpu: if self.per_cpu { per_cpu } else { Vec::new() },
            cpu_utilization,
            cpu_utilization_per_cpu,
            cpu_frequency_hz: self.frequency.clone(),
            logical_cpus: logical,
            physical_cpus: self.physical_cpus,
            memory,
            load_average,
            uptime_s,
            disks,
            filesystems,
            networks,
        }
    }

    fn filesystems(&mut self) -> Vec<Filesystem> {
        let stale = self
            .mounts_read_at
            .is_none_or(|t| t.elapsed() >= MOUNT_REFRESH);
        if stale {
            self.mounts_read_at = Some(Instant::now());
            self.mounts = match sysinfo::Disks::new_with_refreshed_list_specifics(
                sysinfo::DiskRefreshKind::nothing(),
            ) {
                Ok(disks) => (&disks)
                    .into_iter()
                    .map(|d| {
                        (
                            d.name().to_string_lossy().into_owned(),
                            d.mount_point().to_string_lossy().into_owned(),
                            d.file_system().to_string_lossy().into_owned(),
                            d.is_read_only(),
                        )
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
        }
        self.mounts
            .iter()
            .filter_map(|(device, mountpoint, fs_type, read_only)| {
                let (used, free, reserved) = statvfs(mountpoint)?;
                Some(Filesystem {
                    device: device.clone(),
                    mountpoint: mountpoint.clone(),
                    fs_type: fs_type.clone(),
                    read_only: *read_only,
                    used,
                    free,
                    reserved,
                })
            })
            .collect()
    }
}

/// `(used, free, reserved)` bytes, the way `df` and the collector count them.
fn statvfs(path: &str) -> Option<(u64, u64, u64)> {
    let c = std::ffi::CString::new(path).ok()?;
    // SAFETY: an all-zero statvfs is a valid value for the kernel to overwrite.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a valid, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let frsize = if s.f_frsize > 0 {
        s.f_frsize as u64
    } else {
        s.f_bsize as u64
    };
    let blocks = s.f_blocks as u64;
    let bfree = s.f_bfree as u64;
    let bavail = (s.f_bavail as u64).min(bfree);
    Some((
        blocks.saturating_sub(bfree) * frsize,
        bavail * frsize,
        (bfree - bavail) * frsize,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilization_is_a_share_of_elapsed_cpu_time() {
        let a = CpuModes {
            user: 10.0,
            idle: 10.0,
            ..Default::default()
        };
        let b = CpuModes {
            user: 13.0,
            idle: 11.0,
            ..Default::default()
        };
        let u = b.utilization_since(&a).unwrap();
        assert!((u.user - 0.75).abs() < 1e-9);
        assert!((u.idle - 0.25).abs() < 1e-9);
        assert!((u.busy() - 0.75).abs() < 1e-9);
        assert!(a.utilization_since(&a).is_none());
    }

    #[test]
    fn first_sample_has_no_utilization_second_does() {
        let mut s = HostSampler::new(true);
        let first = s.sample();
        assert!(first.cpu_utilization.is_none());
        assert!(first.memory.total > 0);
        std::thread::sleep(Duration::from_millis(50));
        let second = s.sample();
        // Two CPUs advance at least one tick each in 50 ms (idle counts too).
        let u = second
            .cpu_utilization
            .expect("utilization on the second sample");
        let sum: f64 = u.pairs().iter().map(|(_, v)| v).sum();
        assert!((sum - 1.0).abs() < 1e-6, "{u:?}");
        assert!(!second.filesystems.is_empty());
        assert!(second.networks.iter().any(|n| n.interface == "lo"));
    }
}
