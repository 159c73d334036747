//! Times the built-in detectors over values like the load generator's: `cargo run --release -p
//! weir-kernels --example scan_speed`.
use std::time::Instant;
use weir_kernels::{Detector, PatternSet, PatternSpec};

fn main() {
    let set = PatternSet::compile(&PatternSpec {
        detectors: Detector::ALL.to_vec(),
        key_names: vec!["password".into(), "authorization".into()],
        ..Default::default()
    })
    .unwrap();
    let values = [
        "GET",
        "/api/orders/123456",
        "api.shop.example.com",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "postgresql",
        "3b18e512dba79e4c8300dd08aeb37f8e728b8dad3b18e512dba79e4c8300",
    ];
    let mut found = Vec::new();
    let rounds = 200_000;
    for v in values {
        let started = Instant::now();
        for _ in 0..rounds {
            found.clear();
            set.find_values(std::hint::black_box(v), &mut found);
        }
        let ns = started.elapsed().as_secs_f64() * 1e9 / rounds as f64;
        println!(
            "{ns:8.1} ns  {} matches  {:?}  {v}",
            found.len(),
            weir_kernels::prefilter_passes(v)
        );
    }
}
