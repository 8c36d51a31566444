//! Faults of the real collector while the main example exports to it: SIGSTOP then SIGCONT,
//! SIGKILL then a restart on the same ports, and memory_limiter refusing everything. The
//! collector runs synchronously (tests/real_stack/synchronous.yaml: an OK answer means the
//! collector behind it has the data), so genscope's counts can be held against what reached
//! downstream: delivered <= passed downstream <= delivered + unanswered + in flight.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::collector::start_collector;
use crate::harness::{Peer, eventually, peers, repo, require_free, spawn_example};
use crate::otlp::spans_in_file;

fn overlay(name: &str) -> PathBuf {
    repo().join("tests/real_stack").join(name)
}

fn start_downstream(peers: &Path, dir: &Path) -> Peer {
    require_free(14317);
    let config = overlay("downstream.yaml").display().to_string();
    let mut peer = Peer::start(
        "downstream",
        &peers.join("otelcol"),
        &["--config", &config],
        dir,
    );
    peer.wait_port(14317);
    peer
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The OTLP span destination's counts in the example's `telemetry_loss`.
fn span_counts(doc: &Value) -> (u64, u64, u64, u64) {
    let d = doc["telemetry_loss"]["span_deliveries"]
        .as_array()
        .expect("span deliveries")
        .iter()
        .find(|d| {
            d["destination"]
                .as_str()
                .is_some_and(|s| s.starts_with("otlp_http"))
        })
        .unwrap_or_else(|| panic!("no OTLP span destination: {doc}"))
        .clone();
    let n = |k: &str| d[k].as_u64().unwrap_or_else(|| panic!("{k} in {d}"));
    (n("delivered"), n("failed"), n("unanswered"), n("in_flight"))
}

/// Spans of the example in the downstream collector's file, once the count stops moving.
fn passed_downstream(dir: &Path, service: &str) -> u64 {
    let file = dir.join("downstream.jsonl");
    let count = || {
        spans_in_file(&file)
            .iter()
            .filter(|s| s.resource.get("service.name").map(String::as_str) == Some(service))
            .count() as u64
    };
    let mut last = count();
    eventually("the downstream file stops growing", 30, || {
        std::thread::sleep(Duration::from_millis(1500));
        let now = count();
        let stable = now == last;
        last = now;
        if stable {
            Ok(())
        } else {
            Err(format!("{now} spans and growing"))
        }
    });
    last
}

struct Run {
    doc: Value,
    sent: Vec<crate::otlp::Span>,
}

/// Runs the example against the collector on 4318 while `fault` does its work.
fn run_with_fault(dir: &Path, seconds: u64, fault: impl FnOnce()) -> Run {
    let own = dir.join("own.jsonl");
    let own_text = own.display().to_string();
    let running = spawn_example(
        dir,
        seconds,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
            ("GENSCOPE_SHUTDOWN_TIMEOUT", "3s"),
            ("GENSCOPE_FILE_EXPORT", &own_text),
        ],
        &[],
    );
    fault();
    let (_, doc) = running.finish();
    Run {
        doc,
        sent: spans_in_file(&own),
    }
}

/// The accounting bound, and that memory stayed bounded.
fn assert_accounted(what: &str, dir: &Path, run: &Run) -> (u64, u64, u64, u64, u64) {
    let (delivered, failed, unanswered, in_flight) = span_counts(&run.doc);
    let passed = passed_downstream(dir, "generation-service");
    println!(
        "{what}: genscope delivered {delivered}, failed {failed}, unanswered {unanswered}, in \
         flight {in_flight}; downstream got {passed}; ended {}",
        run.doc["spans_ended"]
    );
    assert!(
        delivered <= passed && passed <= delivered + unanswered + in_flight,
        "{what}: delivered {delivered} <= passed {passed} <= delivered + unanswered {unanswered} \
         + in flight {in_flight} does not hold"
    );
    let rss = run.doc["max_rss_bytes"].as_u64().unwrap_or(0);
    assert!(rss < 512 << 20, "{what}: peak RSS {rss} bytes");
    (delivered, failed, unanswered, in_flight, passed)
}

/// The example went on serving during `[from, to]`: spans ended in that window.
fn assert_served_during(what: &str, run: &Run, from: u64, to: u64) {
    let ended = run
        .sent
        .iter()
        .filter(|s| s.end_time > from && s.end_time < to)
        .count();
    assert!(
        ended > 10,
        "{what}: only {ended} spans ended while the collector was down"
    );
    println!("{what}: {ended} spans ended while the collector was down");
}

/// The example's export went on after `since`: the downstream has spans that ended later.
fn assert_resumed(what: &str, dir: &Path, since: u64) {
    let later = spans_in_file(&dir.join("downstream.jsonl"))
        .iter()
        .filter(|s| s.end_time > since)
        .count();
    assert!(
        later > 10,
        "{what}: export did not resume ({later} spans after the fault)"
    );
}

/// The collector under test (otel-collector.yaml, synchronous, plus `extra` overlays) with the
/// never-faulted collector behind it, in a fresh folder.
struct Stack {
    peers: PathBuf,
    dir: tempfile::TempDir,
    _downstream: Peer,
    up: Peer,
}

impl Stack {
    fn start(test: &str, extra: &[&str]) -> Option<Stack> {
        let peers = peers(test)?;
        for port in [4317, 4318, 8889] {
            require_free(port);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let downstream = start_downstream(&peers, dir.path());
        let mut overlays = vec![overlay("synchronous.yaml")];
        overlays.extend(extra.iter().map(|o| overlay(o)));
        let up = start_collector(&peers, dir.path(), &overlays);
        Some(Stack {
            peers,
            dir,
            _downstream: downstream,
            up,
        })
    }

    /// A new collector on the same ports, with the normal (synchronous) config.
    fn restart(&self) -> Peer {
        start_collector(&self.peers, self.dir.path(), &[overlay("synchronous.yaml")])
    }
}

#[test]
fn collector_stopped_then_continued() {
    let Some(stack) = Stack::start("collector_stopped_then_continued", &[]) else {
        return;
    };
    let dir = &stack.dir.path().to_path_buf();
    let (mut stopped, mut resumed) = (0, 0);
    let run = run_with_fault(dir, 12, || {
        std::thread::sleep(Duration::from_secs(4));
        stack.up.signal(libc::SIGSTOP);
        stopped = now_ns();
        std::thread::sleep(Duration::from_secs(4));
        stack.up.signal(libc::SIGCONT);
        resumed = now_ns();
    });
    let (_, _, unanswered, _, _) = assert_accounted("SIGSTOP/SIGCONT", dir, &run);
    assert!(
        unanswered > 0,
        "exports sent into the stopped collector are unanswered"
    );
    assert_served_during("SIGSTOP/SIGCONT", &run, stopped, resumed);
    assert_resumed("SIGSTOP/SIGCONT", dir, resumed + 1_000_000_000);
}

#[test]
fn collector_killed_then_restarted() {
    let Some(mut stack) = Stack::start("collector_killed_then_restarted", &[]) else {
        return;
    };
    let dir = &stack.dir.path().to_path_buf();
    let (mut killed, mut restarted) = (0, 0);
    let mut second = None;
    let run = run_with_fault(dir, 12, || {
        std::thread::sleep(Duration::from_secs(4));
        stack.up.kill();
        killed = now_ns();
        std::thread::sleep(Duration::from_secs(3));
        second = Some(stack.restart());
        restarted = now_ns();
    });
    let (_, failed, _, _, _) = assert_accounted("SIGKILL/restart", dir, &run);
    assert!(
        failed > 0,
        "exports to the killed collector are refused and counted failed"
    );
    assert_served_during("SIGKILL/restart", &run, killed, restarted);
    assert_resumed("SIGKILL/restart", dir, restarted + 1_000_000_000);
    drop(second);
}

#[test]
fn memory_limiter_refuses_then_recovers() {
    let Some(mut stack) = Stack::start(
        "memory_limiter_refuses_then_recovers",
        &["tiny-memory.yaml"],
    ) else {
        return;
    };
    let dir = &stack.dir.path().to_path_buf();
    let mut restarted = 0;
    let mut second = None;
    let mut passed_while_limited = 0;
    let limited_from = now_ns();
    let run = run_with_fault(dir, 12, || {
        std::thread::sleep(Duration::from_secs(6));
        // What got through the limiter so far (the downstream file flushes every second).
        passed_while_limited = spans_in_file(&dir.join("downstream.jsonl")).len();
        stack.up.stop();
        second = Some(stack.restart());
        restarted = now_ns();
    });
    let (_, failed, _, _, _) = assert_accounted("memory_limiter", dir, &run);
    assert!(
        failed > 0,
        "the memory_limiter's refusals are counted failed"
    );
    assert_eq!(
        passed_while_limited, 0,
        "the limiter let {passed_while_limited} spans through"
    );
    assert_served_during("memory_limiter", &run, limited_from, restarted);
    assert_resumed("memory_limiter", dir, restarted + 1_000_000_000);
    drop(second);
}

/// The main job with its collector refused, hung (stopped for good) or killed mid-run: exit 0,
/// summary, report and HTML written, one warning naming the destination and the loss; the
/// hung one names the shutdown bound it spent (once: flush and shutdown share it).
#[test]
fn the_main_job_survives_a_refused_hung_or_killed_collector() {
    let Some(peers) = peers("the_main_job_survives_a_refused_hung_or_killed_collector") else {
        return;
    };
    for port in [4317, 4318, 8889] {
        require_free(port);
    }
    for case in ["refused", "hung", "killed"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path();
        let mut up = (case != "refused").then(|| start_collector(&peers, dir, &[]));
        let started = std::time::Instant::now();
        let running = spawn_example(
            dir,
            4,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
                ("GENSCOPE_SHUTDOWN_TIMEOUT", "3s"),
            ],
            &[],
        );
        std::thread::sleep(Duration::from_secs(2));
        match (case, up.as_mut()) {
            ("hung", Some(c)) => c.signal(libc::SIGSTOP),
            ("killed", Some(c)) => c.kill(),
            _ => {}
        }
        let html = running.html.clone();
        let (out, doc) = running.finish();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            stdout.contains("genscope analyzer store"),
            "{case}: no summary:\n{stdout}"
        );
        assert!(
            stdout.contains("\nhealth: "),
            "{case}: no report:\n{stdout}"
        );
        assert!(
            std::fs::metadata(&html).is_ok_and(|m| m.len() > 1000),
            "{case}: no HTML"
        );
        let warnings: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("warning: telemetry export to http://127.0.0.1:4318"))
            .collect();
        assert_eq!(warnings.len(), 1, "{case}: one warning expected:\n{stderr}");
        if case == "hung" {
            // Either the shutdown bound (3 s) passed first, or the exports' own timeout (2 s)
            // did and the flush says the collector never answered; both name what happened.
            assert!(
                warnings[0].contains("within 3s")
                    || warnings[0].contains("did not answer within the export timeout"),
                "{case}: the warning names the bound or the unanswered exports: {}",
                warnings[0]
            );
        }
        assert!(doc["requests_total"].as_f64().unwrap_or(0.0) > 10.0);
        println!(
            "{case}: exit 0 after {:.1} s for a 4 s run; {}",
            started.elapsed().as_secs_f64(),
            warnings[0]
        );
        if let Some(c) = up.as_mut() {
            if case == "hung" {
                c.signal(libc::SIGCONT);
            }
            c.kill();
        }
    }
}
