//! The span export ceiling: how many spans per second genscope's pipeline ships with zero drops,
//! and what each span costs in CPU, into four destinations:
//!
//! - `none`: no network destination (the analyzer store alone: the embedded default);
//! - `null-http` / `null-grpc`: an OTLP receiver in a child process that decodes, counts and
//!   answers at once (the pipeline alone: conversion, encoding, transport);
//! - `collector-http` / `collector-grpc`: the real OpenTelemetry Collector (`otlp` receiver ->
//!   `debug` exporter at basic verbosity), built by `tests/peers/build.sh` (`GENSCOPE_PEERS`).
//!
//! Producers (2 threads) end spans at a paced rate through genscope's tracer (6 attributes each,
//! as a GenAI span has); each rate runs for `--seconds` and the rate goes up by 25 % until a
//! drop is counted or the producers cannot reach it. CPU: the process's rusage minus the
//! producer threads' own CPU clocks is the pipeline's; the receiver's comes from its
//! `/proc/<pid>/stat`. Accounting is checked at every step: ended = exported + dropped + queued,
//! and after a flush every exported span delivered and counted by the receiver.
//!
//! ```sh
//! GENSCOPE_PEERS=$(tests/peers/build.sh | tail -n 1) cargo bench --bench export_ceiling
//! cargo bench --bench export_ceiling -- --only null-grpc --seconds 3 --queue 8192
//! ```
//!
//! `--queue N` sets the span queue's capacity (`OTEL_BSP_MAX_QUEUE_SIZE`, default 8192).

#[path = "common/collector.rs"]
mod collector;
#[path = "common/proc_cpu.rs"]
mod proc_cpu;

use collector::start_collector;
use proc_cpu::proc_cpu;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use genscope::Genscope;
use genscope::config::{ExporterKind, Protocol, Sampling};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};

const PRODUCERS: usize = 2;

fn main() {
    if let Ok(kind) = std::env::var("GENSCOPE_BENCH_NULL_RECEIVER") {
        null_receiver::serve(&kind);
        return;
    }
    let mut args = std::env::args().skip(1);
    let mut only: Option<String> = None;
    let mut seconds = 2.0f64;
    let mut start_rate = 25_000.0f64;
    let mut queue: Option<usize> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--only" => only = args.next(),
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            "--start" => {
                start_rate = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(start_rate)
            }
            "--queue" => queue = args.next().and_then(|s| s.parse().ok()),
            _ => {} // cargo bench passes --bench
        }
    }
    let peers = std::env::var_os("GENSCOPE_PEERS").map(PathBuf::from);
    let mut rows = Vec::new();
    for case in [
        "none",
        "null-http",
        "null-grpc",
        "collector-http",
        "collector-grpc",
    ] {
        if only.as_deref().is_some_and(|o| o != case) {
            continue;
        }
        if case.starts_with("collector") && peers.is_none() {
            eprintln!("{case}: skipped, GENSCOPE_PEERS is not set (tests/peers/build.sh)");
            continue;
        }
        rows.push(run_case(case, peers.as_deref(), seconds, start_rate, queue));
    }
    println!();
    println!(
        "| destination | zero-drop ceiling (spans/s) | pipeline CPU per span | receiver CPU per span | first rate with drops |"
    );
    println!("|---|---:|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.2} µs | {} | {} |",
            r.case,
            r.ceiling,
            r.cpu_us_per_span,
            r.receiver_us_per_span
                .map_or("—".to_string(), |v| format!("{v:.2} µs")),
            r.limit
        );
    }
}

struct Row {
    case: &'static str,
    ceiling: f64,
    cpu_us_per_span: f64,
    receiver_us_per_span: Option<f64>,
    limit: String,
}

/// A destination process: the null receiver (this binary again) or the collector.
struct Receiver {
    child: Child,
    endpoint: String,
    protocol: Protocol,
    /// The null receiver's span count answers on its stdin/stdout.
    counts: Option<(
        std::process::ChildStdin,
        BufReader<std::process::ChildStdout>,
    )>,
    _dir: Option<tempfile::TempDir>,
}

impl Receiver {
    fn null(protocol: Protocol) -> Receiver {
        let kind = if protocol == Protocol::Grpc {
            "grpc"
        } else {
            "http"
        };
        let mut child = Command::new(std::env::current_exe().expect("bench binary"))
            .env("GENSCOPE_BENCH_NULL_RECEIVER", kind)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("null receiver");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("receiver address");
        let addr = line.trim().to_string();
        let stdin = child.stdin.take().expect("stdin");
        Receiver {
            child,
            endpoint: format!("http://{addr}"),
            protocol,
            counts: Some((stdin, out)),
            _dir: None,
        }
    }

    fn collector(peers: &std::path::Path, protocol: Protocol) -> Receiver {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = if protocol == Protocol::Grpc {
            24317
        } else {
            24318
        };
        let child = start_collector(
            peers,
            dir.path(),
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:24317\n      http:\n        endpoint: 127.0.0.1:24318\n\
             exporters:\n  debug:\n    verbosity: basic\n\
             service:\n  telemetry:\n    metrics:\n      level: none\n    logs:\n      level: warn\n\
             \x20 pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n",
            port,
        );
        Receiver {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            protocol,
            counts: None,
            _dir: Some(dir),
        }
    }

    /// Spans the null receiver has decoded.
    fn spans(&mut self) -> Option<u64> {
        let (stdin, stdout) = self.counts.as_mut()?;
        stdin.write_all(b"?\n").ok()?;
        let mut line = String::new();
        stdout.read_line(&mut line).ok()?;
        line.trim().parse().ok()
    }

    fn cpu(&self) -> Duration {
        proc_cpu(self.child.id())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rusage_self() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn thread_cpu() -> Duration {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn install(receiver: Option<&Receiver>, queue: Option<usize>) -> Genscope {
    let mut b = Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .service_name("export-ceiling")
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
        .metrics_exporters([])
        .logs_exporters([])
        .shutdown_timeout(Duration::from_secs(10));
    if let Some(q) = queue {
        b = b.span_max_queue_size(q);
    }
    let b = match receiver {
        Some(r) => b
            .endpoint(r.endpoint.clone())
            .protocol(r.protocol)
            .traces_exporters([ExporterKind::Otlp]),
        None => b.traces_exporters([]),
    };
    b.build().expect("build")
}

struct Step {
    target: f64,
    achieved: f64,
    dropped: u64,
    pipeline_cpu: Duration,
    receiver_cpu: Duration,
    spans: u64,
}

/// Ends spans at `rate` per second from PRODUCERS threads for `seconds`.
fn produce(telemetry: &Genscope, rate: f64, seconds: f64) -> (u64, Duration, Duration) {
    let provider = telemetry
        .tracer_provider()
        .expect("tracer provider")
        .clone();
    let produced = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let wall = Duration::from_secs_f64(seconds);
    let producers_cpu: Duration = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PRODUCERS)
            .map(|t| {
                let provider = provider.clone();
                let produced = Arc::clone(&produced);
                s.spawn(move || {
                    let tracer = provider.tracer("export-ceiling");
                    let cpu0 = thread_cpu();
                    let per_thread = rate / PRODUCERS as f64;
                    let mut n = 0u64;
                    loop {
                        let elapsed = start.elapsed();
                        if elapsed >= wall {
                            break;
                        }
                        let due = (elapsed.as_secs_f64() * per_thread) as u64;
                        if n >= due {
                            std::thread::sleep(Duration::from_micros(200));
                            continue;
                        }
                        while n < due {
                            let mut span = tracer.start("chat genscope-sim");
                            span.set_attributes([
                                KeyValue::new("gen_ai.operation.name", "chat"),
                                KeyValue::new("gen_ai.provider.name", "self-hosted"),
                                KeyValue::new("gen_ai.request.model", "genscope-sim"),
                                KeyValue::new("gen_ai.request.max_tokens", 8i64),
                                KeyValue::new("gen_ai.usage.input_tokens", 42i64),
                                KeyValue::new("thread", t as i64),
                            ]);
                            span.end();
                            n += 1;
                        }
                    }
                    produced.fetch_add(n, Ordering::Relaxed);
                    thread_cpu() - cpu0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    (
        produced.load(Ordering::Relaxed),
        producers_cpu,
        start.elapsed(),
    )
}

fn run_case(
    case: &'static str,
    peers: Option<&std::path::Path>,
    seconds: f64,
    start_rate: f64,
    queue: Option<usize>,
) -> Row {
    let mut receiver = match case {
        "none" => None,
        "null-http" => Some(Receiver::null(Protocol::HttpProtobuf)),
        "null-grpc" => Some(Receiver::null(Protocol::Grpc)),
        "collector-http" => Some(Receiver::collector(
            peers.expect("peers"),
            Protocol::HttpProtobuf,
        )),
        _ => Some(Receiver::collector(peers.expect("peers"), Protocol::Grpc)),
    };
    let telemetry = install(receiver.as_ref(), queue);
    // Warm-up: connections, allocations.
    let _ = produce(&telemetry, 10_000.0, 0.3);
    let _ = telemetry.force_flush();
    let mut steps: Vec<Step> = Vec::new();
    let step_at = |rate: f64, steps: &mut Vec<Step>| -> (bool, bool) {
        let before = telemetry.telemetry_loss();
        let cpu0 = rusage_self();
        let rcpu0 = receiver.as_ref().map(Receiver::cpu).unwrap_or_default();
        let (spans, producers_cpu, wall) = produce(&telemetry, rate, seconds);
        // What the pipeline still has queued is part of this step's work.
        let _ = telemetry.force_flush();
        let cpu = rusage_self() - cpu0;
        let rcpu = receiver.as_ref().map(Receiver::cpu).unwrap_or_default() - rcpu0;
        let after = telemetry.telemetry_loss();
        let step = Step {
            target: rate,
            achieved: spans as f64 / wall.as_secs_f64(),
            dropped: after.spans_dropped() - before.spans_dropped(),
            pipeline_cpu: cpu.saturating_sub(producers_cpu),
            receiver_cpu: rcpu,
            spans,
        };
        let per = |d: Duration| d.as_secs_f64() * 1e6 / spans.max(1) as f64;
        eprintln!(
            "{case}: target {:.0}/s achieved {:.0}/s, dropped {}, pipeline {:.2} µs/span, producers {:.2} µs/span, receiver {:.2} µs/span",
            step.target,
            step.achieved,
            step.dropped,
            per(step.pipeline_cpu),
            per(producers_cpu),
            per(step.receiver_cpu),
        );
        let result = (step.dropped == 0, step.achieved >= 0.97 * step.target);
        steps.push(step);
        result
    };
    // Up by 25 % until a step drops (or the producers fall short), then two bisections between
    // the last clean rate and the first that dropped.
    let mut rate = start_rate;
    let mut good = 0.0;
    let limit;
    loop {
        let (clean, reached) = step_at(rate, &mut steps);
        if !clean {
            let mut bad = rate;
            for _ in 0..2 {
                if good == 0.0 {
                    break;
                }
                let mid = (good * bad).sqrt();
                if step_at(mid, &mut steps).0 {
                    good = mid;
                } else {
                    bad = mid;
                }
            }
            limit = format!("{bad:.0}/s: drops");
            break;
        }
        good = rate;
        if !reached {
            limit = format!("{rate:.0}/s: producers could not reach it (none dropped)");
            break;
        }
        if rate > 2_000_000.0 {
            limit = "none below 2M/s".into();
            break;
        }
        rate *= 1.25;
    }
    let _ = telemetry.shutdown();
    let loss = telemetry.telemetry_loss();
    assert_eq!(
        loss.spans_exported + loss.spans_dropped() + loss.spans_queued,
        loss.spans_ended,
        "{case}: accounting {loss:?}"
    );
    if let Some(r) = receiver.as_mut()
        && let Some(received) = r.spans()
    {
        let delivered: u64 = loss.span_deliveries.iter().map(|d| d.delivered).sum();
        assert_eq!(
            received, delivered,
            "{case}: the receiver decoded {received}, genscope counted {delivered} delivered"
        );
        eprintln!(
            "{case}: ended {} = exported {} + dropped {}; delivered {delivered} = received {received}",
            loss.spans_ended,
            loss.spans_exported,
            loss.spans_dropped()
        );
    }
    let best = steps
        .iter()
        .filter(|s| s.dropped == 0)
        .max_by(|a, b| a.achieved.total_cmp(&b.achieved));
    let (ceiling, cpu, rcpu) = best.map_or((0.0, 0.0, None), |s| {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / s.spans.max(1) as f64;
        (
            s.achieved,
            per(s.pipeline_cpu),
            receiver.as_ref().map(|_| per(s.receiver_cpu)),
        )
    });
    Row {
        case,
        ceiling,
        cpu_us_per_span: cpu,
        receiver_us_per_span: rcpu,
        limit,
    }
}

/// The null OTLP receivers: decode, count, answer at once. Run as a child process of the bench
/// (its CPU is its own); `?` on stdin answers the span count.
mod null_receiver {
    use std::io::BufRead;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use axum::response::IntoResponse as _;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use prost::Message;

    fn count(req: &ExportTraceServiceRequest) -> u64 {
        req.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len() as u64)
            .sum()
    }

    struct Grpc(Arc<AtomicU64>);

    #[tonic::async_trait]
    impl TraceService for Grpc {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            self.0
                .fetch_add(count(request.get_ref()), Ordering::Relaxed);
            Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            }))
        }
    }

    pub fn serve(kind: &str) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let spans = Arc::new(AtomicU64::new(0));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        println!("{}", listener.local_addr().expect("addr"));
        let counted = Arc::clone(&spans);
        if kind == "grpc" {
            rt.spawn(async move {
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                let _ = tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(Grpc(counted)))
                    .serve_with_incoming(incoming)
                    .await;
            });
        } else {
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let counted = Arc::clone(&counted);
                    async move {
                        match ExportTraceServiceRequest::decode(body) {
                            Ok(req) => {
                                counted.fetch_add(count(&req), Ordering::Relaxed);
                                (
                                    [("content-type", "application/x-protobuf")],
                                    ExportTraceServiceResponse {
                                        partial_success: None,
                                    }
                                    .encode_to_vec(),
                                )
                                    .into_response()
                            }
                            Err(_) => axum::http::StatusCode::BAD_REQUEST.into_response(),
                        }
                    }
                }),
            );
            rt.spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
        // Answer count queries until the bench closes stdin.
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
            println!("{}", spans.load(Ordering::Relaxed));
        }
    }
}
