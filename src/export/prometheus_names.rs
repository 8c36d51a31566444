//! The OTel-to-Prometheus name translation of the OTel specification (and Prometheus 3's OTLP
//! receiver): names and label keys sanitized, unit suffixes (`_seconds`, `_bytes`, `_ratio` for
//! unit-1 gauges, `_per_second`, ...) and `_total` on counters.

use crate::analyzer::MetricKind;

/// The Prometheus name of an OTel metric: sanitized, with the unit suffix and, for counters,
/// `_total` (the OpenMetrics family name is without `_total`).
///
/// ```
/// use genscope::analyzer::MetricKind;
/// use genscope::export::prometheus_name;
/// assert_eq!(prometheus_name("http.server.request.duration", "s", MetricKind::Histogram), "http_server_request_duration_seconds");
/// assert_eq!(prometheus_name("genscope.generation.requests", "{request}", MetricKind::Counter), "genscope_generation_requests_total");
/// assert_eq!(prometheus_name("system.memory.utilization", "1", MetricKind::Gauge), "system_memory_utilization_ratio");
/// assert_eq!(prometheus_name("genscope.model.download.throughput", "By/s", MetricKind::Histogram), "genscope_model_download_throughput_bytes_per_second");
/// ```
pub fn prometheus_name(name: &str, unit: &str, kind: MetricKind) -> String {
    let (family, _) = family_name(name, unit, kind);
    if kind == MetricKind::Counter {
        format!("{family}_total")
    } else {
        family
    }
}

/// Family name (no `_total`) and the unit suffix used, if any.
pub(super) fn family_name(name: &str, unit: &str, kind: MetricKind) -> (String, Option<String>) {
    let mut out = sanitize(name, false);
    let suffix = unit_suffix(unit, kind);
    if let Some(s) = &suffix
        && !out.ends_with(&format!("_{s}"))
        && out != *s
    {
        out.push('_');
        out.push_str(s);
    }
    if kind == MetricKind::Counter
        && let Some(stripped) = out.strip_suffix("_total")
        && !stripped.is_empty()
    {
        out = stripped.to_string();
    }
    (out, suffix)
}

pub(super) fn sanitize(s: &str, label: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_underscore = false;
    for c in s.chars() {
        let ok = c.is_ascii_alphanumeric() || c == '_' || (!label && c == ':');
        let c = if ok { c } else { '_' };
        if c == '_' && last_underscore {
            continue;
        }
        last_underscore = c == '_';
        out.push(c);
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, if label { "key_" } else { "_" });
    }
    if label && out.starts_with("__") {
        out.insert_str(0, "key");
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

fn unit_word(u: &str) -> Option<&'static str> {
    Some(match u {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" | "kBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "bit" => "bits",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

fn per_word(u: &str) -> Option<&'static str> {
    Some(match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

fn strip_annotations(unit: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn unit_suffix(unit: &str, kind: MetricKind) -> Option<String> {
    let unit = strip_annotations(unit);
    if unit.is_empty() {
        return None;
    }
    if unit == "1" {
        return (kind == MetricKind::Gauge).then(|| "ratio".to_string());
    }
    let (num, den) = match unit.split_once('/') {
        Some((n, d)) => (n, Some(d)),
        None => (unit.as_str(), None),
    };
    let num = match num {
        "" | "1" => None,
        n => Some(
            unit_word(n)
                .map(str::to_string)
                .unwrap_or_else(|| sanitize(n, true)),
        ),
    };
    let den = den.map(|d| {
        per_word(d)
            .map(str::to_string)
            .unwrap_or_else(|| sanitize(d, true))
    });
    match (num, den) {
        (Some(n), Some(d)) => Some(format!("{n}_per_{d}")),
        (None, Some(d)) => Some(format!("per_{d}")),
        (Some(n), None) => Some(n),
        (None, None) => None,
    }
}

/// Sample-name suffixes OpenMetrics reserves for its own series.
pub(super) const OM_RESERVED_SUFFIXES: [&str; 8] = [
    "_total", "_created", "_bucket", "_sum", "_count", "_info", "_gsum", "_gcount",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_units() {
        let n = |name, unit, kind| prometheus_name(name, unit, kind);
        assert_eq!(n("a.b", "", MetricKind::Gauge), "a_b");
        assert_eq!(n("a.b", "1", MetricKind::Counter), "a_b_total");
        assert_eq!(n("a.b_total", "", MetricKind::Counter), "a_b_total");
        assert_eq!(n("x.seconds", "s", MetricKind::Histogram), "x_seconds");
        assert_eq!(
            n("tokens", "{token}/s", MetricKind::Gauge),
            "tokens_per_second"
        );
        assert_eq!(n("hw.power", "W", MetricKind::Gauge), "hw_power_watts");
        assert_eq!(n("temp", "Cel", MetricKind::Gauge), "temp_celsius");
        assert_eq!(n("9lives..x", "", MetricKind::Gauge), "_9lives_x");
    }
}
