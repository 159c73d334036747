#![no_main]
//! Fuzz target `gzip`: see `weir::fuzzing::gzip` for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| weir::fuzzing::gzip(data));
