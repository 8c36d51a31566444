//! GPU observation: the [`GpuBackend`] seam (NVML in [`NvmlBackend`], a programmable
//! [`FakeGpu`] for tests), the sampler that drives it, and [`probe`], which tells whether NVIDIA
//! GPUs can be observed here and why not.
//!
//! The sampler owns every policy a backend should not have to repeat: a reading that answers
//! `NotSupported` is remembered per device and never asked again; a device that vanishes is
//! dropped from the sample (and logged once) while the others go on; a library that cannot be
//! opened is re-tried with exponential backoff, so a GPU that appears later is picked up; a
//! missing library is one `info` line, not an error storm.
//!
//! ```
//! use genscope::gpu::{self, GpuAvailability};
//! match gpu::probe() {
//!     GpuAvailability::Available { devices, driver_version } => {
//!         println!("{devices} NVIDIA GPU(s), driver {driver_version:?}")
//!     }
//!     GpuAvailability::Unavailable(why) => println!("no GPU metrics: {why}"),
//! }
//! ```

mod fake;
mod nvml;
mod probe;
pub(crate) mod sampler;

use std::fmt;

pub use fake::{FakeDevice, FakeGpu};
pub use nvml::NvmlBackend;
pub use probe::{GpuAvailability, probe};
pub use sampler::{GpuDeviceSample, GpuSample, GpuSampler};

/// Why NVIDIA GPUs cannot be observed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuUnavailable {
    /// `libnvidia-ml.so.1` could not be loaded (no NVIDIA driver installed, or not on the
    /// library path).
    #[error(
        "the NVML library could not be loaded ({0}); install the NVIDIA driver or add libnvidia-ml.so.1 to the library path"
    )]
    NoLibrary(String),
    /// The library loaded but the kernel driver is not running.
    #[error("the NVIDIA kernel driver is not loaded; check `nvidia-smi` and `lsmod | grep nvidia`")]
    DriverNotLoaded,
    /// The driver refused this user.
    #[error("permission denied by the NVIDIA driver; run as a user with access to /dev/nvidia*")]
    NoPermission,
    /// The driver runs but reports no device (or none is visible to this container).
    #[error(
        "the NVIDIA driver reports no GPU; check CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES"
    )]
    NoDevice,
    /// Anything else the library reported.
    #[error("NVML failed: {0}")]
    Failed(String),
}

/// Why one reading of one device failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// The device does not support this reading. The sampler never asks again.
    #[error("not supported by this device")]
    NotSupported,
    /// The device is gone (fell off the bus, reset, unplugged).
    #[error("the device is gone")]
    Gone,
    /// The driver refused this reading to this user.
    #[error("permission denied")]
    NoPermission,
    /// Anything else; the reading is tried again next cycle.
    #[error("{0}")]
    Failed(String),
}

/// What an opened backend reports about the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuDriver {
    /// Driver version (`hw.driver_version`).
    pub driver_version: Option<String>,
    /// Devices visible.
    pub devices: u32,
}

/// The identity attributes of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuIdentity {
    /// `hw.id`: the device UUID.
    pub uuid: String,
    /// `hw.model`: the product name.
    pub model: String,
    /// `hw.serial_number`, where the board has one.
    pub serial: Option<String>,
    /// `hw.firmware_version`: the VBIOS version.
    pub firmware_version: Option<String>,
}

/// Engine busy ratios over the driver's last sample period (0..1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineUtilization {
    /// Share of time a kernel was running (`hw.gpu.utilization{hw.gpu.task=general}`).
    pub gpu: f64,
    /// Share of time device memory was read or written (NVML's `utilization.memory`; NOT
    /// `hw.gpu.memory.utilization`, which is capacity).
    pub memory_controller: f64,
}

/// Frame-buffer memory, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuMemory {
    /// Installed.
    pub total: u64,
    /// Allocated.
    pub used: u64,
    /// Unallocated.
    pub free: u64,
    /// Reserved by the driver (`None` on drivers older than R510).
    pub reserved: Option<u64>,
}

/// PCIe throughput over the driver's last 20 ms window, bytes per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PcieThroughput {
    /// Device to host.
    pub transmit_bytes_per_s: f64,
    /// Host to device.
    pub receive_bytes_per_s: f64,
}

/// Temperature sensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemperatureSensor {
    /// The GPU die.
    Gpu,
    /// HBM / device memory.
    Memory,
}

/// Temperature thresholds (`hw.limit_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemperatureLimit {
    /// Clocks slow down above it (`high.degraded`).
    Degraded,
    /// The GPU shuts down above it (`high.critical`).
    Critical,
    /// The maximum for normal operation (`max`).
    Max,
}

impl TemperatureLimit {
    /// All limits, in emission order.
    pub const ALL: [TemperatureLimit; 3] = [
        TemperatureLimit::Degraded,
        TemperatureLimit::Critical,
        TemperatureLimit::Max,
    ];

    /// The `hw.limit_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            TemperatureLimit::Degraded => "high.degraded",
            TemperatureLimit::Critical => "high.critical",
            TemperatureLimit::Max => "max",
        }
    }
}

/// Clock domains (`genscope.gpu.clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GpuClock {
    /// Graphics.
    Graphics,
    /// Streaming multiprocessors.
    Sm,
    /// Memory.
    Memory,
    /// Video encoder/decoder.
    Video,
}

impl GpuClock {
    /// All domains, in emission order.
    pub const ALL: [GpuClock; 4] = [
        GpuClock::Graphics,
        GpuClock::Sm,
        GpuClock::Memory,
        GpuClock::Video,
    ];

    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            GpuClock::Graphics => "graphics",
            GpuClock::Sm => "sm",
            GpuClock::Memory => "memory",
            GpuClock::Video => "video",
        }
    }
}

/// Clock throttle reasons genscope reports (each as 0/1), NVML's names in snake case.
pub const THROTTLE_REASONS: [&str; 9] = [
    "gpu_idle",
    "applications_clocks_setting",
    "sw_power_cap",
    "hw_slowdown",
    "sync_boost",
    "sw_thermal_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
    "display_clock_setting",
];

/// ECC error counts since the driver loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EccErrors {
    /// Single-bit, corrected.
    pub corrected: u64,
    /// Double-bit, not corrected.
    pub uncorrected: u64,
}

/// One process using a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuProcess {
    /// PID as the driver reports it (a host PID inside containers).
    pub pid: u32,
    /// Frame-buffer memory the process holds, bytes.
    pub memory_bytes: u64,
}

/// The readings the sampler asks for; the key under which `NotSupported` is remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GpuReading {
    /// [`GpuBackend::utilization`].
    Utilization,
    /// [`GpuBackend::encoder_utilization`].
    EncoderUtilization,
    /// [`GpuBackend::decoder_utilization`].
    DecoderUtilization,
    /// [`GpuBackend::memory`].
    Memory,
    /// [`GpuBackend::pcie_throughput`].
    PcieThroughput,
    /// [`GpuBackend::power_watts`].
    Power,
    /// [`GpuBackend::energy_joules`].
    Energy,
    /// [`GpuBackend::power_limit_watts`].
    PowerLimit,
    /// [`GpuBackend::temperature`].
    Temperature(TemperatureSensor),
    /// [`GpuBackend::temperature_limit`].
    TemperatureLimit(TemperatureLimit),
    /// [`GpuBackend::fan_speed_ratios`].
    FanSpeeds,
    /// [`GpuBackend::ecc_errors`].
    EccErrors,
    /// [`GpuBackend::pcie_replays`].
    PcieReplays,
    /// [`GpuBackend::clock_hz`].
    Clock(GpuClock),
    /// [`GpuBackend::throttle_reasons`].
    ThrottleReasons,
    /// [`GpuBackend::processes`].
    Processes,
}

/// A source of GPU readings: NVML ([`NvmlBackend`]) in production, [`FakeGpu`] in tests, or
/// another vendor's library. Devices are addressed by index (`0..devices`).
///
/// Every method runs on the GPU sampler's own thread, never in a metric callback, so it may be
/// slow; a call that hangs stalls only GPU sampling (the metrics go stale and stop being
/// reported, [`GpuStatus::Stalled`] says so). Return [`GpuError::NotSupported`] for readings a
/// device lacks: the sampler remembers it and never asks again.
///
/// ```
/// use genscope::gpu::{FakeDevice, FakeGpu, GpuBackend};
/// let mut gpu = FakeGpu::new(vec![FakeDevice::typical(0)]);
/// let driver = gpu.open()?;
/// assert_eq!(driver.devices, 1);
/// assert!(gpu.memory(0)?.total > 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait GpuBackend: Send + 'static {
    /// Loads and initializes the library. Called again, with backoff, after it failed or after
    /// the device count could not be read.
    fn open(&mut self) -> Result<GpuDriver, GpuUnavailable>;
    /// Devices visible now.
    fn device_count(&mut self) -> Result<u32, GpuError>;
    /// Identity attributes (read once per device, again after it vanished).
    fn identity(&mut self, device: u32) -> Result<GpuIdentity, GpuError>;
    /// GPU and memory-controller busy ratios.
    fn utilization(&mut self, device: u32) -> Result<EngineUtilization, GpuError>;
    /// Video encoder busy ratio.
    fn encoder_utilization(&mut self, device: u32) -> Result<f64, GpuError>;
    /// Video decoder busy ratio.
    fn decoder_utilization(&mut self, device: u32) -> Result<f64, GpuError>;
    /// Frame-buffer memory.
    fn memory(&mut self, device: u32) -> Result<GpuMemory, GpuError>;
    /// PCIe throughput (integrated by the sampler into `hw.gpu.io`).
    fn pcie_throughput(&mut self, device: u32) -> Result<PcieThroughput, GpuError>;
    /// Power draw, W.
    fn power_watts(&mut self, device: u32) -> Result<f64, GpuError>;
    /// Energy since the driver loaded, J.
    fn energy_joules(&mut self, device: u32) -> Result<f64, GpuError>;
    /// Enforced power limit, W.
    fn power_limit_watts(&mut self, device: u32) -> Result<f64, GpuError>;
    /// A sensor's temperature, °C.
    fn temperature(&mut self, device: u32, sensor: TemperatureSensor) -> Result<f64, GpuError>;
    /// A temperature threshold, °C.
    fn temperature_limit(&mut self, device: u32, limit: TemperatureLimit) -> Result<f64, GpuError>;
    /// Each fan's speed as a ratio of its maximum (empty for passively cooled boards).
    fn fan_speed_ratios(&mut self, device: u32) -> Result<Vec<f64>, GpuError>;
    /// Volatile ECC error counts (`NotSupported` when ECC is off).
    fn ecc_errors(&mut self, device: u32) -> Result<EccErrors, GpuError>;
    /// PCIe replay counter.
    fn pcie_replays(&mut self, device: u32) -> Result<u64, GpuError>;
    /// A clock's current frequency, Hz.
    fn clock_hz(&mut self, device: u32, clock: GpuClock) -> Result<f64, GpuError>;
    /// The active throttle reasons, as names from [`THROTTLE_REASONS`].
    fn throttle_reasons(&mut self, device: u32) -> Result<Vec<&'static str>, GpuError>;
    /// Processes holding device memory.
    fn processes(&mut self, device: u32) -> Result<Vec<GpuProcess>, GpuError>;
}

macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&mut self, $($arg: $ty),*) -> $ret { (**self).$name($($arg),*) })*
    };
}

/// A boxed backend is a backend (the builder keeps backends boxed).
impl<B: GpuBackend + ?Sized> GpuBackend for Box<B> {
    forward! {
        open() -> Result<GpuDriver, GpuUnavailable>;
        device_count() -> Result<u32, GpuError>;
        identity(device: u32) -> Result<GpuIdentity, GpuError>;
        utilization(device: u32) -> Result<EngineUtilization, GpuError>;
        encoder_utilization(device: u32) -> Result<f64, GpuError>;
        decoder_utilization(device: u32) -> Result<f64, GpuError>;
        memory(device: u32) -> Result<GpuMemory, GpuError>;
        pcie_throughput(device: u32) -> Result<PcieThroughput, GpuError>;
        power_watts(device: u32) -> Result<f64, GpuError>;
        energy_joules(device: u32) -> Result<f64, GpuError>;
        power_limit_watts(device: u32) -> Result<f64, GpuError>;
        temperature(device: u32, sensor: TemperatureSensor) -> Result<f64, GpuError>;
        temperature_limit(device: u32, limit: TemperatureLimit) -> Result<f64, GpuError>;
        fan_speed_ratios(device: u32) -> Result<Vec<f64>, GpuError>;
        ecc_errors(device: u32) -> Result<EccErrors, GpuError>;
        pcie_replays(device: u32) -> Result<u64, GpuError>;
        clock_hz(device: u32, clock: GpuClock) -> Result<f64, GpuError>;
        throttle_reasons(device: u32) -> Result<Vec<&'static str>, GpuError>;
        processes(device: u32) -> Result<Vec<GpuProcess>, GpuError>;
    }
}

/// Where the running GPU sampler stands ([`crate::observers::Observers::gpu_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuStatus {
    /// GPU observation is turned off.
    Disabled,
    /// The first attempt has not finished yet.
    Starting,
    /// Sampling.
    Available {
        /// Devices in the latest sample.
        devices: u32,
        /// Driver version.
        driver_version: Option<String>,
    },
    /// Not observable now; re-checked with backoff.
    Unavailable(GpuUnavailable),
    /// A backend call has not returned for longer than the stall timeout; GPU metrics are not
    /// reported until it does.
    Stalled,
}

impl fmt::Display for GpuStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuStatus::Disabled => f.write_str("disabled"),
            GpuStatus::Starting => f.write_str("starting"),
            GpuStatus::Available {
                devices,
                driver_version,
            } => write!(
                f,
                "{devices} device(s), driver {}",
                driver_version.as_deref().unwrap_or("unknown")
            ),
            GpuStatus::Unavailable(why) => write!(f, "unavailable: {why}"),
            GpuStatus::Stalled => f.write_str("stalled: a GPU library call has not returned"),
        }
    }
}
