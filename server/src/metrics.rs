//! The server's metrics, as the admin listener's `/metrics` exposes them
//! (Prometheus text format, written by `prometheus-client`).
//!
//! Owns the per-route and per-handler statistics and their encoding. The
//! hot path only adds to relaxed atomics: a connection holds an
//! `Arc<RouteStats>` for the route that answers it (resolved when a config
//! is activated, not per request), and every response adds its status and
//! duration there. Statistics are kept by name (host and route key,
//! handler id), so they survive a reload that keeps the route.
//!
//! The server-wide counts ([`crate::server::Counters`]) and gauges read
//! from the live server (open connections, requests held by each link) are
//! gathered when `/metrics` is scraped. Does not own the HTTP side (see
//! [`crate::admin`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// Upper bounds of the latency histograms, in seconds: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Statuses counted one by one: 100 to 599 (others count as 599).
const STATUSES: usize = 500;

/// One route's responses: counts by status and a latency histogram.
#[derive(Debug)]
pub struct RouteStats {
    host: String,
    route: String,
    statuses: Box<[AtomicU64]>,
    /// One more than the bounds: the last is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    micros: AtomicU64,
}

impl RouteStats {
    fn new(host: &str, route: &str) -> RouteStats {
        RouteStats {
            host: host.to_owned(),
            route: route.to_owned(),
            statuses: (0..STATUSES).map(|_| AtomicU64::new(0)).collect(),
            buckets: Default::default(),
            micros: AtomicU64::new(0),
        }
    }

    /// The route key (`""` for requests no route matched).
    pub fn route(&self) -> &str {
        &self.route
    }

    /// One response with `status`, `elapsed` after its request arrived.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        let i = usize::from(status.clamp(100, 599) - 100);
        self.statuses[i].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// One handler's requests (the handler row's id; the same for every row
/// merged into one link).
#[derive(Debug, Default)]
pub struct HandlerStats {
    /// Sent to a handler process at once.
    pub sent: AtomicU64,
    /// Held until a handler process connected.
    pub held: AtomicU64,
    /// Responses that came back complete.
    pub answered: AtomicU64,
    /// Answered `503` because no handler process took them in time.
    pub unavailable: AtomicU64,
    /// When the last outage warning was logged (ms since the server's
    /// start), for the rate limit.
    warned_at_ms: AtomicU64,
    /// Outages not warned about since the last warning.
    unwarned: AtomicU64,
}

/// At most one outage warning per handler per this long: 10 s.
pub const OUTAGE_WARNING_EVERY_MS: u64 = 10_000;

impl HandlerStats {
    /// Counts a `503` for no handler; returns how many went unwarned if a
    /// warning is due now (`now_ms` since the server's start), so the
    /// caller logs one line per handler per [`OUTAGE_WARNING_EVERY_MS`].
    pub fn outage(&self, now_ms: u64) -> Option<u64> {
        self.unavailable.fetch_add(1, Ordering::Relaxed);
        let last = self.warned_at_ms.load(Ordering::Relaxed);
        let first = self.unavailable.load(Ordering::Relaxed) == 1;
        if (first || now_ms.saturating_sub(last) >= OUTAGE_WARNING_EVERY_MS)
            && self
                .warned_at_ms
                .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.unwarned.swap(0, Ordering::Relaxed));
        }
        self.unwarned.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Every route's and handler's statistics, by name.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<HashMap<(String, String), Arc<RouteStats>>>,
    handlers: Mutex<HashMap<i64, Arc<HandlerStats>>>,
}

/// A snapshot of server-wide values for one scrape.
#[derive(Debug, Default)]
pub struct Gauges {
    /// `(name, help, value)` of each counter.
    pub counters: Vec<(&'static str, &'static str, u64)>,
    /// `(name, help, value)` of each gauge.
    pub gauges: Vec<(&'static str, &'static str, i64)>,
    /// Requests held now, by handler id.
    pub held_now: Vec<(i64, u64)>,
}

impl Metrics {
    /// The statistics of route `route` of host `host` (made on first use).
    pub fn route(&self, host: &str, route: &str) -> Arc<RouteStats> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            routes
                .entry((host.to_owned(), route.to_owned()))
                .or_insert_with(|| Arc::new(RouteStats::new(host, route))),
        )
    }

    /// The statistics of handler `id` (made on first use).
    pub fn handler(&self, id: i64) -> Arc<HandlerStats> {
        let mut handlers = self.handlers.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(handlers.entry(id).or_default())
    }

    /// The Prometheus text exposition of everything, with `gauges` read
    /// from the live server.
    pub fn encode(&self, gauges: Gauges) -> String {
        let mut registry = prometheus_client::registry::Registry::with_prefix("kennel");
        let routes: Vec<Arc<RouteStats>> = self
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let handlers: Vec<(i64, Arc<HandlerStats>)> = self
            .handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, s)| (*id, Arc::clone(s)))
            .collect();
        registry.register_collector(Box::new(Collected {
            routes,
            handlers,
            gauges,
        }));
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// What one scrape encodes.
#[derive(Debug)]
struct Collected {
    routes: Vec<Arc<RouteStats>>,
    handlers: Vec<(i64, Arc<HandlerStats>)>,
    gauges: Gauges,
}

fn counter(encoder: MetricEncoder<'_>, value: u64) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(encoder)
}

impl prometheus_client::collector::Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in &self.gauges.counters {
            counter(
                encoder.encode_descriptor(name, help, None, MetricType::Counter)?,
                *value,
            )?;
        }
        for (name, help, value) in &self.gauges.gauges {
            ConstGauge::new(*value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
        let mut family = encoder.encode_descriptor(
            "requests",
            "Responses by host, route and status (route \"\" = no route matched).",
            None,
            MetricType::Counter,
        )?;
        for stats in &self.routes {
            for (i, count) in stats.statuses.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count == 0 {
                    continue;
                }
                let status = (i + 100).to_string();
                let labels = [
                    ("host", stats.host.as_str()),
                    ("route", stats.route.as_str()),
                    ("status", status.as_str()),
                ];
                counter(family.encode_family(&labels)?, count)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "request_duration_seconds",
            "Time from a request's head to its response (the whole response for handler and \
             proxy routes; until it is queued for Kennel's own).",
            None,
            MetricType::Histogram,
        )?;
        for stats in &self.routes {
            // Per bucket: the encoder makes them cumulative.
            let mut count = 0;
            let mut buckets = Vec::with_capacity(stats.buckets.len());
            for (i, n) in stats.buckets.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                count += n;
                buckets.push((LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), n));
            }
            let sum = stats.micros.load(Ordering::Relaxed) as f64 / 1e6;
            let labels = [
                ("host", stats.host.as_str()),
                ("route", stats.route.as_str()),
            ];
            family
                .encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    sum, count, &buckets, None,
                )?;
        }
        type Field = fn(&HandlerStats) -> &AtomicU64;
        let per_handler: [(&str, &str, Field); 4] = [
            (
                "handler_sent",
                "Requests sent to a handler process at once.",
                |s| &s.sent,
            ),
            (
                "handler_held",
                "Requests held until a handler process connected.",
                |s| &s.held,
            ),
            ("handler_answered", "Handler responses completed.", |s| {
                &s.answered
            }),
            (
                "handler_unavailable",
                "Requests answered 503 because no handler process took them in time.",
                |s| &s.unavailable,
            ),
        ];
        for (name, help, field) in per_handler {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (id, stats) in &self.handlers {
                let id = id.to_string();
                counter(
                    family.encode_family(&[("handler", id.as_str())])?,
                    field(stats).load(Ordering::Relaxed),
                )?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "handler_held_now",
            "Requests waiting now for a handler process to connect.",
            None,
            MetricType::Gauge,
        )?;
        for (id, held) in &self.gauges.held_now {
            let id = id.to_string();
            ConstGauge::new(*held as i64)
                .encode(family.encode_family(&[("handler", id.as_str())])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_count_statuses_and_latencies() {
        let metrics = Metrics::default();
        let stats = metrics.route("localhost", "/app/");
        stats.observe(200, Duration::from_micros(300));
        stats.observe(200, Duration::from_millis(30));
        stats.observe(503, Duration::from_secs(60));
        assert!(Arc::ptr_eq(&stats, &metrics.route("localhost", "/app/")));
        let text = metrics.encode(Gauges::default());
        assert!(
            text.contains(
                "kennel_requests_total{host=\"localhost\",route=\"/app/\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("status=\"503\"} 1"), "{text}");
        assert!(
            text.contains("kennel_request_duration_seconds_bucket{le=\"0.0005\",host=\"localhost\",route=\"/app/\"} 1")
                || text.contains("kennel_request_duration_seconds_bucket{host=\"localhost\",route=\"/app/\",le=\"0.0005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "kennel_request_duration_seconds_count{host=\"localhost\",route=\"/app/\"} 3"
            ),
            "{text}"
        );
    }

    #[test]
    fn outage_warnings_are_rate_limited() {
        let stats = HandlerStats::default();
        assert_eq!(stats.outage(5), Some(0));
        assert_eq!(stats.outage(6), None);
        assert_eq!(stats.outage(7), None);
        assert_eq!(stats.outage(5 + OUTAGE_WARNING_EVERY_MS), Some(2));
        assert_eq!(stats.unavailable.load(Ordering::Relaxed), 4);
    }
}
