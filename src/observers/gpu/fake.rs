//! [`FakeGpu`]: a programmable [`GpuBackend`] for tests, examples and benchmarks on machines
//! without a GPU. Clones share state, so a test keeps one clone to change readings, make a
//! device vanish, make the library disappear, or hang the next call, while the sampler owns
//! another.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::{
    EccErrors, EngineUtilization, GpuBackend, GpuClock, GpuDriver, GpuError, GpuIdentity,
    GpuMemory, GpuProcess, GpuReading, GpuUnavailable, PcieThroughput, TemperatureLimit,
    TemperatureSensor,
};

/// One fake device. `None` fields answer [`GpuError::NotSupported`].
#[derive(Debug, Clone, PartialEq)]
pub struct FakeDevice {
    /// Identity.
    pub identity: GpuIdentity,
    /// Busy ratios.
    pub utilization: Option<EngineUtilization>,
    /// Encoder busy ratio.
    pub encoder_utilization: Option<f64>,
    /// Decoder busy ratio.
    pub decoder_utilization: Option<f64>,
    /// Memory.
    pub memory: Option<GpuMemory>,
    /// PCIe throughput.
    pub pcie_throughput: Option<PcieThroughput>,
    /// Power, W.
    pub power_watts: Option<f64>,
    /// Energy, J.
    pub energy_joules: Option<f64>,
    /// Power limit, W.
    pub power_limit_watts: Option<f64>,
    /// Die temperature, °C.
    pub temperature: Option<f64>,
    /// Memory temperature, °C.
    pub memory_temperature: Option<f64>,
    /// Thresholds, °C.
    pub temperature_limits: HashMap<TemperatureLimit, f64>,
    /// Fan speed ratios.
    pub fan_speed_ratios: Option<Vec<f64>>,
    /// ECC errors.
    pub ecc_errors: Option<EccErrors>,
    /// PCIe replays.
    pub pcie_replays: Option<u64>,
    /// Clocks, Hz.
    pub clocks_hz: HashMap<GpuClock, f64>,
    /// Active throttle reasons.
    pub throttle_reasons: Option<Vec<&'static str>>,
    /// Processes.
    pub processes: Option<Vec<GpuProcess>>,
    /// Every call answers [`GpuError::Gone`] (fell off the bus).
    pub gone: bool,
}

impl FakeDevice {
    /// A data-center GPU (80 GB) with every reading supported and plausible values.
    ///
    /// ```
    /// let d = genscope::gpu::FakeDevice::typical(1);
    /// assert_eq!(d.identity.uuid, "GPU-fake-0001");
    /// ```
    pub fn typical(index: u32) -> FakeDevice {
        const GIB: u64 = 1 << 30;
        FakeDevice {
            identity: GpuIdentity {
                uuid: format!("GPU-fake-{index:04}"),
                model: "Fake H100 80GB HBM3".into(),
                serial: Some(format!("FAKE{index:08}")),
                firmware_version: Some("96.00.99.00.01".into()),
            },
            utilization: Some(EngineUtilization {
                gpu: 0.42,
                memory_controller: 0.17,
            }),
            encoder_utilization: Some(0.0),
            decoder_utilization: Some(0.05),
            memory: Some(GpuMemory {
                total: 80 * GIB,
                used: 30 * GIB,
                free: 49 * GIB,
                reserved: Some(GIB),
            }),
            pcie_throughput: Some(PcieThroughput {
                transmit_bytes_per_s: 2e6,
                receive_bytes_per_s: 8e6,
            }),
            power_watts: Some(310.5),
            energy_joules: Some(1_000_000.0),
            power_limit_watts: Some(700.0),
            temperature: Some(54.0),
            memory_temperature: Some(61.0),
            temperature_limits: HashMap::from([
                (TemperatureLimit::Degraded, 87.0),
                (TemperatureLimit::Critical, 92.0),
                (TemperatureLimit::Max, 85.0),
            ]),
            fan_speed_ratios: Some(vec![0.3, 0.35]),
            ecc_errors: Some(EccErrors {
                corrected: 2,
                uncorrected: 0,
            }),
            pcie_replays: Some(0),
            clocks_hz: HashMap::from([
                (GpuClock::Graphics, 1.755e9),
                (GpuClock::Sm, 1.755e9),
                (GpuClock::Memory, 2.619e9),
                (GpuClock::Video, 1.5e9),
            ]),
            throttle_reasons: Some(vec!["sw_power_cap"]),
            processes: Some(vec![GpuProcess {
                pid: std::process::id(),
                memory_bytes: 20 * GIB,
            }]),
            gone: false,
        }
    }
}

#[derive(Default)]
struct State {
    devices: Vec<FakeDevice>,
    driver_version: Option<String>,
    unavailable: Option<GpuUnavailable>,
    calls: HashMap<(u32, GpuReading), u64>,
    opens: u64,
    hang: bool,
    hanging: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    released: Condvar,
}

/// A programmable GPU backend for tests, examples and benchmarks on machines without a GPU.
/// Clones share state: a test keeps one clone to change readings ([`update`](Self::update)),
/// make a device vanish (`gone`), make the library disappear
/// ([`set_unavailable`](Self::set_unavailable)) or hang the next call
/// ([`hang_next_call`](Self::hang_next_call)), while the sampler owns another. See
/// [`GpuBackend`].
///
/// ```
/// use genscope::gpu::{FakeDevice, FakeGpu, GpuBackend, GpuUnavailable};
/// let gpu = FakeGpu::new(vec![FakeDevice::typical(0)]);
/// let mut sampler_side = gpu.clone();
/// gpu.set_unavailable(Some(GpuUnavailable::DriverNotLoaded));
/// assert_eq!(sampler_side.open(), Err(GpuUnavailable::DriverNotLoaded));
/// gpu.set_unavailable(None);
/// assert_eq!(sampler_side.open()?.devices, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct FakeGpu {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakeGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGpu")
            .field("devices", &self.lock().devices.len())
            .finish()
    }
}

impl FakeGpu {
    /// A fake with these devices and driver version `"999.99"`.
    pub fn new(devices: Vec<FakeDevice>) -> FakeGpu {
        let gpu = FakeGpu::default();
        {
            let mut s = gpu.lock();
            s.devices = devices;
            s.driver_version = Some("999.99".into());
        }
        gpu
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes one device (ignored for an index that does not exist).
    pub fn update(&self, index: u32, f: impl FnOnce(&mut FakeDevice)) {
        if let Some(d) = self.lock().devices.get_mut(index as usize) {
            f(d);
        }
    }

    /// Adds a device (a hot-plugged or newly visible GPU).
    pub fn add_device(&self, device: FakeDevice) {
        self.lock().devices.push(device);
    }

    /// Makes `open` fail with this reason (`None`: succeed again).
    pub fn set_unavailable(&self, why: Option<GpuUnavailable>) {
        self.lock().unavailable = why;
    }

    /// Makes the next backend call block until [`release`](Self::release).
    pub fn hang_next_call(&self) {
        self.lock().hang = true;
    }

    /// Whether a call is blocked by [`hang_next_call`](Self::hang_next_call) now.
    pub fn is_hanging(&self) -> bool {
        self.lock().hanging
    }

    /// Unblocks a hung call.
    pub fn release(&self) {
        self.lock().hang = false;
        self.shared.released.notify_all();
    }

    /// How often `reading` was asked of device `index`.
    pub fn calls(&self, index: u32, reading: GpuReading) -> u64 {
        self.lock()
            .calls
            .get(&(index, reading))
            .copied()
            .unwrap_or(0)
    }

    /// How often `open` was called.
    pub fn opens(&self) -> u64 {
        self.lock().opens
    }

    fn with<T>(
        &mut self,
        index: u32,
        reading: GpuReading,
        f: impl FnOnce(&FakeDevice) -> Option<T>,
    ) -> Result<T, GpuError> {
        let mut s = self.lock();
        if s.hang {
            s.hanging = true;
            while s.hang {
                s = self
                    .shared
                    .released
                    .wait(s)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            s.hanging = false;
        }
        *s.calls.entry((index, reading)).or_default() += 1;
        let d = s.devices.get(index as usize).ok_or(GpuError::Gone)?;
        if d.gone {
            return Err(GpuError::Gone);
        }
        f(d).ok_or(GpuError::NotSupported)
    }
}

impl GpuBackend for FakeGpu {
    fn open(&mut self) -> Result<GpuDriver, GpuUnavailable> {
        let mut s = self.lock();
        s.opens += 1;
        match &s.unavailable {
            Some(why) => Err(why.clone()),
            None => Ok(GpuDriver {
                driver_version: s.driver_version.clone(),
                devices: s.devices.len() as u32,
            }),
        }
    }

    fn device_count(&mut self) -> Result<u32, GpuError> {
        let s = self.lock();
        match s.unavailable {
            Some(_) => Err(GpuError::Failed("driver unloaded".into())),
            None => Ok(s.devices.len() as u32),
        }
    }

    fn identity(&mut self, device: u32) -> Result<GpuIdentity, GpuError> {
        let s = self.lock();
        match s.devices.get(device as usize) {
            Some(d) if !d.gone => Ok(d.identity.clone()),
            _ => Err(GpuError::Gone),
        }
    }

    fn utilization(&mut self, device: u32) -> Result<EngineUtilization, GpuError> {
        self.with(device, GpuReading::Utilization, |d| d.utilization)
    }

    fn encoder_utilization(&mut self, device: u32) -> Result<f64, GpuError> {
        self.with(device, GpuReading::EncoderUtilization, |d| {
            d.encoder_utilization
        })
    }

    fn decoder_utilization(&mut self, device: u32) -> Result<f64, GpuError> {
        self.with(device, GpuReading::DecoderUtilization, |d| {
            d.decoder_utilization
        })
    }

    fn memory(&mut self, device: u32) -> Result<GpuMemory, GpuError> {
        self.with(device, GpuReading::Memory, |d| d.memory)
    }

    fn pcie_throughput(&mut self, device: u32) -> Result<PcieThroughput, GpuError> {
        self.with(device, GpuReading::PcieThroughput, |d| d.pcie_throughput)
    }

    fn power_watts(&mut self, device: u32) -> Result<f64, GpuError> {
        self.with(device, GpuReading::Power, |d| d.power_watts)
    }

    fn energy_joules(&mut self, device: u32) -> Result<f64, GpuError> {
        self.with(device, GpuReading::Energy, |d| d.energy_joules)
    }

    fn power_limit_watts(&mut self, device: u32) -> Result<f64, GpuError> {
        self.with(device, GpuReading::PowerLimit, |d| d.power_limit_watts)
    }

    fn temperature(&mut self, device: u32, sensor: TemperatureSensor) -> Result<f64, GpuError> {
        self.with(device, GpuReading::Temperature(sensor), |d| match sensor {
            TemperatureSensor::Gpu => d.temperature,
            TemperatureSensor::Memory => d.memory_temperature,
        })
    }

    fn temperature_limit(&mut self, device: u32, limit: TemperatureLimit) -> Result<f64, GpuError> {
        self.with(device, GpuReading::TemperatureLimit(limit), |d| {
            d.temperature_limits.get(&limit).copied()
        })
    }

    fn fan_speed_ratios(&mut self, device: u32) -> Result<Vec<f64>, GpuError> {
        self.with(device, GpuReading::FanSpeeds, |d| {
            d.fan_speed_ratios.clone()
        })
    }

    fn ecc_errors(&mut self, device: u32) -> Result<EccErrors, GpuError> {
        self.with(device, GpuReading::EccErrors, |d| d.ecc_errors)
    }

    fn pcie_replays(&mut self, device: u32) -> Result<u64, GpuError> {
        self.with(device, GpuReading::PcieReplays, |d| d.pcie_replays)
    }

    fn clock_hz(&mut self, device: u32, clock: GpuClock) -> Result<f64, GpuError> {
        self.with(device, GpuReading::Clock(clock), |d| {
            d.clocks_hz.get(&clock).copied()
        })
    }

    fn throttle_reasons(&mut self, device: u32) -> Result<Vec<&'static str>, GpuError> {
        self.with(device, GpuReading::ThrottleReasons, |d| {
            d.throttle_reasons.clone()
        })
    }

    fn processes(&mut self, device: u32) -> Result<Vec<GpuProcess>, GpuError> {
        self.with(device, GpuReading::Processes, |d| d.processes.clone())
    }
}
