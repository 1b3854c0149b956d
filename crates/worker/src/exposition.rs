//! `GET /metrics`: the whole server in the Prometheus text format (0.0.4),
//! read from the shared memory by whichever worker takes the request.
//!
//! Every family summed over the server comes first; then the same counts per
//! worker slot (`ferricorn_worker_*`, label `worker`), which do not go back
//! when a slot's worker is replaced; then each worker process (`worker`,
//! `pid`), the supervisor, and the app's own series, summed over workers.

use std::fmt::{Display, Write as _};

use ferricorn_shm::metrics::{
    AppKind, BUCKETS, CLASSES, DROP_REASONS, Exit, FANOUT_BUCKETS, METHODS, Snapshot, at,
};
use ferricorn_shm::procfs::{self, Usage};
use ferricorn_shm::{CellState, MAX_SLOTS, Shared};

/// One worker process, as read from its cell.
struct Process {
    slot: usize,
    pid: i32,
    heartbeat_age_ms: u64,
    requests: u64,
    ready: bool,
}

/// Everything read from the shared memory in one consistent pass.
struct View {
    /// Each slot's counters (exited workers' and live ones'), for slots in use.
    slots: Vec<(usize, Snapshot)>,
    /// Open connections and WebSockets per slot, same order as `slots`.
    open: Vec<(u64, u64)>,
    processes: Vec<Process>,
    /// Groups with members and members, per slot, same order as `slots`.
    channels: Vec<(u64, u64)>,
    /// Each app series' values summed over the workers.
    app: Vec<Vec<u64>>,
}

fn read(shared: &Shared, series: &[ferricorn_shm::metrics::AppSeries]) -> View {
    let mut per_slot: Vec<Option<(Snapshot, u64, u64)>> = vec![None; MAX_SLOTS];
    let mut groups = vec![(0u64, 0u64); MAX_SLOTS];
    let desired = (shared.header().desired() as usize).min(MAX_SLOTS);
    for (slot, sums) in per_slot.iter_mut().enumerate() {
        let mut totals = [0; at::LEN];
        shared.slot_totals(slot, &mut totals);
        if slot < desired || totals.iter().any(|v| *v != 0) {
            *sums = Some((totals, 0, 0));
        }
    }
    let mut processes = Vec::new();
    let mut app: Vec<Vec<u64>> = series
        .iter()
        .map(|s| {
            let n = s.kind.values(s.bounds.len());
            (s.offset..s.offset + n)
                .map(|i| {
                    shared
                        .app_retired(i)
                        .load(std::sync::atomic::Ordering::Relaxed)
                })
                .collect()
        })
        .collect();
    for (id, cell) in shared.cells() {
        let pid = cell.pid();
        let slot = cell.slot();
        if pid <= 0 || slot >= MAX_SLOTS {
            continue;
        }
        if let Some(table) = shared.groups(id) {
            for (_, members) in table.groups() {
                groups[slot].0 += 1;
                groups[slot].1 += u64::from(members);
            }
        }
        let sums = per_slot[slot].get_or_insert(([0; at::LEN], 0, 0));
        cell.counters.sum_into(&mut sums.0);
        sums.1 += u64::from(cell.connections());
        sums.2 += u64::from(cell.websockets());
        processes.push(Process {
            slot,
            pid,
            heartbeat_age_ms: cell.heartbeat_age_ms(),
            requests: cell.requests(),
            ready: cell.state() == CellState::Ready,
        });
        for (s, sums) in series.iter().zip(&mut app) {
            for (i, sum) in sums.iter_mut().enumerate() {
                let v = cell
                    .app
                    .get(s.offset + i)
                    .map_or(0, |v| v.load(std::sync::atomic::Ordering::Relaxed));
                if s.kind.is_f64(i, s.bounds.len()) {
                    *sum = (f64::from_bits(*sum) + f64::from_bits(v)).to_bits();
                } else {
                    *sum += v;
                }
            }
        }
    }
    let (mut slots, mut open, mut channels) = (Vec::new(), Vec::new(), Vec::new());
    for (slot, s) in per_slot.into_iter().enumerate() {
        if let Some((counters, conns, ws)) = s {
            slots.push((slot, counters));
            open.push((conns, ws));
            channels.push(groups[slot]);
        }
    }
    View {
        slots,
        open,
        processes,
        channels,
        app,
    }
}

/// The text for `GET /metrics`.
pub(crate) fn render(shared: Shared) -> String {
    let series = shared.app_series();
    let view = shared.consistent(|s| read(s, &series));
    let mut out = Out(String::with_capacity(16 * 1024));
    let mut all = [0; at::LEN];
    for (_, s) in &view.slots {
        for (a, v) in all.iter_mut().zip(s) {
            *a += v;
        }
    }
    let (conns, ws): (u64, u64) = view
        .open
        .iter()
        .fold((0, 0), |(c, w), (c2, w2)| (c + c2, w + w2));

    // The server as a whole.
    http_families(&mut out, "ferricorn_", &[("", &all)]);
    traffic_families(&mut out, "ferricorn_", &[("", &all, (conns, ws))]);
    channel_families(&mut out, &all, &view);
    broker_families(&mut out, shared);

    // Per worker slot.
    let labelled: Vec<(String, &Snapshot, (u64, u64))> = view
        .slots
        .iter()
        .zip(&view.open)
        .map(|((i, s), o)| (format!("worker=\"{i}\""), s, *o))
        .collect();
    let per_slot: Vec<(&str, &Snapshot)> =
        labelled.iter().map(|(l, s, _)| (l.as_str(), *s)).collect();
    http_families(&mut out, "ferricorn_worker_", &per_slot);
    let per_slot: Vec<(&str, &Snapshot, (u64, u64))> = labelled
        .iter()
        .map(|(l, s, o)| (l.as_str(), *s, *o))
        .collect();
    traffic_families(&mut out, "ferricorn_worker_", &per_slot);
    out.family(
        "ferricorn_worker_restarts_total",
        "counter",
        "Times the slot's worker was replaced, for any reason (crash, timeout, recycling, reload, upgrade).",
    );
    for (i, _) in &view.slots {
        out.sample(
            "ferricorn_worker_restarts_total",
            &format!("worker=\"{i}\""),
            shared.restarts(*i),
        );
    }

    // Per worker process.
    let procs: Vec<(String, &Process, Option<Usage>)> = view
        .processes
        .iter()
        .map(|p| {
            let labels = format!("worker=\"{}\",pid=\"{}\"", p.slot, p.pid);
            (labels, p, procfs::usage(p.pid))
        })
        .collect();
    type Read = fn(&Process, Option<&Usage>) -> Option<f64>;
    let per_process: [(&str, &str, &str, Read); 4] = [
        (
            "ferricorn_worker_resident_memory_bytes",
            "gauge",
            "Resident memory of the worker process.",
            |_, u| u.map(|u| u.rss_bytes as f64),
        ),
        (
            "ferricorn_worker_cpu_seconds_total",
            "counter",
            "CPU time of the worker process, user and system.",
            |_, u| u.map(|u| u.cpu_seconds),
        ),
        (
            "ferricorn_worker_heartbeat_age_seconds",
            "gauge",
            "Time since the worker's event loop last wrote its heartbeat.",
            |p, _| Some(p.heartbeat_age_ms as f64 / 1000.0),
        ),
        (
            "ferricorn_worker_process_requests_total",
            "counter",
            "Requests the worker process has served (what max-requests counts).",
            |p, _| Some(p.requests as f64),
        ),
    ];
    for (name, kind, help, read) in per_process {
        out.family(name, kind, help);
        for (labels, p, usage) in &procs {
            if let Some(v) = read(p, usage.as_ref()) {
                out.sample(name, labels, Float(v));
            }
        }
    }

    // The supervisor.
    let header = shared.header();
    let ready = view.processes.iter().filter(|p| p.ready).count();
    let singles: [(&str, &str, &str, u64); 5] = [
        (
            "ferricorn_workers_desired",
            "gauge",
            "Worker slots the supervisor keeps filled.",
            header.desired().into(),
        ),
        (
            "ferricorn_workers_alive",
            "gauge",
            "Worker processes alive, booting, ready or draining.",
            view.processes.len() as u64,
        ),
        (
            "ferricorn_workers_ready",
            "gauge",
            "Worker processes that finished startup and accept connections.",
            ready as u64,
        ),
        (
            "ferricorn_worker_boot_failures_total",
            "counter",
            "Workers whose app failed its lifespan startup.",
            header.events.exits(Exit::BootFailure),
        ),
        (
            "ferricorn_reloads_total",
            "counter",
            "Reloads (SIGHUP) carried out.",
            header.events.reloads(),
        ),
    ];
    for (name, kind, help, value) in singles {
        out.family(name, kind, help);
        out.sample(name, "", value);
    }
    out.family(
        "ferricorn_worker_exits_total",
        "counter",
        "Worker processes that exited, by reason.",
    );
    for why in Exit::ALL {
        let label = format!("reason=\"{}\"", why.label());
        out.sample(
            "ferricorn_worker_exits_total",
            &label,
            header.events.exits(why),
        );
    }
    if let Some(u) = procfs::usage(nix::unistd::getppid().as_raw()) {
        out.family(
            "ferricorn_supervisor_resident_memory_bytes",
            "gauge",
            "Resident memory of the supervisor process.",
        );
        out.sample(
            "ferricorn_supervisor_resident_memory_bytes",
            "",
            u.rss_bytes,
        );
        out.family(
            "ferricorn_supervisor_cpu_seconds_total",
            "counter",
            "CPU time of the supervisor process, user and system.",
        );
        out.sample("ferricorn_supervisor_cpu_seconds_total", "", u.cpu_seconds);
    }

    // The app's own series, summed over the workers.
    let mut last_family = "";
    for (s, values) in series.iter().zip(&view.app) {
        if s.name != last_family {
            let kind = match s.kind {
                AppKind::Counter => "counter",
                AppKind::Gauge => "gauge",
                AppKind::Histogram => "histogram",
            };
            out.family(&s.name, kind, &s.help);
            last_family = &s.name;
        }
        match s.kind {
            AppKind::Counter => out.sample(&s.name, &s.labels, values[0]),
            AppKind::Gauge => out.sample(&s.name, &s.labels, Float(f64::from_bits(values[0]))),
            AppKind::Histogram => {
                let n = s.bounds.len();
                let les: Vec<Float> = s.bounds.iter().copied().map(Float).collect();
                histogram(
                    &mut out,
                    &s.name,
                    &s.labels,
                    &les,
                    &values[..=n],
                    Float(f64::from_bits(values[n + 1])),
                );
            }
        }
    }
    out.0
}

/// Requests by method and status, and their duration.
fn http_families(out: &mut Out, prefix: &str, rows: &[(&str, &Snapshot)]) {
    let name = format!("{prefix}http_requests_total");
    out.family(
        &name,
        "counter",
        "HTTP requests answered, by method and status class.",
    );
    for (labels, s) in rows {
        for (m, method) in METHODS.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                let v = s[at::REQUESTS + m * CLASSES.len() + c];
                if v != 0 {
                    let l = join(labels, &format!("method=\"{method}\",status=\"{class}\""));
                    out.sample(&name, &l, v);
                }
            }
        }
    }
    let name = format!("{prefix}http_request_duration_seconds");
    out.family(
        &name,
        "histogram",
        "Time from a request's head to the end of its response body.",
    );
    let les: Vec<Float> = BUCKETS.iter().copied().map(Float).collect();
    for (labels, s) in rows {
        let sum = Float(s[at::DURATION_SUM_US] as f64 / 1e6);
        let buckets = &s[at::DURATION..at::DURATION + BUCKETS.len() + 1];
        histogram(out, &name, labels, &les, buckets, sum);
    }
}

/// The channel layer: messages published, delivered and dropped by reason,
/// the fan-out histogram, and each slot's groups and members.
fn channel_families(out: &mut Out, all: &Snapshot, view: &View) {
    let counters = [
        (
            "ferricorn_channel_messages_published_total",
            at::CHANNEL_PUBLISHED,
            "Channel layer messages sent to a group or a connection.",
        ),
        (
            "ferricorn_channel_messages_delivered_total",
            at::CHANNEL_DELIVERED,
            "Channel layer messages queued for a member's socket (one per member).",
        ),
    ];
    for (name, i, help) in counters {
        out.family(name, "counter", help);
        out.sample(name, "", all[i]);
    }
    let name = "ferricorn_channel_messages_dropped_total";
    out.family(
        name,
        "counter",
        "Channel layer messages dropped, by reason.",
    );
    for (i, reason) in DROP_REASONS.iter().enumerate() {
        let labels = format!("reason=\"{reason}\"");
        out.sample(name, &labels, all[at::CHANNEL_DROPPED + i]);
    }
    let name = "ferricorn_channel_fanout_seconds";
    out.family(
        name,
        "histogram",
        "Time from a channel message's publish to its write to a member's socket.",
    );
    let les: Vec<Float> = FANOUT_BUCKETS.iter().copied().map(Float).collect();
    let sum = Float(all[at::CHANNEL_FANOUT_SUM_US] as f64 / 1e6);
    let buckets = &all[at::CHANNEL_FANOUT..at::CHANNEL_FANOUT + FANOUT_BUCKETS.len() + 1];
    histogram(out, name, "", &les, buckets, sum);
    type Read = fn(&(u64, u64)) -> u64;
    let gauges: [(&str, &str, Read); 2] = [
        (
            "ferricorn_worker_channel_groups",
            "Groups the slot's workers have members of.",
            |g| g.0,
        ),
        (
            "ferricorn_worker_channel_members",
            "Group memberships of the slot's workers' sockets.",
            |g| g.1,
        ),
    ];
    for (name, help, read) in gauges {
        out.family(name, "gauge", help);
        for ((slot, _), g) in view.slots.iter().zip(&view.channels) {
            out.sample(name, &format!("worker=\"{slot}\""), read(g));
        }
    }
}

/// The channel layer's broker, once a gateway was elected (with
/// `--channel-layer redis://…` only): whether it is connected, and how
/// often it came back.
fn broker_families(out: &mut Out, shared: Shared) {
    let header = shared.header();
    if header.gateway().is_none() {
        return;
    }
    let name = "ferricorn_channel_broker_connected";
    out.family(
        name,
        "gauge",
        "Whether the channel layer's gateway is connected to Redis (1) or not (0).",
    );
    let up = header.broker() == ferricorn_shm::Broker::Up;
    out.sample(name, "", u64::from(up));
    let name = "ferricorn_channel_broker_reconnects_total";
    out.family(
        name,
        "counter",
        "Times the channel layer's gateway got Redis back after losing it.",
    );
    out.sample(name, "", header.broker_reconnects());
}

/// Bytes, connections and WebSockets.
fn traffic_families(out: &mut Out, prefix: &str, rows: &[(&str, &Snapshot, (u64, u64))]) {
    let counters = [
        (
            "received_bytes_total",
            at::RECEIVED_BYTES,
            "Bytes read from client connections.",
        ),
        (
            "sent_bytes_total",
            at::SENT_BYTES,
            "Bytes written to client connections.",
        ),
        (
            "connections_accepted_total",
            at::ACCEPTED,
            "Client connections accepted.",
        ),
        (
            "http1_requests_total",
            at::HTTP1_REQUESTS,
            "Requests over HTTP/1.x.",
        ),
        (
            "http2_requests_total",
            at::HTTP2_REQUESTS,
            "Requests (streams) over HTTP/2.",
        ),
        (
            "http2_connections_total",
            at::HTTP2_CONNECTIONS,
            "Client connections served with HTTP/2.",
        ),
        (
            "tls_handshakes_total",
            at::TLS_HANDSHAKES,
            "TLS handshakes completed.",
        ),
        (
            "tls_handshake_failures_total",
            at::TLS_FAILED,
            "Connections to a TLS address closed before a handshake completed (timeout, plain HTTP, a refused certificate).",
        ),
        (
            "websocket_connections_accepted_total",
            at::WS_ACCEPTED,
            "WebSocket connections accepted.",
        ),
        (
            "websocket_messages_received_total",
            at::WS_RECEIVED,
            "WebSocket text and binary messages received.",
        ),
        (
            "websocket_messages_sent_total",
            at::WS_SENT,
            "WebSocket text and binary messages sent.",
        ),
    ];
    for (suffix, i, help) in counters {
        let name = format!("{prefix}{suffix}");
        out.family(&name, "counter", help);
        for (labels, s, _) in rows {
            out.sample(&name, labels, s[i]);
        }
    }
    let name = format!("{prefix}connections_open");
    out.family(
        &name,
        "gauge",
        "Client connections open, WebSockets included.",
    );
    for (labels, _, (c, _)) in rows {
        out.sample(&name, labels, c);
    }
    let name = format!("{prefix}websocket_connections_open");
    out.family(&name, "gauge", "WebSocket connections open.");
    for (labels, _, (_, w)) in rows {
        out.sample(&name, labels, w);
    }
}

/// A histogram's samples from per-bucket (not cumulative) counts, the last
/// one `+Inf`.
fn histogram(out: &mut Out, name: &str, labels: &str, les: &[Float], counts: &[u64], sum: Float) {
    let bucket = format!("{name}_bucket");
    let mut cumulative = 0;
    for (i, count) in counts.iter().enumerate() {
        cumulative += count;
        let le = les
            .get(i)
            .map_or_else(|| "+Inf".to_owned(), ToString::to_string);
        out.sample(&bucket, &join(labels, &format!("le=\"{le}\"")), cumulative);
    }
    out.sample(&format!("{name}_sum"), labels, sum);
    out.sample(&format!("{name}_count"), labels, cumulative);
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a},{b}"),
    }
}

/// A float as Prometheus writes it.
#[derive(Clone, Copy)]
struct Float(f64);

impl Display for Float {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            v if v == f64::INFINITY => f.write_str("+Inf"),
            v if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            v => write!(f, "{v}"),
        }
    }
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }
}
