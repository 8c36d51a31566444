//! Host, process and GPU observers: background samplers whose latest values are reported by
//! OpenTelemetry observable instruments (`system.*`, `process.*`, `hw.*`, `genscope.gpu.*`) and
//! kept in a bounded [`ResourceHistory`] that the analyzer and the resource-usage layer read.
//!
//! Data flow: sampler thread → latest-sample cache + history ring → observable callbacks (at
//! each metric collection) → pipeline. Callbacks never read `/proc` or call NVML; samplers never
//! block the export. This module owns sampling and registration only; it must not know about
//! exporters or the analyzer.
//!
//! Files: `procfs.rs` (parsers), `host.rs`, `process.rs`, `gpu/` (backend trait, NVML, fake,
//! sampler, probe), `history.rs`, `latest.rs` (what the callbacks read), `register/` (the
//! instruments: host, process, GPU), `runner.rs` (threads, builder).
//!
//! ```
//! use std::time::Duration;
//! let telemetry = genscope::Genscope::builder()
//!     .ignore_environment()
//!     .host_metrics(genscope::config::Sampling::Every(Duration::from_millis(100)))
//!     .gpu_metrics(genscope::config::Sampling::Off)
//!     .build()?;
//! std::thread::sleep(Duration::from_millis(250));
//! let observers = telemetry.observers().expect("host metrics are on");
//! let host = observers.current_usage().host.expect("sampled");
//! assert!(host.memory.total > 0);
//! assert!(!observers.history().window(Duration::from_secs(60)).host.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod gpu;
mod history;
mod host;
mod latest;
mod process;
pub mod procfs;
mod register;
mod runner;

pub use crate::config::{DEFAULT_GPU_INTERVAL, DEFAULT_HISTORY, DEFAULT_HOST_INTERVAL};
pub use history::{
    GpuDevicePoint, GpuPoint, HistoryWindow, HostPoint, MAX_POINTS, ResourceHistory,
};
pub use host::{CpuModes, Filesystem, HostSample, HostSampler};
pub use process::{ProcessSample, ProcessSampler};
pub use runner::{CurrentUsage, DEFAULT_STALL_TIMEOUT, Observers, ObserversBuilder};

/// Locks, recovering from a poisoned lock: a panicking sampler must not stop the observers.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The instrumentation scope the observers' instruments are registered under.
pub const METER_NAME: &str = "genscope.observers";
