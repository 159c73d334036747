//! The `hostile_body` fuzz target's committed corpus, replayed on stable Rust with the heap counted:
//! whatever a client sends, decoding it never takes more memory than weir charged the request for
//! (`weir_wire::fuzzing::hostile_body`). A test binary of its own, with one test, so that nothing
//! else allocates while the heap is measured.

use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

#[test]
fn hostile_bodies_never_take_more_memory_than_they_were_charged() {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/hostile_body");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        weir::fuzzing::hostile_body(
            &data,
            &|| HEAP.current_usage(),
            &|| HEAP.peak_usage(),
            &|| HEAP.reset_peak_usage(),
        );
        n += 1;
    }
    assert!(n >= 6, "{}: {n} inputs", dir.display());
}
