//! Reliability suite: the instrumented workload under collector faults, under load with a slow
//! collector, and under a cardinality attack. Each test asserts what must hold exactly
//! (accounting: every span produced is delivered, failed or reported dropped; export resumes;
//! queues and memory stay bounded) and prints the throughput and p99 figures it measured
//! (`cargo nextest run --test reliability --no-capture`); RELIABILITY.md records them. Wall-clock
//! ratios are reported, not asserted: these machines are too noisy for timing assertions.
//!
//! Every test installs the global subscriber: one process per test (`cargo nextest run`).

mod fault_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fault_server::{Fault, FaultServer};
use genscope::Genscope;
use genscope::analyzer::Window;
use genscope::config::{Protocol, Sampling};
use opentelemetry::KeyValue;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// Aborts the process if a test runs past `limit` (a deadlock must fail, not hang CI).
fn watchdog(limit: Duration) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    std::thread::spawn(move || {
        let start = Instant::now();
        while !d.load(Ordering::Relaxed) {
            if start.elapsed() > limit {
                eprintln!(
                    "watchdog: test still running after {limit:?}: deadlock or unbounded wait"
                );
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    done
}

fn install(url: String, queue: usize) -> Genscope {
    Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .service_name("reliability")
        .endpoint(url)
        .protocol(Protocol::HttpProtobuf)
        .timeout(Duration::from_secs(1))
        .span_schedule_delay(Duration::from_millis(50))
        .span_max_queue_size(queue)
        .metric_export_interval(Duration::from_millis(200))
        .shutdown_timeout(Duration::from_secs(5))
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
        .install()
        .unwrap()
}

#[derive(Debug, Default, Clone, Copy)]
struct Run {
    ops: u64,
    ops_per_s: f64,
    p99_us: f64,
}

/// `threads` threads each record one span (with a counter and a histogram point inside) per
/// operation, as fast as they can, for `duration`.
fn workload(telemetry: &Genscope, threads: usize, duration: Duration) -> Run {
    let meter = telemetry.meter("reliability");
    let ops = meter.u64_counter("app.operations").build();
    let latency = meter.f64_histogram("app.latency").with_unit("s").build();
    let start = Instant::now();
    let results: Vec<(u64, Vec<u32>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (ops, latency) = (ops.clone(), latency.clone());
                s.spawn(move || {
                    let attrs = [KeyValue::new("thread", t as i64)];
                    let mut n = 0u64;
                    // Every 16th operation's latency, in a buffer allocated up front, so the
                    // test's own memory does not grow while RSS is watched.
                    let mut samples = Vec::with_capacity(1 << 16);
                    while start.elapsed() < duration {
                        let t0 = Instant::now();
                        tracing::info_span!("work", n).in_scope(|| {
                            ops.add(1, &attrs);
                            latency.record(0.001, &attrs);
                        });
                        if n.is_multiple_of(16) && samples.len() < samples.capacity() {
                            samples.push(t0.elapsed().as_nanos().min(u32::MAX as u128) as u32);
                        }
                        n += 1;
                    }
                    (n, samples)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let total: u64 = results.iter().map(|r| r.0).sum();
    let mut all: Vec<u32> = results.into_iter().flat_map(|r| r.1).collect();
    all.sort_unstable();
    let p99 = all
        .get(((all.len() as f64 * 0.99) as usize).min(all.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0);
    Run {
        ops: total,
        ops_per_s: total as f64 / elapsed,
        p99_us: p99 as f64 / 1000.0,
    }
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// One fault: baseline, fault, recovery; exact accounting, resumed export, bounded memory.
fn fault_case(name: &str, fault: Option<Fault>) {
    let done = watchdog(Duration::from_secs(120));
    let server = FaultServer::start();
    let telemetry = install(server.url(), 2048);
    let _ = workload(&telemetry, 2, Duration::from_millis(300)); // warm-up
    let rss_before = rss_bytes();
    let base = workload(&telemetry, 2, Duration::from_secs(1));
    match fault {
        Some(f) => server.set(f),
        None => server.go_away(),
    }
    let faulty = workload(&telemetry, 2, Duration::from_secs(2));
    let rss_fault = rss_bytes();
    let received_during = server.spans();
    let metrics_during = server.metric_requests();
    match fault {
        Some(_) => server.set(Fault::None),
        None => server.come_back(),
    }
    let after = workload(&telemetry, 2, Duration::from_millis(500));
    // Export resumes: spans recorded after the receiver came back arrive.
    assert!(
        wait_until(Duration::from_secs(15), || server.spans() > received_during),
        "{name}: no span arrived after the receiver came back"
    );
    assert!(
        wait_until(Duration::from_secs(15), || server.metric_requests()
            > metrics_during),
        "{name}: no metric export arrived after the receiver came back"
    );
    telemetry.shutdown().ok();
    let loss = telemetry.telemetry_loss();
    let warm_and_runs = loss.spans_ended;
    // Everything produced is accounted for: queued (none after shutdown) + exported + dropped.
    assert_eq!(
        loss.spans_queued + loss.spans_exported + loss.spans_dropped(),
        loss.spans_ended,
        "{name}: {loss:?}"
    );
    let sink = &loss.span_deliveries[0];
    assert_eq!(
        sink.delivered + sink.failed + sink.unanswered + sink.in_flight,
        loss.spans_exported,
        "{name}: {loss:?}"
    );
    // What the receiver decoded lies between what the destination counted delivered and that
    // plus what it sent without an answer; exactly delivered when every export was answered.
    assert!(
        sink.delivered <= server.spans() && server.spans() <= sink.delivered + sink.unanswered,
        "{name}: receiver decoded {}, delivered {}, unanswered {}",
        server.spans(),
        sink.delivered,
        sink.unanswered
    );
    let growth = rss_fault.saturating_sub(rss_before) as f64 / 1048576.0;
    assert!(
        growth < 64.0,
        "{name}: RSS grew {growth:.1} MiB during the fault"
    );
    println!(
        "reliability: {name}: {} ops under fault; baseline {:.0} ops/s p99 {:.1} us; under fault {:.0} ops/s ({:.2}x) p99 {:.1} us ({:.2}x); after {:.0} ops/s; spans ended {} = delivered {} + failed {} + unanswered {} + dropped {} (queue full {}); RSS +{growth:.1} MiB",
        faulty.ops,
        base.ops_per_s,
        base.p99_us,
        faulty.ops_per_s,
        faulty.ops_per_s / base.ops_per_s,
        faulty.p99_us,
        faulty.p99_us / base.p99_us.max(0.001),
        after.ops_per_s,
        warm_and_runs,
        sink.delivered,
        sink.failed,
        sink.unanswered,
        loss.spans_dropped(),
        loss.spans_dropped_queue_full
    );
    done.store(true, Ordering::Relaxed);
}

#[test]
fn receiver_refuses_then_returns() {
    fault_case("refused (outage), then back", None);
}

#[test]
fn receiver_resets_connections() {
    fault_case("connection reset", Some(Fault::Reset));
}

#[test]
fn receiver_hangs() {
    fault_case("hang (no answer)", Some(Fault::Hang));
}

#[test]
fn receiver_answers_503_with_retry_after() {
    fault_case("503 + Retry-After", Some(Fault::Status(503)));
}

#[test]
fn receiver_answers_429_with_retry_after() {
    fault_case("429 + Retry-After", Some(Fault::Status(429)));
}

#[test]
fn receiver_is_slow() {
    fault_case(
        "slow (300 ms per request)",
        Some(Fault::Slow(Duration::from_millis(300))),
    );
}

/// Four threads as fast as they can for 10 s (`GENSCOPE_LOAD_SECONDS` for longer runs) against a
/// slow collector: no deadlock (watchdog), the queue never exceeds its capacity, RSS flat after
/// warm-up.
#[test]
fn sustained_load_with_a_slow_collector() {
    let seconds: u64 = std::env::var("GENSCOPE_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(5);
    let done = watchdog(Duration::from_secs(seconds * 3 + 60));
    let server = FaultServer::start();
    server.set(Fault::Slow(Duration::from_millis(200)));
    let capacity = 2048;
    let telemetry = install(server.url(), capacity);
    let stop = AtomicBool::new(false);
    let max_queued = AtomicU64::new(0);
    let rss_samples = std::sync::Mutex::new(Vec::new());
    let run = std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                // telemetry_loss reads atomics: cheap enough to sample under load.
                let q = telemetry.telemetry_loss().spans_queued;
                max_queued.fetch_max(q, Ordering::Relaxed);
                rss_samples
                    .lock()
                    .unwrap()
                    .push((start.elapsed(), rss_bytes()));
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let run = workload(&telemetry, 4, Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
        run
    });
    let loss = telemetry.telemetry_loss();
    telemetry.shutdown().ok();
    let max_q = max_queued.load(Ordering::Relaxed);
    // Queued = accepted - exported: the channel (at most `capacity`) plus the batch the export
    // thread is assembling (at most the default 512), which has left the channel but is not
    // exported yet.
    assert!(
        max_q <= capacity as u64 + 512,
        "queue reached {max_q} > capacity {capacity} + one batch"
    );
    assert!(
        loss.spans_dropped_queue_full > 0,
        "a 200 ms collector cannot keep up: drops are expected and counted"
    );
    let samples = rss_samples.into_inner().unwrap();
    let at = |secs: f64| {
        samples
            .iter()
            .filter(|(t, _)| t.as_secs_f64() >= secs)
            .map(|(_, r)| *r)
            .next()
            .unwrap()
    };
    let (warm, end) = (at(3.0), samples.last().unwrap().1);
    let growth = end.saturating_sub(warm) as f64 / 1048576.0;
    assert!(
        growth < 16.0,
        "RSS grew {growth:.1} MiB between 3 s and 10 s under load"
    );
    println!(
        "reliability: load: 4 threads x {seconds} s, collector 200 ms/request: {:.0} spans+metric ops/s sustained, p99 {:.1} us, max queue {max_q}/{capacity}, {} dropped (counted), RSS {:.1} MiB at 3 s -> {:.1} MiB at the end",
        run.ops_per_s,
        run.p99_us,
        loss.spans_dropped_queue_full,
        warm as f64 / 1048576.0,
        end as f64 / 1048576.0
    );
    done.store(true, Ordering::Relaxed);
}

/// 200,000 distinct user ids as attribute values: the SDK and the analyzer stay within their
/// series limits, the overflow is visible, memory stays bounded.
#[test]
fn cardinality_attack_is_bounded_and_visible() {
    let done = watchdog(Duration::from_secs(120));
    let server = FaultServer::start();
    let telemetry = install(server.url(), 2048);
    let counter = telemetry
        .meter("reliability")
        .u64_counter("app.requests")
        .build();
    counter.add(1, &[KeyValue::new("user.id", "warm-up")]);
    telemetry.force_flush().unwrap();
    let rss_before = rss_bytes();
    for i in 0..200_000u64 {
        counter.add(1, &[KeyValue::new("user.id", format!("user-{i}"))]);
    }
    telemetry.force_flush().unwrap();
    let rss_after = rss_bytes();
    let series = telemetry.analyzer().series("app.requests");
    let limit = telemetry.settings().analyzer_max_series_per_metric;
    assert!(
        series.len() <= limit + 1,
        "{} series > limit {limit}",
        series.len()
    );
    assert!(
        series.iter().any(|a| a
            .iter()
            .any(|(k, v)| k == "otel.metric.overflow" && v == "true")),
        "the overflow series is visible"
    );
    let total = telemetry
        .analyzer()
        .sum("app.requests", &[], Window::all())
        .unwrap();
    assert_eq!(
        total, 200_001.0,
        "nothing lost: overflowed points are counted in the overflow series"
    );
    let growth = rss_after.saturating_sub(rss_before) as f64 / 1048576.0;
    assert!(growth < 64.0, "RSS grew {growth:.1} MiB");
    println!(
        "reliability: cardinality: 200,000 distinct user ids -> {} series (limit {limit} + overflow), total preserved, RSS +{growth:.1} MiB",
        series.len()
    );
    telemetry.shutdown().ok();
    done.store(true, Ordering::Relaxed);
}

/// A panic in user code inside an instrumented span: the span still ends and is exported, and
/// telemetry goes on for everyone else.
#[test]
fn a_panic_inside_a_span_does_not_stop_telemetry() {
    let done = watchdog(Duration::from_secs(60));
    let server = FaultServer::start();
    let telemetry = install(server.url(), 2048);
    let panicked = std::thread::spawn(|| {
        tracing::info_span!("doomed").in_scope(|| panic!("user code failed"));
    })
    .join();
    assert!(panicked.is_err());
    for i in 0..100 {
        tracing::info_span!("after", i).in_scope(|| {});
    }
    telemetry.shutdown().unwrap();
    let loss = telemetry.telemetry_loss();
    assert_eq!(loss.spans_ended, 101, "the panicking span ended too");
    assert_eq!(server.spans(), 101);
    assert_eq!(loss.spans_dropped(), 0);
    done.store(true, Ordering::Relaxed);
}

/// Credentials in OTLP headers never reach a log line or a Debug rendering, even when every
/// export fails and is logged.
#[test]
fn header_values_are_never_logged() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let logs = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    #[derive(Clone)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let secret = "s3cr3t-token-value";
    let server = FaultServer::start();
    server.set(Fault::Status(401));
    let telemetry = Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .endpoint(server.url())
        .protocol(Protocol::HttpProtobuf)
        .header("authorization", format!("Bearer {secret}"))
        .timeout(Duration::from_millis(500))
        .span_schedule_delay(Duration::from_millis(20))
        .metric_export_interval(Duration::from_millis(100))
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
        .build()
        .unwrap();
    let sink = Sink(Arc::clone(&logs));
    let subscriber = tracing_subscriber::registry()
        .with(telemetry.layer())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || sink.clone())
                .with_ansi(false),
        )
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..50 {
            tracing::info_span!("work", i).in_scope(|| {});
        }
        std::thread::sleep(Duration::from_millis(600));
        tracing::warn!(settings = ?telemetry.settings(), "settings as the application might log them");
    });
    let _ = telemetry.shutdown();
    let loss = telemetry.telemetry_loss();
    assert!(
        loss.spans_failed() > 0,
        "the exports were refused: {loss:?}"
    );
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        text.contains("settings as the application"),
        "the log capture works"
    );
    assert!(
        !text.contains(secret),
        "a header value leaked into the logs:\n{text}"
    );
    assert!(!format!("{:?}", telemetry.settings()).contains(secret));
    assert!(!format!("{telemetry:?}").contains(secret));
}

/// Local endpoints bind loopback unless an address says otherwise.
#[test]
fn local_endpoints_default_to_loopback() {
    let p = genscope::config::from_lookup(|k| {
        (k == "GENSCOPE_PROMETHEUS_ADDR").then(|| ":0".to_string())
    })
    .unwrap();
    assert!(p.prometheus_addr.unwrap().ip().is_loopback());
    let p = genscope::config::from_lookup(|k| {
        (k == "GENSCOPE_PROMETHEUS_ADDR").then(|| "9464".to_string())
    })
    .unwrap();
    assert!(p.prometheus_addr.unwrap().ip().is_loopback());
    let s = Genscope::builder().ignore_environment().settings().unwrap();
    assert_eq!(s.prometheus_addr, None, "no endpoint unless asked for");
    assert_eq!(
        s.genai_content_capture,
        genscope::config::ContentCapture::NoContent,
        "GenAI content capture is off by default"
    );
}
