//! The bodies of weir's fuzz targets (`fuzz/`), here so that the committed corpora also run as ordinary
//! tests on stable Rust (`tests/fuzz_corpus.rs`). Each function takes arbitrary bytes, feeds them to one
//! of weir's untrusted-input parsers and checks a property beyond "does not panic" where there is one.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use crate::pipeline::{Payload, Signal};

fn signal(b: u8) -> Signal {
    Signal::ALL[(b % 3) as usize]
}

/// OTLP protobuf decoding: whatever decodes re-encodes to bytes that decode to the same request.
pub fn otlp_protobuf(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let s = signal(first);
    if let Ok(p) = Payload::decode_protobuf(s, rest) {
        let again =
            Payload::decode_protobuf(s, &p.encode_protobuf()).expect("re-encoded request decodes");
        assert_eq!(p, again, "protobuf round trip changed the request");
        let _ = p.item_count();
    }
}

/// The OTLP/JSON mapping: whatever decodes encodes to JSON that decodes again.
pub fn otlp_json(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let s = signal(first);
    if let Ok(p) = Payload::decode_json(s, rest) {
        let json = p.encode_json();
        Payload::decode_json(s, &json).expect("weir's own JSON decodes");
    }
}

/// gzip handling: inflation never yields more than the limit, whatever the input.
pub fn gzip(data: &[u8]) {
    const LIMIT: usize = 64 << 10;
    if let Ok(out) = crate::receiver::decode::gunzip(data, LIMIT) {
        assert!(out.len() <= LIMIT, "inflated past the limit");
    }
}

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
                crate::pipeline::Chain::identity(),
                &[],
                Arc::new(Default::default()),
                metrics.clone(),
            ));
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            std::mem::forget(_rx);
            let manager = crate::filter::Manager::new(
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
                token: Some("secret".into()),
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

/// The durable queue's segment reader: reading a damaged or hostile segment stops at the damage, never
/// reads past the data, and every record it accepts is whole.
pub fn queue_segment(data: &[u8]) {
    let mut offset = 0;
    while offset < data.len() {
        match crate::exporter::durable::parse(&data[offset..]) {
            Ok(Some(p)) => {
                assert!(p.len > 0 && offset + p.len <= data.len());
                assert!(p.body.end <= p.len);
                offset += p.len;
            }
            Ok(None) | Err(_) => break,
        }
    }
}
