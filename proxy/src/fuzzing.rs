//! The bodies of weir's fuzz targets (`fuzz/`), here so that the committed corpora also run as ordinary
//! tests on stable Rust (`tests/fuzz_corpus.rs`). The parser targets live in [`weir_wire::fuzzing`] (a crate
//! without wasmtime, so that CI can build and run them quickly); the admin API's needs all of weir.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use crate::Signal;

pub use weir_wire::fuzzing::{gzip, hostile_body, otlp_json, otlp_protobuf, queue_segment, zstd};

struct Admin {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
}

fn admin() -> &'static Admin {
    static ADMIN: OnceLock<Admin> = OnceLock::new();
    ADMIN.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let router = rt.block_on(async {
            let metrics = Arc::new(crate::telemetry::Metrics::new());
            let mut pipelines = crate::pipeline::Pipelines::default();
            pipelines.insert(crate::pipeline::Pipeline::new(
                Signal::Traces,
                crate::filter::Chain::identity(),
                &[],
                Arc::new(Default::default()),
                metrics.clone(),
            ));
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            std::mem::forget(_rx);
            let manager = crate::control::Manager::new(
                Arc::new(crate::filter::Runtime::new(None).expect("engine")),
                Arc::new(pipelines),
                metrics.clone(),
                None,
                tx,
            );
            crate::admin::router(Arc::new(crate::admin::AdminState {
                metrics,
                ready: true.into(),
                manager,
                // Loopback peers reach the handlers, remote ones the credential check.
                access: crate::admin::Access {
                    token: Some("secret".into()),
                    trust_loopback: true,
                    ..Default::default()
                },
                reloader: Default::default(),
            }))
        });
        Admin { rt, router }
    })
}

/// The admin API: any method, path, headers and body, from a loopback or a remote peer. weir answers
/// every request with a status below 500, never a panic.
pub fn admin_api(data: &[u8]) {
    use tower::ServiceExt;
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let method = ["GET", "POST", "PUT", "DELETE"][(first & 3) as usize];
    let remote = first & 4 != 0;
    let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    let (path, body) = rest.split_at(split);
    let path = format!("/{}", String::from_utf8_lossy(path).trim_start_matches('/'));
    let Ok(uri) = path.parse::<http::Uri>() else {
        return;
    };
    let mut req = http::Request::builder().method(method).uri(uri);
    if first & 8 != 0 {
        req = req.header("authorization", "Bearer secret");
    }
    if first & 16 != 0 {
        req = req.header("content-type", "application/json");
    }
    let Ok(mut req) = req.body(axum::body::Body::from(
        body.get(1..).unwrap_or_default().to_vec(),
    )) else {
        return;
    };
    let peer: SocketAddr = if remote {
        "192.0.2.1:4000".parse().expect("address")
    } else {
        "127.0.0.1:4000".parse().expect("address")
    };
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let a = admin();
    let status =
        a.rt.block_on(a.router.clone().oneshot(req))
            .map(|r| r.status())
            .expect("infallible");
    assert!(
        status.as_u16() < 500 || status.as_u16() == 503,
        "{method} {path}: {status}"
    );
}
