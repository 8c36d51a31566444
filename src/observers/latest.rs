//! [`Latest`]: the newest host, process and GPU samples, written by the sampler threads and read
//! by the observable instruments' callbacks (a stale sample reads as absent).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use super::gpu::{GpuSample, GpuStatus};
use super::host::HostSample;
use super::lock;
use super::process::ProcessSample;

/// The latest samples, read by the callbacks. Each getter answers `None` for a stale sample.
pub(crate) struct Latest {
    pub(super) host: ArcSwapOption<HostSample>,
    pub(super) process: ArcSwapOption<ProcessSample>,
    pub(super) gpu: ArcSwapOption<GpuSample>,
    pub(super) host_max_age: Duration,
    pub(super) gpu_max_age: Duration,
    pub(super) stall_timeout: Duration,
    pub(super) gpu_status: Mutex<GpuStatus>,
    pub(super) gpu_busy_since: Mutex<Option<Instant>>,
    pub(super) stall_logged: AtomicBool,
    pub(super) stopped: AtomicBool,
}

impl Latest {
    pub(super) fn running(&self) -> bool {
        !self.stopped.load(Ordering::Relaxed)
    }

    pub(crate) fn host(&self) -> Option<Arc<HostSample>> {
        if !self.running() {
            return None;
        }
        self.host
            .load_full()
            .filter(|h| h.at.elapsed() <= self.host_max_age)
    }

    pub(crate) fn process(&self) -> Option<Arc<ProcessSample>> {
        if !self.running() {
            return None;
        }
        self.process
            .load_full()
            .filter(|p| p.at.elapsed() <= self.host_max_age)
    }

    pub(crate) fn gpu(&self) -> Option<Arc<GpuSample>> {
        if !self.running() || self.gpu_stalled() {
            return None;
        }
        self.gpu
            .load_full()
            .filter(|g| g.at.elapsed() <= self.gpu_max_age)
    }

    pub(super) fn gpu_stalled(&self) -> bool {
        let stalled = lock(&self.gpu_busy_since).is_some_and(|t| t.elapsed() > self.stall_timeout);
        if stalled && !self.stall_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(target: "genscope", timeout = ?self.stall_timeout,
                "a GPU library call has not returned; GPU metrics are withheld until it does");
        }
        stalled
    }

    pub(super) fn clear(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.host.store(None);
        self.process.store(None);
        self.gpu.store(None);
    }
}
