//! The resource-usage layer, end to end: `#[instrument]`-ed async code on a multi-thread tokio
//! runtime → genscope (usage layer + OpenTelemetry layer) → a real OTLP gRPC receiver. The
//! ground truth for CPU is the thread CPU clock read by the test itself inside the work.
//! Each test installs a global subscriber, so run them one process per test (`cargo nextest run`).

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Mode, Receiver, attr};
use genscope::config::Protocol;
use genscope::operations::{GpuUsage, GpuUsageSource};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use tracing::Instrument;

const MIB: i64 = 1 << 20;

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer, constant clock id.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) },
        0
    );
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Spins until this thread has used `cpu` of CPU time; returns what it used.
fn burn(cpu: Duration) -> Duration {
    let start = thread_cpu();
    let mut x = 0u64;
    while thread_cpu() - start < cpu {
        for i in 0..1000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
    }
    std::hint::black_box(x);
    thread_cpu() - start
}

fn double(span: &Span, key: &str) -> Option<f64> {
    match attr(&span.attributes, key)? {
        Value::DoubleValue(v) => Some(*v),
        other => panic!("{key} is not a double: {other:?}"),
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attr(&span.attributes, key)? {
        Value::IntValue(v) => Some(*v),
        other => panic!("{key} is not an int: {other:?}"),
    }
}

fn start(gpu: Option<Arc<dyn GpuUsageSource>>) -> (Receiver, genscope::Genscope) {
    let receiver = Receiver::grpc(Mode::Normal);
    let mut b = common::builder(receiver.url(), Protocol::Grpc);
    if let Some(g) = gpu {
        b = b.gpu_usage_source(g);
    }
    let telemetry = b.install().unwrap();
    (receiver, telemetry)
}

fn spans_named(
    receiver: &Receiver,
    telemetry: &genscope::Genscope,
    name: &str,
    n: usize,
) -> Vec<Span> {
    telemetry.force_flush().unwrap();
    assert!(
        receiver.wait_for(Duration::from_secs(10), |r| {
            r.spans().iter().filter(|s| s.name == name).count() >= n
        }),
        "expected {n} spans named {name}"
    );
    receiver
        .spans()
        .into_iter()
        .filter(|s| s.name == name)
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[tracing::instrument(skip(used, threads))]
async fn cpu_task(
    task: u32,
    used: Arc<Mutex<Duration>>,
    threads: Arc<Mutex<HashSet<std::thread::ThreadId>>>,
) {
    for _ in 0..20 {
        let d = burn(Duration::from_millis(10));
        *used.lock().unwrap() += d;
        threads.lock().unwrap().insert(std::thread::current().id());
        // A timer wake-up may resume the task on any worker thread.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn cpu_time_matches_the_work_even_when_tasks_hop_threads() {
    let (receiver, telemetry) = start(None);
    let rt = runtime();
    let mut truths = Vec::new();
    let mut hopped = 0;
    rt.block_on(async {
        let mut handles = Vec::new();
        for task in 0..4 {
            let used = Arc::new(Mutex::new(Duration::ZERO));
            let threads = Arc::new(Mutex::new(HashSet::new()));
            truths.push((task, Arc::clone(&used), Arc::clone(&threads)));
            handles.push(tokio::spawn(cpu_task(task, used, threads)));
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    let spans = spans_named(&receiver, &telemetry, "cpu_task", 4);
    for (task, used, threads) in truths {
        let truth = used.lock().unwrap().as_secs_f64();
        let span = spans
            .iter()
            .find(|s| {
                attr(&s.attributes, "task").is_some_and(|v| match v {
                    Value::IntValue(i) => *i == i64::from(task),
                    Value::StringValue(s) => *s == task.to_string(),
                    _ => false,
                })
            })
            .unwrap_or_else(|| panic!("span of task {task} in {:?}", spans[0].attributes));
        let measured = double(span, "genscope.usage.cpu.time").expect("cpu.time present");
        assert!(
            (measured - truth).abs() <= 0.2 * truth,
            "task {task}: measured {measured:.4} s vs truth {truth:.4} s"
        );
        assert!(truth >= 0.19, "the task burned {truth} s");
        if threads.lock().unwrap().len() > 1 {
            hopped += 1;
        }
        let util = double(span, "genscope.usage.process.cpu.utilization").unwrap();
        assert!((0.0..=1.0).contains(&util), "{util}");
        assert!(util > 0.0);
    }
    println!("{hopped} of 4 tasks ran on more than one thread");
    // Timer wake-ups move tasks between the 4 workers; the moved-future test below covers the
    // hop deterministically.
    assert!(hopped >= 1, "no task changed threads");
    telemetry.shutdown().unwrap();
}

/// The same future polled on one thread, then moved to another and finished there: the span's
/// CPU time is the sum over both threads.
#[test]
fn cpu_time_is_summed_over_threads_for_a_moved_future() {
    let (receiver, telemetry) = start(None);
    let first = Arc::new(Mutex::new(Duration::ZERO));
    let second = Arc::new(Mutex::new(Duration::ZERO));
    let (f1, f2) = (Arc::clone(&first), Arc::clone(&second));
    let mut yielded = false;
    let fut = async move {
        *f1.lock().unwrap() = burn(Duration::from_millis(100));
        // Pending once, so the caller can move the future to another thread.
        std::future::poll_fn(|_| {
            if yielded {
                std::task::Poll::Ready(())
            } else {
                yielded = true;
                std::task::Poll::Pending
            }
        })
        .await;
        *f2.lock().unwrap() = burn(Duration::from_millis(100));
    }
    .instrument(tracing::info_span!("moved"));
    let mut fut = Box::pin(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let first_thread = std::thread::current().id();
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    let other = std::thread::spawn(move || {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_ready());
        assert_ne!(std::thread::current().id(), first_thread);
        drop(fut);
    });
    other.join().unwrap();
    let spans = spans_named(&receiver, &telemetry, "moved", 1);
    let truth = (*first.lock().unwrap() + *second.lock().unwrap()).as_secs_f64();
    let measured = double(&spans[0], "genscope.usage.cpu.time").unwrap();
    assert!(
        (measured - truth).abs() <= 0.2 * truth,
        "measured {measured} vs truth {truth}"
    );
    telemetry.shutdown().unwrap();
}

#[tracing::instrument]
async fn sleeper() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[test]
fn a_sleeping_span_reports_near_zero_cpu() {
    let (receiver, telemetry) = start(None);
    runtime().block_on(sleeper());
    let spans = spans_named(&receiver, &telemetry, "sleeper", 1);
    let cpu = double(&spans[0], "genscope.usage.cpu.time").unwrap();
    assert!(cpu < 0.005, "a sleeping span used {cpu} s of CPU");
    telemetry.shutdown().unwrap();
}

#[tracing::instrument]
fn short_empty(i: u32) {}

#[tracing::instrument(skip(truth))]
fn short_nap(i: u32, truth: &mut Duration) {
    let before = thread_cpu();
    std::thread::sleep(Duration::from_micros(300));
    *truth += thread_cpu() - before;
}

#[tracing::instrument(skip(truth))]
fn short_burn(i: u32, truth: &mut Duration) {
    *truth += burn(Duration::from_micros(300));
}

/// Spans shorter than the thread clock's 1 ms extrapolation window: their CPU time comes from
/// the wall clock unless the thread was switched out, so a blocking nap inside must still read
/// as (nearly) no CPU, and pure work must read as what the exact clock says.
#[test]
fn sub_millisecond_spans_count_work_and_not_naps() {
    let (receiver, telemetry) = start(None);
    let mut truth = Duration::ZERO;
    let mut nap_truth = Duration::ZERO;
    for i in 0..300 {
        short_nap(i, &mut nap_truth);
        short_burn(i, &mut truth);
        short_empty(i);
    }
    let naps = spans_named(&receiver, &telemetry, "short_nap", 300);
    let empties = spans_named(&receiver, &telemetry, "short_empty", 300);
    let burns = spans_named(&receiver, &telemetry, "short_burn", 300);
    let sum = |spans: &[Span]| -> f64 {
        spans
            .iter()
            .map(|s| double(s, "genscope.usage.cpu.time").expect("cpu.time on every span"))
            .sum()
    };
    let napped = sum(&naps);
    // 300 naps of 300 us = 90 ms asleep. Falling asleep and waking up cost the thread real
    // (kernel) CPU, tens of microseconds each on a VM: the exact clock measured it inside each
    // span. A reading that extrapolated over the sleep would count the 90 ms.
    // A span also counts the instrumentation's own work while it is entered (tens of
    // microseconds in a debug build): 300 empty spans measure it.
    let nap_truth = nap_truth.as_secs_f64();
    let own = sum(&empties);
    assert!(
        napped < 0.3 * 0.090 && napped <= nap_truth + 2.0 * own + 0.003,
        "300 naps counted {napped} s of CPU; the exact clock saw {nap_truth} s asleep, empty spans {own} s"
    );
    let burned = sum(&burns);
    let truth = truth.as_secs_f64();
    // The bursts' spans carry the same instrumentation cost as the empty ones on top.
    assert!(
        burned >= truth * 0.90 && burned <= truth * 1.10 + 2.0 * own,
        "300 sub-millisecond bursts: {burned} s measured vs {truth} s by the exact clock, empty spans {own} s"
    );
    telemetry.shutdown().unwrap();
}

#[tracing::instrument]
async fn allocate() -> Vec<u8> {
    tokio::task::yield_now().await;
    // Non-zero fill: every page is touched, so it is resident.
    vec![0x5a; 64 << 20]
}

#[test]
fn a_kept_allocation_shows_in_rss_delta_and_peak() {
    let (receiver, telemetry) = start(None);
    let kept = runtime().block_on(allocate());
    let spans = spans_named(&receiver, &telemetry, "allocate", 1);
    let delta = int(&spans[0], "genscope.usage.memory.rss.delta").unwrap();
    let peak = int(&spans[0], "genscope.usage.memory.rss.peak").unwrap();
    assert!(delta >= 64 * MIB, "rss.delta {} MiB", delta / MIB);
    assert!(
        peak >= 64 * MIB && peak >= delta,
        "rss.peak {} MiB",
        peak / MIB
    );
    assert_eq!(kept.len(), 64 << 20);
    telemetry.shutdown().unwrap();
}

struct FakeGpu {
    asked: Mutex<Vec<(Instant, Instant)>>,
}

impl GpuUsageSource for FakeGpu {
    fn gpu_usage(&self, from: Instant, to: Instant) -> Option<GpuUsage> {
        self.asked.lock().unwrap().push((from, to));
        Some(GpuUsage {
            utilization: Some(0.75),
            memory_peak_bytes: Some(21 << 30),
        })
    }
}

#[test]
fn gpu_attributes_come_from_the_source_and_are_absent_without_one() {
    let fake = Arc::new(FakeGpu {
        asked: Mutex::new(Vec::new()),
    });
    let (receiver, telemetry) = start(Some(fake.clone() as Arc<dyn GpuUsageSource>));
    let before = Instant::now();
    tracing::info_span!("on_gpu").in_scope(|| std::thread::sleep(Duration::from_millis(20)));
    // Not watched by default (DEBUG), and not exported either under the default `info` filter.
    tracing::debug_span!("quiet").in_scope(|| {});
    let spans = spans_named(&receiver, &telemetry, "on_gpu", 1);
    assert_eq!(
        double(&spans[0], "genscope.usage.gpu.utilization"),
        Some(0.75)
    );
    assert_eq!(
        int(&spans[0], "genscope.usage.gpu.memory.peak"),
        Some(21 << 30)
    );
    let asked = fake.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "asked once per watched span");
    assert!(asked[0].0 >= before && asked[0].1 - asked[0].0 >= Duration::from_millis(20));
    telemetry.shutdown().unwrap();
}

#[test]
fn without_a_gpu_source_gpu_attributes_are_absent_not_zero() {
    let (receiver, telemetry) = start(None);
    tracing::info_span!("no_gpu").in_scope(|| std::thread::sleep(Duration::from_millis(5)));
    // Shorter than the 1 ms `min_memory_span`: CPU time only, the rest absent.
    tracing::info_span!("short").in_scope(|| {});
    let short = spans_named(&receiver, &telemetry, "short", 1);
    let short_keys: Vec<&str> = short[0]
        .attributes
        .iter()
        .map(|kv| kv.key.as_str())
        .collect();
    assert!(
        short_keys.contains(&"genscope.usage.cpu.time"),
        "{short_keys:?}"
    );
    assert!(
        !short_keys
            .iter()
            .any(|k| k.starts_with("genscope.usage.memory")
                || *k == "genscope.usage.process.cpu.utilization"),
        "{short_keys:?}"
    );
    let spans = spans_named(&receiver, &telemetry, "no_gpu", 1);
    let keys: Vec<&str> = spans[0]
        .attributes
        .iter()
        .map(|kv| kv.key.as_str())
        .collect();
    assert!(
        !keys.iter().any(|k| k.starts_with("genscope.usage.gpu")),
        "{keys:?}"
    );
    for k in [
        "genscope.usage.cpu.time",
        "genscope.usage.process.cpu.utilization",
        "genscope.usage.memory.rss.delta",
        "genscope.usage.memory.rss.peak",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    telemetry.shutdown().unwrap();
}

#[test]
fn resource_usage_off_adds_no_attributes() {
    let receiver = Receiver::grpc(Mode::Normal);
    let telemetry = common::builder(receiver.url(), Protocol::Grpc)
        .resource_usage(genscope::config::ResourceUsage::Off)
        .install()
        .unwrap();
    tracing::info_span!("plain").in_scope(|| {});
    let spans = spans_named(&receiver, &telemetry, "plain", 1);
    assert!(
        !spans[0]
            .attributes
            .iter()
            .any(|kv| kv.key.starts_with("genscope.usage.")),
        "{:?}",
        spans[0].attributes
    );
    telemetry.shutdown().unwrap();
}

#[test]
fn operations_mode_watches_operation_fields_at_any_level_and_nothing_else() {
    let receiver = Receiver::grpc(Mode::Normal);
    let telemetry = common::builder(receiver.url(), Protocol::Grpc)
        .resource_usage(genscope::config::ResourceUsage::Operations)
        .traces_filter("debug")
        .install()
        .unwrap();
    tracing::debug_span!("load_weights", operation = "model_load").in_scope(|| {});
    tracing::info_span!("ordinary").in_scope(|| {});
    telemetry.force_flush().unwrap();
    assert!(receiver.wait_for(Duration::from_secs(10), |r| r.spans().len() >= 2));
    let spans = receiver.spans();
    let watched = spans.iter().find(|s| s.name == "load_weights").unwrap();
    let ordinary = spans.iter().find(|s| s.name == "ordinary").unwrap();
    assert!(double(watched, "genscope.usage.cpu.time").is_some());
    assert!(double(ordinary, "genscope.usage.cpu.time").is_none());
    telemetry.shutdown().unwrap();
}
