//! Every finding rule, each shown firing and staying quiet, and configurable thresholds.

use super::*;

fn ids(s: &Signals) -> Vec<String> {
    evaluate(s, &Thresholds::default())
        .into_iter()
        .map(|f| f.id)
        .collect()
}

fn base() -> Signals {
    Signals {
        window_seconds: 900.0,
        ..Default::default()
    }
}

/// Asserts that `fire` triggers exactly `id` and `quiet` triggers nothing.
fn both_ways(id: &str, fire: Signals, quiet: Signals) {
    assert_eq!(ids(&fire), vec![id.to_string()], "should fire: {fire:?}");
    assert!(
        ids(&quiet).is_empty(),
        "should stay quiet: {:?}",
        ids(&quiet)
    );
}

#[test]
fn nothing_observed_nothing_found() {
    assert!(ids(&base()).is_empty());
}

#[test]
fn gpu_underutilized_with_queue() {
    let fire = Signals {
        gpu_utilization_mean: Some(0.3),
        queue_size_mean: Some(4.0),
        ..base()
    };
    let quiet = Signals {
        gpu_utilization_mean: Some(0.3),
        queue_size_mean: Some(0.2),
        ..base()
    };
    both_ways("gpu-underutilized-with-queue", fire, quiet);
    let busy = Signals {
        gpu_utilization_mean: Some(0.9),
        queue_size_mean: Some(4.0),
        ..base()
    };
    assert!(ids(&busy).is_empty());
}

#[test]
fn gpu_memory_pressure() {
    both_ways(
        "gpu-memory-pressure",
        Signals {
            gpu_memory_peak: Some(0.93),
            ..base()
        },
        Signals {
            gpu_memory_peak: Some(0.6),
            ..base()
        },
    );
    let f = evaluate(
        &Signals {
            gpu_memory_peak: Some(0.99),
            ..base()
        },
        &Thresholds::default(),
    );
    assert_eq!(f[0].severity, Severity::Critical);
    assert_eq!(f[0].evidence.threshold, 0.97);
}

#[test]
fn gpu_throttling() {
    both_ways(
        "gpu-throttling",
        Signals {
            gpu_throttled_share: Some(0.4),
            ..base()
        },
        Signals {
            gpu_throttled_share: Some(0.0),
            ..base()
        },
    );
}

#[test]
fn cpu_bound() {
    both_ways(
        "cpu-bound",
        Signals {
            host_cpu_mean: Some(0.95),
            process_cpu_mean: Some(0.2),
            ..base()
        },
        Signals {
            host_cpu_mean: Some(0.5),
            process_cpu_mean: Some(0.4),
            ..base()
        },
    );
    let f = evaluate(
        &Signals {
            host_cpu_mean: Some(0.5),
            process_cpu_mean: Some(0.9),
            ..base()
        },
        &Thresholds::default(),
    );
    assert_eq!(f[0].evidence.metric, "process.cpu.utilization");
}

#[test]
fn memory_growth() {
    let mib = 1048576.0;
    both_ways(
        "memory-growth",
        Signals {
            rss_trend: Some((10.0 * mib, 500.0 * mib, true)),
            ..base()
        },
        Signals {
            rss_trend: Some((10.0 * mib, 500.0 * mib, false)),
            ..base()
        },
    );
    // A short window is warm-up, not a leak.
    assert!(
        ids(&Signals {
            window_seconds: 60.0,
            rss_trend: Some((10.0 * mib, 500.0 * mib, true)),
            ..base()
        })
        .is_empty()
    );
    // Significant but tiny against the footprint: quiet.
    assert!(
        ids(&Signals {
            rss_trend: Some((1.1 * mib, 10_000.0 * mib, true)),
            ..base()
        })
        .is_empty()
    );
}

#[test]
fn high_error_rate() {
    both_ways(
        "high-error-rate",
        Signals {
            generation_requests: Some((100.0, 12.0)),
            ..base()
        },
        Signals {
            generation_requests: Some((100.0, 1.0)),
            ..base()
        },
    );
    let f = evaluate(
        &Signals {
            generation_requests: Some((100.0, 30.0)),
            ..base()
        },
        &Thresholds::default(),
    );
    assert_eq!(f[0].severity, Severity::Critical);
    // An operation type counts once it ran often enough.
    assert_eq!(
        ids(&Signals {
            operation_failures: vec![("download".into(), 40, 10)],
            ..base()
        }),
        vec!["high-error-rate"]
    );
    assert!(
        ids(&Signals {
            operation_failures: vec![("download".into(), 4, 2)],
            ..base()
        })
        .is_empty()
    );
}

#[test]
fn queue_dominated_latency() {
    both_ways(
        "queue-dominated-latency",
        Signals {
            queue_wait_p50: Some(1.2),
            duration_p50_p99: Some((0.8, 1.5, 10)),
            ..base()
        },
        Signals {
            queue_wait_p50: Some(0.05),
            duration_p50_p99: Some((0.8, 1.5, 10)),
            ..base()
        },
    );
}

#[test]
fn tail_latency() {
    both_ways(
        "tail-latency",
        Signals {
            duration_p50_p99: Some((0.2, 2.0, 500)),
            ..base()
        },
        Signals {
            duration_p50_p99: Some((0.2, 0.5, 500)),
            ..base()
        },
    );
    assert!(
        ids(&Signals {
            duration_p50_p99: Some((0.2, 2.0, 10)),
            ..base()
        })
        .is_empty(),
        "too few requests"
    );
}

#[test]
fn slow_downloads() {
    both_ways(
        "slow-downloads",
        Signals {
            download_throughput_p50: Some(8e6),
            ..base()
        },
        Signals {
            download_throughput_p50: Some(400e6),
            ..base()
        },
    );
}

#[test]
fn frequent_fallbacks() {
    both_ways(
        "frequent-fallbacks",
        Signals {
            fallbacks: Some(12.0),
            generation_requests: Some((100.0, 0.0)),
            ..base()
        },
        Signals {
            fallbacks: Some(1.0),
            generation_requests: Some((100.0, 0.0)),
            ..base()
        },
    );
    assert_eq!(
        ids(&Signals {
            fallbacks: Some(3.0),
            ..base()
        }),
        vec!["frequent-fallbacks"]
    );
}

#[test]
fn failing_health_checks() {
    both_ways(
        "failing-health-checks",
        Signals {
            health_checks: Some((20, 4)),
            ..base()
        },
        Signals {
            health_checks: Some((20, 0)),
            ..base()
        },
    );
    assert!(
        ids(&Signals {
            health_checks: Some((2, 2)),
            ..base()
        })
        .is_empty(),
        "too few checks"
    );
}

#[test]
fn telemetry_loss() {
    both_ways(
        "telemetry-loss",
        Signals {
            telemetry_loss: Some((5.0, 0.0)),
            ..base()
        },
        Signals {
            telemetry_loss: Some((0.0, 0.0)),
            ..base()
        },
    );
}

#[test]
fn thresholds_are_configurable() {
    let s = Signals {
        gpu_memory_peak: Some(0.8),
        ..base()
    };
    assert!(evaluate(&s, &Thresholds::default()).is_empty());
    let t = Thresholds {
        gpu_memory_warning: 0.75,
        ..Thresholds::default()
    };
    assert_eq!(evaluate(&s, &t)[0].id, "gpu-memory-pressure");
}

#[test]
fn kv_cache_pressure() {
    let fire = Signals {
        kv_cache_usage_peak: Some(0.97),
        preemptions: Some(12.0),
        ..base()
    };
    // Full but nothing preempted: the engine copes.
    let quiet = Signals {
        kv_cache_usage_peak: Some(0.97),
        preemptions: Some(0.0),
        ..base()
    };
    both_ways("kv-cache-pressure", fire, quiet);
    let roomy = Signals {
        kv_cache_usage_peak: Some(0.6),
        preemptions: Some(12.0),
        ..base()
    };
    assert!(ids(&roomy).is_empty());
}

#[test]
fn low_prefix_cache_hit_rate() {
    let fire = Signals {
        prefix_cache: Some((50_000.0, 1_000.0)),
        ..base()
    };
    let quiet = Signals {
        prefix_cache: Some((50_000.0, 30_000.0)),
        ..base()
    };
    both_ways("low-prefix-cache-hit-rate", fire, quiet);
    let too_few = Signals {
        prefix_cache: Some((500.0, 0.0)),
        ..base()
    };
    assert!(ids(&too_few).is_empty());
}

#[test]
fn prefill_and_decode_bound_latency() {
    let prefill = Signals {
        prefill_decode_p50: Some((0.9, 0.3, 100)),
        ..base()
    };
    let balanced = Signals {
        prefill_decode_p50: Some((0.3, 0.5, 100)),
        ..base()
    };
    both_ways("prefill-bound-latency", prefill, balanced.clone());
    let decode = Signals {
        prefill_decode_p50: Some((0.05, 1.2, 100)),
        ..base()
    };
    both_ways("decode-bound-latency", decode, balanced);
    let few = Signals {
        prefill_decode_p50: Some((0.9, 0.1, 5)),
        ..base()
    };
    assert!(ids(&few).is_empty());
}

#[test]
fn error_burst() {
    let fire = Signals {
        error_events: Some((120.0, 90.0, "app::engine".into())),
        ..base()
    };
    // As many errors, spread thin.
    let quiet = Signals {
        error_events: Some((120.0, 8.0, "app::engine".into())),
        ..base()
    };
    both_ways("error-burst", fire, quiet);
    let few = Signals {
        error_events: Some((3.0, 180.0, "app::engine".into())),
        ..base()
    };
    assert!(ids(&few).is_empty());
}

#[test]
fn evidence_names_its_quantity_with_readable_units() {
    let t = Thresholds::default();
    let s = Signals {
        window_seconds: 60.0,
        health_checks: Some((10, 4)),
        queue_wait_p50: Some(0.9),
        duration_p50_p99: Some((1.0, 1.2, 10)),
        download_throughput_p50: Some(12.3e6),
        error_events: Some((40.0, 45.0, "gen".into())),
        fallbacks: Some(4.0),
        ..Default::default()
    };
    let f = evaluate(&s, &t);
    let get = |id: &str| f.iter().find(|f| f.id == id).unwrap().evidence.clone();
    let health = get("failing-health-checks");
    assert_eq!(health.quantity, "share of health checks failed");
    assert_eq!(
        (
            health.observed_text.as_str(),
            health.threshold_text.as_str()
        ),
        ("40.0%", "10.0%")
    );
    assert_eq!(health.metric, "genscope.model.health_check.duration");
    let queue = get("queue-dominated-latency");
    assert_eq!(
        queue.quantity,
        "median queue wait / median request duration"
    );
    assert_eq!(queue.observed_text, "0.90x");
    assert_eq!(get("slow-downloads").observed_text, "12.3 MB/s");
    assert_eq!(get("error-burst").observed_text, "45.0 events/min");
    // Fallbacks with no requests are a count, not a share.
    let fb = get("frequent-fallbacks");
    assert_eq!(
        (fb.unit.as_str(), fb.observed_text.as_str()),
        ("{activation}", "4.0 activations")
    );
    // Every rule's evidence says what it shows.
    assert!(
        f.iter()
            .all(|f| !f.evidence.quantity.is_empty() && !f.evidence.observed_text.contains(" 1"))
    );
}
