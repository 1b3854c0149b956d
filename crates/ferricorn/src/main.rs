//! The `ferricorn` binary: serves the demo app. Run with `ferricorn --help`.

fn main() -> std::process::ExitCode {
    ferricorn::run(ferricorn::demo::app)
}
