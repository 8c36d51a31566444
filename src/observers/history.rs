//! [`ResourceHistory`]: bounded rings of host/process and GPU points at sample resolution, the
//! source of `history(window)`, of the analyzer's resource trends, and (through
//! [`GpuUsageSource`]) of the GPU attributes the resource-usage layer puts on spans.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::gpu::GpuSample;
use super::host::HostSample;
use super::lock;
use super::process::ProcessSample;
use crate::operations::{GpuUsage, GpuUsageSource};

/// Host and process values at one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostPoint {
    /// When (monotonic).
    pub at: Instant,
    /// When (wall clock).
    pub wall: SystemTime,
    /// Host CPU busy share, 0..1 (`None` on the first sample).
    pub cpu_utilization: Option<f64>,
    /// Host memory used (MemTotal - MemAvailable), bytes.
    pub memory_used_bytes: u64,
    /// Host memory used / total, 0..1.
    pub memory_utilization: Option<f64>,
    /// 1-minute load average.
    pub load_1m: Option<f64>,
    /// This process's share of its available CPUs, 0..1.
    pub process_cpu_utilization: Option<f64>,
    /// This process's RSS, bytes.
    pub process_rss_bytes: Option<u64>,
}

impl HostPoint {
    pub(crate) fn from_samples(host: Option<&HostSample>, process: Option<&ProcessSample>) -> Self {
        HostPoint {
            at: host
                .map(|h| h.at)
                .or(process.map(|p| p.at))
                .unwrap_or_else(Instant::now),
            wall: host
                .map(|h| h.wall)
                .or(process.map(|p| p.wall))
                .unwrap_or_else(SystemTime::now),
            cpu_utilization: host.and_then(HostSample::cpu_busy),
            memory_used_bytes: host.map(|h| h.memory.used()).unwrap_or(0),
            memory_utilization: host.and_then(HostSample::memory_utilization),
            load_1m: host.and_then(|h| h.load_average).map(|l| l[0]),
            process_cpu_utilization: process.and_then(ProcessSample::cpu_total_utilization),
            process_rss_bytes: process.and_then(|p| p.memory_rss),
        }
    }
}

/// One GPU at one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuDevicePoint {
    /// Device index.
    pub index: u32,
    /// Device UUID.
    pub uuid: Arc<str>,
    /// GPU busy ratio.
    pub utilization: Option<f64>,
    /// Frame-buffer memory used, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Frame-buffer used / total.
    pub memory_utilization: Option<f64>,
    /// Power draw, W.
    pub power_w: Option<f64>,
    /// Die temperature, °C.
    pub temperature_c: Option<f64>,
}

/// Every GPU at one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuPoint {
    /// When (monotonic).
    pub at: Instant,
    /// When (wall clock).
    pub wall: SystemTime,
    /// One entry per device that answered.
    pub devices: Vec<GpuDevicePoint>,
}

impl GpuPoint {
    pub(crate) fn from_sample(s: &GpuSample) -> GpuPoint {
        GpuPoint {
            at: s.at,
            wall: s.wall,
            devices: s
                .devices
                .iter()
                .map(|d| GpuDevicePoint {
                    index: d.index,
                    uuid: Arc::from(d.identity.uuid.as_str()),
                    utilization: d.utilization,
                    memory_used_bytes: d.memory.map(|m| m.used),
                    memory_utilization: d.memory_utilization(),
                    power_w: d.power_w,
                    temperature_c: d.temperature_c,
                })
                .collect(),
        }
    }

    /// Mean GPU busy ratio over the devices that report one.
    pub fn mean_utilization(&self) -> Option<f64> {
        let v: Vec<f64> = self.devices.iter().filter_map(|d| d.utilization).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// Frame-buffer memory used over all devices, bytes.
    pub fn memory_used_bytes(&self) -> Option<u64> {
        let v: Vec<u64> = self
            .devices
            .iter()
            .filter_map(|d| d.memory_used_bytes)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum())
    }
}

/// What [`ResourceHistory::window`] returns: the points in the window, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryWindow {
    /// Host and process points.
    pub host: Vec<HostPoint>,
    /// GPU points.
    pub gpu: Vec<GpuPoint>,
}

/// Bounded rings of samples. Points older than the retention are dropped as new ones arrive.
///
/// ```
/// use std::time::Duration;
/// use genscope::observers::ResourceHistory;
/// let history = ResourceHistory::new(Duration::from_secs(600));
/// assert!(history.window(Duration::from_secs(60)).host.is_empty());
/// ```
#[derive(Debug)]
pub struct ResourceHistory {
    retention: Duration,
    host: Mutex<VecDeque<HostPoint>>,
    gpu: Mutex<VecDeque<GpuPoint>>,
    /// Set by the first GPU point: until then span closes skip the lock (no GPU, no cost).
    has_gpu: std::sync::atomic::AtomicBool,
    gpu_interval: Mutex<Duration>,
}

/// Upper bound on points per ring whatever the retention and interval.
pub const MAX_POINTS: usize = 100_000;

impl ResourceHistory {
    /// An empty history keeping `retention` of points.
    pub fn new(retention: Duration) -> ResourceHistory {
        ResourceHistory {
            retention,
            host: Mutex::new(VecDeque::new()),
            gpu: Mutex::new(VecDeque::new()),
            has_gpu: std::sync::atomic::AtomicBool::new(false),
            gpu_interval: Mutex::new(Duration::from_secs(5)),
        }
    }

    /// How long points are kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    pub(crate) fn set_gpu_interval(&self, interval: Duration) {
        *lock(&self.gpu_interval) = interval;
    }

    fn push<T>(
        ring: &Mutex<VecDeque<T>>,
        point: T,
        at: Instant,
        retention: Duration,
        at_of: impl Fn(&T) -> Instant,
    ) {
        let mut r = lock(ring);
        r.push_back(point);
        while let Some(front) = r.front() {
            if at.saturating_duration_since(at_of(front)) > retention || r.len() > MAX_POINTS {
                r.pop_front();
            } else {
                break;
            }
        }
    }

    /// Adds a host/process point.
    pub fn push_host(&self, point: HostPoint) {
        Self::push(&self.host, point, point.at, self.retention, |p| p.at);
    }

    /// Adds a GPU point.
    pub fn push_gpu(&self, point: GpuPoint) {
        self.has_gpu
            .store(true, std::sync::atomic::Ordering::Release);
        let at = point.at;
        Self::push(&self.gpu, point, at, self.retention, |p| p.at);
    }

    /// Points of the last `window`, oldest first.
    pub fn window(&self, window: Duration) -> HistoryWindow {
        let now = Instant::now();
        let since = now.checked_sub(window);
        let keep = |at: Instant| since.is_none_or(|s| at >= s);
        HistoryWindow {
            host: lock(&self.host)
                .iter()
                .filter(|p| keep(p.at))
                .copied()
                .collect(),
            gpu: lock(&self.gpu)
                .iter()
                .filter(|p| keep(p.at))
                .cloned()
                .collect(),
        }
    }
}

impl GpuUsageSource for ResourceHistory {
    /// Mean GPU busy ratio and peak frame-buffer use over the samples taken during the span; for
    /// a span shorter than one GPU interval, the latest sample at its end (if it is recent).
    fn gpu_usage(&self, from: Instant, to: Instant) -> Option<GpuUsage> {
        if !self.has_gpu.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        let interval = *lock(&self.gpu_interval);
        let ring = lock(&self.gpu);
        let mut inside = ring
            .iter()
            .filter(|p| p.at >= from && p.at <= to)
            .peekable();
        let points: Vec<&GpuPoint> = if inside.peek().is_some() {
            inside.collect()
        } else {
            ring.iter()
                .rev()
                .find(|p| p.at <= to && to.saturating_duration_since(p.at) <= interval * 2)
                .into_iter()
                .collect()
        };
        let utilization: Vec<f64> = points.iter().filter_map(|p| p.mean_utilization()).collect();
        let peak = points.iter().filter_map(|p| p.memory_used_bytes()).max();
        if utilization.is_empty() && peak.is_none() {
            return None;
        }
        Some(GpuUsage {
            utilization: (!utilization.is_empty())
                .then(|| utilization.iter().sum::<f64>() / utilization.len() as f64),
            memory_peak_bytes: peak,
        })
    }
}
