//! Protocol-level limits: concurrency, request timeout.

use std::time::{Duration, Instant};

use crate::support::{Server, wait_until};

#[test]
fn over_limit_concurrency_requests_get_503_with_retry_after_at_once() {
    let server = Server::start(&["-w", "1", "--limit-concurrency", "1"]);
    let mut slow = server.conn();
    slow.send(b"GET /blocking?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut refused = None;
    let saw_503 = wait_until(Duration::from_secs(5), || {
        let sent = Instant::now();
        let res = server.get("/blocking?ms=0");
        let fast = sent.elapsed() < Duration::from_millis(500);
        if res.status == 503 {
            refused = Some((res.header("retry-after").map(str::to_owned), fast));
        }
        res.status == 503
    });
    assert!(saw_503, "no 503 while a request was in flight");
    assert_eq!(
        refused,
        Some((Some("1".to_owned()), true)),
        "503 with Retry-After, at once"
    );
    assert_eq!(
        server.get("/healthz").status,
        200,
        "ferricorn's own endpoints are exempt"
    );
    assert_eq!(slow.read_response(false).expect("slow").status, 200);
    assert_eq!(
        server.get("/blocking?ms=0").status,
        200,
        "under the limit again"
    );
}

#[test]
fn a_handler_past_request_timeout_is_cancelled_with_504() {
    let server = Server::start(&["-w", "1", "--request-timeout", "0.5"]);
    let sent = Instant::now();
    let res = server.get("/blocking?ms=3000");
    let took = sent.elapsed();
    assert_eq!(res.status, 504);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert_eq!(server.get("/").status, 200);
    server.wait_log("ran past request-timeout", Duration::from_secs(1));
}
