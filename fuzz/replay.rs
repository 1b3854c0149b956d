//! Every committed seed, and the input of every crash the fuzz targets
//! found, through its target's property: the regression tests of the fuzz
//! targets, run by `cargo test` (as the `fuzz-seeds` test of the
//! `ferricorn` crate, whose dev-dependencies turn on the crates' `fuzz`
//! feature).

use std::path::Path;

/// A target's property.
type Property = fn(&[u8]);

const TARGETS: [(&str, Property); 9] = [
    ("proxy_protocol", ferricorn_worker::fuzz::proxy_protocol),
    ("forwarded", ferricorn_worker::fuzz::forwarded),
    ("framing", ferricorn_worker::fuzz::framing),
    ("tls_subject", ferricorn_worker::fuzz::tls_subject),
    ("tickets", ferricorn_worker::fuzz::tickets),
    ("settings", ferricorn_config::fuzz::settings),
    ("cmd_args", ferricorn_config::fuzz::cmd_args),
    (
        "access_log_format",
        ferricorn_config::fuzz::access_log_format,
    ),
    ("channel_frames", ferricorn_channels::fuzz::channel_frames),
];

#[test]
fn the_seeds_and_every_crash_found_hold() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    for (target, property) in TARGETS {
        let dir = seeds.join(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("the seeds") {
            let path = entry.expect("a seed").path();
            property(&std::fs::read(&path).expect("a seed"));
            n += 1;
        }
        assert!(n > 0, "no seeds in {}", dir.display());
    }
}

#[test]
fn every_target_is_replayed() {
    let targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for entry in std::fs::read_dir(&targets).expect("the targets") {
        let path = entry.expect("a target").path();
        let name = path.file_stem().and_then(|s| s.to_str()).expect("a name");
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz/fuzz_targets/{name}.rs has no seeds replayed here"
        );
    }
}
