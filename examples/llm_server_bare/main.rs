//! `examples/llm_server` with no telemetry at all: the same server (`../llm_server/server.rs`),
//! engine and host-side work, with genscope compiled out (nothing of genscope is referenced, so
//! nothing of it is linked). The baseline row of `benches/server_overhead.rs`.
//!
//! Run: `cargo run --release --example llm_server_bare -- --addr 127.0.0.1:8000`
//!
//! A separate example rather than a cargo feature of `llm_server`: the test command builds with
//! `--all-features`, which would switch the tested server's instrumentation off.

#[path = "../llm_server/engine.rs"]
mod engine;
#[path = "../common/serve.rs"]
mod serve;
#[path = "../llm_server/server.rs"]
mod server;
#[path = "../llm_server/telemetry.rs"]
mod telemetry;
#[path = "../llm_server/tokenizer.rs"]
mod tokenizer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::http::StatusCode;
use clap::Parser;
use futures_util::stream::BoxStream;
use telemetry::{EngineState, EngineTelemetry, Piece, RequestTelemetry, Telemetry};

struct Bare;

impl EngineTelemetry for Bare {
    fn state(&self, _: EngineState) {}
    fn preemptions(&self, _: u64) {}
    fn prefix_cache(&self, _: u64, _: u64) {}
    fn step_tokens(&self, _: u64) {}
}

impl RequestTelemetry for Bare {
    fn scheduled(&mut self) {}
    fn timed(self, tokens: BoxStream<'static, Piece>) -> BoxStream<'static, Piece> {
        tokens
    }
}

impl Telemetry for Bare {
    type Engine = Bare;
    type Request = Bare;
    fn engine(&self) -> Bare {
        Bare
    }
    fn request(&self, _: SocketAddr, _: &str, _: u64, _: u64) -> Bare {
        Bare
    }
    fn rejected(&self, _: SocketAddr, _: &str, _: Instant, _: StatusCode, _: &str) {}
    fn routes(self: &Arc<Self>, router: Router) -> Router {
        router
    }
    fn shutdown(&self) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = server::Args::parse();
    server::run(args, Arc::new(Bare), tokio::runtime::Runtime::new()?)
}
