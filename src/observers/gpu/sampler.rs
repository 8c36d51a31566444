//! The GPU sampler: drives a [`GpuBackend`] once per cycle on the GPU thread and turns its
//! answers into a [`GpuSample`]. Owns the policies (remember `NotSupported`, drop vanished
//! devices, re-open with backoff, integrate PCIe throughput) so that backends stay thin.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{
    EccErrors, GpuBackend, GpuClock, GpuError, GpuIdentity, GpuMemory, GpuProcess, GpuReading,
    GpuUnavailable, TemperatureLimit, TemperatureSensor,
};

/// One device's readings in one cycle; `None` / empty where the device does not support it.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuDeviceSample {
    /// Index the backend knows it by.
    pub index: u32,
    /// Identity attributes.
    pub identity: Arc<GpuIdentity>,
    /// GPU busy ratio.
    pub utilization: Option<f64>,
    /// Memory-controller busy ratio.
    pub memory_controller_utilization: Option<f64>,
    /// Encoder busy ratio.
    pub encoder_utilization: Option<f64>,
    /// Decoder busy ratio.
    pub decoder_utilization: Option<f64>,
    /// Frame-buffer memory.
    pub memory: Option<GpuMemory>,
    /// Bytes sent over PCIe since sampling began (integrated from throughput; an estimate).
    pub pcie_transmit_bytes: Option<u64>,
    /// Bytes received over PCIe since sampling began (an estimate, as above).
    pub pcie_receive_bytes: Option<u64>,
    /// Power draw, W.
    pub power_w: Option<f64>,
    /// Energy since the driver loaded, J.
    pub energy_j: Option<f64>,
    /// Enforced power limit, W.
    pub power_limit_w: Option<f64>,
    /// Die temperature, °C.
    pub temperature_c: Option<f64>,
    /// Memory temperature, °C.
    pub memory_temperature_c: Option<f64>,
    /// Temperature thresholds, °C.
    pub temperature_limits: Vec<(TemperatureLimit, f64)>,
    /// Fan speed ratios.
    pub fan_speed_ratios: Vec<f64>,
    /// ECC error counts.
    pub ecc_errors: Option<EccErrors>,
    /// PCIe replays.
    pub pcie_replays: Option<u64>,
    /// Clock frequencies, Hz.
    pub clocks_hz: Vec<(GpuClock, f64)>,
    /// Active throttle reasons; `None` where not supported.
    pub throttle_reasons: Option<Vec<&'static str>>,
    /// Processes holding device memory.
    pub processes: Vec<GpuProcess>,
}

impl GpuDeviceSample {
    /// `used / total` frame-buffer memory (`hw.gpu.memory.utilization`).
    pub fn memory_utilization(&self) -> Option<f64> {
        self.memory
            .filter(|m| m.total > 0)
            .map(|m| m.used as f64 / m.total as f64)
    }
}

/// One cycle over every device.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSample {
    /// When the cycle finished (monotonic).
    pub at: Instant,
    /// When the cycle finished (wall clock).
    pub wall: SystemTime,
    /// Driver version.
    pub driver_version: Option<String>,
    /// Devices that answered.
    pub devices: Vec<GpuDeviceSample>,
}

/// What one cycle produced.
pub(crate) enum Cycle {
    Sampled(GpuSample),
    Unavailable(GpuUnavailable),
}

struct Pcie {
    at: Instant,
    transmit: f64,
    receive: f64,
    rates: Option<(f64, f64)>,
}

/// Drives a [`GpuBackend`]: one [`sample`](Self::sample) per cycle. [`Observers`] runs one on
/// its GPU thread; use one directly to sample on demand.
///
/// [`Observers`]: crate::observers::Observers
///
/// ```
/// use std::time::Duration;
/// use genscope::gpu::{FakeDevice, FakeGpu, GpuSampler};
/// let mut sampler = GpuSampler::new(
///     Box::new(FakeGpu::new(vec![FakeDevice::typical(0)])),
///     Duration::from_secs(10),
///     Duration::from_secs(600),
/// );
/// let sample = sampler.sample()?;
/// assert_eq!(sample.devices[0].utilization, Some(0.42));
/// # Ok::<(), genscope::gpu::GpuUnavailable>(())
/// ```
pub struct GpuSampler {
    backend: Box<dyn GpuBackend>,
    driver_version: Option<String>,
    open: bool,
    next_open: Instant,
    backoff: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    last_unavailable: Option<GpuUnavailable>,
    identities: HashMap<u32, Arc<GpuIdentity>>,
    unsupported: HashSet<(String, GpuReading)>,
    pcie: HashMap<String, Pcie>,
    gone_logged: HashSet<String>,
}

impl GpuSampler {
    /// A sampler over `backend`; an unavailable library is re-tried after `backoff_initial`,
    /// doubling up to `backoff_max`.
    pub fn new(
        backend: Box<dyn GpuBackend>,
        backoff_initial: Duration,
        backoff_max: Duration,
    ) -> GpuSampler {
        GpuSampler {
            backend,
            driver_version: None,
            open: false,
            next_open: Instant::now(),
            backoff: backoff_initial,
            backoff_initial,
            backoff_max: backoff_max.max(backoff_initial),
            last_unavailable: None,
            identities: HashMap::new(),
            unsupported: HashSet::new(),
            pcie: HashMap::new(),
            gone_logged: HashSet::new(),
        }
    }

    fn unavailable(&mut self, why: GpuUnavailable) -> Cycle {
        self.open = false;
        self.identities.clear();
        self.next_open = Instant::now() + self.backoff;
        if self.last_unavailable.as_ref() != Some(&why) {
            tracing::info!(target: "genscope", reason = %why,
                retry_in = ?self.backoff, "no GPU metrics: NVIDIA GPUs are not observable");
        }
        self.backoff = (self.backoff * 2).min(self.backoff_max);
        self.last_unavailable = Some(why.clone());
        Cycle::Unavailable(why)
    }

    /// Whether the next cycle would only wait for the backoff to pass.
    fn waiting(&self) -> Option<GpuUnavailable> {
        (!self.open && Instant::now() < self.next_open)
            .then(|| self.last_unavailable.clone())
            .flatten()
    }

    /// One cycle over every device, or why there is nothing to sample (while backing off, the
    /// last reason, without calling the backend).
    pub fn sample(&mut self) -> Result<GpuSample, GpuUnavailable> {
        match self.cycle() {
            Cycle::Sampled(s) => Ok(s),
            Cycle::Unavailable(why) => Err(why),
        }
    }

    pub(crate) fn cycle(&mut self) -> Cycle {
        if !self.open {
            if let Some(why) = self.waiting() {
                return Cycle::Unavailable(why);
            }
            match self.backend.open() {
                Ok(driver) if driver.devices == 0 => {
                    return self.unavailable(GpuUnavailable::NoDevice);
                }
                Ok(driver) => {
                    if self.last_unavailable.is_some() {
                        tracing::info!(target: "genscope", devices = driver.devices,
                            "NVIDIA GPUs became observable; GPU metrics on");
                    }
                    self.open = true;
                    self.backoff = self.backoff_initial;
                    self.last_unavailable = None;
                    self.driver_version = driver.driver_version;
                }
                Err(why) => return self.unavailable(why),
            }
        }
        let count = match self.backend.device_count() {
            Ok(0) => return self.unavailable(GpuUnavailable::NoDevice),
            Ok(n) => n,
            Err(e) => return self.unavailable(GpuUnavailable::Failed(e.to_string())),
        };
        self.identities.retain(|i, _| *i < count);
        let mut devices = Vec::with_capacity(count as usize);
        for index in 0..count {
            let identity = match self.identities.get(&index) {
                Some(id) => Arc::clone(id),
                None => match self.backend.identity(index) {
                    Ok(id) => {
                        let id = Arc::new(id);
                        self.gone_logged.remove(&id.uuid);
                        self.identities.insert(index, Arc::clone(&id));
                        id
                    }
                    Err(_) => continue,
                },
            };
            match self.read_device(index, &identity) {
                Ok(sample) => devices.push(sample),
                Err(()) => {
                    self.identities.remove(&index);
                    self.pcie.remove(&identity.uuid);
                    if self.gone_logged.insert(identity.uuid.clone()) {
                        tracing::warn!(target: "genscope", device = index, uuid = %identity.uuid,
                            "GPU vanished; its metrics stop until it is back");
                    }
                }
            }
        }
        if devices.is_empty() {
            return self.unavailable(GpuUnavailable::NoDevice);
        }
        Cycle::Sampled(GpuSample {
            at: Instant::now(),
            wall: SystemTime::now(),
            driver_version: self.driver_version.clone(),
            devices,
        })
    }

    /// Reads every supported value; `Err` when the device is gone.
    fn read_device(&mut self, index: u32, id: &Arc<GpuIdentity>) -> Result<GpuDeviceSample, ()> {
        let mut s = GpuDeviceSample {
            index,
            identity: Arc::clone(id),
            utilization: None,
            memory_controller_utilization: None,
            encoder_utilization: None,
            decoder_utilization: None,
            memory: None,
            pcie_transmit_bytes: None,
            pcie_receive_bytes: None,
            power_w: None,
            energy_j: None,
            power_limit_w: None,
            temperature_c: None,
            memory_temperature_c: None,
            temperature_limits: Vec::new(),
            fan_speed_ratios: Vec::new(),
            ecc_errors: None,
            pcie_replays: None,
            clocks_hz: Vec::new(),
            throttle_reasons: None,
            processes: Vec::new(),
        };
        let uuid = id.uuid.as_str();
        if let Some(u) = self.read(uuid, GpuReading::Utilization, |b| b.utilization(index))? {
            s.utilization = Some(ratio(u.gpu));
            s.memory_controller_utilization = Some(ratio(u.memory_controller));
        }
        s.encoder_utilization = self
            .read(uuid, GpuReading::EncoderUtilization, |b| {
                b.encoder_utilization(index)
            })?
            .map(ratio);
        s.decoder_utilization = self
            .read(uuid, GpuReading::DecoderUtilization, |b| {
                b.decoder_utilization(index)
            })?
            .map(ratio);
        s.memory = self.read(uuid, GpuReading::Memory, |b| b.memory(index))?;
        if let Some(p) = self.read(uuid, GpuReading::PcieThroughput, |b| {
            b.pcie_throughput(index)
        })? {
            let now = Instant::now();
            let rates = (
                p.transmit_bytes_per_s.max(0.0),
                p.receive_bytes_per_s.max(0.0),
            );
            match self.pcie.get_mut(uuid) {
                // Trapezoid between the two 20 ms windows the driver reported.
                Some(prev) => {
                    let dt = now.duration_since(prev.at).as_secs_f64();
                    if let Some((t0, r0)) = prev.rates {
                        prev.transmit += (t0 + rates.0) / 2.0 * dt;
                        prev.receive += (r0 + rates.1) / 2.0 * dt;
                    }
                    prev.at = now;
                    prev.rates = Some(rates);
                    s.pcie_transmit_bytes = Some(prev.transmit as u64);
                    s.pcie_receive_bytes = Some(prev.receive as u64);
                }
                // No total from a single reading: the first cycle emits nothing.
                None => {
                    self.pcie.insert(
                        uuid.to_string(),
                        Pcie {
                            at: now,
                            transmit: 0.0,
                            receive: 0.0,
                            rates: Some(rates),
                        },
                    );
                }
            }
        }
        s.power_w = self.read(uuid, GpuReading::Power, |b| b.power_watts(index))?;
        s.energy_j = self.read(uuid, GpuReading::Energy, |b| b.energy_joules(index))?;
        s.power_limit_w =
            self.read(uuid, GpuReading::PowerLimit, |b| b.power_limit_watts(index))?;
        s.temperature_c =
            self.read(uuid, GpuReading::Temperature(TemperatureSensor::Gpu), |b| {
                b.temperature(index, TemperatureSensor::Gpu)
            })?;
        s.memory_temperature_c = self.read(
            uuid,
            GpuReading::Temperature(TemperatureSensor::Memory),
            |b| b.temperature(index, TemperatureSensor::Memory),
        )?;
        for limit in TemperatureLimit::ALL {
            if let Some(v) = self.read(uuid, GpuReading::TemperatureLimit(limit), |b| {
                b.temperature_limit(index, limit)
            })? {
                s.temperature_limits.push((limit, v));
            }
        }
        s.fan_speed_ratios = self
            .read(uuid, GpuReading::FanSpeeds, |b| b.fan_speed_ratios(index))?
            .unwrap_or_default()
            .into_iter()
            .map(ratio)
            .collect();
        s.ecc_errors = self.read(uuid, GpuReading::EccErrors, |b| b.ecc_errors(index))?;
        s.pcie_replays = self.read(uuid, GpuReading::PcieReplays, |b| b.pcie_replays(index))?;
        for clock in GpuClock::ALL {
            if let Some(hz) =
                self.read(uuid, GpuReading::Clock(clock), |b| b.clock_hz(index, clock))?
            {
                s.clocks_hz.push((clock, hz));
            }
        }
        s.throttle_reasons = self.read(uuid, GpuReading::ThrottleReasons, |b| {
            b.throttle_reasons(index)
        })?;
        s.processes = self
            .read(uuid, GpuReading::Processes, |b| b.processes(index))?
            .unwrap_or_default();
        Ok(s)
    }

    /// One reading through the policies: skipped once unsupported; `Err` when the device is gone.
    fn read<T>(
        &mut self,
        uuid: &str,
        reading: GpuReading,
        f: impl FnOnce(&mut dyn GpuBackend) -> Result<T, GpuError>,
    ) -> Result<Option<T>, ()> {
        let key = (uuid.to_string(), reading);
        if self.unsupported.contains(&key) {
            return Ok(None);
        }
        match f(self.backend.as_mut()) {
            Ok(v) => Ok(Some(v)),
            Err(GpuError::NotSupported) | Err(GpuError::NoPermission) => {
                tracing::debug!(target: "genscope", ?reading, uuid, "GPU reading not available; not asked again");
                self.unsupported.insert(key);
                Ok(None)
            }
            Err(GpuError::Gone) => Err(()),
            Err(GpuError::Failed(e)) => {
                tracing::debug!(target: "genscope", ?reading, uuid, error = %e, "GPU reading failed");
                Ok(None)
            }
        }
    }
}

fn ratio(v: f64) -> f64 {
    if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

impl std::fmt::Debug for GpuSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuSampler")
            .field("open", &self.open)
            .field("devices", &self.identities.len())
            .field("unsupported", &self.unsupported.len())
            .finish()
    }
}
