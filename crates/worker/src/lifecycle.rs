//! A worker's life: runtime, startup, serving, drain, shutdown.

use ferricorn_channels::{Channels, Overflow, Settings as ChannelSettings};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ferricorn_config::Config;
use ferricorn_shm::{CellState, EXIT_BOOT_FAILED, Shared, WorkerCell};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Semaphore, watch};
use tokio::task::{LocalSet, spawn_local};
use tracing::{error, info, warn};

use crate::accept::Serving;
use crate::access::Sink;
use crate::http::{Server, Settings};
use crate::tls::Tls;
use crate::{Context, Listener, Service};

/// Exit code of a worker that could not set itself up.
const EXIT_SETUP_FAILED: i32 = 1;

/// Connections each worker takes at once on the `--metrics-bind` address;
/// they are not counted against `--worker-connections` nor in the drain.
const ADMIN_CONNECTIONS: usize = 16;

/// How the supervisor asked the worker to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGTERM: finish in-flight requests, then shut down.
    Graceful,
    /// SIGINT or SIGQUIT: exit at once.
    Quick,
}

struct StopSignals {
    term: Signal,
    int: Signal,
    quit: Signal,
    /// Signals meant for the supervisor, caught so a worker neither dies
    /// nor stops of them (HUP, TTIN, TTOU, USR2), and not polled.
    _ignored: Vec<Signal>,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        let ignored = [
            SignalKind::hangup(),
            SignalKind::user_defined2(),
            SignalKind::from_raw(nix::sys::signal::Signal::SIGTTIN as i32),
            SignalKind::from_raw(nix::sys::signal::Signal::SIGTTOU as i32),
        ];
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            _ignored: ignored.into_iter().map(signal).collect::<Result<_, _>>()?,
        })
    }

    async fn recv(&mut self) -> Stop {
        tokio::select! {
            _ = self.term.recv() => Stop::Graceful,
            _ = self.int.recv() => Stop::Quick,
            _ = self.quit.recv() => Stop::Quick,
        }
    }
}

/// What the program around the worker provides for its logs.
#[derive(Debug, Clone, Copy)]
pub struct Hooks {
    /// Reopens the log files (SIGUSR1).
    pub reopen_logs: fn(),
    /// Writes whole access log lines (ending with newlines) in one
    /// `write(2)`; `None` when the access log is off.
    pub access_log: Option<fn(&str)>,
}

/// The listening sockets a worker inherits.
#[derive(Debug, Default)]
pub struct Listeners {
    /// The app's addresses (`--bind`): TLS with `--certfile`.
    pub app: Vec<Listener>,
    /// The app's plain addresses beside TLS ones (`--insecure-bind`).
    pub insecure: Vec<Listener>,
    /// The address of the metrics and health endpoints alone (`--metrics-bind`).
    pub admin: Option<Listener>,
}

/// Runs a worker in the current (freshly forked) process and returns its
/// exit code. `make` builds the app once the runtime exists.
pub fn run<S: Service>(
    config: &Config,
    shared: Shared,
    (slot, cell_id): (usize, usize),
    listeners: Listeners,
    hooks: Hooks,
    make: impl FnOnce(&Context) -> S,
) -> i32 {
    let Some(cell) = shared.cell(cell_id) else {
        error!("worker {slot}: no cell {cell_id} in the shared memory");
        return EXIT_SETUP_FAILED;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(config.threads)
        .thread_name("ferricorn-blocking")
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot build the worker's runtime: {e}");
            return EXIT_SETUP_FAILED;
        }
    };
    let access = access_sink(config, hooks);
    let Some(channels) = Channels::new(shared, cell_id, channel_settings(config)) else {
        error!("worker {slot}: no group table for cell {cell_id}");
        return EXIT_SETUP_FAILED;
    };
    let ctx = Context {
        slot,
        cell,
        pid: std::process::id(),
        shared,
        channels,
    };
    let serving = serve(config, ctx, listeners, hooks, access, make);
    let code = LocalSet::new().block_on(&runtime, serving);
    // The connections the LocalSet dropped have logged their last lines.
    if let Some(sink) = access {
        sink.flush();
    }
    // Blocking tasks still running (a sleeping handler) must not hold the exit.
    runtime.shutdown_background();
    code
}

async fn serve<S: Service>(
    config: &Config,
    ctx: Context,
    listeners: Listeners,
    hooks: Hooks,
    access: Option<&'static Sink>,
    make: impl FnOnce(&Context) -> S,
) -> i32 {
    let (cell, slot) = (ctx.cell, ctx.slot);
    if let Some(sink) = access {
        spawn_local(sink.flushing());
    }
    let mut stop = match StopSignals::install() {
        Ok(s) => s,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            return EXIT_SETUP_FAILED;
        }
    };
    spawn_local(heartbeat(cell));
    if let Err(e) = ctx.channels.listen() {
        error!("cannot start the channel layer: {e}");
        return EXIT_SETUP_FAILED;
    }
    match signal(SignalKind::user_defined1()) {
        Ok(usr1) => drop(spawn_local(reopen_on(usr1, hooks.reopen_logs))),
        Err(e) => warn!("cannot watch SIGUSR1: {e}"),
    }
    // The certificate files, read again by each new worker: a reload's
    // workers serve the files as they are now.
    let tls = match crate::tls::server_config(config) {
        Ok(tls) => tls.map(|c| Tls::new(c, config.header_timeout)),
        Err(e) => {
            let message = e.to_string();
            error!("{message}");
            cell.set_error(&message);
            return EXIT_BOOT_FAILED;
        }
    };
    let app = make(&ctx);
    let started = tokio::select! {
        r = app.startup() => r,
        _ = stop.recv() => return 0,
    };
    if let Err(e) = started {
        let message = e.to_string();
        error!("app startup failed: {message}");
        cell.set_error(&message);
        return EXIT_BOOT_FAILED;
    }
    let permits = Arc::new(Semaphore::new(config.worker_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let hub = Rc::new(crate::ws::Hub {
        permits: permits.clone(),
        cell,
        shared: ctx.shared,
        stop: stop_rx.clone(),
        settings: config.ws(),
        channels: ctx.channels.clone(),
    });
    let settings = Settings::of(config, retire_at(config));
    let server = Rc::new(Server::new(app, (config, settings), ctx, hub, access));
    let deadlines = server.deadlines().clone();
    spawn_local(async move { deadlines.sweep().await });
    let admin_permits = Arc::new(Semaphore::new(ADMIN_CONNECTIONS));
    let plain = |admin| Serving { admin, tls: None };
    let secure = Serving {
        admin: false,
        tls: tls.clone(),
    };
    let all = (listeners.app.into_iter().map(|l| (l, secure.clone())))
        .chain(listeners.insecure.into_iter().map(|l| (l, plain(false))))
        .chain(listeners.admin.map(|l| (l, plain(true))));
    for (listener, serving) in all {
        let permits = if serving.admin {
            &admin_permits
        } else {
            &permits
        };
        if let Err(e) = crate::accept::start(listener, &server, permits, &stop_rx, serving) {
            error!("cannot use an inherited listener: {e}");
            return EXIT_SETUP_FAILED;
        }
    }
    cell.set_state(CellState::Ready);
    info!("worker {slot} ready");
    // Waited for in a task of its own: the future passed to the runtime is
    // polled at every wake-up of any task, so it must be cheap to poll.
    let (stopped, how) = tokio::sync::oneshot::channel();
    spawn_local(async move {
        let _ = stopped.send(stop.recv().await);
    });
    let how = how.await.unwrap_or(Stop::Quick);
    cell.set_state(CellState::Draining);
    let _ = stop_tx.send(true);
    server.deadlines().stop_all();
    // Let the accept loops see the stop and hand back the permits they hold.
    tokio::task::yield_now().await;
    if how == Stop::Quick {
        info!("worker {slot} stopping now");
        return 0;
    }
    drain(&permits, config.worker_connections, config.graceful_timeout).await;
    server.app().shutdown().await;
    info!("worker {slot} stopped");
    0
}

/// The channel layer's settings.
fn channel_settings(config: &Config) -> ChannelSettings {
    ChannelSettings {
        capacity: config.channel_capacity,
        overflow: match config.channel_overflow {
            ferricorn_config::ChannelOverflow::Close => Overflow::Close,
            ferricorn_config::ChannelOverflow::DropOldest => Overflow::DropOldest,
        },
        max_message: config.channel_max_message,
        redis: match &config.channel_layer {
            ferricorn_config::ChannelLayer::Memory => None,
            layer @ ferricorn_config::ChannelLayer::Redis(url) => Some(ferricorn_channels::Redis {
                url: url.clone(),
                shown: layer.shown(),
            }),
        },
    }
}

/// The access log sink, leaked once for the worker's life.
fn access_sink(config: &Config, hooks: Hooks) -> Option<&'static Sink> {
    let write = hooks.access_log?;
    let sink = Sink::new(config.access_logformat.clone(), config.log_json(), write);
    Some(Box::leak(Box::new(sink)))
}

/// Waits until every connection has closed (all permits are back) or the
/// deadline passes.
async fn drain(permits: &Semaphore, total: usize, deadline: Duration) {
    let open = total - permits.available_permits();
    if open > 0 {
        info!("draining {open} connections for up to {deadline:?}");
    }
    let all = permits.acquire_many(total as u32);
    if tokio::time::timeout(deadline, all).await.is_err() {
        let left = total - permits.available_permits();
        warn!("{left} connections still open at graceful-timeout; closing them");
    }
}

/// The request count at which this worker asks to be replaced:
/// max-requests plus a random share of the jitter, so workers started
/// together do not all recycle together.
fn retire_at(config: &Config) -> Option<u64> {
    let limit = config.max_requests?;
    let jitter = config.max_requests_jitter;
    if jitter == 0 {
        return Some(limit);
    }
    // Random enough for spreading restarts: the clock's nanoseconds and
    // the pid, mixed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let x = crate::ids::mix(nanos ^ ((std::process::id() as u64) << 32));
    Some(jittered(limit, jitter, x))
}

/// `limit` plus the random `x`'s share of 0..=`jitter`. Saturates: no value
/// of either setting overflows.
fn jittered(limit: u64, jitter: u64, x: u64) -> u64 {
    let share = jitter.checked_add(1).map_or(x, |span| x % span);
    limit.saturating_add(share)
}

/// Reopens the log files on each SIGUSR1 the supervisor forwards.
async fn reopen_on(mut usr1: Signal, reopen_logs: fn()) {
    while usr1.recv().await.is_some() {
        reopen_logs();
        info!("reopened log files");
    }
}

/// Writes the cell's heartbeat every `HEARTBEAT_INTERVAL` while the event
/// loop runs.
async fn heartbeat(cell: &'static WorkerCell) {
    let mut tick = tokio::time::interval(ferricorn_config::HEARTBEAT_INTERVAL);
    loop {
        tick.tick().await;
        cell.beat();
    }
}

#[cfg(test)]
mod tests {
    use super::jittered;

    #[test]
    fn the_jitter_spreads_within_its_range_and_never_overflows() {
        for x in [0, 1, 20, 21, 12_345, u64::MAX] {
            assert!((200..=220).contains(&jittered(200, 20, x)), "{x}");
            assert_eq!(jittered(200, 0, x), 200);
        }
        assert_eq!(jittered(200, 20, 21), 200);
        assert_eq!(jittered(200, 20, 20), 220);
        // Settings at their largest: the worker still boots.
        assert_eq!(jittered(u64::MAX, u64::MAX, 7), u64::MAX);
        assert_eq!(jittered(1, u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(jittered(u64::MAX - 1, 5, 5), u64::MAX);
    }
}
