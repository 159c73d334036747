#![no_main]
//! Fuzz target `otlp_json`: see `weir::fuzzing::otlp_json` for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| weir::fuzzing::otlp_json(data));
