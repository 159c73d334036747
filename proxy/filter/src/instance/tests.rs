//! Loading a filter: interface versions, and an engine without room.

use super::*;
use crate::runtime::PoolSizing;

#[test]
fn a_filter_built_against_0_2_0_links_to_the_0_2_1_host_and_says_so() {
    let runtime = Arc::new(Runtime::new(None).unwrap());
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/filters-v0.2.0/set_attribute.wasm"
    ))
    .unwrap();
    let module = runtime.compile(&bytes).unwrap();
    let spec = FilterSpec {
        name: "old".into(),
        config: r#"{"key": "k", "value": "v"}"#.into(),
        on_error: OnError::FailClosed,
        limits: Default::default(),
    };
    let metrics = Arc::new(Metrics::new());
    let filter = LoadedFilter::load(runtime, spec, module, Signal::Traces, metrics, None).unwrap();
    assert_eq!(filter.interface, "0.2.0");
    // Its instance's linear memory is on record: at least the module's initial memory, some pages.
    let memory = filter.stats.instance_memory.load(Ordering::Relaxed);
    assert!(
        (64 << 10..64 << 20).contains(&memory),
        "instance memory {memory}"
    );
}

#[test]
fn an_engine_without_a_free_slot_is_back_pressure_not_a_fault() {
    let runtime = Arc::new(
        Runtime::with_sizing(
            None,
            PoolSizing {
                instances: 1,
                memory: 64 << 20,
            },
        )
        .unwrap(),
    );
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/filters-v0.1/noop.wasm"
    ))
    .unwrap();
    let module = runtime.compile(&bytes).unwrap();
    let spec = FilterSpec {
        name: "noop".into(),
        config: String::new(),
        on_error: OnError::FailClosed,
        limits: weir_core::config::FilterLimits {
            concurrency: 2,
            ..Default::default()
        },
    };
    let metrics = Arc::new(Metrics::new());
    let filter = LoadedFilter::load(runtime, spec, module, Signal::Traces, metrics, None).unwrap();
    // The filter may have two instances, but the engine has room for one, which it holds.
    let err = filter.prewarm().unwrap_err();
    assert!(matches!(err, CallError::Busy { concurrency: 2 }), "{err}");
    assert_eq!(filter.instances(), 1);
    assert_eq!(filter.stats.errors.load(Ordering::Relaxed), 0);
}
