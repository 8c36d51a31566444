//! Which of the `tracing` bridge's own span attributes are exported (`GENSCOPE_SPAN_EXTRAS`,
//! TOML `traces.span_extras`).

use std::str::FromStr;

use serde::Deserialize;

/// The attributes the `tracing` bridge adds to every span, by name: `location` (the code
/// location in the registry's attributes: `code.file.path`, `code.line.number`, and
/// `code.function.name` = module path `::` span name when the span name is an identifier, as
/// `#[instrument]` names spans after their function), the only one on by default; and, off unless
/// named because no semantic convention defines them, `timings` (`busy_ns`, `idle_ns`: time
/// entered and not), `target` (the `tracing` target) and `module` (`code.module.name`, the module
/// path); and `threads` (`thread.id`, `thread.name`: the thread that *created* the span, which
/// for an async task that hops threads says little, so off by default: two attributes fewer on
/// every span to convert and encode). A comma list of these, `all`, or `none`; the default is
/// `location`.
///
/// ```
/// use genscope::config::SpanExtras;
/// assert_eq!(SpanExtras::default(), SpanExtras::LOCATION);
/// let e: SpanExtras = "timings, target".parse().unwrap();
/// assert!(e.timings && e.target && !e.module && !e.location && !e.threads);
/// assert!("threads".parse::<SpanExtras>().unwrap().threads);
/// assert_eq!("all".parse::<SpanExtras>().unwrap(), SpanExtras::ALL);
/// assert_eq!("none".parse::<SpanExtras>().unwrap(), SpanExtras::NONE);
/// assert!("busy".parse::<SpanExtras>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanExtras {
    /// `code.file.path`, `code.line.number`, `code.function.name`.
    pub location: bool,
    /// `busy_ns` and `idle_ns`.
    pub timings: bool,
    /// `target`.
    pub target: bool,
    /// `code.module.name`.
    pub module: bool,
    /// `thread.id` and `thread.name` of the creating thread.
    pub threads: bool,
}

impl SpanExtras {
    /// None of them.
    pub const NONE: SpanExtras = SpanExtras {
        location: false,
        timings: false,
        target: false,
        module: false,
        threads: false,
    };
    /// The code location only (the default).
    pub const LOCATION: SpanExtras = SpanExtras {
        location: true,
        ..SpanExtras::NONE
    };
    /// All of them (what `tracing-opentelemetry` does on its own, plus `code.function.name`).
    pub const ALL: SpanExtras = SpanExtras {
        location: true,
        timings: true,
        target: true,
        module: true,
        threads: true,
    };
}

impl Default for SpanExtras {
    fn default() -> Self {
        SpanExtras::LOCATION
    }
}

impl FromStr for SpanExtras {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = SpanExtras::NONE;
        for word in s.split(',').map(|w| w.trim().to_ascii_lowercase()) {
            match word.as_str() {
                "" | "none" => {}
                "all" => out = SpanExtras::ALL,
                "location" => out.location = true,
                "timings" => out.timings = true,
                "target" => out.target = true,
                "module" => out.module = true,
                "threads" => out.threads = true,
                other => {
                    return Err(format!(
                        "unknown span extra {other:?}: expected a comma list of location, timings, \
                         target, module, threads, or all, or none"
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
