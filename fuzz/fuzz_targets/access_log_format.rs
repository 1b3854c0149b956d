#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferricorn_config::fuzz::access_log_format(data));
