//! The app contract without sockets: apps are called directly on a
//! current-thread runtime, as a worker would.

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;

use bytes::Bytes;
use http_body::Body as _;
use http_body_util::{BodyExt, Full};

use crate::{App, Body, HyperApp, Request, Response};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tokio::task::LocalSet::new().block_on(&rt, f)
}

async fn text(res: Response) -> String {
    let bytes = res.into_body().collect(1 << 20).await.expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

/// An app holding `!Send` state (`Rc<Cell>`) across an await.
struct Counter(Rc<Cell<u32>>);

impl App for Counter {
    async fn call(&self, _req: Request) -> Response {
        let n = self.0.get() + 1;
        tokio::task::yield_now().await;
        self.0.set(n);
        Response::new(Body::from(n.to_string()))
    }
}

#[test]
fn apps_need_not_be_send() {
    let app = Counter(Rc::new(Cell::new(0)));
    block_on(async {
        for want in ["1", "2"] {
            let res = app.call(Request::new(Body::empty())).await;
            assert_eq!(text(res).await, want);
        }
        assert!(app.startup().await.is_ok());
        app.shutdown().await;
    });
}

#[test]
fn hyper_services_are_apps() {
    let svc = hyper::service::service_fn(|req: Request| async move {
        let path = req.uri().path().to_owned();
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(path))))
    });
    let app = HyperApp(svc);
    block_on(async {
        let req = http::Request::get("/via/hyper")
            .body(Body::empty())
            .expect("request");
        assert_eq!(text(app.call(req).await).await, "/via/hyper");
    });

    let failing = HyperApp(hyper::service::service_fn(|_req: Request| async {
        Err::<http::Response<Full<Bytes>>, _>(std::io::Error::other("boom"))
    }));
    block_on(async {
        let res = failing.call(Request::new(Body::empty())).await;
        assert_eq!(res.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    });
}

#[test]
fn bodies_report_their_size_and_stream_through_channels() {
    let full = Body::from("abc");
    assert_eq!(full.size_hint().exact(), Some(3));
    assert!(Body::empty().is_end_stream());
    block_on(async {
        let (tx, body) = Body::channel();
        assert_eq!(body.size_hint().exact(), None);
        let producer = tokio::task::spawn_local(async move {
            for chunk in ["a", "b", "c"] {
                tx.send(chunk).await.expect("send");
            }
        });
        let mut body = body;
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            frames.push(frame.expect("frame").into_data().expect("data"));
        }
        producer.await.expect("producer");
        assert_eq!(frames, ["a", "b", "c"]);

        let err = Body::from(vec![0u8; 10])
            .collect(9)
            .await
            .expect_err("too big");
        assert_eq!(err.to_string(), "body larger than 9 bytes");

        let (tx, body) = Body::channel();
        drop(body);
        assert!(tx.send("late").await.is_err(), "send after the client left");
    });
}

#[test]
fn exit_codes_agree_with_the_supervisor() {
    let boot = ferricorn_supervisor::Error::BootFailed {
        slot: 0,
        message: String::new(),
    };
    assert_eq!(boot.exit_code(), crate::EXIT_APP_STARTUP);
    let os = ferricorn_supervisor::Error::Os {
        what: "x",
        source: nix::Error::EAGAIN,
    };
    assert_eq!(os.exit_code(), crate::EXIT_FAILURE);
    assert_eq!(ferricorn_config::MAX_WORKERS, ferricorn_shm::MAX_SLOTS);
}
