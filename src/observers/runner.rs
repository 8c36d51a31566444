//! [`Observers`] and [`ObserversBuilder`]: the sampler threads, the latest-sample cache the
//! observable callbacks read, and the history ring they fill.
//!
//! Two threads: `genscope-host-sampler` (host + process, default every second) and
//! `genscope-gpu-sampler` (default every 5 s). A GPU library call that hangs blocks only the
//! GPU thread: the cache then ages past its limit and the callbacks report no GPU values (and
//! [`GpuStatus::Stalled`]) instead of stale ones, while every other metric is exported on time.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use opentelemetry::metrics::Meter;

use super::gpu::{GpuBackend, GpuSample, GpuSampler, GpuStatus, NvmlBackend, sampler::Cycle};
use super::history::{GpuPoint, HostPoint, ResourceHistory};
use super::host::{HostSample, HostSampler};
use super::latest::Latest;
use super::lock;
use super::process::{ProcessSample, ProcessSampler};
use super::register::{self, Registered};
use crate::config::{DEFAULT_GPU_INTERVAL, DEFAULT_HISTORY, DEFAULT_HOST_INTERVAL};
use crate::operations::GpuUsageSource;

/// Default time a GPU call may take before GPU values are withheld as stale.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Configures and starts the observers. Every setting has a documented default; `start`
/// registers the observable instruments on the given meter and spawns the sampler threads.
///
/// ```
/// use std::time::Duration;
/// use genscope::gpu::{FakeDevice, FakeGpu};
/// use genscope::observers::Observers;
/// use opentelemetry::metrics::MeterProvider as _;
///
/// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
/// let observers = Observers::builder()
///     .host_interval(Some(Duration::from_millis(200)))
///     .gpu_interval(Some(Duration::from_millis(200)))
///     .gpu_backend(FakeGpu::new(vec![FakeDevice::typical(0)]))
///     .start(&provider.meter("genscope.observers"));
/// std::thread::sleep(Duration::from_millis(300));
/// let now = observers.current_usage();
/// assert!(now.host.is_some() && now.process.is_some());
/// assert_eq!(now.gpu.map(|g| g.devices.len()), Some(1));
/// ```
pub struct ObserversBuilder {
    host_interval: Option<Duration>,
    gpu_interval: Option<Duration>,
    gpu_backend: Option<Box<dyn GpuBackend>>,
    history: Duration,
    per_cpu: bool,
    stall_timeout: Duration,
    gpu_retry: (Duration, Duration),
}

impl std::fmt::Debug for ObserversBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserversBuilder")
            .field("host_interval", &self.host_interval)
            .field("gpu_interval", &self.gpu_interval)
            .field("history", &self.history)
            .field("per_cpu", &self.per_cpu)
            .finish()
    }
}

impl Default for ObserversBuilder {
    fn default() -> Self {
        ObserversBuilder {
            host_interval: Some(DEFAULT_HOST_INTERVAL),
            gpu_interval: Some(DEFAULT_GPU_INTERVAL),
            gpu_backend: None,
            history: DEFAULT_HISTORY,
            per_cpu: false,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            gpu_retry: (Duration::from_secs(10), Duration::from_secs(600)),
        }
    }
}

impl ObserversBuilder {
    /// Host and process sampling interval; `None` turns both off. Intervals under 10 ms are
    /// raised to 10 ms.
    pub fn host_interval(mut self, interval: Option<Duration>) -> Self {
        self.host_interval = interval.map(|i| i.max(Duration::from_millis(10)));
        self
    }

    /// GPU sampling interval; `None` turns GPU observation off.
    pub fn gpu_interval(mut self, interval: Option<Duration>) -> Self {
        self.gpu_interval = interval.map(|i| i.max(Duration::from_millis(10)));
        self
    }

    /// The GPU backend (default: [`NvmlBackend`]).
    pub fn gpu_backend(mut self, backend: impl GpuBackend) -> Self {
        self.gpu_backend = Some(Box::new(backend));
        self
    }

    /// How long the history keeps samples (default 10 minutes).
    pub fn history(mut self, retention: Duration) -> Self {
        self.history = retention;
        self
    }

    /// One `system.cpu.*` series per logical CPU (`cpu.logical_number`) instead of the aggregate.
    pub fn per_cpu(mut self, on: bool) -> Self {
        self.per_cpu = on;
        self
    }

    /// How long one GPU call may run before GPU values are withheld (default 10 s).
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// First and longest wait between attempts to open an unavailable GPU library
    /// (default 10 s doubling up to 10 min).
    pub fn gpu_retry(mut self, initial: Duration, max: Duration) -> Self {
        self.gpu_retry = (initial, max);
        self
    }

    /// Registers the instruments on `meter` and starts sampling.
    pub fn start(self, meter: &Meter) -> Observers {
        let host_interval = self.host_interval;
        let gpu_interval = self.gpu_interval;
        let latest = Arc::new(Latest {
            host: ArcSwapOption::empty(),
            process: ArcSwapOption::empty(),
            gpu: ArcSwapOption::empty(),
            host_max_age: host_interval.map(|i| i * 3).unwrap_or_default() + Duration::from_secs(1),
            gpu_max_age: gpu_interval.map(|i| i * 2).unwrap_or_default() + self.stall_timeout,
            stall_timeout: self.stall_timeout,
            gpu_status: Mutex::new(if gpu_interval.is_some() {
                GpuStatus::Starting
            } else {
                GpuStatus::Disabled
            }),
            gpu_busy_since: Mutex::new(None),
            stall_logged: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        });
        let history = Arc::new(ResourceHistory::new(self.history));
        let mut instruments: Registered = Vec::new();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let host_thread = host_interval.and_then(|interval| {
            register::register_host(meter, &latest, &mut instruments);
            register::register_process(meter, &latest, &mut instruments);
            let (latest, history, stop) =
                (Arc::clone(&latest), Arc::clone(&history), stop_rx.clone());
            let per_cpu = self.per_cpu;
            spawn("genscope-host-sampler", move || {
                host_loop(interval, per_cpu, &latest, &history, &stop)
            })
        });
        let gpu_thread = gpu_interval.and_then(|interval| {
            history.set_gpu_interval(interval);
            register::register_gpu(meter, &latest, &mut instruments);
            let backend = self
                .gpu_backend
                .unwrap_or_else(|| Box::new(NvmlBackend::new()));
            let sampler = GpuSampler::new(backend, self.gpu_retry.0, self.gpu_retry.1);
            let (latest, history, stop) =
                (Arc::clone(&latest), Arc::clone(&history), stop_rx.clone());
            spawn("genscope-gpu-sampler", move || {
                gpu_loop(interval, sampler, &latest, &history, &stop)
            })
        });
        Observers {
            latest,
            history,
            stop: Mutex::new(Some(stop_tx)),
            host_thread: Mutex::new(host_thread),
            gpu_thread: Mutex::new(gpu_thread),
            host_enabled: host_interval.is_some(),
            gpu_enabled: gpu_interval.is_some(),
            _instruments: instruments,
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Option<JoinHandle<()>> {
    match std::thread::Builder::new().name(name.into()).spawn(f) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(target: "genscope", thread = name, error = %e,
                "cannot start a sampler thread; its metrics are off");
            None
        }
    }
}

/// Sleeps until the next tick; `false` once the observers stop.
fn wait(stop: &Receiver<()>, interval: Duration, started: Instant) -> bool {
    let left = interval.saturating_sub(started.elapsed());
    matches!(stop.recv_timeout(left), Err(RecvTimeoutError::Timeout))
}

fn host_loop(
    interval: Duration,
    per_cpu: bool,
    latest: &Latest,
    history: &ResourceHistory,
    stop: &Receiver<()>,
) {
    let mut host = HostSampler::new(per_cpu);
    let mut process = ProcessSampler::new();
    loop {
        let started = Instant::now();
        let pass = std::panic::catch_unwind(AssertUnwindSafe(|| (host.sample(), process.sample())));
        match pass {
            Ok((h, p)) => {
                history.push_host(HostPoint::from_samples(Some(&h), Some(&p)));
                latest.host.store(Some(Arc::new(h)));
                latest.process.store(Some(Arc::new(p)));
            }
            Err(_) => {
                tracing::error!(target: "genscope", "the host sampler panicked; this sample is skipped")
            }
        }
        if !wait(stop, interval, started) {
            return;
        }
    }
}

fn gpu_loop(
    interval: Duration,
    mut sampler: GpuSampler,
    latest: &Latest,
    history: &ResourceHistory,
    stop: &Receiver<()>,
) {
    loop {
        let started = Instant::now();
        *lock(&latest.gpu_busy_since) = Some(started);
        let cycle = std::panic::catch_unwind(AssertUnwindSafe(|| sampler.cycle()));
        *lock(&latest.gpu_busy_since) = None;
        if latest.stall_logged.swap(false, Ordering::Relaxed) {
            tracing::info!(target: "genscope", stalled_for = ?started.elapsed(),
                "the GPU library call returned; GPU metrics resume");
        }
        match cycle {
            Ok(Cycle::Sampled(sample)) => {
                *lock(&latest.gpu_status) = GpuStatus::Available {
                    devices: sample.devices.len() as u32,
                    driver_version: sample.driver_version.clone(),
                };
                history.push_gpu(GpuPoint::from_sample(&sample));
                latest.gpu.store(Some(Arc::new(sample)));
            }
            Ok(Cycle::Unavailable(why)) => {
                *lock(&latest.gpu_status) = GpuStatus::Unavailable(why);
                latest.gpu.store(None);
            }
            Err(_) => {
                tracing::error!(target: "genscope", "the GPU sampler panicked; this sample is skipped")
            }
        }
        if !wait(stop, interval, started) {
            return;
        }
    }
}

/// Everything the observers know now.
#[derive(Debug, Clone, Default)]
pub struct CurrentUsage {
    /// The latest host sample (`None` before the first or when stale).
    pub host: Option<Arc<HostSample>>,
    /// The latest sample of this process.
    pub process: Option<Arc<ProcessSample>>,
    /// The latest GPU sample (`None` without GPUs, or while the GPU sampler is stalled).
    pub gpu: Option<Arc<GpuSample>>,
}

/// Running observers: sampler threads, the instruments they feed, and the history.
/// Dropping it stops sampling; the instruments then report nothing.
pub struct Observers {
    latest: Arc<Latest>,
    history: Arc<ResourceHistory>,
    stop: Mutex<Option<Sender<()>>>,
    host_thread: Mutex<Option<JoinHandle<()>>>,
    gpu_thread: Mutex<Option<JoinHandle<()>>>,
    host_enabled: bool,
    gpu_enabled: bool,
    _instruments: Registered,
}

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observers")
            .field("host", &self.host_enabled)
            .field("gpu", &self.gpu_status())
            .finish()
    }
}

impl Observers {
    /// See [`ObserversBuilder`].
    pub fn builder() -> ObserversBuilder {
        ObserversBuilder::default()
    }

    /// The latest samples (the seeds' `get_current_usage`).
    pub fn current_usage(&self) -> CurrentUsage {
        CurrentUsage {
            host: self.latest.host(),
            process: self.latest.process(),
            gpu: self.latest.gpu(),
        }
    }

    /// The history ring (the seeds' `get_resource_history`: `history().window(..)`).
    pub fn history(&self) -> &Arc<ResourceHistory> {
        &self.history
    }

    /// The history as the resource-usage layer's GPU source.
    pub fn gpu_usage_source(&self) -> Option<Arc<dyn GpuUsageSource>> {
        self.gpu_enabled
            .then(|| Arc::clone(&self.history) as Arc<dyn GpuUsageSource>)
    }

    /// Where GPU observation stands, and why when it is not running.
    pub fn gpu_status(&self) -> GpuStatus {
        if self.latest.gpu_stalled() {
            return GpuStatus::Stalled;
        }
        lock(&self.latest.gpu_status).clone()
    }
}

impl Observers {
    /// Stops sampling; the instruments report nothing afterwards. Idempotent. Waits for the host
    /// thread (one pass at most) and for the GPU thread only when no GPU call is in flight.
    pub fn stop(&self) {
        lock(&self.stop).take();
        self.latest.clear();
        if let Some(h) = lock(&self.host_thread).take() {
            let _ = h.join();
        }
        // A GPU call that hangs must not hang the caller: join only an idle GPU thread.
        let idle = lock(&self.latest.gpu_busy_since).is_none();
        if idle && let Some(h) = lock(&self.gpu_thread).take() {
            let _ = h.join();
        }
    }

    /// Whether host and process sampling is on.
    pub fn host_enabled(&self) -> bool {
        self.host_enabled
    }
}

impl Drop for Observers {
    fn drop(&mut self) {
        self.stop();
    }
}
