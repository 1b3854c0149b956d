#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferricorn_worker::fuzz::proxy_protocol(data));
