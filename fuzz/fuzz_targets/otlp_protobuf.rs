#![no_main]
//! Fuzz target `otlp_protobuf`: see `weir_wire::fuzzing::otlp_protobuf` for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_wire::fuzzing::otlp_protobuf(data));
