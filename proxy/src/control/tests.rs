//! The control plane's tests: rollbacks racing quarantines, changes that cannot be recorded, module
//! names that are paths, and collecting unused modules.

use tokio::sync::mpsc;

use super::store::modules_dir;
use super::*;
use weir_core::config::{FilterLimits, OnError};
use weir_filter::Quarantined;
use weir_pipeline::Pipeline;

/// A manager with a traces pipeline and no exporters, and the sha256 of an uploaded module.
async fn manager(state_dir: Option<PathBuf>) -> (Arc<Manager>, String) {
    let metrics = Arc::new(Metrics::new());
    let runtime = Arc::new(Runtime::new(None).unwrap());
    let mut pipelines = Pipelines::default();
    pipelines.insert(Pipeline::new(
        Signal::Traces,
        Chain::new(Vec::new()),
        &[],
        Arc::default(),
        metrics.clone(),
    ));
    let (tx, _rx) = mpsc::unbounded_channel();
    let m = Manager::new(runtime, Arc::new(pipelines), metrics, state_dir, tx);
    let bytes = include_bytes!("../../../tests/data/filters-v0.2.0/set_attribute.wasm");
    let sha = m.upload(bytes.to_vec(), None).await.unwrap();
    (m, sha)
}

fn zone(sha: &str, value: &str) -> VersionSpec {
    VersionSpec {
        module: sha.to_string(),
        config: Some(serde_json::json!({"key": "edge.zone", "value": value})),
        on_error: OnError::FailOpen,
        limits: FilterLimits::default(),
    }
}

/// The notice a failing filter sends, for the active version of `zone`.
async fn notice_for_active(m: &Manager) -> Quarantined {
    let entries = m.entries.lock().await;
    let v = entries[&(Signal::Traces, "zone".to_string())]
        .versions
        .last()
        .unwrap();
    Quarantined {
        signal: Signal::Traces,
        name: "zone".into(),
        sha256: v.filter.module.sha256.clone(),
        id: v.filter.id(),
    }
}

async fn active_version(m: &Manager) -> u64 {
    m.list().await[0].version
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_made_after_a_quarantine_decision_is_never_rolled_back_by_it() {
    let (m, sha) = manager(None).await;
    m.put(Signal::Traces, "zone", zone(&sha, "v1"))
        .await
        .unwrap();
    m.put(Signal::Traces, "zone", zone(&sha, "v2"))
        .await
        .unwrap();
    // Version 2 fails and is quarantined; before the manager acts on it, an operator pushes a
    // fixed configuration of the same module.
    let stale = notice_for_active(&m).await;
    m.put(Signal::Traces, "zone", zone(&sha, "v3"))
        .await
        .unwrap();
    m.on_quarantined(&stale).await;
    assert_eq!(active_version(&m).await, 3, "the operator's push stays");
    // A notice about the version that is active does roll it back.
    let current = notice_for_active(&m).await;
    m.on_quarantined(&current).await;
    assert_eq!(active_version(&m).await, 2);
}

/// The config value of the filter the traces pipeline runs as `zone`, and its listed version.
async fn live_zone(m: &Manager) -> (Option<String>, Option<u64>) {
    let chain = m.pipelines.get(Signal::Traces).unwrap().chain();
    let live = chain
        .filters()
        .iter()
        .find(|f| f.name() == "zone")
        .map(|f| f.spec.config.clone());
    (live, m.list().await.first().map(|i| i.version))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_that_cannot_be_recorded_changes_nothing() {
    let state = tempfile::tempdir().unwrap();
    let (m, sha) = manager(Some(state.path().to_path_buf())).await;
    m.put(Signal::Traces, "zone", zone(&sha, "v1"))
        .await
        .unwrap();
    m.put(Signal::Traces, "zone", zone(&sha, "v2"))
        .await
        .unwrap();
    let v2 = live_zone(&m).await;
    assert_eq!(v2.1, Some(2));
    // From now on filters.json cannot be replaced: a directory stands in its place (root ignores
    // permission bits, not this).
    let recorded = state.path().join("filters.json");
    std::fs::remove_file(&recorded).unwrap();
    std::fs::create_dir_all(recorded.join("in-the-way")).unwrap();

    let err = m
        .put(Signal::Traces, "zone", zone(&sha, "v3"))
        .await
        .unwrap_err();
    assert!(matches!(err, ManageError::State(_)), "{err}");
    assert_eq!(live_zone(&m).await, v2, "a push not recorded is not live");

    let err = m.rollback(Signal::Traces, "zone").await.unwrap_err();
    assert!(matches!(err, ManageError::State(_)), "{err}");
    assert_eq!(
        live_zone(&m).await,
        v2,
        "a rollback not recorded is not live"
    );

    let err = m.remove(Signal::Traces, "zone").await.unwrap_err();
    assert!(matches!(err, ManageError::State(_)), "{err}");
    assert_eq!(
        live_zone(&m).await,
        v2,
        "a removal not recorded is not live"
    );

    let err = m
        .put(Signal::Traces, "other", zone(&sha, "new"))
        .await
        .unwrap_err();
    assert!(matches!(err, ManageError::State(_)), "{err}");
    let chain = m.pipelines.get(Signal::Traces).unwrap().chain();
    assert_eq!(
        chain.filters().len(),
        1,
        "a new filter not recorded is not live"
    );
    assert_eq!(m.list().await.len(), 1);

    // Once the state directory is writable again, changes go through, numbered on from 2.
    std::fs::remove_dir_all(&recorded).unwrap();
    let info = m
        .put(Signal::Traces, "zone", zone(&sha, "v3"))
        .await
        .unwrap();
    assert_eq!(info.version, 3);
    assert_eq!(info.previous_versions, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_name_that_is_a_path_is_refused_before_it_reaches_the_disk() {
    let state = tempfile::tempdir().unwrap();
    let (m, _) = manager(Some(state.path().to_path_buf())).await;
    // Valid modules planted where `modules/../x.wasm` and `modules/a/b.wasm` lead.
    let bytes = include_bytes!("../../../tests/data/filters-v0.2.0/set_attribute.wasm");
    std::fs::write(state.path().join("x.wasm"), bytes).unwrap();
    std::fs::create_dir_all(modules_dir(state.path()).join("a")).unwrap();
    std::fs::write(modules_dir(state.path()).join("a/b.wasm"), bytes).unwrap();
    for name in ["../x", "a/b", "..", ".", ".hidden", "", "a\\b"] {
        let err = m
            .put(Signal::Traces, "zone", zone(name, "v1"))
            .await
            .expect_err(name);
        assert!(matches!(err, ManageError::BadRequest(_)), "{name}: {err}");
    }
    assert!(m.list().await.is_empty(), "nothing was pushed");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreferenced_modules_beyond_the_newest_few_are_deleted_from_memory_and_disk() {
    let state = tempfile::tempdir().unwrap();
    let (m, used) = manager(Some(state.path().to_path_buf())).await;
    m.put(Signal::Traces, "zone", zone(&used, "v1"))
        .await
        .unwrap();
    let base = include_bytes!("../../../tests/data/filters-v0.2.0/set_attribute.wasm");
    // Distinct modules: the same component with a custom section naming it.
    let mut shas = Vec::new();
    for i in 0..KEEP_UNREFERENCED_MODULES + 2 {
        let mut bytes = base.to_vec();
        let name = format!("copy-{i}");
        bytes.extend([0, name.len() as u8 + 1, name.len() as u8]);
        bytes.extend(name.as_bytes());
        shas.push(m.upload(bytes, None).await.unwrap());
    }
    let files = |sha: &str| {
        modules_dir(state.path())
            .join(format!("{sha}.wasm"))
            .exists()
    };
    // The two uploaded first went; the newest ones stay, and so does the module in use.
    for (i, sha) in shas.iter().enumerate() {
        let kept = i >= 2;
        assert_eq!(files(sha), kept, "module {i} on disk");
        assert_eq!(
            m.runtime.cached(sha).is_some(),
            kept,
            "module {i} in memory"
        );
    }
    assert!(files(&used) && m.runtime.cached(&used).is_some());
    let text = m.metrics.render();
    assert!(
        text.contains("weir_filter_modules_collected_total 2"),
        "{text}"
    );
    // A collected module is gone: pushing it asks for an upload.
    let err = m
        .put(Signal::Traces, "zone", zone(&shas[0], "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ManageError::NotFound(_)), "{err}");
    // When a rollback leaves a version unreferenced, it is a candidate like any upload.
    m.put(Signal::Traces, "zone", zone(&shas[5], "v2"))
        .await
        .unwrap();
    m.rollback(Signal::Traces, "zone").await.unwrap();
    assert!(files(&shas[5]), "the newest upload is kept");
}
