#![no_main]
//! Fuzz target `kernels`: see `weir_kernels::fuzzing::detectors` for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_kernels::fuzzing::detectors(data));
