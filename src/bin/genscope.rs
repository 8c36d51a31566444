//! `genscope`: reports from OTLP JSON-lines files (what `GENSCOPE_FILE_EXPORT` or the collector's
//! `file` exporter writes), or from a Prometheus-compatible metrics backend for a whole fleet.
//!
//! ```text
//! genscope report FILE... [--window 15m] [--format text|json|html] [--out PATH] [--thresholds PATH]
//! genscope report --prometheus URL [--match '{job="gen"}'] [--window 1h] [--end RFC3339]
//!                 [--by instance] [--step 10s] [--format text|json|html] [--out PATH] [--thresholds PATH]
//! ```
//!
//! Exit status: 0 with a report; 1 when no report could be made (unreadable file, bad
//! thresholds, unwritable output, a backend that answered nothing); 2 for bad arguments. Skipped
//! lines are listed on stderr as `path:line: message`; signals a fleet report could not read are
//! listed in the report (`not_seen`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use genscope::analyzer::otlp_file;
use genscope::analyzer::report::{Report, ReportConfig};

#[derive(Parser)]
#[command(
    name = "genscope",
    version,
    about = "Local insight from genscope's OTLP telemetry"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyze OTLP JSON-lines files: health, findings with recommendations, operations,
    /// generation, resources, trends.
    Report {
        /// OTLP JSON-lines files (metrics and traces, any order).
        #[arg(required_unless_present = "prometheus", conflicts_with = "prometheus")]
        files: Vec<PathBuf>,
        /// A Prometheus-compatible backend's HTTP API root (Prometheus, VictoriaMetrics, Thanos,
        /// Mimir or Cortex; a path prefix is kept). Credentials: GENSCOPE_REPORT_BEARER_TOKEN,
        /// GENSCOPE_REPORT_BASIC_AUTH, GENSCOPE_REPORT_CA_FILE, GENSCOPE_REPORT_HEADERS.
        #[arg(long, value_name = "URL")]
        prometheus: Option<String>,
        /// Label matchers added to every query, in braces: '{job="gen",env!="dev"}'.
        #[arg(long = "match", value_name = "SELECTOR", requires = "prometheus")]
        selector: Option<String>,
        /// The label that names an instance (`service_instance_id` for OTLP-pushed data).
        #[arg(long, default_value = "instance", requires = "prometheus")]
        by: String,
        /// The end of the window, RFC 3339 (`2026-12-01T10:00:00Z` or with an offset).
        /// Default: now.
        #[arg(long, value_parser = parse_rfc3339, requires = "prometheus")]
        end: Option<std::time::SystemTime>,
        /// Query step. Default: the window / 360, at least 1 s.
        #[arg(long, value_parser = humantime::parse_duration, requires = "prometheus")]
        step: Option<Duration>,
        /// Per-request timeout against the backend.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s", requires = "prometheus")]
        timeout: Duration,
        /// Only the last part of the data, ending at its latest point (e.g. 15m, 1h).
        /// Default: everything in the files; 1h with --prometheus.
        #[arg(long, value_parser = humantime::parse_duration)]
        window: Option<Duration>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Write here (atomically) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// TOML file with finding thresholds (`[thresholds]` keys as in the JSON report's docs).
        #[arg(long)]
        thresholds: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Html,
}

/// RFC 3339 with `Z` or a numeric offset.
fn parse_rfc3339(s: &str) -> Result<std::time::SystemTime, String> {
    let bad = || {
        format!("{s:?}: expected RFC 3339, e.g. 2026-12-01T10:00:00Z or 2026-12-01T11:00:00+01:00")
    };
    if s.ends_with(['Z', 'z']) {
        return humantime::parse_rfc3339_weak(&s[..s.len() - 1]).map_err(|_| bad());
    }
    let split = s
        .len()
        .checked_sub(6)
        .filter(|&i| s.is_char_boundary(i))
        .ok_or_else(bad)?;
    let (local, offset) = s.split_at(split);
    let sign = match offset.as_bytes()[0] {
        b'+' => 1i64,
        b'-' => -1,
        _ => return Err(bad()),
    };
    let (h, m) = offset[1..].split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    let t = humantime::parse_rfc3339_weak(local).map_err(|_| bad())?;
    let shift = Duration::from_secs((h * 3600 + m * 60) as u64);
    // Local time = UTC + offset, so UTC = local - offset.
    if sign > 0 {
        t.checked_sub(shift)
    } else {
        t.checked_add(shift)
    }
    .ok_or_else(bad)
}

fn fleet(
    url: &str,
    options: &genscope::analyzer::fleet::FleetOptions,
    timeout: Duration,
) -> Result<Report, String> {
    use genscope::analyzer::fleet::{Credentials, PrometheusClient, fleet_report};
    let client = PrometheusClient::new(
        url,
        Credentials::from_env().map_err(|e| e.to_string())?,
        timeout,
    )
    .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let report = rt
        .block_on(fleet_report(&client, options))
        .map_err(|e| e.to_string())?;
    eprintln!(
        "genscope: {} instance(s) from {} HTTP queries",
        report.instances.len(),
        client.queries()
    );
    Ok(report)
}

fn run(cli: Cli) -> Result<(), String> {
    let Command::Report {
        files,
        prometheus,
        selector,
        by,
        end,
        step,
        timeout,
        window,
        format,
        out,
        thresholds,
    } = cli.command;
    let config = match thresholds {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            toml::from_str::<ReportConfig>(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => ReportConfig::default(),
    };
    let report = match prometheus {
        Some(url) => {
            let options = genscope::analyzer::fleet::FleetOptions {
                window: window.unwrap_or(Duration::from_secs(3600)),
                end,
                by,
                selector: match selector {
                    Some(s) => {
                        genscope::analyzer::fleet::Selector::parse(&s).map_err(|e| e.to_string())?
                    }
                    None => Default::default(),
                },
                step,
                config,
            };
            fleet(&url, &options, timeout)?
        }
        None => {
            let loaded = otlp_file::load(&files).map_err(|e| e.to_string())?;
            for p in &loaded.problems {
                eprintln!("skipped {p}");
            }
            if loaded.span.is_none() {
                return Err(format!(
                    "no telemetry in {} file(s) ({} line(s) skipped)",
                    files.len(),
                    loaded.problems.len()
                ));
            }
            Report::compute(&loaded.store, loaded.window(window), &config)
        }
    };
    let body = match format {
        Format::Text => report.to_text(),
        Format::Json => serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n",
        Format::Html => report.to_html(),
    };
    match out {
        Some(path) => {
            genscope::export::write_atomically(&path, body.as_bytes()).map_err(|e| e.to_string())?
        }
        None => print!("{body}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("genscope: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_with_z_or_an_offset() {
        let z = parse_rfc3339("2026-12-01T10:00:00Z").unwrap();
        assert_eq!(
            z.duration_since(UNIX_EPOCH).unwrap(),
            Duration::from_secs(1_796_119_200)
        );
        assert_eq!(parse_rfc3339("2026-12-01T11:30:00+01:30").unwrap(), z);
        assert_eq!(parse_rfc3339("2026-12-01T05:00:00-05:00").unwrap(), z);
        for bad in [
            "yesterday",
            "2026-12-01T10:00:00",
            "2026-12-01T10:00:00+25:00",
            "2026-12-01",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
