//! The real OpenTelemetry Collector as a bench's receiver (`#[path]`-included; not a bench
//! target of its own): `otelcol` from `tests/peers/build.sh` (`GENSCOPE_PEERS`).

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Starts `peers/otelcol` with `config` (YAML, written to `dir`, its log beside it) and waits
/// up to 30 s until `port` on 127.0.0.1 accepts connections.
pub fn start_collector(peers: &Path, dir: &Path, config: &str, port: u16) -> Child {
    let path = dir.join("collector.yaml");
    std::fs::write(&path, config).expect("collector config");
    let log = std::fs::File::create(dir.join("collector.log")).expect("log");
    let child = Command::new(peers.join("otelcol"))
        .arg("--config")
        .arg(&path)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("otelcol");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the collector did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}
