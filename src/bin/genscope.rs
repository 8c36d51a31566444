//! `genscope`: reports from OTLP JSON-lines files (what `GENSCOPE_FILE_EXPORT` or the collector's
//! `file` exporter writes).
//!
//! ```text
//! genscope report FILE... [--window 15m] [--format text|json|html] [--out PATH] [--thresholds PATH]
//! ```
//!
//! Exit status: 0 with a report; 1 when no report could be made (unreadable file, bad
//! thresholds, unwritable output); 2 for bad arguments. Skipped lines are listed on stderr as
//! `path:line: message`.

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
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only the last part of the data, ending at its latest point (e.g. 15m, 1h).
        /// Default: everything in the files.
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

fn run(cli: Cli) -> Result<(), String> {
    let Command::Report {
        files,
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
    let report = Report::compute(&loaded.store, loaded.window(window), &config);
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
