//! Parsers for the Linux `/proc` files the host and process samplers read, and one reader that
//! reuses its buffer. Parsers are pure functions over text (tested and fuzzed on their own) and
//! skip lines they do not understand instead of failing: a kernel that adds a column must not
//! cost the user their metrics.
//!
//! Written here rather than taken from sysinfo because sysinfo exposes no per-mode CPU time, no
//! buffers/cached memory, no disk operations or times and no dropped packets, and its closest
//! refresh set costs several times our whole pass (`benches/observers.rs`, `BENCHMARKS.md`).

use std::io::Read as _;

/// Reads a whole file into `buf` (cleared first), reusing its capacity.
pub(crate) fn read_into(path: &str, buf: &mut String) -> std::io::Result<()> {
    buf.clear();
    std::fs::File::open(path)?.read_to_string(buf)?;
    Ok(())
}

/// CPU time per mode, in clock ticks (`USER_HZ`), from one `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// Normal processes in user mode (guest time included, as the kernel counts it).
    pub user: u64,
    /// Niced processes in user mode (guest_nice included).
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Waiting for I/O.
    pub iowait: u64,
    /// Hardware interrupts.
    pub irq: u64,
    /// Soft interrupts.
    pub softirq: u64,
    /// Stolen by the hypervisor.
    pub steal: u64,
}

impl CpuTicks {
    /// All modes together.
    pub fn total(&self) -> u64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }
}

/// `/proc/stat`: the aggregate `cpu` line and one line per logical CPU (in file order, with the
/// CPU number).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStat {
    /// The aggregate over all CPUs.
    pub total: CpuTicks,
    /// `(logical number, ticks)` per CPU.
    pub per_cpu: Vec<(u32, CpuTicks)>,
}

/// Parses `/proc/stat`. Lines other than `cpu*` are ignored; missing trailing columns (old
/// kernels) read as zero.
pub fn parse_stat(text: &str) -> ProcStat {
    let mut out = ProcStat::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let mut fields = rest.split_ascii_whitespace();
        let Some(label) = fields.next() else { continue };
        let (number, values) = if rest.starts_with(' ') {
            // "cpu  user nice ...": the label we took is the first value.
            (None, std::iter::once(label).chain(fields))
        } else {
            match label.parse::<u32>() {
                Ok(n) => (Some(n), std::iter::once("").chain(fields)),
                Err(_) => continue,
            }
        };
        let v: Vec<u64> = values
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap_or(0))
            .take(8)
            .collect();
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        let ticks = CpuTicks {
            user: at(0),
            nice: at(1),
            system: at(2),
            idle: at(3),
            iowait: at(4),
            irq: at(5),
            softirq: at(6),
            steal: at(7),
        };
        match number {
            None => out.total = ticks,
            Some(n) => out.per_cpu.push((n, ticks)),
        }
    }
    out
}

/// The `/proc/meminfo` fields genscope reports, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total: u64,
    /// `MemFree`.
    pub free: u64,
    /// `MemAvailable` (the kernel's estimate; `None` before Linux 3.14).
    pub available: Option<u64>,
    /// `Buffers`.
    pub buffers: u64,
    /// `Cached`.
    pub cached: u64,
    /// `SwapTotal`.
    pub swap_total: u64,
    /// `SwapFree`.
    pub swap_free: u64,
}

impl MemInfo {
    /// Semconv "used": `MemTotal - MemAvailable` (or, on kernels without `MemAvailable`,
    /// total - free - buffers - cached).
    pub fn used(&self) -> u64 {
        match self.available {
            Some(a) => self.total.saturating_sub(a),
            None => self
                .total
                .saturating_sub(self.free + self.buffers + self.cached),
        }
    }
}

/// Parses `/proc/meminfo` (values in kB are converted to bytes).
pub fn parse_meminfo(text: &str) -> MemInfo {
    let mut m = MemInfo::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_ascii_whitespace();
        let Some(Ok(value)) = parts.next().map(str::parse::<u64>) else {
            continue;
        };
        let bytes = match parts.next() {
            Some("kB") => value.saturating_mul(1024),
            _ => value,
        };
        match key {
            "MemTotal" => m.total = bytes,
            "MemFree" => m.free = bytes,
            "MemAvailable" => m.available = Some(bytes),
            "Buffers" => m.buffers = bytes,
            "Cached" => m.cached = bytes,
            "SwapTotal" => m.swap_total = bytes,
            "SwapFree" => m.swap_free = bytes,
            _ => {}
        }
    }
    m
}

/// One whole disk from `/proc/diskstats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskStat {
    /// Kernel device name (`sda`, `nvme0n1`, `vda`).
    pub device: String,
    /// Completed reads.
    pub reads: u64,
    /// Sectors read (512 bytes each, whatever the device's block size).
    pub read_sectors: u64,
    /// Milliseconds spent reading.
    pub read_ms: u64,
    /// Completed writes.
    pub writes: u64,
    /// Sectors written.
    pub write_sectors: u64,
    /// Milliseconds spent writing.
    pub write_ms: u64,
    /// Milliseconds with I/O in flight.
    pub io_ms: u64,
}

/// Parses `/proc/diskstats`, keeping the devices `keep` accepts.
pub fn parse_diskstats(text: &str, mut keep: impl FnMut(&str) -> bool) -> Vec<DiskStat> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 14 || !keep(f[2]) {
            continue;
        }
        let n = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        out.push(DiskStat {
            device: f[2].to_string(),
            reads: n(3),
            read_sectors: n(5),
            read_ms: n(6),
            writes: n(7),
            write_sectors: n(9),
            write_ms: n(10),
            io_ms: n(12),
        });
    }
    out
}

/// Devices that are never real disks: loop, RAM and floppy devices.
pub fn is_virtual_block_device(name: &str) -> bool {
    ["loop", "ram", "zram", "fd"]
        .iter()
        .any(|p| name.starts_with(p) && name[p.len()..].chars().all(|c| c.is_ascii_digit()))
}

/// One interface from `/proc/net/dev`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    /// Interface name.
    pub interface: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Transmitted packets dropped.
    pub tx_dropped: u64,
}

/// Parses `/proc/net/dev` (two header lines, then `iface: 16 columns`).
pub fn parse_net_dev(text: &str) -> Vec<NetDev> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let v: Vec<u64> = rest
            .split_ascii_whitespace()
            .map(|s| s.parse().unwrap_or(0))
            .collect();
        if name.is_empty() || v.len() < 12 {
            continue;
        }
        out.push(NetDev {
            interface: name.to_string(),
            rx_bytes: v[0],
            rx_packets: v[1],
            rx_errors: v[2],
            rx_dropped: v[3],
            tx_bytes: v[8],
            tx_packets: v[9],
            tx_errors: v[10],
            tx_dropped: v[11],
        });
    }
    out
}

/// First field of `/proc/uptime`, in seconds.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_ascii_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// `cpu MHz` per processor from `/proc/cpuinfo`, as `(logical number, Hz)`.
pub fn parse_cpuinfo_frequencies(text: &str) -> Vec<(u32, i64)> {
    let mut out = Vec::new();
    let mut current: Option<u32> = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "processor" => current = value.trim().parse().ok(),
            "cpu MHz" => {
                if let (Some(n), Ok(mhz)) = (current, value.trim().parse::<f64>())
                    && mhz.is_finite()
                    && mhz >= 0.0
                {
                    out.push((n, (mhz * 1e6).round() as i64));
                }
            }
            _ => {}
        }
    }
    out
}

/// `/proc/self/io`: bytes the process caused to be read from and written to storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcIo {
    /// `read_bytes`.
    pub read_bytes: u64,
    /// `write_bytes`.
    pub write_bytes: u64,
}

/// Parses `/proc/<pid>/io`; `None` when neither field is there.
pub fn parse_proc_io(text: &str) -> Option<ProcIo> {
    let mut io = ProcIo::default();
    let mut seen = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<u64>() else {
            continue;
        };
        match key {
            "read_bytes" => {
                io.read_bytes = v;
                seen = true;
            }
            "write_bytes" => {
                io.write_bytes = v;
                seen = true;
            }
            _ => {}
        }
    }
    seen.then_some(io)
}

/// `(size, resident)` in pages from `/proc/<pid>/statm`.
pub fn parse_statm(text: &str) -> Option<(u64, u64)> {
    let mut f = text.split_ascii_whitespace();
    let size = f.next()?.parse().ok()?;
    let resident = f.next()?.parse().ok()?;
    Some((size, resident))
}

/// `Threads:` from `/proc/<pid>/status`.
pub fn parse_status_threads(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_aggregate_and_per_cpu() {
        let s = parse_stat(
            "cpu  10 1 5 100 2 3 4 6 0 0\ncpu0 5 0 2 50 1 1 2 3 0 0\ncpu1 5 1 3 50 1 2 2 3\nintr 5\n",
        );
        assert_eq!(s.total.user, 10);
        assert_eq!(s.total.steal, 6);
        assert_eq!(s.total.total(), 131);
        assert_eq!(s.per_cpu.len(), 2);
        assert_eq!(s.per_cpu[1].0, 1);
        assert_eq!(s.per_cpu[1].1.system, 3);
    }

    #[test]
    fn stat_tolerates_short_and_garbage_lines() {
        let s = parse_stat("cpu  1 2 3\ncpuX 1 2\ncpu7 x y 9\n");
        assert_eq!(s.total.system, 3);
        assert_eq!(s.total.steal, 0);
        assert_eq!(
            s.per_cpu,
            vec![(
                7,
                CpuTicks {
                    idle: 0,
                    nice: 0,
                    user: 0,
                    system: 9,
                    ..Default::default()
                }
            )]
        );
    }

    #[test]
    fn meminfo_units_and_used() {
        let m = parse_meminfo(
            "MemTotal:  1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\nBuffers: 50 kB\nCached: 200 kB\nSwapTotal: 10 kB\nSwapFree: 4 kB\nHugePages_Total: 0\n",
        );
        assert_eq!(m.total, 1_024_000);
        assert_eq!(m.used(), 400 * 1024);
        assert_eq!(m.swap_total - m.swap_free, 6 * 1024);
        let old =
            parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 200 kB\n");
        assert_eq!(old.used(), 650 * 1024);
    }

    #[test]
    fn diskstats_fields_and_filter() {
        let text = "   7       0 loop0 1 0 2 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n 253 0 vda 100 5 800 40 50 3 400 20 0 55 60 0 0 0 0\n";
        let d = parse_diskstats(text, |n| !is_virtual_block_device(n));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].device, "vda");
        assert_eq!(
            (d[0].reads, d[0].read_sectors, d[0].read_ms),
            (100, 800, 40)
        );
        assert_eq!(
            (d[0].writes, d[0].write_sectors, d[0].write_ms),
            (50, 400, 20)
        );
        assert_eq!(d[0].io_ms, 55);
        assert!(is_virtual_block_device("loop12"));
        assert!(!is_virtual_block_device("loopback"));
        assert!(!is_virtual_block_device("fd0x"));
    }

    #[test]
    fn net_dev_columns() {
        let text = "Inter-|   Receive\n face |bytes\n  eth0: 1 2 3 4 0 0 0 0 5 6 7 8 0 0 0 0\n";
        let n = parse_net_dev(text);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].interface, "eth0");
        assert_eq!(
            (
                n[0].rx_bytes,
                n[0].rx_packets,
                n[0].rx_errors,
                n[0].rx_dropped
            ),
            (1, 2, 3, 4)
        );
        assert_eq!(
            (
                n[0].tx_bytes,
                n[0].tx_packets,
                n[0].tx_errors,
                n[0].tx_dropped
            ),
            (5, 6, 7, 8)
        );
    }

    #[test]
    fn small_files() {
        assert_eq!(parse_uptime("123.45 99.0\n"), Some(123.45));
        assert_eq!(parse_uptime("nan 1"), None);
        assert_eq!(parse_statm("100 20 3 4 0 5 0\n"), Some((100, 20)));
        assert_eq!(parse_status_threads("Name: x\nThreads:\t7\n"), Some(7));
        assert_eq!(
            parse_proc_io("rchar: 1\nread_bytes: 4096\nwrite_bytes: 8192\n"),
            Some(ProcIo {
                read_bytes: 4096,
                write_bytes: 8192
            })
        );
        assert_eq!(parse_proc_io("rchar: 1\n"), None);
        assert_eq!(
            parse_cpuinfo_frequencies(
                "processor\t: 0\ncpu MHz\t\t: 2596.122\n\nprocessor\t: 1\ncpu MHz\t: 1000\n"
            ),
            vec![(0, 2_596_122_000), (1, 1_000_000_000)]
        );
    }
}
