#![no_main]
//! Fuzz target `admin_api`: see `weir::fuzzing::admin_api` for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| weir::fuzzing::admin_api(data));
