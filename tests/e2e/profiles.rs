//! The fourth signal, profiles (alpha): received over both transports, carried through memory and
//! durable queues and forwarded as the bytes that came in; refused with the usual statuses when
//! malformed or too large; merged with their dictionaries kept right.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::profiles::v1development::{
    ExportProfilesServiceRequest, ExportProfilesServiceResponse,
};
use prost::Message;
use weir::{Payload, Signal};
use weir_wire::codec::{Encoding, compress};

use crate::harness::*;

fn example_request() -> ExportProfilesServiceRequest {
    match Payload::decode_json(Signal::Profiles, &example("profiles.json")).unwrap() {
        Payload::Profiles(r) => r,
        _ => unreachable!(),
    }
}

/// The example with its own profile id (`n` in its first bytes) and its functions renamed
/// `{name}-{n}`, so that which profile came from which request shows upstream.
fn numbered(n: u32) -> ExportProfilesServiceRequest {
    let mut r = example_request();
    let p = &mut r.resource_profiles[0].scope_profiles[0].profiles[0];
    p.profile_id[..4].copy_from_slice(&n.to_be_bytes());
    let d = r.dictionary.as_mut().unwrap();
    for f in &d.function_table[1..] {
        let name = &mut d.string_table[f.name_strindex as usize];
        if !name.ends_with(&format!("-{n}")) {
            *name = format!("{name}-{n}");
        }
    }
    r
}

/// Profile number (from its id) -> the function names its samples' stacks resolve to, for every
/// profile `payloads` hold.
fn frames_by_profile(payloads: &[Payload]) -> BTreeMap<u32, Vec<String>> {
    let mut out = BTreeMap::new();
    for p in payloads {
        let Payload::Profiles(r) = p else { continue };
        let d = r.dictionary.clone().unwrap_or_default();
        for profile in r
            .resource_profiles
            .iter()
            .flat_map(|r| &r.scope_profiles)
            .flat_map(|s| &s.profiles)
        {
            let n = u32::from_be_bytes(profile.profile_id[..4].try_into().unwrap());
            let frames = profile
                .samples
                .iter()
                .flat_map(|s| &d.stack_table[s.stack_index as usize].location_indices)
                .flat_map(|l| &d.location_table[*l as usize].lines)
                .map(|line| {
                    let f = &d.function_table[line.function_index as usize];
                    d.string_table[f.name_strindex as usize].clone()
                })
                .collect();
            out.insert(n, frames);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_arrives_byte_identical_over_both_transports_in_and_out() {
    let proto = example_request().encode_to_vec();
    for upstream_kind in ["grpc", "http"] {
        let (upstream, url) = if upstream_kind == "grpc" {
            Recorder::grpc().await
        } else {
            Recorder::http().await
        };
        let weir = Weir::start(&url);
        let mut sent = 0;
        // gRPC in, plain and gzip.
        for gzip in [false, true] {
            let resp = grpc_raw(&weir, Signal::Profiles, proto.clone(), gzip)
                .await
                .unwrap();
            assert!(resp.is_empty(), "no partial success expected");
            sent += 1;
        }
        // HTTP in, protobuf plain, gzip and zstd.
        for encoding in [None, Some(Encoding::Gzip), Some(Encoding::Zstd)] {
            let mut headers = vec![("content-type", "application/x-protobuf")];
            let body = match encoding {
                None => proto.clone(),
                Some(e) => {
                    headers.push(("content-encoding", e.as_str()));
                    compress(e, 3, &[bytes::Bytes::from(proto.clone())]).to_vec()
                }
            };
            let (status, _, resp) = post(&weir.http_url(Signal::Profiles), &headers, body).await;
            assert_eq!(status, 200, "{encoding:?}: {resp:?}");
            sent += 1;
        }
        upstream.wait_for_items(3 * sent).await;
        let raw = upstream.raw();
        assert_eq!(
            raw.len(),
            sent,
            "{upstream_kind}: one upstream request per client request"
        );
        for r in raw {
            assert_eq!(r.signal, Signal::Profiles);
            assert_eq!(
                &r.bytes[..],
                &proto[..],
                "{upstream_kind}: bytes changed on the way"
            );
        }
        assert_eq!(
            weir.metric(r#"weir_exported_items_total{signal="profiles",exporter="upstream"}"#)
                .await,
            (3 * sent) as f64,
            "samples are the items"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn profiles_json_is_decoded_and_forwarded_as_protobuf() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::start(&url);
    let (status, h, body) = post(
        &weir.http_url(Signal::Profiles),
        &[("content-type", "application/json")],
        example("profiles.json"),
    )
    .await;
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(&body[..], b"{}");
    let got = upstream.wait_for_items(3).await;
    assert_eq!(got, [Payload::Profiles(example_request())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_oversized_profiles_get_the_usual_statuses() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&format!(
        r#"
limits: {{ max_request_bytes: 4096 }}
exporters:
  upstream: {{ otlp: {{ endpoint: "{url}" }} }}
"#
    ));
    let http = weir.http_url(Signal::Profiles);
    let pb = [("content-type", "application/x-protobuf")];
    let mut bad_id = example_request();
    bad_id.resource_profiles[0].scope_profiles[0].profiles[0].profile_id = vec![1, 2, 3];
    let mut bad_index = example_request();
    bad_index.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index = 9;
    for (what, body, says) in [
        ("garbage", vec![0xff, 0xff, 0xff], "invalid"),
        ("a 3-byte profile id", bad_id.encode_to_vec(), "profile id"),
        (
            "an index past its table",
            bad_index.encode_to_vec(),
            "stack_table",
        ),
    ] {
        let (status, _, resp) = post(&http, &pb, body.clone()).await;
        assert_eq!(status, 400, "{what}");
        let s = tonic_types::Status::decode(resp).unwrap();
        assert!(s.message.contains(says), "{what}: {}", s.message);
        let e = grpc_raw(&weir, Signal::Profiles, body, false)
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{what} over gRPC");
        assert!(
            e.message().contains(says),
            "{what} over gRPC: {}",
            e.message()
        );
    }
    let (status, _, _) = post(
        &http,
        &[("content-type", "application/json")],
        br#"{"resourceProfiles":[{"scopeProfiles":[{"profiles":[{"profileId":"not hex"}]}]}]}"#
            .to_vec(),
    )
    .await;
    assert_eq!(status, 400, "an id that is not hex");
    let (status, _, _) = post(&http, &[("content-type", "text/plain")], b"x".to_vec()).await;
    assert_eq!(status, 415);
    let mut big = example_request();
    big.dictionary
        .as_mut()
        .unwrap()
        .string_table
        .push("x".repeat(8192));
    let (status, _, _) = post(&http, &pb, big.encode_to_vec()).await;
    assert_eq!(status, 413);
    // weir keeps serving profiles; nothing refused went upstream.
    let (status, _, _) = post(&http, &pb, example_request().encode_to_vec()).await;
    assert_eq!(status, 200);
    assert_eq!(upstream.wait_for_items(3).await.len(), 1);
    assert_eq!(
        weir.metric(
            r#"weir_refused_requests_total{signal="profiles",transport="http",reason="too_large"}"#
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstreams_partial_success_for_profiles_is_passed_back() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::start(&url);
    upstream.script(2, Answer::Partial(1, "one profile was too old"));
    let resp = grpc_raw(
        &weir,
        Signal::Profiles,
        example_request().encode_to_vec(),
        false,
    )
    .await
    .unwrap();
    let p = ExportProfilesServiceResponse::decode(resp)
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(p.rejected_profiles, 1);
    assert!(p.error_message.contains("too old"), "{}", p.error_message);
    let (status, _, body) = post(
        &weir.http_url(Signal::Profiles),
        &[("content-type", "application/json")],
        example("profiles.json"),
    )
    .await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedProfiles"], "1", "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_durable_queue_of_profiles_survives_kill_9_and_merges_them_with_their_dictionaries() {
    let (upstream, url) = Recorder::grpc().await;
    upstream.always(Some(Answer::Status(tonic::Code::Unavailable, "down")));
    let state = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
state_dir: "{}"
limits: {{ request_timeout: 5s, retry_after: 1s }}
exporters:
  up:
    otlp:
      endpoint: "{url}"
    retry: {{ initial_interval: 20ms, max_interval: 200ms }}
    queue: {{ durable: true }}
"#,
        state.path().display()
    );
    let mut weir = Weir::with_config(&yaml);
    const N: u32 = 20;
    for n in 0..N {
        let (status, _, body) = post(
            &weir.http_url(Signal::Profiles),
            &[("content-type", "application/x-protobuf")],
            numbered(n).encode_to_vec(),
        )
        .await;
        assert_eq!(status, 200, "profile {n}: {body:?}");
    }
    weir.kill9();
    assert_eq!(
        upstream.items(),
        0,
        "the upstream was down: all of it is on disk only"
    );

    upstream.always(None);
    let _weir = Weir::with_config(&yaml);
    let got = upstream.wait_for_items(3 * N as usize).await;
    let frames = frames_by_profile(&got);
    assert_eq!(
        frames.len(),
        N as usize,
        "every acknowledged profile arrives"
    );
    for (n, frames) in frames {
        // Each profile's stacks still name its own functions (main-n, handle_request-n).
        assert!(!frames.is_empty());
        for f in &frames {
            assert!(f.ends_with(&format!("-{n}")), "profile {n} points at {f}");
        }
    }
    // The upstream took the backlog in fewer requests than there were profiles: parts merged.
    let accepted = upstream.raw().len();
    assert!(
        accepted < N as usize,
        "{accepted} requests for {N} profiles"
    );
}

/// A resource attribute's string value in every profiles request `payloads` hold.
fn resource_values(payloads: &[Payload], key: &str) -> Vec<Option<String>> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Profiles(r) => Some(r),
            _ => None,
        })
        .flat_map(|r| &r.resource_profiles)
        .map(|rp| {
            rp.resource
                .as_ref()
                .and_then(|r| attr_text(&r.attributes, key))
        })
        .collect()
}

/// The frozen 0.2.0 build of `set-attribute` (`tests/data/filters-v0.2.0/`).
fn set_attribute_v02() -> String {
    format!(
        "{}/../tests/data/filters-v0.2.0/set_attribute.wasm",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_0_2_module_passes_profiles_by_and_a_0_3_module_sees_them_in_one_chain() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
pipelines:
  profiles:
    exporters: [up]
    filters:
      - {{ name: old, module: "{old}", config: {{ key: v02, value: "yes" }} }}
      - {{ name: new, module: "{new}", config: {{ key: v03, value: "yes", drop_if_sample_type: alloc }} }}
"#,
        old = set_attribute_v02(),
        new = crate::filters::wasm("set-attribute"),
    ));
    // Two profiles: the example's (cpu, 3 samples) and one of type `alloc` (dropped by the filter).
    let mut r = example_request();
    let mut alloc = r.resource_profiles[0].scope_profiles[0].profiles[0].clone();
    let d = r.dictionary.as_mut().unwrap();
    d.string_table.push("alloc".into());
    alloc.sample_type.as_mut().unwrap().type_strindex = (d.string_table.len() - 1) as i32;
    alloc.samples.truncate(1);
    r.resource_profiles[0].scope_profiles[0]
        .profiles
        .push(alloc);
    let (status, _, body) = post(
        &weir.http_url(Signal::Profiles),
        &[("content-type", "application/x-protobuf")],
        r.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body:?}");
    let got = upstream.wait_for_items(3).await;
    let Payload::Profiles(out) = &got[0] else {
        panic!("not profiles")
    };
    let profiles = &out.resource_profiles[0].scope_profiles[0].profiles;
    assert_eq!(profiles.len(), 1, "the alloc profile was dropped");
    assert_eq!(profiles[0].samples.len(), 3);
    assert_eq!(resource_values(&got, "v03"), [Some("yes".to_string())]);
    assert_eq!(
        resource_values(&got, "v02"),
        [None],
        "0.2 filters pass profiles by"
    );
    assert_eq!(
        weir.metric(r#"weir_filter_counter_total{signal="profiles",filter="new",name="samples"}"#)
            .await,
        3.0,
        "the 0.3 filter read the kept profile's sample count"
    );
    // Both are loaded, each at its own interface version.
    let (status, _, body) = get(&format!("http://{}/v1/filters", weir.admin)).await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let versions: Vec<String> = list["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["stats"]["interface"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        versions.contains(&"0.2.0".to_string()) && versions.contains(&"0.3.1".to_string()),
        "{versions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_router_routes_profiles_by_resource_attribute_and_by_tenant() {
    let (a, a_url) = Recorder::grpc().await;
    let (b, b_url) = Recorder::grpc().await;
    let weir = Weir::with_config(&format!(
        r#"
receivers:
  otlp:
    grpc: {{ endpoint: 127.0.0.1:0 }}
    http:
      endpoint: 127.0.0.1:0
      auth:
        tokens: [{{ token: alpha-token, tenant: team-a }}, {{ token: bravo-token, tenant: team-b }}]
exporters:
  a: {{ otlp: {{ endpoint: "{a_url}" }} }}
  b: {{ otlp: {{ endpoint: "{b_url}" }} }}
pipelines:
  profiles:
    exporters: [a, b]
    filters:
      - name: route
        module: "{router}"
        config:
          routes:
            - {{ from: resource_attribute, key: service.name, exact: checkout, exporters: [a] }}
            - {{ from: tenant, exact: team-b, exporters: [b] }}
          default: [a]
"#,
        router = crate::filters::wasm("router"),
    ));
    let send = |service: &str, token: &str| {
        let mut r = example_request();
        r.resource_profiles[0].resource.as_mut().unwrap().attributes =
            vec![kv("service.name", service)];
        let url = weir.http_url(Signal::Profiles);
        let auth = format!("Bearer {token}");
        async move {
            post(
                &url,
                &[
                    ("content-type", "application/x-protobuf"),
                    ("authorization", &auth),
                ],
                r.encode_to_vec(),
            )
            .await
            .0
        }
    };
    // By resource attribute, whatever the tenant: to a.
    assert_eq!(send("checkout", "bravo-token").await, 200);
    a.wait_for_items(3).await;
    assert_eq!(b.items(), 0);
    // Another service of team-b: by tenant, to b.
    assert_eq!(send("billing", "bravo-token").await, 200);
    let got = b.wait_for_items(3).await;
    assert_eq!(
        resource_values(&got, "service.name"),
        [Some("billing".to_string())]
    );
    // Another service of team-a: no rule matches, the default.
    assert_eq!(send("billing", "alpha-token").await, 200);
    a.wait_for_items(6).await;
    assert_eq!(b.items(), 3);
    assert_eq!(
        weir.metric(
            r#"weir_filter_counter_total{signal="profiles",filter="route",name="matched"}"#
        )
        .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_redactor_masks_secrets_in_profiles_resource_and_scope_attributes() {
    let (upstream, url) = Recorder::grpc().await;
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
pipelines:
  profiles:
    exporters: [up]
    filters:
      - {{ name: redact, module: "{redactor}" }}
"#,
        redactor = crate::filters::wasm("redactor"),
    ));
    let mut r = example_request();
    r.resource_profiles[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(kv("owner", "alice@example.com"));
    r.resource_profiles[0].scope_profiles[0]
        .scope
        .as_mut()
        .unwrap()
        .attributes
        .push(kv("note", "card 4111 1111 1111 1111"));
    let (status, _, _) = post(
        &weir.http_url(Signal::Profiles),
        &[("content-type", "application/x-protobuf")],
        r.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let got = upstream.wait_for_items(3).await;
    let owner = resource_values(&got, "owner");
    assert_eq!(owner.len(), 1);
    let owner = owner[0].clone().unwrap();
    assert!(!owner.contains("alice@example.com"), "{owner}");
    let Payload::Profiles(out) = &got[0] else {
        unreachable!()
    };
    let note = attr_text(
        &out.resource_profiles[0].scope_profiles[0]
            .scope
            .as_ref()
            .unwrap()
            .attributes,
        "note",
    )
    .unwrap();
    assert!(!note.contains("4111 1111 1111 1111"), "{note}");
    // The dictionary's strings are not attributes a filter sees: they pass as they came.
    assert_eq!(out.dictionary, r.dictionary);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_0_3_filter_without_process_profiles_passes_profiles_by() {
    let (upstream, url) = Recorder::grpc().await;
    let module = crate::filters::wasm("no-profiles");
    let weir = Weir::with_config(&format!(
        r#"
exporters:
  up: {{ otlp: {{ endpoint: "{url}" }} }}
pipelines:
  traces:
    exporters: [up]
    filters: [{{ name: tag, module: "{module}" }}]
  profiles:
    exporters: [up]
    filters: [{{ name: tag, module: "{module}" }}]
"#
    ));
    for (signal, file) in [
        (Signal::Profiles, "profiles.json"),
        (Signal::Traces, "trace.json"),
    ] {
        let (status, _, _) = post(
            &weir.http_url(signal),
            &[("content-type", "application/json")],
            example(file),
        )
        .await;
        assert_eq!(status, 200, "{signal}");
    }
    let got = upstream.wait_for_items(4).await;
    assert_eq!(
        resource_values(&got, "no-profiles.seen"),
        [None],
        "profiles passed by"
    );
    let Some(Payload::Traces(t)) = got.iter().find(|p| p.signal() == Signal::Traces) else {
        panic!("no traces")
    };
    let res = &t.resource_spans[0].resource.as_ref().unwrap().attributes;
    assert_eq!(
        attr_text(res, "no-profiles.seen").as_deref(),
        Some("true"),
        "it sees traces"
    );
}

#[test]
fn filter_test_runs_a_filter_on_profiles_offline() {
    let input = format!(
        "{}/../tests/data/otlp-examples/profiles.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "filter",
            "test",
            &crate::filters::wasm("set-attribute"),
            "--input",
            &input,
        ])
        .args(["--signal", "profiles", "--config"])
        .arg(r#"{"key":"edge.zone","value":"lab","drop_if_sample_type":"samples"}"#)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "continue");
    // Items are profiles: the example's one, of sample type `samples`, dropped.
    assert_eq!(report["items_in"], 1);
    assert_eq!(report["items_dropped"], 1);
    let out_payload =
        Payload::decode_json(Signal::Profiles, report["output"].to_string().as_bytes()).unwrap();
    assert_eq!(out_payload.item_count(), 0, "{report}");
}
