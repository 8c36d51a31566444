//! The Prometheus HTTP API client: `/api/v1/query_range`, `/api/v1/series` and `/api/v1/labels`,
//! which Prometheus, VictoriaMetrics, Thanos, Mimir and Cortex all answer. Credentials come from
//! the environment (`GENSCOPE_REPORT_*`, see [`Credentials::from_env`]); the URL may carry a path
//! prefix (`https://mimir.example/prometheus`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::error::FleetError;

/// How the client authenticates and which extra headers it sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `Authorization: Bearer …` (`GENSCOPE_REPORT_BEARER_TOKEN`).
    pub bearer_token: Option<String>,
    /// `user:pass` for basic auth (`GENSCOPE_REPORT_BASIC_AUTH`).
    pub basic_auth: Option<(String, String)>,
    /// A PEM file of CA certificates trusted besides the web PKI roots
    /// (`GENSCOPE_REPORT_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// Extra headers, `Name=value` pairs separated by commas (`GENSCOPE_REPORT_HEADERS`, e.g.
    /// `X-Scope-OrgID=tenant-1` for Mimir and Cortex).
    pub headers: Vec<(String, String)>,
}

impl Credentials {
    /// Reads `GENSCOPE_REPORT_BEARER_TOKEN`, `GENSCOPE_REPORT_BASIC_AUTH` (`user:pass`),
    /// `GENSCOPE_REPORT_CA_FILE` and `GENSCOPE_REPORT_HEADERS` (`Name=value,Name2=value2`).
    ///
    /// ```
    /// let c = genscope::analyzer::fleet::Credentials::from_lookup(|k| match k {
    ///     "GENSCOPE_REPORT_HEADERS" => Some("X-Scope-OrgID=team-a".into()),
    ///     _ => None,
    /// }).unwrap();
    /// assert_eq!(c.headers, [("X-Scope-OrgID".to_string(), "team-a".to_string())]);
    /// ```
    pub fn from_env() -> Result<Credentials, FleetError> {
        Credentials::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`Self::from_env`] over any lookup (for tests and embedding).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Credentials, FleetError> {
        let bad = |var: &'static str, reason: String| FleetError::Env { var, reason };
        let basic_auth = match get("GENSCOPE_REPORT_BASIC_AUTH").filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => match v.split_once(':') {
                Some((u, p)) if !u.is_empty() => Some((u.to_string(), p.to_string())),
                _ => {
                    return Err(bad(
                        "GENSCOPE_REPORT_BASIC_AUTH",
                        "expected user:pass".into(),
                    ));
                }
            },
        };
        let bearer_token = get("GENSCOPE_REPORT_BEARER_TOKEN").filter(|v| !v.is_empty());
        if bearer_token.is_some() && basic_auth.is_some() {
            return Err(bad(
                "GENSCOPE_REPORT_BEARER_TOKEN",
                "set either a bearer token or GENSCOPE_REPORT_BASIC_AUTH, not both".into(),
            ));
        }
        let mut headers = Vec::new();
        for pair in get("GENSCOPE_REPORT_HEADERS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(bad(
                    "GENSCOPE_REPORT_HEADERS",
                    format!("{pair:?}: expected Name=value"),
                ));
            };
            let (name, value) = (name.trim(), value.trim());
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value).is_err()
            {
                return Err(bad(
                    "GENSCOPE_REPORT_HEADERS",
                    format!("{pair:?}: not a valid HTTP header"),
                ));
            }
            headers.push((name.to_string(), value.to_string()));
        }
        Ok(Credentials {
            bearer_token,
            basic_auth,
            ca_file: get("GENSCOPE_REPORT_CA_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            headers,
        })
    }
}

/// One series of a range query: its labels and `(unix seconds, value)` samples.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Labels, `__name__` included.
    pub labels: Vec<(String, String)>,
    /// Samples, oldest first.
    pub samples: Vec<(f64, f64)>,
}

#[derive(Deserialize)]
struct Answer<T> {
    status: String,
    data: Option<T>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct Matrix {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<MatrixSeries>,
}

#[derive(Deserialize)]
struct MatrixSeries {
    metric: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// A client of one Prometheus-compatible backend.
#[derive(Debug, Clone)]
pub struct PrometheusClient {
    base: String,
    http: reqwest::Client,
    credentials: Credentials,
    queries: Arc<AtomicU64>,
}

impl PrometheusClient {
    /// A client of `url` (`http://host:9090`, or with a path prefix), with `timeout` per request.
    ///
    /// ```
    /// use genscope::analyzer::fleet::{Credentials, PrometheusClient};
    /// let c = PrometheusClient::new("http://127.0.0.1:9090/", Credentials::default(), std::time::Duration::from_secs(5)).unwrap();
    /// assert_eq!(c.queries(), 0);
    /// assert!(PrometheusClient::new("127.0.0.1:9090", Credentials::default(), std::time::Duration::from_secs(5)).is_err());
    /// ```
    pub fn new(
        url: &str,
        credentials: Credentials,
        timeout: Duration,
    ) -> Result<PrometheusClient, FleetError> {
        let parsed = url.parse::<http::Uri>().ok();
        let ok = parsed.as_ref().is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
        });
        if !ok {
            return Err(FleetError::Url {
                url: url.to_string(),
                reason: "expected http:// or https:// with a host, e.g. http://localhost:9090"
                    .into(),
            });
        }
        let http = client(&credentials, timeout)?;
        Ok(PrometheusClient {
            base: url.trim_end_matches('/').to_string(),
            http,
            credentials,
            queries: Arc::new(AtomicU64::new(0)),
        })
    }

    /// HTTP requests sent so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    fn request(&self, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.post(format!("{}{path}", self.base));
        if let Some(t) = &self.credentials.bearer_token {
            r = r.bearer_auth(t);
        }
        if let Some((u, p)) = &self.credentials.basic_auth {
            r = r.basic_auth(u, Some(p));
        }
        for (k, v) in &self.credentials.headers {
            r = r.header(k, v);
        }
        r
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<(T, Vec<String>), FleetError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}{path}", self.base);
        let net = |e: reqwest::Error| FleetError::Http {
            url: url.clone(),
            reason: if e.is_timeout() {
                "timed out".into()
            } else {
                error_chain(&e)
            },
        };
        let body = form_body(form);
        let resp = self
            .request(path)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(net)?;
        let status = resp.status();
        let text = resp.text().await.map_err(net)?;
        let answer: Result<Answer<T>, _> = serde_json::from_str(&text);
        match answer {
            Ok(a) if a.status == "success" && status.is_success() => match a.data {
                Some(d) => Ok((d, a.warnings)),
                None => Err(FleetError::Answer {
                    url,
                    reason: "a success answer without data".into(),
                }),
            },
            Ok(a) => Err(FleetError::Backend {
                url,
                status: status.as_u16(),
                reason: format!(
                    "{}: {}",
                    a.error_type.unwrap_or_else(|| "error".into()),
                    a.error.unwrap_or_default()
                ),
            }),
            Err(e) => Err(if status.is_success() {
                FleetError::Answer {
                    url,
                    reason: format!("not the Prometheus API's JSON: {e}"),
                }
            } else {
                FleetError::Backend {
                    url,
                    status: status.as_u16(),
                    reason: text.chars().take(200).collect(),
                }
            }),
        }
    }

    /// `query_range` of `query` from `start` to `end` at `step`: the series and any warnings
    /// the backend gave.
    pub async fn query_range(
        &self,
        query: &str,
        start: SystemTime,
        end: SystemTime,
        step: Duration,
    ) -> Result<(Vec<RangeSeries>, Vec<String>), FleetError> {
        let form = [
            ("query", query.to_string()),
            ("start", format!("{:.3}", unix(start))),
            ("end", format!("{:.3}", unix(end))),
            ("step", format!("{:.3}", step.as_secs_f64().max(0.001))),
        ];
        let (m, warnings): (Matrix, _) = self.call("/api/v1/query_range", &form).await?;
        if m.result_type != "matrix" {
            return Err(FleetError::Answer {
                url: format!("{}/api/v1/query_range", self.base),
                reason: format!("expected a matrix, got {}", m.result_type),
            });
        }
        let series = m
            .result
            .into_iter()
            .map(|s| RangeSeries {
                labels: s.metric.into_iter().collect(),
                // "NaN", "+Inf" and numbers; anything else is dropped (a partial answer).
                samples: s
                    .values
                    .into_iter()
                    .filter_map(|(t, v)| v.parse::<f64>().ok().map(|v| (t, v)))
                    .collect(),
            })
            .collect();
        Ok((series, warnings))
    }

    /// `/api/v1/labels` over the range: the label names the backend holds (checks `--by`).
    pub async fn labels(
        &self,
        matcher: &str,
        start: SystemTime,
        end: SystemTime,
    ) -> Result<Vec<String>, FleetError> {
        let form = [
            ("match[]", matcher.to_string()),
            ("start", format!("{:.3}", unix(start))),
            ("end", format!("{:.3}", unix(end))),
        ];
        Ok(self.call("/api/v1/labels", &form).await?.0)
    }

    /// `/api/v1/series` over the range: the label sets of the series `matcher` selects.
    pub async fn series(
        &self,
        matcher: &str,
        start: SystemTime,
        end: SystemTime,
    ) -> Result<Vec<std::collections::BTreeMap<String, String>>, FleetError> {
        let form = [
            ("match[]", matcher.to_string()),
            ("start", format!("{:.3}", unix(start))),
            ("end", format!("{:.3}", unix(end))),
        ];
        Ok(self.call("/api/v1/series", &form).await?.0)
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// `application/x-www-form-urlencoded` (POST keeps long selectors out of URL limits).
fn form_body(form: &[(&str, String)]) -> String {
    fn enc(s: &str, out: &mut String) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char);
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in form.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        enc(k, &mut out);
        out.push('=');
        enc(v, &mut out);
    }
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// reqwest with rustls on ring: the web PKI roots plus the CA file.
fn client(c: &Credentials, timeout: Duration) -> Result<reqwest::Client, FleetError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &c.ca_file {
        let bad = |reason: String| FleetError::Env {
            var: "GENSCOPE_REPORT_CA_FILE",
            reason: format!("{}: {reason}", path.display()),
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut any = false;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots
                .add(cert.map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(e.to_string()))?;
            any = true;
        }
        if !any {
            return Err(bad("no PEM certificate found".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FleetError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .build()
        .map_err(|e| FleetError::Tls(error_chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_checked() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = Credentials::from_lookup(env(&[("GENSCOPE_REPORT_BASIC_AUTH", "u:p:w")])).unwrap();
        assert_eq!(c.basic_auth, Some(("u".into(), "p:w".into())));
        for bad in [
            &[("GENSCOPE_REPORT_BASIC_AUTH", "nopass")][..],
            &[("GENSCOPE_REPORT_HEADERS", "X-Scope-OrgID")],
            &[("GENSCOPE_REPORT_HEADERS", "Bad Name=1")],
            &[
                ("GENSCOPE_REPORT_BASIC_AUTH", "u:p"),
                ("GENSCOPE_REPORT_BEARER_TOKEN", "t"),
            ],
        ] {
            let e = Credentials::from_lookup(env(bad)).unwrap_err();
            assert!(e.to_string().contains("GENSCOPE_REPORT_"), "{e}");
        }
        let e = Credentials::from_lookup(env(&[("GENSCOPE_REPORT_CA_FILE", "/nonexistent.pem")]))
            .and_then(|c| PrometheusClient::new("https://x", c, Duration::from_secs(1)))
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent.pem"), "{e}");
    }

    #[test]
    fn forms_are_encoded() {
        assert_eq!(
            form_body(&[("query", r#"{job="a b"}"#.into()), ("step", "10".into())]),
            "query=%7Bjob%3D%22a%20b%22%7D&step=10"
        );
    }
}
