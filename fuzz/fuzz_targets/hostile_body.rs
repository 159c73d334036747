#![no_main]
//! Fuzz target `hostile_body`: see `weir_wire::fuzzing::hostile_body` for what it checks (no panic,
//! and the heap decoding takes stays within what the request was charged).
use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_wire::fuzzing::hostile_body(
    data,
    &|| HEAP.current_usage(),
    &|| HEAP.peak_usage(),
    &|| HEAP.reset_peak_usage(),
));
