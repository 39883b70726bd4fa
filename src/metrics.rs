//! Process metrics in the Prometheus text format (`GET /metrics`): counters and histograms
//! with labels, kept in memory and rendered on request. Every area records through
//! [`Metrics`] in `AppState`, so the names live in one place: the constants below.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// SETs signed and queued, per stream.
pub const SETS_EMITTED: &str = "ssfd_sets_emitted_total";
/// SETs a receiver acknowledged (push 202 or poll ack), per stream.
pub const SETS_DELIVERED: &str = "ssfd_sets_delivered_total";
/// Push attempts that failed and will be retried, per stream.
pub const SETS_FAILED: &str = "ssfd_sets_failed_total";
/// SETs given up on, per stream.
pub const SETS_DEAD_LETTERED: &str = "ssfd_sets_dead_lettered_total";
/// SETs accepted from an upstream, per upstream.
pub const SETS_RECEIVED: &str = "ssfd_sets_received_total";
/// SETs refused from an upstream, per upstream and RFC 8935 error code.
pub const SETS_REJECTED: &str = "ssfd_sets_rejected_total";
/// Session decisions, per outcome (allow, step_up, deny).
pub const DECISIONS: &str = "ssfd_decisions_total";
/// Seconds from a SET's creation to its acknowledgement by a push receiver.
pub const DELIVERY_SECONDS: &str = "ssfd_delivery_latency_seconds";

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0,
];

/// A value computed at scrape time (outbox depth…): name, labels, value.
pub type Gauge = (&'static str, Vec<(&'static str, String)>, f64);

/// One series: a metric name and its label pairs, sorted by label name.
type Series = (&'static str, Vec<(&'static str, String)>);

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Cumulative counts per bucket of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The registry. Cheap enough for every request path: one short lock per update.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<Series, u64>>,
    histograms: Mutex<BTreeMap<Series, Histogram>>,
}

fn series(name: &'static str, labels: &[(&'static str, &str)]) -> Series {
    let mut labels: Vec<(&'static str, String)> = labels
        .iter()
        .map(|(key, value)| (*key, (*value).to_owned()))
        .collect();
    labels.sort();
    (name, labels)
}

impl Metrics {
    /// Adds `by` to the counter `name` with `labels`.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        *self
            .counters
            .lock()
            .expect("not poisoned")
            .entry(series(name, labels))
            .or_default() += by;
    }

    /// Adds one to the counter `name` with `labels`.
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1);
    }

    /// Records one observation of `seconds` in the histogram `name`.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64) {
        let mut histograms = self.histograms.lock().expect("not poisoned");
        let histogram = histograms.entry(series(name, labels)).or_default();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// The current value of a counter (0 when never touched).
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        self.counters
            .lock()
            .expect("not poisoned")
            .get(&series(name, labels))
            .copied()
            .unwrap_or(0)
    }

    /// Every series in the Prometheus text exposition format (version 0.0.4), followed by
    /// `gauges`.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), value) in self.counters.lock().expect("not poisoned").iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let _ = writeln!(out, "{name}{} {value}", label_text(labels, None));
        }
        for ((name, labels), histogram) in self.histograms.lock().expect("not poisoned").iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} histogram");
                last = name;
            }
            for (bound, count) in BUCKETS.iter().zip(histogram.buckets) {
                let le = bound.to_string();
                let labels = label_text(labels, Some(&le));
                let _ = writeln!(out, "{name}_bucket{labels} {count}");
            }
            let inf = label_text(labels, Some("+Inf"));
            let _ = writeln!(out, "{name}_bucket{inf} {}", histogram.count);
            let plain = label_text(labels, None);
            let _ = writeln!(out, "{name}_sum{plain} {}", histogram.sum);
            let _ = writeln!(out, "{name}_count{plain} {}", histogram.count);
        }
        for (name, labels, value) in gauges {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} gauge");
                last = name;
            }
            let _ = writeln!(out, "{name}{} {value}", label_text(labels, None));
        }
        out
    }
}

/// `{a="1",b="2"}` with values escaped, plus `le` for histogram buckets; empty without labels.
fn label_text(labels: &[(&'static str, String)], le: Option<&str>) -> String {
    let mut pairs: Vec<String> = labels
        .iter()
        .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_per_label_set() {
        let metrics = Metrics::default();
        metrics.inc(
            SETS_REJECTED,
            &[("upstream", "u1"), ("reason", "invalid_key")],
        );
        metrics.inc(
            SETS_REJECTED,
            &[("reason", "invalid_key"), ("upstream", "u1")],
        );
        metrics.inc(
            SETS_REJECTED,
            &[("upstream", "u\"2"), ("reason", "invalid_issuer")],
        );
        let text = metrics.render(&[]);
        assert!(text.contains("# TYPE ssfd_sets_rejected_total counter\n"));
        assert!(
            text.contains("ssfd_sets_rejected_total{reason=\"invalid_key\",upstream=\"u1\"} 2\n")
        );
        assert!(text.contains(
            "ssfd_sets_rejected_total{reason=\"invalid_issuer\",upstream=\"u\\\"2\"} 1\n"
        ));
        assert_eq!(
            metrics.counter(
                SETS_REJECTED,
                &[("reason", "invalid_key"), ("upstream", "u1")]
            ),
            2
        );
    }

    #[test]
    fn histograms_are_cumulative() {
        let metrics = Metrics::default();
        metrics.observe(DELIVERY_SECONDS, &[("stream", "s")], 0.003);
        metrics.observe(DELIVERY_SECONDS, &[("stream", "s")], 2.0);
        let text = metrics.render(&[("ssfd_outbox_depth", vec![("stream", "s".into())], 4.0)]);
        assert!(
            text.contains("ssfd_delivery_latency_seconds_bucket{stream=\"s\",le=\"0.001\"} 0\n")
        );
        assert!(
            text.contains("ssfd_delivery_latency_seconds_bucket{stream=\"s\",le=\"0.005\"} 1\n")
        );
        assert!(text.contains("ssfd_delivery_latency_seconds_bucket{stream=\"s\",le=\"5\"} 2\n"));
        assert!(text.contains("ssfd_delivery_latency_seconds_bucket{stream=\"s\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("ssfd_delivery_latency_seconds_count{stream=\"s\"} 2\n"));
        assert!(
            text.contains("# TYPE ssfd_outbox_depth gauge\nssfd_outbox_depth{stream=\"s\"} 4\n")
        );
    }
}
