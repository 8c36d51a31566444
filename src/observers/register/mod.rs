//! Observable instruments over the latest cached samples. Every callback only loads an `Arc`
//! from [`Latest`], reports nothing when that sample is stale (its sampler stalled or stopped),
//! and catches its own panics: a panicking callback would kill the SDK's metric reader thread.
//!
//! Names, units and attributes follow semconv (`system.*`, `process.*`, `hw.*`); readings
//! semconv has no name for are under `genscope.gpu.*` (see the table in `ARCHITECTURE.md`).

//!
//! One file per source: `host.rs` (`system.*`), `process.rs` (`process.*`), `gpu.rs` (`hw.*`,
//! `genscope.gpu.*`); this file holds what they share.

/// Keeps the instruments alive for as long as the observers run.
pub(crate) type Registered = Vec<Box<dyn std::any::Any + Send + Sync>>;

/// Runs a callback body, containing its panic.
fn guarded(f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::error!(target: "genscope", "an observer callback panicked; its values were skipped");
    }
}

/// Registers one observable instrument whose callback reads `latest` through `f`, guarded.
macro_rules! observe {
    ($meter:expr, $out:expr, $kind:ident, $name:expr, $unit:expr, $desc:expr, $latest:expr, $f:expr) => {{
        let latest = Arc::clone(&$latest);
        let f = $f;
        $out.push(Box::new(
            $meter
                .$kind($name)
                .with_unit($unit)
                .with_description($desc)
                .with_callback(move |o| guarded(|| f(&latest, o)))
                .build(),
        ));
    }};
}

/// `disk.io.direction` (read, write).
fn direction(d: &'static str) -> opentelemetry::KeyValue {
    opentelemetry::KeyValue::new("disk.io.direction", d)
}

/// `network.io.direction` (transmit, receive).
fn net_direction(d: &'static str) -> opentelemetry::KeyValue {
    opentelemetry::KeyValue::new("network.io.direction", d)
}

mod gpu;
mod host;
mod process;

pub(crate) use gpu::register_gpu;
pub(crate) use host::register_host;
pub(crate) use process::register_process;

#[cfg(test)]
mod tests {
    #[test]
    fn a_panicking_callback_body_is_contained() {
        let mut after = false;
        super::guarded(|| panic!("a bug in a callback"));
        super::guarded(|| after = true);
        assert!(after, "later callbacks still run");
    }
}
