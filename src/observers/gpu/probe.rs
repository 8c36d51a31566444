//! [`probe`]: whether NVIDIA GPUs can be observed from this process, and why not.

use super::nvml::NvmlBackend;
use super::{GpuBackend as _, GpuUnavailable};

/// The answer of [`probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuAvailability {
    /// NVIDIA GPUs can be observed.
    Available {
        /// Devices visible.
        devices: u32,
        /// Driver version.
        driver_version: Option<String>,
    },
    /// They cannot, and why.
    Unavailable(GpuUnavailable),
}

/// Whether NVIDIA GPUs can be observed from this process, and why not. Loads and initializes
/// NVML (about 0.3 ms without a driver; up to seconds on a driver without persistence mode), so
/// call it once, off the hot path.
pub fn probe() -> GpuAvailability {
    let mut nvml = NvmlBackend::new();
    match nvml.open() {
        Ok(d) if d.devices == 0 => GpuAvailability::Unavailable(GpuUnavailable::NoDevice),
        Ok(d) => GpuAvailability::Available {
            devices: d.devices,
            driver_version: d.driver_version,
        },
        Err(e) => GpuAvailability::Unavailable(e),
    }
}
