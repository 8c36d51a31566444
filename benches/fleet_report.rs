//! A fleet report at scale: N genscope-named instances x 1 h at 10 s steps, backfilled into a real
//! Prometheus 3 with `promtool tsdb create-blocks-from openmetrics` (the generator of
//! tests/real_stack/fleet.rs), then `analyzer::fleet::fleet_report` against it, in process.
//! Beside it, in the same run, the baseline: the same HTTP queries with their answers read and
//! thrown away (what any client of the backend pays before analysing anything).
//!
//!     GENSCOPE_PEERS=$(tests/peers/build.sh) cargo bench --bench fleet_report
//!
//! Prints a table: instances, HTTP queries, median report time, median fetch-only time, ratio.
//! Without `GENSCOPE_PEERS` it prints a SKIP line.

#[path = "../tests/real_stack/fleet_data.rs"]
#[allow(dead_code)]
mod fleet_data;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fleet_data::{HEALTHY, Naming, Plan, STEP, STEPS, backfill, openmetrics};
use genscope::analyzer::fleet::{
    Credentials, FleetOptions, PrometheusClient, fleet_report, signals,
};

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn plans(n: usize) -> Vec<Plan> {
    (0..n)
        .map(|i| {
            let instance: &'static str = Box::leak(format!("gen-{i:03}").into_boxed_str());
            let mut p = Plan {
                job: "gen",
                instance,
                naming: Naming::Genscope,
                ..HEALTHY
            };
            // A few planted problems, so the report has findings to compute.
            match i % 25 {
                1 => p.queue = 12.0,
                2 => p.errors = 0.3,
                3 => p.duration = 2.0,
                _ => {}
            }
            p
        })
        .collect()
}

fn start(peers: &Path, dir: &Path, n: usize, end: u64) -> (Prometheus, String) {
    let data = backfill(
        peers,
        dir,
        &format!("fleet-{n}"),
        &openmetrics(&plans(n), end - STEP * STEPS),
    );
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 10s\n").expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let child = Command::new(peers.join("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=2d")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let base = format!("http://127.0.0.1:{port}");
    let ready = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
            use std::io::{Read as _, Write as _};
            let _ = write!(s, "GET /-/ready HTTP/1.0\r\n\r\n");
            let mut r = String::new();
            let _ = s.read_to_string(&mut r);
            r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200")
        })
    });
    assert!(ready, "prometheus never became ready");
    (Prometheus(child), base)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let Some(peers) = std::env::var_os("GENSCOPE_PEERS").map(std::path::PathBuf::from) else {
        println!("SKIP fleet_report: GENSCOPE_PEERS is not set (tests/peers/build.sh)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let end = (now - 3 * 3600) / STEP * STEP;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "| instances | HTTP queries | report (median of 5) | fetch only (median of 5) | report / fetch | findings |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in [10, 100] {
        let (_prom, base) = start(&peers, dir.path(), n, end);
        let options = FleetOptions {
            end: Some(UNIX_EPOCH + Duration::from_secs(end)),
            ..FleetOptions::default()
        };
        let (mut reports, mut fetches, mut queries, mut findings) = (Vec::new(), Vec::new(), 0, 0);
        for _ in 0..5 {
            let client =
                PrometheusClient::new(&base, Credentials::default(), Duration::from_secs(60))
                    .expect("client");
            let t = Instant::now();
            let report = rt
                .block_on(fleet_report(&client, &options))
                .expect("report");
            reports.push(t.elapsed());
            assert_eq!(report.instances.len(), n);
            queries = client.queries();
            findings = report.findings.len();
            // The baseline: the same queries, answers parsed and dropped.
            let start = UNIX_EPOCH + Duration::from_secs(end - 3600);
            let stop = UNIX_EPOCH + Duration::from_secs(end);
            let t = Instant::now();
            rt.block_on(async {
                use futures_util::StreamExt as _;
                let step = options.step();
                let queries = signals::sources().into_iter().map(|s| {
                    let names = match s.kind {
                        genscope::analyzer::MetricKind::Histogram => ["_bucket", "_sum", "_count"]
                            .iter()
                            .map(|x| format!("{}{x}", s.family))
                            .collect::<Vec<_>>()
                            .join("|"),
                        _ => s.family.clone(),
                    };
                    let q = format!("{{__name__=~\"{names}\"}}");
                    let client = &client;
                    async move {
                        client
                            .query_range(&q, start, stop, step)
                            .await
                            .expect("query")
                    }
                });
                // As many in flight as the report uses (8).
                let _: Vec<_> = futures_util::stream::iter(queries)
                    .buffer_unordered(8)
                    .collect()
                    .await;
            });
            fetches.push(t.elapsed());
        }
        let (r, f) = (median(reports), median(fetches));
        println!(
            "| {n} | {queries} | {:.0} ms | {:.0} ms | {:.2} | {findings} |",
            r.as_secs_f64() * 1e3,
            f.as_secs_f64() * 1e3,
            r.as_secs_f64() / f.as_secs_f64()
        );
    }
}
