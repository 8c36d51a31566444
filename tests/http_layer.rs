//! The `tower` layer in a real axum app on a real socket: route templates (never raw paths),
//! status codes, errors and panics counted, in-flight requests tracked.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use common::http_get;
use genscope::Genscope;
use genscope::analyzer::Window;
use genscope::instruments::HttpMetricsLayer;
use tokio::sync::Notify;

async fn panicking() -> &'static str {
    if std::hint::black_box(true) {
        panic!("handler bug");
    }
    "unreachable"
}

#[test]
fn axum_requests_are_recorded_by_route_template() {
    let t = Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .build()
        .unwrap();
    let layer = HttpMetricsLayer::new(t.metrics().http_server().unwrap());
    let release = Arc::new(Notify::new());
    let held = Arc::clone(&release);
    let app = Router::new()
        .route(
            "/v1/models/{id}",
            get(|Path(id): Path<String>| async move { id }),
        )
        .route(
            "/v1/fail",
            get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        )
        .route("/v1/panic", get(panicking))
        .route(
            "/v1/slow",
            post(move || {
                let held = Arc::clone(&held);
                async move {
                    held.notified().await;
                    "done"
                }
            }),
        )
        .layer(layer);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    for id in ["sdxl", "flux", "llama-3"] {
        let (status, _, body) = http_get(addr, &format!("/v1/models/{id}"), None);
        assert_eq!((status, body.as_str()), (200, id));
    }
    assert_eq!(http_get(addr, "/v1/fail", None).0, 503);
    assert_eq!(http_get(addr, "/v1/nowhere", None).0, 404);
    // The panicking handler: the connection drops; the request is still recorded.
    let _ = std::panic::catch_unwind(|| http_get(addr, "/v1/panic", None));

    // A request in flight shows in http.server.active_requests.
    let slow = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST /v1/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    });
    std::thread::sleep(Duration::from_millis(300));
    t.force_flush().unwrap();
    let w = Window::all();
    let in_flight = t
        .analyzer()
        .gauge(
            "http.server.active_requests",
            &[("http.request.method", "POST")],
            w,
        )
        .map(|g| g.last);
    assert_eq!(in_flight, Some(1.0));
    release.notify_one();
    assert!(slow.join().unwrap().contains("done"));
    t.force_flush().unwrap();
    let in_flight = t
        .analyzer()
        .gauge(
            "http.server.active_requests",
            &[("http.request.method", "POST")],
            w,
        )
        .map(|g| g.last);
    assert_eq!(in_flight, Some(0.0));

    let store = t.analyzer();
    let series = store.series("http.server.request.duration");
    let routes: Vec<&str> = series
        .iter()
        .filter_map(|a| {
            a.iter()
                .find(|(k, _)| k == "http.route")
                .map(|(_, v)| v.as_str())
        })
        .collect();
    assert!(routes.contains(&"/v1/models/{id}"), "{routes:?}");
    assert!(
        !routes.iter().any(|r| r.contains("sdxl")),
        "raw paths leaked: {routes:?}"
    );
    let by_model = store
        .histogram(
            "http.server.request.duration",
            &[("http.route", "/v1/models/{id}")],
            w,
        )
        .unwrap();
    assert_eq!(by_model.count, 3);
    let ok = store
        .histogram(
            "http.server.request.duration",
            &[("http.response.status_code", "200")],
            w,
        )
        .unwrap();
    assert_eq!(ok.count, 4, "three models and the slow POST");
    let unavailable = store
        .histogram("http.server.request.duration", &[("error.type", "503")], w)
        .unwrap();
    assert_eq!(unavailable.count, 1);
    let panicked = store
        .histogram(
            "http.server.request.duration",
            &[("error.type", "panic")],
            w,
        )
        .unwrap();
    assert_eq!(panicked.count, 1);
    assert_eq!(
        store
            .histogram(
                "http.server.request.duration",
                &[("http.response.status_code", "404")],
                w
            )
            .map(|h| h.count),
        Some(1),
        "unmatched requests are recorded without a route"
    );
    assert!(series.iter().any(|a| {
        a.iter()
            .any(|(k, v)| k == "http.response.status_code" && v == "404")
            && !a.iter().any(|(k, _)| k == "http.route")
    }));
    t.shutdown().unwrap();
}
