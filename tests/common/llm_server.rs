//! Runs `examples/llm_server.rs` as a child process for tests, and a plain HTTP POST.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::Receiver;

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("exe");
    exe.parent()
        .and_then(std::path::Path::parent)
        .expect("target dir")
        .join("examples")
        .join(name)
}

pub fn start(rx: &Receiver, args: &[&str], env: &[(&str, &str)]) -> Server {
    start_example("llm_server", rx, args, env)
}

/// Starts `examples/<name>` on a free port, exporting to `rx` over gRPC (`env` may set another
/// `OTEL_EXPORTER_OTLP_PROTOCOL`), and waits for its
/// `listening on ADDR` line.
pub fn start_example(name: &str, rx: &Receiver, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(example(name))
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .env("RUST_LOG", "warn")
        .env_remove("GENSCOPE_PROMETHEUS_ADDR")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("start {name} (cargo build --examples --all-features first): {e}")
        });
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .trim()
        .parse()
        .expect("address");
    Server { child, addr }
}

/// A POST with a JSON body: status and body (chunked bodies de-chunked).
pub fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        rest.to_string()
    };
    (status, body)
}
