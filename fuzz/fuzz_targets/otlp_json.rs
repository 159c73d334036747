#![no_main]
//! Fuzz target `otlp_json`: see `weir_wire::fuzzing::otlp_json` for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_wire::fuzzing::otlp_json(data));
