//! Starting the real peers (built by `tests/peers/build.sh`), waiting for them, asking them over
//! HTTP, and running the example and the CLI against them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The programs `tests/peers/build.sh` builds.
pub const BINARIES: [&str; 5] = [
    "otelcol",
    "prometheus",
    "promtool",
    "jaeger",
    "victoria-metrics",
];

/// The folder holding the peers, or `None` (with one skip line) when `GENSCOPE_PEERS` is unset.
/// With `GENSCOPE_REQUIRE_PEERS=1` (the README's test command sets it) a missing folder fails.
pub fn peers(test: &str) -> Option<PathBuf> {
    let required = std::env::var("GENSCOPE_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    let Some(dir) = std::env::var_os("GENSCOPE_PEERS").map(PathBuf::from) else {
        assert!(
            !required,
            "GENSCOPE_REQUIRE_PEERS=1 but GENSCOPE_PEERS is not set: run tests/run.sh, or \
             export GENSCOPE_PEERS=$(tests/peers/build.sh)"
        );
        println!(
            "SKIP {test}: GENSCOPE_PEERS is not set (the real collector, Prometheus, Jaeger and \
             VictoriaMetrics: tests/run.sh builds them and sets it)"
        );
        return None;
    };
    for b in BINARIES {
        assert!(
            dir.join(b).is_file(),
            "GENSCOPE_PEERS={} has no {b}: run tests/peers/build.sh",
            dir.display()
        );
    }
    Some(dir)
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An example built beside this test (`cargo test` builds the examples).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/real_stack-<hash> -> target/<profile>/examples/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("examples")
        .join(name);
    assert!(
        path.is_file(),
        "{} is not built: cargo nextest run --all-features builds the examples",
        path.display()
    );
    path
}

/// The `genscope` CLI.
pub fn cli() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_genscope"))
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Fails when something already listens on `port` (the collector's config uses fixed ports).
pub fn require_free(port: u16) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
        "something already listens on 127.0.0.1:{port}, which otel-collector.yaml uses; stop it"
    );
}

/// A running peer; killed when dropped. Its stdout and stderr go to `<dir>/<name>.log`.
pub struct Peer {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Peer {
    pub fn start(name: &str, program: &Path, args: &[&str], cwd: &Path) -> Peer {
        Self::start_with_env(name, program, args, cwd, &[])
    }

    pub fn start_with_env(
        name: &str,
        program: &Path,
        args: &[&str],
        cwd: &Path,
        env: &[(&str, &str)],
    ) -> Peer {
        let log = cwd.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("peer log");
        let child = Command::new(program)
            .args(args)
            .current_dir(cwd)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Peer {
            name: name.into(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Panics (with its log) when it exited.
    pub fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("{} exited ({status}):\n{}", self.name, self.log_tail());
        }
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Polls `url` until it answers 200.
    pub fn wait_ready(&mut self, url: &str) {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            self.assert_running();
            if let Ok((200, _)) = http_get(url) {
                return;
            }
            assert!(
                Instant::now() < until,
                "{} did not answer {url} within 60 s:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls until `port` on loopback accepts connections.
    pub fn wait_port(&mut self, port: u16) {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let until = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            self.assert_running();
            assert!(
                Instant::now() < until,
                "{} did not listen on {addr} within 60 s:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client")
    })
}

/// GET: status and body.
pub fn http_get(url: &str) -> Result<(u16, String), String> {
    runtime().block_on(async {
        let r = client().get(url).send().await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        Ok((status, r.text().await.map_err(|e| e.to_string())?))
    })
}

/// POST a body: status and body.
pub fn http_post(url: &str, content_type: &str, body: Vec<u8>) -> Result<(u16, String), String> {
    runtime().block_on(async {
        let r = client()
            .post(url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        Ok((status, r.text().await.map_err(|e| e.to_string())?))
    })
}

/// GET a JSON document; panics with the body when it is not 200 + JSON.
pub fn get_json(url: &str) -> Value {
    let (status, body) = http_get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

/// One sample of a PromQL instant vector: labels and value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// An instant PromQL query against a Prometheus-compatible `/api/v1/query` at `base`.
pub fn promql(base: &str, expr: &str) -> Vec<Sample> {
    let url = format!("{base}/api/v1/query?query={}", encode(expr));
    let doc = get_json(&url);
    assert_eq!(doc["status"], "success", "{expr}: {doc}");
    let result = &doc["data"]["result"];
    let rows = match doc["data"]["resultType"].as_str() {
        Some("vector") => result.as_array().cloned().unwrap_or_default(),
        Some("scalar") => vec![serde_json::json!({"metric": {}, "value": result})],
        other => panic!("{expr}: result type {other:?}: {doc}"),
    };
    rows.iter()
        .map(|r| Sample {
            labels: r["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            value: r["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN),
        })
        .collect()
}

/// The single value of a PromQL query that returns one sample (or `None` for no sample).
pub fn promql_scalar(base: &str, expr: &str) -> Option<f64> {
    let rows = promql(base, expr);
    assert!(
        rows.len() <= 1,
        "{expr} gave {} samples: {rows:?}",
        rows.len()
    );
    rows.first().map(|s| s.value)
}

/// Polls `probe` until it gives `Some`, for up to `secs`; panics with `what` and the last state.
pub fn eventually<T>(what: &str, secs: u64, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= until => panic!("{what}: not within {secs} s: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// The main example, running.
pub struct RunningExample {
    child: std::process::Child,
    json: PathBuf,
    /// Where its HTML report goes.
    pub html: PathBuf,
}

/// Starts the main example for `seconds` with the given environment and arguments (no OTLP,
/// /metrics or file export unless `env` sets them), writing `--json` and `--report` into `dir`.
pub fn spawn_example(
    dir: &Path,
    seconds: u64,
    env: &[(&str, &str)],
    args: &[&str],
) -> RunningExample {
    let json = dir.join(format!("example-{}.json", free_port()));
    let html = dir.join(format!("example-report-{}.html", free_port()));
    let rate: &[&str] = if args.contains(&"--rate") {
        &[]
    } else {
        &["--rate", "25"]
    };
    let child = Command::new(example("generation_service"))
        .args(["--seconds", &seconds.to_string()])
        .args(rate)
        .arg("--json")
        .arg(&json)
        .arg("--report")
        .arg(&html)
        .args(args)
        .current_dir(dir)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("GENSCOPE_PROMETHEUS_ADDR")
        .env_remove("GENSCOPE_FILE_EXPORT")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "1000")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    RunningExample { child, json, html }
}

impl RunningExample {
    /// Waits for it; panics (with its output) unless it exits 0. Returns its output and the
    /// `--json` document.
    pub fn finish(self) -> (Output, Value) {
        let out = self.child.wait_with_output().expect("wait for the example");
        assert!(
            out.status.success(),
            "example failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let doc = std::fs::read_to_string(&self.json).expect("the example's --json file");
        (out, serde_json::from_str(&doc).expect("json"))
    }
}

/// Runs the main example to its end: [`spawn_example`] then [`RunningExample::finish`].
pub fn run_example(
    dir: &Path,
    seconds: u64,
    env: &[(&str, &str)],
    args: &[&str],
) -> (Output, Value) {
    spawn_example(dir, seconds, env, args).finish()
}

/// Writes a Prometheus config scraping `targets` every second.
pub fn prometheus_config(dir: &Path, targets: &[&str]) -> PathBuf {
    let path = dir.join("prometheus.yml");
    let list = targets
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let text = if targets.is_empty() {
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n".to_string()
    } else {
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: otelcol\n    static_configs:\n      - targets: [{list}]\n"
        )
    };
    std::fs::write(&path, text).expect("prometheus.yml");
    path
}

/// Starts Prometheus 3 on a free port with `config`; `extra` flags such as
/// `--web.enable-otlp-receiver`. Returns the peer and its base URL.
pub fn start_prometheus(peers: &Path, dir: &Path, config: &Path, extra: &[&str]) -> (Peer, String) {
    let port = free_port();
    let data = dir.join(format!("prom-data-{port}"));
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", data.display()),
        format!("--web.listen-address={listen}"),
        "--storage.tsdb.retention.time=1d".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut peer = Peer::start("prometheus", &peers.join("prometheus"), &args, dir);
    let base = format!("http://{listen}");
    peer.wait_ready(&format!("{base}/-/ready"));
    (peer, base)
}
