//! The app's own metrics: counters, gauges and histograms registered through
//! the [`Context`](crate::Context), kept in the shared memory, and served,
//! summed over every worker, by `/metrics`.
//!
//! Each worker registers the same series (its app is built in each worker);
//! registering a name and label set that exists returns the same series.
//! Updating one is a relaxed atomic add on the worker's own memory: no lock,
//! no syscall.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use ferricorn_shm::metrics::{AppKind, AppSeries, RegisterError, add_f64};

use crate::{Context, Error};

/// A count that only goes up. Cheap to clone; `Send` and `Sync`.
#[derive(Debug, Clone)]
pub struct Counter(&'static AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }

    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }
}

/// A value that goes up and down; `/metrics` shows the sum over the live
/// workers. Cheap to clone; `Send` and `Sync`.
#[derive(Debug, Clone)]
pub struct Gauge(&'static AtomicU64);

impl Gauge {
    /// Sets this worker's value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Relaxed);
    }

    /// Adds `v` (negative to subtract) to this worker's value.
    pub fn add(&self, v: f64) {
        add_f64(self.0, v);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.add(-1.0);
    }
}

/// Observations counted in buckets. Cheap to clone; `Send` and `Sync`.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// One count per bucket, `+Inf`, then the sum (an `f64`'s bits).
    values: &'static [AtomicU64],
    bounds: Arc<[f64]>,
}

impl Histogram {
    /// Counts one observation; NaN is ignored (it would turn the sum into
    /// NaN for good).
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let bucket = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.values[bucket].fetch_add(1, Relaxed);
        add_f64(&self.values[self.bounds.len() + 1], v);
    }
}

impl Context {
    /// Registers a counter (its name should end in `_total`).
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, Error> {
        self.counter_with(name, &[], help)
    }

    /// Registers one labelled series of a counter.
    pub fn counter_with(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        help: &str,
    ) -> Result<Counter, Error> {
        let values = self.register(AppKind::Counter, name, labels, help, &[])?;
        Ok(Counter(&values[0]))
    }

    /// Registers a gauge.
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, Error> {
        self.gauge_with(name, &[], help)
    }

    /// Registers one labelled series of a gauge.
    pub fn gauge_with(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        help: &str,
    ) -> Result<Gauge, Error> {
        let values = self.register(AppKind::Gauge, name, labels, help, &[])?;
        Ok(Gauge(&values[0]))
    }

    /// Registers a histogram with the given bucket upper bounds (ascending,
    /// at most 16; `+Inf` is added).
    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Result<Histogram, Error> {
        self.histogram_with(name, &[], help, buckets)
    }

    /// Registers one labelled series of a histogram.
    pub fn histogram_with(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        help: &str,
        buckets: &[f64],
    ) -> Result<Histogram, Error> {
        let invalid = |why: &str| Error::Metric {
            name: name.to_owned(),
            why: why.to_owned(),
        };
        if buckets.is_empty() || buckets.iter().any(|b| !b.is_finite()) {
            return Err(invalid("a histogram needs finite bucket bounds"));
        }
        if buckets.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid("bucket bounds must ascend"));
        }
        if labels.iter().any(|(k, _)| *k == "le") {
            return Err(invalid("`le` is the histogram's own label"));
        }
        let values = self.register(AppKind::Histogram, name, labels, help, buckets)?;
        Ok(Histogram {
            values,
            bounds: buckets.into(),
        })
    }

    fn register(
        &self,
        kind: AppKind,
        name: &str,
        labels: &[(&str, &str)],
        help: &str,
        bounds: &[f64],
    ) -> Result<&'static [AtomicU64], Error> {
        let invalid = |why: String| Error::Metric {
            name: name.to_owned(),
            why,
        };
        if !is_metric_name(name) {
            return Err(invalid(
                "a name is letters, digits, `_` and `:`, not starting with a digit".into(),
            ));
        }
        if name.starts_with("ferricorn_") {
            return Err(invalid(
                "the `ferricorn_` prefix is the server's own".into(),
            ));
        }
        let mut rendered = String::new();
        for (i, (k, v)) in labels.iter().enumerate() {
            if !is_label_name(k) || k.starts_with("__") {
                return Err(invalid(format!("`{k}` is not a valid label name")));
            }
            if labels[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(invalid(format!("label `{k}` is given twice")));
            }
            if i > 0 {
                rendered.push(',');
            }
            rendered.push_str(k);
            rendered.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => rendered.push_str("\\\\"),
                    '"' => rendered.push_str("\\\""),
                    '\n' => rendered.push_str("\\n"),
                    c => rendered.push(c),
                }
            }
            rendered.push('"');
        }
        let series = AppSeries {
            name: name.to_owned(),
            labels: rendered,
            help: help.to_owned(),
            kind,
            offset: 0,
            bounds: bounds.to_vec(),
        };
        let offset = self.shared.register(&series).map_err(|e| {
            invalid(match e {
                RegisterError::TooLong => {
                    "the name, labels, help or buckets are too long for the metrics table".into()
                }
                RegisterError::Mismatch => {
                    "registered before with another type, help text or buckets".into()
                }
                RegisterError::Full => "the metrics table is full".into(),
            })
        })?;
        Ok(&self.cell.app[offset..offset + kind.values(bounds.len())])
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferricorn_shm::Shared;

    fn context() -> Context {
        let shared = Shared::new().expect("memfd");
        let id = shared.claim(0).expect("cell");
        Context {
            slot: 0,
            cell: shared.cell(id).expect("cell"),
            pid: 1,
            shared,
            channels: ferricorn_channels::Channels::new(shared, id, Default::default())
                .expect("channels"),
        }
    }

    #[test]
    fn series_are_shared_by_name_and_labels() {
        let ctx = context();
        let a = ctx.counter("jobs_total", "Jobs.").expect("counter");
        let b = ctx.counter("jobs_total", "Jobs.").expect("same counter");
        a.inc();
        b.inc_by(2);
        assert_eq!(a.0.load(Relaxed), 3);
        let q = ctx
            .counter_with("jobs_total", &[("queue", "x\"y")], "Jobs.")
            .expect("labelled");
        assert!(!std::ptr::eq(q.0, a.0));
        let g = ctx.gauge("depth", "Depth.").expect("gauge");
        g.set(2.5);
        g.dec();
        assert_eq!(f64::from_bits(g.0.load(Relaxed)), 1.5);
        let h = ctx
            .histogram("size_bytes", "Sizes.", &[10.0, 100.0])
            .expect("histogram");
        h.observe(5.0);
        h.observe(50.0);
        h.observe(500.0);
        h.observe(f64::NAN);
        let counts: Vec<u64> = h.values[..3].iter().map(|v| v.load(Relaxed)).collect();
        assert_eq!(counts, [1, 1, 1]);
        assert_eq!(f64::from_bits(h.values[3].load(Relaxed)), 555.0);
    }

    #[test]
    fn bad_registrations_name_the_metric() {
        let ctx = context();
        let err = |r: Result<Counter, Error>| r.expect_err("refused").to_string();
        assert!(err(ctx.counter("9lives", "")).contains("9lives"));
        assert!(err(ctx.counter("ferricorn_x_total", "")).contains("prefix"));
        assert!(err(ctx.counter_with("x_total", &[("a-b", "1")], "")).contains("a-b"));
        assert!(err(ctx.counter_with("x_total", &[("a", "1"), ("a", "2")], "")).contains("twice"));
        ctx.gauge("g", "G.").expect("gauge");
        assert!(err(ctx.counter("g", "G.")).contains("another type"));
        let h = ctx.histogram("h", "", &[2.0, 1.0]);
        assert!(h.expect_err("refused").to_string().contains("ascend"));
    }
}
