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
        // The secret-dense mix (`loadgen --mix secrets`): seven secrets and three ordinary values.
        "grace.hopper4821@mail.example",
        "4539 1488 0343 6467",
        "https://shop.example.com/api/v1/orders/123456?lang=en&token=tok_3b18e512dba79e4c8300dd08&page=2",
        "SELECT id, status FROM orders WHERE customer_email = 'hopper.4821@mail.example' AND region = 'eu' LIMIT 50",
        "172.16.20.31",
        "2001:db8:1a2b:3c4d::5e6f",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOi3b18e512dba79e4c8300.3b18e512dba79e4c8300dd08aeb37f8e",
        "/api/v1/orders/{id}",
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
