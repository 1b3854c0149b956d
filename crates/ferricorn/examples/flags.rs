//! A program with flags of its own beside ferricorn's: `ferricorn::Args`
//! flattened into the program's clap parser, then handed to
//! `ferricorn::Server::cli`. `--help` lists both; `--version` is the
//! program's.
//!
//! Run with `cargo run --example flags -- --greeting Hi -w 2`, then
//! `curl http://127.0.0.1:8000/`.

use clap::Parser;
use ferricorn::{App, Body, Context, Request, Response};

/// Says hello, served by ferricorn.
#[derive(Parser)]
#[command(name = "hello", version = "2.3.4")]
struct Cli {
    /// What to say
    #[arg(long, default_value = "Hello")]
    greeting: String,
    #[command(flatten)]
    server: ferricorn::Args,
}

struct Hello(String);

impl App for Hello {
    async fn call(&self, _req: Request) -> Response {
        Response::new(Body::from(self.0.clone()))
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let greeting = cli.greeting;
    ferricorn::Server::new(move |_: &Context| Hello(greeting.clone()))
        .cli(cli.server)
        .run()
}
