#![no_main]
//! Fuzz target `queue_segment`: see `weir_wire::fuzzing::queue_segment` for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_wire::fuzzing::queue_segment(data));
