//! The fuzz targets' committed corpora (`fuzz/corpus/<target>/`), replayed on stable Rust as ordinary
//! tests: every input the fuzzers kept must still pass its target's checks. `cargo +nightly fuzz run`
//! explores further (see the README).

use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        check(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "{}: empty corpus", dir.display());
}

#[test]
fn otlp_protobuf() {
    replay("otlp_protobuf", weir::fuzzing::otlp_protobuf);
}

#[test]
fn otlp_json() {
    replay("otlp_json", weir::fuzzing::otlp_json);
}

#[test]
fn gzip() {
    replay("gzip", weir::fuzzing::gzip);
}

#[test]
fn zstd() {
    replay("zstd", weir::fuzzing::zstd);
}

#[test]
fn admin_api() {
    replay("admin_api", weir::fuzzing::admin_api);
}

#[test]
fn queue_segment() {
    replay("queue_segment", weir::fuzzing::queue_segment);
}

#[test]
fn kernels() {
    replay("kernels", weir_kernels::fuzzing::detectors);
}
