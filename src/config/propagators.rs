//! `OTEL_PROPAGATORS`: which context propagators genscope builds.

use std::str::FromStr;

use serde::Deserialize;

/// The propagators of `OTEL_PROPAGATORS` genscope supports: `tracecontext` (W3C `traceparent` /
/// `tracestate`) and `baggage` (W3C `baggage`), or `none`. The default is
/// `tracecontext,baggage`, as the specification says. Others (`b3`, `jaeger`, `xray`, ...) are
/// refused with a clear error rather than silently ignored.
///
/// ```
/// use genscope::config::Propagators;
/// assert_eq!(Propagators::default(), Propagators { trace_context: true, baggage: true });
/// assert_eq!("tracecontext".parse::<Propagators>().unwrap(), Propagators { trace_context: true, baggage: false });
/// assert_eq!("none".parse::<Propagators>().unwrap(), Propagators { trace_context: false, baggage: false });
/// assert!("b3".parse::<Propagators>().unwrap_err().contains("b3"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Propagators {
    /// W3C trace context.
    pub trace_context: bool,
    /// W3C baggage.
    pub baggage: bool,
}

impl Default for Propagators {
    fn default() -> Self {
        Propagators {
            trace_context: true,
            baggage: true,
        }
    }
}

impl FromStr for Propagators {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Propagators {
            trace_context: false,
            baggage: false,
        };
        for word in s.split(',').map(|w| w.trim().to_ascii_lowercase()) {
            match word.as_str() {
                "" | "none" => {}
                "tracecontext" => out.trace_context = true,
                "baggage" => out.baggage = true,
                other => {
                    return Err(format!(
                        "propagator {other:?} is not supported: genscope propagates tracecontext \
                         and baggage (or none)"
                    ));
                }
            }
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for Propagators {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
