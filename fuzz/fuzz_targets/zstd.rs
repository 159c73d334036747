#![no_main]
//! Fuzz target `zstd`: see `weir_wire::fuzzing::zstd` for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_wire::fuzzing::zstd(data));
