//! What telemetry costs a real HTTP LLM server per request: `examples/llm_server` at saturation
//! in four variants, each driven by the same closed-loop load, non-streaming and streaming chat,
//! in one run:
//!
//! 1. `bare`: `llm_server_bare`, the same server with genscope compiled out;
//! 2. `genscope`: `llm_server` (tower layer with trace context, token-stream timing, the
//!    serving-state catalog, spans with resource usage, host observers, OTLP/gRPC to a real
//!    collector and `/metrics`);
//! 3. `usual`: `llm_server_usual` (tower-http `TraceLayer` + tracing-opentelemetry + the SDK's
//!    `BatchSpanProcessor` over OTLP/gRPC to the same collector + metrics-exporter-prometheus);
//! 4. `disabled`: `llm_server` with `OTEL_SDK_DISABLED=true`.
//!
//! CPU per request is the server process's utime + stime (`/proc/<pid>/stat`) over the load
//! divided by the requests answered; latencies are the client's. The collector (`otlp` receiver
//! -> `debug` exporter, basic verbosity) comes from `tests/peers/build.sh`.
//!
//! ```sh
//! GENSCOPE_PEERS=$(tests/peers/build.sh | tail -n 1) cargo bench --bench server_overhead
//! cargo bench --bench server_overhead -- --seconds 10 --connections 32 --rounds 2
//! cargo bench --bench server_overhead -- --only 2   # one variant (e.g. under perf)
//! cargo bench --bench server_overhead -- --only 2 --env GENSCOPE_RESOURCE_USAGE=off
//! ```

#[path = "common/collector.rs"]
mod collector;
#[path = "common/proc_cpu.rs"]
mod proc_cpu;

use collector::start_collector;
use proc_cpu::proc_cpu;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BODY_PLAIN: &str = r#"{"model":"genscope-sim","max_tokens":8,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarise the plot of a short story about a lighthouse keeper who finds a message in a bottle"}]}"#;
const BODY_STREAM: &str = r#"{"model":"genscope-sim","max_tokens":8,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarise the plot of a short story about a lighthouse keeper who finds a message in a bottle"}]}"#;

struct Variant {
    name: &'static str,
    example: &'static str,
    env: Vec<(&'static str, String)>,
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(examples: &Path, v: &Variant) -> Server {
    let mut child = Command::new(examples.join(v.example))
        .args(["--addr", "127.0.0.1:0", "--max-batch", "32"])
        .env("RUST_LOG", "warn")
        .env_remove("OTEL_SDK_DISABLED")
        .envs(v.env.iter().map(|(k, val)| (*k, val.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", v.example));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{}: first line {line:?}", v.example))
        .to_string();
    Server { child, addr }
}

struct Load {
    requests: u64,
    errors: u64,
    wall: Duration,
    latencies: Vec<Duration>,
}

/// `connections` closed-loop clients, each posting `body` and reading the whole answer.
fn load(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    body: &'static str,
    connections: usize,
    seconds: f64,
) -> Load {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("client");
    let url = format!("http://{addr}/v1/chat/completions");
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let (client, url, stop) = (client.clone(), url.clone(), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut errors = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        let ok = match client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                        {
                            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                            _ => false,
                        };
                        if ok {
                            lat.push(t0.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("client task"));
        }
        out
    });
    let wall = started.elapsed();
    let mut latencies: Vec<Duration> = results.iter().flat_map(|r| r.0.clone()).collect();
    latencies.sort_unstable();
    Load {
        requests: latencies.len() as u64,
        errors: results.iter().map(|r| r.1).sum(),
        wall,
        latencies,
    }
}

fn pct(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

#[derive(Clone, Copy, Default)]
struct Row {
    rps: f64,
    cpu_us: f64,
    p50: f64,
    p99: f64,
}

fn collector(peers: &Path, dir: &Path) -> Child {
    start_collector(
        peers,
        dir,
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:34317\n\
         exporters:\n  debug:\n    verbosity: basic\n\
         service:\n  telemetry:\n    metrics:\n      level: none\n    logs:\n      level: warn\n\
         \x20 pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n\
         \x20   metrics:\n      receivers: [otlp]\n      exporters: [debug]\n\
         \x20   logs:\n      receivers: [otlp]\n      exporters: [debug]\n",
        34317,
    )
}

fn build_examples() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--features", "tower"])
        .args(["--example", "llm_server", "--example", "llm_server_bare"])
        .args(["--example", "llm_server_usual"])
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the server examples failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("release").join("examples")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut seconds, mut connections, mut rounds) = (10.0f64, 32usize, 1usize);
    let mut only: Option<usize> = None;
    let mut extra_env: Vec<(&'static str, String)> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            "--connections" => {
                connections = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(connections)
            }
            "--env" => {
                // K=V for every variant's server (e.g. one genscope setting at a time).
                if let Some((k, v)) = args.next().as_deref().and_then(|kv| kv.split_once('=')) {
                    extra_env.push((Box::leak(k.to_string().into_boxed_str()), v.to_string()));
                }
            }
            "--only" => only = args.next().and_then(|s| s.parse().ok()),
            "--rounds" => rounds = args.next().and_then(|s| s.parse().ok()).unwrap_or(rounds),
            _ => {}
        }
    }
    let Some(peers) = std::env::var_os("GENSCOPE_PEERS").map(PathBuf::from) else {
        eprintln!(
            "server_overhead needs the real collector: GENSCOPE_PEERS=$(tests/peers/build.sh | tail -n 1)"
        );
        std::process::exit(2);
    };
    // reqwest is built without a default TLS provider here (plain HTTP is all the bench uses).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let examples = build_examples();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut otelcol = collector(&peers, dir.path());
    let otlp = vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:34317".to_string(),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_string()),
    ];
    let variants = [
        Variant {
            name: "1 bare (genscope compiled out)",
            example: "llm_server_bare",
            env: vec![],
        },
        Variant {
            name: "2 genscope",
            example: "llm_server",
            env: otlp.clone(),
        },
        Variant {
            name: "3 usual stack",
            example: "llm_server_usual",
            env: otlp.clone(),
        },
        Variant {
            name: "4 genscope, OTEL_SDK_DISABLED=true",
            example: "llm_server",
            env: vec![("OTEL_SDK_DISABLED", "true".to_string())],
        },
    ];
    let variants: Vec<Variant> = variants
        .into_iter()
        .map(|mut v| {
            v.env.extend(extra_env.iter().cloned());
            v
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // rows[kind][variant] per round
    let mut rows = vec![vec![Vec::<Row>::new(); variants.len()]; 2];
    for round in 0..rounds {
        for (vi, v) in variants.iter().enumerate() {
            if only.is_some_and(|o| o != vi + 1) {
                continue;
            }
            let server = start(&examples, v);
            for (ki, body) in [BODY_PLAIN, BODY_STREAM].into_iter().enumerate() {
                let _ = load(&rt, &server.addr, body, connections, 1.5); // warm-up
                let cpu0 = proc_cpu(server.child.id());
                let l = load(&rt, &server.addr, body, connections, seconds);
                let cpu = proc_cpu(server.child.id()) - cpu0;
                assert_eq!(l.errors, 0, "{}: {} requests failed", v.name, l.errors);
                let row = Row {
                    rps: l.requests as f64 / l.wall.as_secs_f64(),
                    cpu_us: cpu.as_secs_f64() * 1e6 / l.requests.max(1) as f64,
                    p50: pct(&l.latencies, 0.50),
                    p99: pct(&l.latencies, 0.99),
                };
                eprintln!(
                    "round {round} {} {}: {} requests, {:.0} req/s, {:.1} µs CPU/request, p50 {:.2} ms, p99 {:.2} ms",
                    v.name,
                    ["non-streaming", "streaming"][ki],
                    l.requests,
                    row.rps,
                    row.cpu_us,
                    row.p50,
                    row.p99
                );
                rows[ki][vi].push(row);
            }
            drop(server);
        }
    }
    let _ = otelcol.kill();
    let _ = otelcol.wait();
    let median = |v: &[Row], f: fn(&Row) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    if only.is_some() {
        return; // one variant: the lines above are the result
    }
    for (ki, kind) in ["non-streaming", "streaming"].iter().enumerate() {
        println!(
            "\n{kind} chat, {connections} connections, {seconds} s, max_tokens 8 ({rounds} round(s), medians)\n"
        );
        println!("| variant | requests/s | CPU per request | p50 | p99 | CPU / bare |");
        println!("|---|---:|---:|---:|---:|---:|");
        let bare = median(&rows[ki][0], |r| r.cpu_us);
        for (vi, v) in variants.iter().enumerate() {
            let r = &rows[ki][vi];
            let cpu = median(r, |r| r.cpu_us);
            println!(
                "| {} | {:.0} | {:.1} µs | {:.2} ms | {:.2} ms | {:.3} |",
                v.name,
                median(r, |r| r.rps),
                cpu,
                median(r, |r| r.p50),
                median(r, |r| r.p99),
                cpu / bare
            );
        }
        let cpu = |vi: usize| median(&rows[ki][vi], |r| r.cpu_us);
        println!(
            "\nratios: 2/1 = {:.3}, 3/1 = {:.3}, 2/4 = {:.3}, 2/3 = {:.3}",
            cpu(1) / cpu(0),
            cpu(2) / cpu(0),
            cpu(1) / cpu(3),
            cpu(1) / cpu(2)
        );
    }
}
