//! Prometheus metrics of SPEC section 14, registered once in one registry.

use once_cell::sync::Lazy;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub in_flight: IntGauge,
    pub upstream_errors: IntCounterVec,
    pub logins: IntCounterVec,
    pub qyapi_calls: IntCounterVec,
    pub token_fetches: IntCounterVec,
    pub qyapi_retries: IntCounterVec,
    pub store_errors: IntCounterVec,
    /// Callbacks by app, event (a fixed set, `other`) and result: `queued`, `duplicate`,
    /// `refused`, `delivered`, `failed` (one attempt), `dead` (given up after 24 hours).
    pub events: IntCounterVec,
    pub event_queue_depth: IntGaugeVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

pub static METRICS: Lazy<Metrics> = Lazy::new(|| {
    let registry = Registry::new();
    let request_duration = HistogramVec::new(
        HistogramOpts::new(
            "wgw_request_duration_seconds",
            "Time from request to the end of the answer.",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ]),
        &["route"],
    )
    .expect("valid metric");
    registry
        .register(Box::new(request_duration.clone()))
        .expect("unique metric");
    let in_flight = IntGauge::new(
        "wgw_requests_in_flight",
        "Requests being served on the public listener.",
    )
    .expect("valid metric");
    registry
        .register(Box::new(in_flight.clone()))
        .expect("unique metric");
    let event_queue_depth = IntGaugeVec::new(
        Opts::new(
            "wgw_event_queue_depth",
            "Callback events queued and not yet delivered.",
        ),
        &["app"],
    )
    .expect("valid metric");
    registry
        .register(Box::new(event_queue_depth.clone()))
        .expect("unique metric");
    Metrics {
        events: counter(
            &registry,
            "wgw_events_total",
            "WeCom callbacks received and delivered.",
            &["app", "event", "result"],
        ),
        event_queue_depth,
        requests: counter(
            &registry,
            "wgw_requests_total",
            "Requests on the public listener.",
            &["route", "status"],
        ),
        upstream_errors: counter(
            &registry,
            "wgw_upstream_errors_total",
            "Failures reaching an upstream.",
            &["upstream", "kind"],
        ),
        logins: counter(
            &registry,
            "wgw_logins_total",
            "Completed or failed logins.",
            &["app", "result"],
        ),
        qyapi_calls: counter(
            &registry,
            "wgw_qyapi_calls_total",
            "Calls through the qyapi endpoint.",
            &["app", "api", "errcode"],
        ),
        token_fetches: counter(
            &registry,
            "wgw_token_fetches_total",
            "Token and ticket fetches from the provider.",
            &["app", "kind", "result"],
        ),
        qyapi_retries: counter(
            &registry,
            "wgw_qyapi_retries_total",
            "Transparent retries of qyapi calls.",
            &["app", "reason"],
        ),
        store_errors: counter(
            &registry,
            "wgw_store_errors_total",
            "Shared token store (Redis) operations that failed; the process served its own copy.",
            &["op"],
        ),
        request_duration,
        in_flight,
        registry,
    }
});

/// The text exposition format.
pub fn render() -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    let _ = encoder.encode(&METRICS.registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
