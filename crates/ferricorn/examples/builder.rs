//! Settings in code: `ferricorn::Server`'s setters are the program's own
//! defaults; the TOML file, the environment and the command line still
//! override them.
//!
//! Run with `cargo run --example builder`, then
//! `curl http://127.0.0.1:8001/`; `cargo run --example builder --
//! --print-config` shows which values came from the code.

use std::time::Duration;

use ferricorn::{App, Body, Context, Request, Response};

struct Hello {
    slot: usize,
}

impl App for Hello {
    async fn call(&self, _req: Request) -> Response {
        Response::new(Body::from(format!("Hello from worker {}", self.slot)))
    }
}

fn main() -> std::process::ExitCode {
    ferricorn::Server::new(|ctx: &Context| Hello { slot: ctx.slot() })
        .name("builder")
        .version("1.2.3")
        .bind("127.0.0.1:8001")
        .workers(3)
        .graceful_timeout(Duration::from_secs(7))
        .forwarded_allow_ips("10.0.0.0/8")
        .forwarded_allow_ips("127.0.0.1")
        .run()
}
