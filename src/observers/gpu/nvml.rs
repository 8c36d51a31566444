//! [`NvmlBackend`]: [`GpuBackend`] over NVIDIA's NVML through `nvml-wrapper`, which loads
//! `libnvidia-ml.so.1` at run time (so genscope builds and runs on machines without a driver).
//! Unit conversions live here: mW → W, mJ → J, MHz → Hz, percent → ratio, KB/s → B/s.

use std::ffi::OsString;

use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor as NvmlSensor,
    TemperatureThreshold,
};
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::structs::device::FieldId;

use super::{
    EccErrors, EngineUtilization, GpuBackend, GpuClock, GpuDriver, GpuError, GpuIdentity,
    GpuMemory, GpuProcess, GpuUnavailable, PcieThroughput, TemperatureLimit, TemperatureSensor,
};

/// NVML field id of the HBM temperature (`NVML_FI_DEV_MEMORY_TEMP`).
const FIELD_MEMORY_TEMPERATURE: u32 = 82;

/// NVIDIA GPUs through NVML. Initialized once by [`open`](GpuBackend::open) and kept.
///
/// ```
/// use genscope::gpu::{GpuBackend, NvmlBackend};
/// // On a machine without the NVIDIA driver this says why instead of failing the program.
/// match NvmlBackend::new().open() {
///     Ok(driver) => println!("{} GPU(s)", driver.devices),
///     Err(why) => println!("{why}"),
/// }
/// ```
#[derive(Default)]
pub struct NvmlBackend {
    nvml: Option<Nvml>,
    lib_path: Option<OsString>,
}

impl std::fmt::Debug for NvmlBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlBackend")
            .field("open", &self.nvml.is_some())
            .field("lib_path", &self.lib_path)
            .finish()
    }
}

impl NvmlBackend {
    /// Loads `libnvidia-ml.so.1` from the library path when opened.
    pub fn new() -> NvmlBackend {
        NvmlBackend::default()
    }

    /// Loads the library from this path instead (a specific driver, or a fake NVML library).
    pub fn with_library_path(path: impl Into<OsString>) -> NvmlBackend {
        NvmlBackend {
            nvml: None,
            lib_path: Some(path.into()),
        }
    }

    fn nvml(&self) -> Result<&Nvml, GpuError> {
        self.nvml
            .as_ref()
            .ok_or_else(|| GpuError::Failed("NVML is not open".into()))
    }

    fn device<T>(
        &self,
        index: u32,
        f: impl FnOnce(&nvml_wrapper::Device<'_>) -> Result<T, NvmlError>,
    ) -> Result<T, GpuError> {
        let device = self.nvml()?.device_by_index(index).map_err(reading_error)?;
        f(&device).map_err(reading_error)
    }
}

fn open_error(e: NvmlError) -> GpuUnavailable {
    match e {
        NvmlError::LibloadingError(e) => GpuUnavailable::NoLibrary(e.to_string()),
        NvmlError::LibraryNotFound => GpuUnavailable::NoLibrary("libnvidia-ml.so.1".into()),
        NvmlError::DriverNotLoaded => GpuUnavailable::DriverNotLoaded,
        NvmlError::NoPermission => GpuUnavailable::NoPermission,
        other => GpuUnavailable::Failed(other.to_string()),
    }
}

fn reading_error(e: NvmlError) -> GpuError {
    match e {
        // Older drivers lack newer entry points: treat like an unsupported reading.
        NvmlError::NotSupported
        | NvmlError::FunctionNotFound
        | NvmlError::FailedToLoadSymbol(_) => GpuError::NotSupported,
        NvmlError::GpuLost | NvmlError::ResetRequired | NvmlError::NotFound => GpuError::Gone,
        NvmlError::NoPermission => GpuError::NoPermission,
        other => GpuError::Failed(other.to_string()),
    }
}

fn legacy_missing(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::FunctionNotFound | NvmlError::FailedToLoadSymbol(_)
    )
}

impl GpuBackend for NvmlBackend {
    fn open(&mut self) -> Result<GpuDriver, GpuUnavailable> {
        let nvml = match self.nvml.take() {
            Some(nvml) => nvml,
            None => match &self.lib_path {
                Some(path) => Nvml::builder().lib_path(path.as_os_str()).init(),
                None => Nvml::init(),
            }
            .map_err(open_error)?,
        };
        // On failure the handle is dropped (NVML shut down) and the next open starts afresh.
        let devices = nvml.device_count().map_err(open_error)?;
        let driver_version = nvml.sys_driver_version().ok();
        self.nvml = Some(nvml);
        Ok(GpuDriver {
            driver_version,
            devices,
        })
    }

    fn device_count(&mut self) -> Result<u32, GpuError> {
        let r = self.nvml()?.device_count().map_err(reading_error);
        if r.is_err() {
            // Re-initialize on the next open (driver reloaded or gone).
            self.nvml = None;
        }
        r
    }

    fn identity(&mut self, device: u32) -> Result<GpuIdentity, GpuError> {
        self.device(device, |d| {
            Ok(GpuIdentity {
                uuid: d.uuid()?,
                model: d.name()?,
                serial: d.serial().ok(),
                firmware_version: d.vbios_version().ok(),
            })
        })
    }

    fn utilization(&mut self, device: u32) -> Result<EngineUtilization, GpuError> {
        self.device(device, |d| {
            let u = d.utilization_rates()?;
            Ok(EngineUtilization {
                gpu: u.gpu as f64 / 100.0,
                memory_controller: u.memory as f64 / 100.0,
            })
        })
    }

    fn encoder_utilization(&mut self, device: u32) -> Result<f64, GpuError> {
        self.device(device, |d| {
            Ok(d.encoder_utilization()?.utilization as f64 / 100.0)
        })
    }

    fn decoder_utilization(&mut self, device: u32) -> Result<f64, GpuError> {
        self.device(device, |d| {
            Ok(d.decoder_utilization()?.utilization as f64 / 100.0)
        })
    }

    fn memory(&mut self, device: u32) -> Result<GpuMemory, GpuError> {
        let nvml = self.nvml()?;
        self.device(device, |d| match d.memory_info() {
            Ok(m) => Ok(GpuMemory {
                total: m.total,
                used: m.used,
                free: m.free,
                reserved: (m.reserved > 0).then_some(m.reserved),
            }),
            // Drivers before R510 lack nvmlDeviceGetMemoryInfo_v2: fall back to v1 (no reserved).
            Err(e) if legacy_missing(&e) => {
                let sym = nvml
                    .lib()
                    .nvmlDeviceGetMemoryInfo
                    .as_ref()
                    .map_err(|e| NvmlError::FailedToLoadSymbol(e.to_string()))?;
                // SAFETY: an all-zero nvmlMemory_t is valid for the driver to overwrite; the
                // handle comes from a live `Device` of this `Nvml`.
                let mut m: nvml_wrapper_sys::bindings::nvmlMemory_t = unsafe { std::mem::zeroed() };
                // SAFETY: as above; `m` outlives the call.
                nvml_wrapper::error::nvml_try(unsafe { sym(d.handle(), &mut m) })?;
                Ok(GpuMemory {
                    total: m.total,
                    used: m.used,
                    free: m.free,
                    reserved: None,
                })
            }
            Err(e) => Err(e),
        })
    }

    fn pcie_throughput(&mut self, device: u32) -> Result<PcieThroughput, GpuError> {
        self.device(device, |d| {
            Ok(PcieThroughput {
                transmit_bytes_per_s: d.pcie_throughput(PcieUtilCounter::Send)? as f64 * 1024.0,
                receive_bytes_per_s: d.pcie_throughput(PcieUtilCounter::Receive)? as f64 * 1024.0,
            })
        })
    }

    fn power_watts(&mut self, device: u32) -> Result<f64, GpuError> {
        self.device(device, |d| Ok(d.power_usage()? as f64 / 1000.0))
    }

    fn energy_joules(&mut self, device: u32) -> Result<f64, GpuError> {
        self.device(
            device,
            |d| Ok(d.total_energy_consumption()? as f64 / 1000.0),
        )
    }

    fn power_limit_watts(&mut self, device: u32) -> Result<f64, GpuError> {
        self.device(device, |d| Ok(d.enforced_power_limit()? as f64 / 1000.0))
    }

    fn temperature(&mut self, device: u32, sensor: TemperatureSensor) -> Result<f64, GpuError> {
        self.device(device, |d| match sensor {
            TemperatureSensor::Gpu => Ok(d.temperature(NvmlSensor::Gpu)? as f64),
            TemperatureSensor::Memory => {
                let mut values = d.field_values_for(&[FieldId(FIELD_MEMORY_TEMPERATURE)])?;
                let sample = values.pop().ok_or(NvmlError::NotSupported)??;
                match sample.value? {
                    // The driver answers 0 on boards without an HBM sensor.
                    SampleValue::U32(0) | SampleValue::U64(0) | SampleValue::I64(0) => {
                        Err(NvmlError::NotSupported)
                    }
                    SampleValue::F64(v) => Ok(v),
                    SampleValue::U32(v) => Ok(v as f64),
                    SampleValue::U64(v) => Ok(v as f64),
                    SampleValue::I64(v) => Ok(v as f64),
                }
            }
        })
    }

    fn temperature_limit(&mut self, device: u32, limit: TemperatureLimit) -> Result<f64, GpuError> {
        let threshold = match limit {
            TemperatureLimit::Degraded => TemperatureThreshold::Slowdown,
            TemperatureLimit::Critical => TemperatureThreshold::Shutdown,
            TemperatureLimit::Max => TemperatureThreshold::GpuMax,
        };
        self.device(device, |d| Ok(d.temperature_threshold(threshold)? as f64))
    }

    fn fan_speed_ratios(&mut self, device: u32) -> Result<Vec<f64>, GpuError> {
        self.device(device, |d| {
            let fans = d.num_fans()?;
            (0..fans)
                .map(|i| Ok(d.fan_speed(i)? as f64 / 100.0))
                .collect()
        })
    }

    fn ecc_errors(&mut self, device: u32) -> Result<EccErrors, GpuError> {
        self.device(device, |d| {
            if !d.is_ecc_enabled()?.currently_enabled {
                return Err(NvmlError::NotSupported);
            }
            Ok(EccErrors {
                corrected: d.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)?,
                uncorrected: d.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)?,
            })
        })
    }

    fn pcie_replays(&mut self, device: u32) -> Result<u64, GpuError> {
        self.device(device, |d| Ok(d.pcie_replay_counter()? as u64))
    }

    fn clock_hz(&mut self, device: u32, clock: GpuClock) -> Result<f64, GpuError> {
        let c = match clock {
            GpuClock::Graphics => Clock::Graphics,
            GpuClock::Sm => Clock::SM,
            GpuClock::Memory => Clock::Memory,
            GpuClock::Video => Clock::Video,
        };
        self.device(device, |d| Ok(d.clock_info(c)? as f64 * 1e6))
    }

    fn throttle_reasons(&mut self, device: u32) -> Result<Vec<&'static str>, GpuError> {
        self.device(device, |d| {
            let r = d.current_throttle_reasons()?;
            let table = [
                (ThrottleReasons::GPU_IDLE, "gpu_idle"),
                (
                    ThrottleReasons::APPLICATIONS_CLOCKS_SETTING,
                    "applications_clocks_setting",
                ),
                (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
                (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
                (ThrottleReasons::SYNC_BOOST, "sync_boost"),
                (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
                (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
                (
                    ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN,
                    "hw_power_brake_slowdown",
                ),
                (
                    ThrottleReasons::DISPLAY_CLOCK_SETTING,
                    "display_clock_setting",
                ),
            ];
            Ok(table
                .iter()
                .filter(|(flag, _)| r.contains(*flag))
                .map(|(_, name)| *name)
                .collect())
        })
    }

    fn processes(&mut self, device: u32) -> Result<Vec<GpuProcess>, GpuError> {
        self.device(device, |d| {
            // Newest entry points first; drivers before R470 only have the _v2 ones.
            let compute = match d.running_compute_processes() {
                Err(e) if legacy_missing(&e) => d.running_compute_processes_v2()?,
                other => other?,
            };
            let graphics = match d.running_graphics_processes() {
                Err(e) if legacy_missing(&e) => d.running_graphics_processes_v2()?,
                Err(NvmlError::NotSupported) => Vec::new(),
                other => other?,
            };
            let mut out: Vec<GpuProcess> = Vec::new();
            for p in compute.into_iter().chain(graphics) {
                let bytes = match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => b,
                    UsedGpuMemory::Unavailable => continue,
                };
                match out.iter_mut().find(|o| o.pid == p.pid) {
                    Some(o) => o.memory_bytes = o.memory_bytes.max(bytes),
                    None => out.push(GpuProcess {
                        pid: p.pid,
                        memory_bytes: bytes,
                    }),
                }
            }
            Ok(out)
        })
    }
}
