//! Guards that count something while they live: a connection or a
//! WebSocket open in the worker's cell (for `/metrics` and the accept
//! balance), a request in flight (for `--limit-concurrency`). Dropping the
//! guard is the count going down, whatever path the connection, socket or
//! request ended by.

use std::cell::Cell;

use ferricorn_shm::WorkerCell;
use ferricorn_shm::metrics::at;

/// A connection open in the worker's cell; made at accept time, so a burst
/// of accepts is counted before any is served.
#[derive(Debug)]
pub(crate) struct OpenConnection(&'static WorkerCell);

impl OpenConnection {
    pub(crate) fn new(cell: &'static WorkerCell) -> Self {
        cell.count_connection(true);
        Self(cell)
    }

    /// A connection just accepted: also counted as accepted.
    pub(crate) fn accepted(cell: &'static WorkerCell) -> Self {
        cell.counters.add(at::ACCEPTED, 1);
        Self::new(cell)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.count_connection(false);
    }
}

/// A WebSocket open in the worker's cell (also counted as accepted).
#[derive(Debug)]
pub(crate) struct OpenWebSocket(&'static WorkerCell);

impl OpenWebSocket {
    pub(crate) fn new(cell: &'static WorkerCell) -> Self {
        cell.count_websocket(true);
        Self(cell)
    }
}

impl Drop for OpenWebSocket {
    fn drop(&mut self) {
        self.0.count_websocket(false);
    }
}

/// A request whose handler has not yet returned its response head.
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a Cell<usize>);

impl<'a> InFlight<'a> {
    pub(crate) fn new(count: &'a Cell<usize>) -> Self {
        count.set(count.get() + 1);
        Self(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferricorn_shm::Shared;

    #[test]
    fn counts_go_down_when_the_guards_drop() {
        let shared = Shared::new().expect("memfd");
        let cell = shared.cell(shared.claim(0).expect("id")).expect("cell");
        let conn = OpenConnection::accepted(cell);
        let ws = OpenWebSocket::new(cell);
        assert_eq!((cell.connections(), cell.websockets()), (1, 1));
        drop((conn, ws));
        assert_eq!((cell.connections(), cell.websockets()), (0, 0));
        let n = Cell::new(0);
        let a = InFlight::new(&n);
        let b = InFlight::new(&n);
        assert_eq!(n.get(), 2);
        drop((a, b));
        assert_eq!(n.get(), 0);
    }
}
