//! The `ferricorn` binary: serves the demo app (see `demo`). Run with
//! `ferricorn --help`.

mod chat;
mod demo;
mod reply;

fn main() -> std::process::ExitCode {
    ferricorn::run(demo::app)
}
