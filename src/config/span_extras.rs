//! Which of the `tracing` bridge's own span attributes are exported (`GENSCOPE_SPAN_EXTRAS`,
//! TOML `traces.span_extras`).

use std::str::FromStr;

use serde::Deserialize;

/// The attributes `tracing-opentelemetry` adds to every span that no semantic convention
/// defines, each off unless named: `timings` (`busy_ns`, `idle_ns`: time entered and not),
/// `target` (the `tracing` target), `module` (`code.module.name`, the module path). The code
/// location in registry attributes (`code.file.path`, `code.line.number`) stays on. A comma list,
/// `all`, or `none` (the default).
///
/// ```
/// use genscope::config::SpanExtras;
/// assert_eq!(SpanExtras::default(), SpanExtras::NONE);
/// let e: SpanExtras = "timings, target".parse().unwrap();
/// assert!(e.timings && e.target && !e.module);
/// assert_eq!("all".parse::<SpanExtras>().unwrap(), SpanExtras::ALL);
/// assert!("busy".parse::<SpanExtras>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpanExtras {
    /// `busy_ns` and `idle_ns`.
    pub timings: bool,
    /// `target`.
    pub target: bool,
    /// `code.module.name`.
    pub module: bool,
}

impl SpanExtras {
    /// None of them (the default).
    pub const NONE: SpanExtras = SpanExtras {
        timings: false,
        target: false,
        module: false,
    };
    /// All of them (what `tracing-opentelemetry` does on its own).
    pub const ALL: SpanExtras = SpanExtras {
        timings: true,
        target: true,
        module: true,
    };
}

impl FromStr for SpanExtras {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = SpanExtras::NONE;
        for word in s.split(',').map(|w| w.trim().to_ascii_lowercase()) {
            match word.as_str() {
                "" | "none" => {}
                "all" => out = SpanExtras::ALL,
                "timings" => out.timings = true,
                "target" => out.target = true,
                "module" => out.module = true,
                other => {
                    return Err(format!(
                        "unknown span extra {other:?}: expected a comma list of timings, target, \
                         module, or all, or none"
                    ));
                }
            }
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for SpanExtras {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
