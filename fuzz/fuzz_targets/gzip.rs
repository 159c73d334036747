#![no_main]
//! Fuzz target `gzip`: see `weir_wire::fuzzing::gzip` for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_wire::fuzzing::gzip(data));
