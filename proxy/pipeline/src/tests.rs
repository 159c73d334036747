use super::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use weir_core::Payload;
use weir_core::config::QueueConfig;
use weir_exporter::Exporter;

fn pipeline(defaults: &[&str]) -> Pipeline {
    let metrics = Arc::new(Metrics::new());
    let all: Exporters = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let e = Exporter::debug(n);
            let q =
                ExporterQueue::spawn(n, e, &QueueConfig::default(), None, metrics.clone()).unwrap();
            (n.to_string(), q)
        })
        .collect();
    let defaults: Vec<String> = defaults.iter().map(|s| s.to_string()).collect();
    Pipeline::new(
        Signal::Traces,
        Chain::identity(),
        &defaults,
        Arc::new(all),
        metrics,
    )
}

/// One resource, spans named 0..n.
fn spans(n: usize) -> Payload {
    Payload::Traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..n)
                    .map(|i| Span {
                        name: i.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

fn names(p: &Payload) -> Vec<String> {
    let Payload::Traces(t) = p else { panic!() };
    t.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.name.clone())
        .collect()
}

fn parts(d: &[Delivery]) -> Vec<(Vec<&str>, Vec<String>)> {
    d.iter()
        .map(|d| {
            (
                d.exporters.iter().map(|e| e.name()).collect(),
                names(&d.encoded.decode().unwrap()),
            )
        })
        .collect()
}

#[tokio::test]
async fn unlabelled_batches_go_whole_to_the_defaults() {
    let p = pipeline(&["a", "b"]);
    let d = p.route(Body::from_payload(spans(3)), None).unwrap();
    assert_eq!(
        parts(&d),
        vec![(vec!["a", "b"], vec!["0".into(), "1".into(), "2".into()])]
    );
}

#[tokio::test]
async fn labels_split_the_batch_and_unknown_names_fall_back_to_the_defaults() {
    let p = pipeline(&["a"]);
    let routing = Routing {
        sets: vec![
            vec!["b".into()],
            vec!["a".into(), "b".into()],
            vec!["zzz".into()],
        ],
        items: vec![None, Some(0), Some(1), Some(2)],
    };
    let d = p
        .route(Body::from_payload(spans(4)), Some(routing))
        .unwrap();
    assert_eq!(
        parts(&d),
        vec![
            (vec!["a"], vec!["0".into(), "2".into(), "3".into()]),
            (vec!["b"], vec!["1".into(), "2".into()]),
        ]
    );
    assert!(
        p.metrics
            .render()
            .contains(r#"weir_route_unknown_items_total{signal="traces",exporter="zzz"} 1"#)
    );
}

#[tokio::test]
async fn one_label_set_for_everything_sends_the_batch_whole() {
    let p = pipeline(&["a"]);
    let routing = Routing {
        sets: vec![vec!["b".into(), "c".into()]],
        items: vec![Some(0), Some(0)],
    };
    let d = p
        .route(Body::from_payload(spans(2)), Some(routing))
        .unwrap();
    assert_eq!(
        parts(&d),
        vec![(vec!["b", "c"], vec!["0".into(), "1".into()])]
    );
}
