//! `examples/llm_server.rs` as a user meets it: a child process on a free port, real HTTP, OTLP
//! to a real receiver. Health, models, both completion modes, OpenAI error bodies, the gateway
//! series on `/metrics` while requests wait and run, and a clean exit on SIGTERM.

#![cfg(feature = "tower")]

mod common;

use std::time::{Duration, Instant};

use common::llm_server::{post, start};
use common::{Mode, Receiver, attr_str, http_get};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

fn gauge(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(&format!("{name}{{model_name=\"genscope-sim\"}}")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn the_server_answers_like_openai_and_shows_its_queue_to_the_gateway() {
    let rx = Receiver::grpc(Mode::Normal);
    let server = start(
        &rx,
        &["--max-batch", "2"],
        &[("GENSCOPE_MODEL_SERVER_METRICS", "vllm")],
    );
    let addr = server.addr;
    let (status, _, body) = http_get(addr, "/health", None);
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (_, _, models) = http_get(addr, "/v1/models", None);
    let models: serde_json::Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"][0]["id"], "genscope-sim");

    let (status, body) = post(
        addr,
        "/v1/chat/completions",
        r#"{"model":"genscope-sim","messages":[{"role":"user","content":"one two three"}],"max_tokens":5}"#,
    );
    assert_eq!(status, 200, "{body}");
    let done: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(done["object"], "chat.completion");
    assert_eq!(done["usage"]["prompt_tokens"], 3);
    assert_eq!(done["usage"]["completion_tokens"], 5);
    assert_eq!(done["choices"][0]["finish_reason"], "length");

    let (status, sse) = post(
        addr,
        "/v1/chat/completions",
        r#"{"model":"genscope-sim","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}"#,
    );
    assert_eq!(status, 200);
    let events: Vec<&str> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{sse}");
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, " tok1 tok2 tok3");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 3);

    let too_large = format!(
        r#"{{"model":"genscope-sim","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(1 << 20)
    );
    for (body, status, code, param) in [
        ("{bad", 400, None, None),
        (
            r#"{"model":"nope","messages":[]}"#,
            404,
            Some("model_not_found"),
            Some("model"),
        ),
        (r#"{"messages":[]}"#, 400, None, Some("model")),
        ("[1, 2]", 400, None, Some("model")),
        (r#"{"model":"genscope-sim"}"#, 400, None, Some("messages")),
        (
            r#"{"model":"genscope-sim","messages":[],"max_tokens":0}"#,
            400,
            None,
            Some("max_tokens"),
        ),
        (
            r#"{"model":"genscope-sim","messages":[],"max_completion_tokens":-1}"#,
            400,
            None,
            Some("max_completion_tokens"),
        ),
        (
            r#"{"model":"genscope-sim","messages":[{"role":"user","content":"hi"}],"max_tokens":5000}"#,
            400,
            Some("context_length_exceeded"),
            Some("messages"),
        ),
        (&too_large, 413, Some("request_too_large"), None),
    ] {
        let (got, text) = post(addr, "/v1/chat/completions", body);
        assert_eq!(got, status, "{body}: {text}");
        let e: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error", "{text}");
        assert_eq!(e["error"]["code"].as_str(), code, "{text}");
        assert_eq!(e["error"]["param"].as_str(), param, "{text}");
    }

    // Each rejection is counted under its code.
    let codes = |r: &Receiver| -> Vec<String> {
        r.latest_metric("gen_ai.server.request.duration")
            .and_then(|m| match m.data {
                Some(Data::Histogram(h)) => Some(
                    h.data_points
                        .iter()
                        .filter_map(|p| attr_str(&p.attributes, "error.type"))
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default()
    };
    let want = [
        "model_not_found",
        "context_length_exceeded",
        "request_too_large",
        "invalid_request_error",
    ];
    assert!(
        rx.wait_for(Duration::from_secs(10), |r| {
            let got = codes(r);
            want.iter().all(|w| got.iter().any(|g| g == w))
        }),
        "error.type values counted: {:?}",
        codes(&rx)
    );

    // Six long requests on two batch slots: four wait while two run.
    let clients: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                post(
                    addr,
                    "/v1/chat/completions",
                    r#"{"model":"genscope-sim","messages":[{"role":"user","content":"long"}],"max_tokens":60}"#,
                )
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = None;
    while Instant::now() < deadline {
        let (_, _, m) = http_get(addr, "/metrics", None);
        let (w, r) = (
            gauge(&m, "vllm:num_requests_waiting"),
            gauge(&m, "vllm:num_requests_running"),
        );
        if let (Some(w), Some(r)) = (w, r)
            && w >= 1.0
            && r == 2.0
        {
            seen = Some((w, r, gauge(&m, "vllm:kv_cache_usage_perc")));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (waiting, _, usage) = seen.expect("waiting and running requests seen on /metrics");
    assert!(waiting <= 4.0);
    let usage = usage.expect("kv usage");
    assert!(usage > 0.0 && usage <= 1.0, "vLLM's 0..1 range: {usage}");
    for c in clients {
        assert_eq!(c.join().unwrap().0, 200);
    }

    // SIGTERM: drains, flushes, exits 0.
    let mut server = server;
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let status = server.child.wait().expect("exit");
    assert!(status.success(), "{status:?}");
    assert!(rx.wait_for(Duration::from_secs(10), |r| {
        r.spans().iter().any(|s| s.name == "chat genscope-sim")
    }));
    let spans = rx.spans();
    let chat = spans
        .iter()
        .find(|s| s.name == "chat genscope-sim")
        .unwrap();
    let server_span = spans
        .iter()
        .find(|s| s.span_id == chat.parent_span_id)
        .expect("the chat span's parent");
    assert_eq!(server_span.name, "POST /v1/chat/completions");
    assert!(common::attr(&chat.attributes, "genscope.latency.decode").is_some());

    // Each rejected request was logged at WARN with its reason (the body): an OTLP log record with the
    // trace and span id of its request's SERVER span.
    let rejected: Vec<_> = rx
        .log_records()
        .into_iter()
        .filter(|r| {
            matches!(r.body.as_ref().and_then(|b| b.value.as_ref()),
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s))
                    if s.starts_with("request rejected: ") && s.len() > "request rejected: ".len())
        })
        .collect();
    assert_eq!(rejected.len(), 9, "one WARN record per rejected request");
    for r in &rejected {
        assert_eq!(r.severity_text, "WARN");
        assert!(common::attr_str(&r.attributes, "error.type").is_some());
        let span = spans
            .iter()
            .find(|s| s.trace_id == r.trace_id && s.span_id == r.span_id)
            .expect("the record's span is at the receiver");
        assert_eq!(span.name, "POST /v1/chat/completions");
    }
}

/// Requests from `clients` threads, `each` apiece, then the server's report over the last minute:
/// the ids of its findings.
fn load_then_findings(
    addr: std::net::SocketAddr,
    clients: usize,
    each: usize,
    body: &str,
) -> Vec<String> {
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let body = body.to_string();
            std::thread::spawn(move || {
                for _ in 0..each {
                    let (status, text) = post(addr, "/v1/chat/completions", &body);
                    assert_eq!(status, 200, "{text}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // One more metric collection (every 200 ms here) so the last requests are in.
    std::thread::sleep(Duration::from_millis(600));
    let (status, _, report) = http_get(addr, "/report?window=60", None);
    assert_eq!(status, 200);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["schema"], "genscope.report/1");
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_findings_follow_the_engine_flags() {
    let rx = Receiver::grpc(Mode::Normal);
    let prompt: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let long = format!(
        r#"{{"model":"genscope-sim","messages":[{{"role":"user","content":"{}"}}],"max_tokens":40}}"#,
        prompt.join(" ")
    );
    let short = r#"{"model":"genscope-sim","messages":[{"role":"user","content":"hello there"}],"max_tokens":8}"#;

    // A pool of 12 blocks for 16 requests of 80 tokens (5 blocks each): preemptions.
    let kv = start(&rx, &["--kv-blocks", "12"], &[]);
    let found = load_then_findings(kv.addr, 16, 2, &long);
    println!("--kv-blocks 12: {found:?}");
    assert!(found.iter().any(|f| f == "kv-cache-pressure"), "{found:?}");
    drop(kv);

    // One batch slot for 16 clients: requests mostly wait.
    let narrow = start(&rx, &["--max-batch", "1"], &[]);
    let found = load_then_findings(narrow.addr, 16, 4, short);
    println!("--max-batch 1: {found:?}");
    assert!(
        found.iter().any(|f| f == "queue-dominated-latency"),
        "{found:?}"
    );
    assert!(!found.iter().any(|f| f == "kv-cache-pressure"), "{found:?}");
    drop(narrow);

    // Defaults under a light load: no serving or latency problem (host findings such as
    // `cpu-bound` depend on what else the machine runs, so they are not judged here).
    let fine = start(&rx, &[], &[]);
    let found = load_then_findings(fine.addr, 4, 16, short);
    println!("defaults: {found:?}");
    for bad in [
        "kv-cache-pressure",
        "queue-dominated-latency",
        "tail-latency",
        "error-burst",
        "low-prefix-cache-hit-rate",
    ] {
        assert!(!found.iter().any(|f| f == bad), "{bad} in {found:?}");
    }
}

/// A client that leaves mid-stream: its request is recorded as cancelled (the metric's
/// `error.type` and its chat span) and its KV blocks go back to the pool, as the gateway series
/// on `/metrics` show.
#[test]
fn a_client_that_leaves_mid_stream_is_cancelled_and_frees_its_blocks() {
    use std::io::{BufRead as _, BufReader, Write as _};
    let rx = Receiver::grpc(Mode::Normal);
    let server = start(&rx, &[], &[("GENSCOPE_MODEL_SERVER_METRICS", "vllm")]);
    let addr = server.addr;
    let body = r#"{"model":"genscope-sim","messages":[{"role":"user","content":"a long story"}],"max_tokens":3000,"stream":true}"#;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut events = 0;
    let mut line = String::new();
    while events < 5 {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stream ended early"
        );
        events += usize::from(line.contains("data: "));
    }
    let metrics = || http_get(addr, "/metrics", None).2;
    // /metrics shows the engine as of the last collection (every 200 ms here).
    let deadline = Instant::now() + Duration::from_secs(10);
    let (running, usage) = loop {
        let m = metrics();
        let now = (
            gauge(&m, "vllm:num_requests_running"),
            gauge(&m, "vllm:kv_cache_usage_perc").unwrap_or(0.0),
        );
        if (now.0 == Some(1.0) && now.1 > 0.0) || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(running, Some(1.0), "one request running while it streams");
    assert!(usage > 0.0, "blocks in use while streaming: {usage}");
    drop(reader); // the client leaves

    let deadline = Instant::now() + Duration::from_secs(10);
    let freed = loop {
        let m = metrics();
        let now = (
            gauge(&m, "vllm:num_requests_running"),
            gauge(&m, "vllm:kv_cache_usage_perc"),
        );
        if now == (Some(0.0), Some(0.0)) || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        freed,
        (Some(0.0), Some(0.0)),
        "running, KV usage after the disconnect"
    );
    println!(
        "KV usage {usage:.4} while streaming, {:?} after the client left",
        freed.1
    );
    let cancelled = |r: &Receiver| {
        r.latest_metric("gen_ai.server.request.duration")
            .and_then(|m| match m.data {
                Some(Data::Histogram(h)) => Some(h.data_points.iter().any(|p| {
                    attr_str(&p.attributes, "error.type").as_deref() == Some("cancelled")
                        && p.count == 1
                })),
                _ => None,
            })
            .unwrap_or(false)
    };
    assert!(
        rx.wait_for(Duration::from_secs(10), cancelled),
        "no gen_ai.server.request.duration point with error.type=cancelled"
    );
    assert!(rx.wait_for(Duration::from_secs(10), |r| {
        r.spans().iter().any(|s| {
            s.name == "chat genscope-sim"
                && attr_str(&s.attributes, "error.type").as_deref() == Some("cancelled")
        })
    }));
}
