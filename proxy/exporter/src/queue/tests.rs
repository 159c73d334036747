//! The exporter queue's tests: reservations and their bounds, a job delivered and its room given
//! back, and coalescing (one signal and tenant per request, within the bounds, waiting only for a
//! flush interval).

use super::*;
use bytes::Bytes;
use weir_core::Signal;

fn queue(max_batches: usize, max_bytes: usize) -> Arc<ExporterQueue> {
    let config = QueueConfig {
        max_batches,
        max_bytes,
        concurrency: 1,
        ..Default::default()
    };
    ExporterQueue::spawn(
        "q",
        Exporter::debug("q"),
        &config,
        None,
        Arc::new(Metrics::new()),
    )
    .unwrap()
}

fn encoded(signal: Signal, items: usize, len: usize) -> Encoded {
    Encoded::trusted(signal, Bytes::from(vec![0u8; len]), items)
}

#[tokio::test]
async fn reservations_are_bounded_by_batches_and_bytes_and_given_back() {
    let q = queue(2, 100);
    let a = q.reserve(40, None).unwrap();
    let b = q.reserve(40, None).unwrap();
    assert!(q.reserve(1, None).is_err(), "two batches at most");
    drop(b);
    assert!(q.reserve(61, None).is_err(), "100 bytes at most");
    let c = q.reserve(60, None).unwrap();
    drop((a, c));
    // Larger than the whole budget: fits an empty queue.
    let big = q.reserve(1000, None).unwrap();
    assert!(q.reserve(1, None).is_err());
    drop(big);
    assert!(q.reserve(100, None).is_ok());
}

#[tokio::test]
async fn a_queued_job_is_delivered_and_its_room_given_back() {
    let q = queue(1, 100);
    let rx = q.reserve(10, None).unwrap().send(
        Encoded::trusted(Signal::Traces, Bytes::new(), 0),
        Instant::now() + Duration::from_secs(5),
    );
    let (partial, _) = rx.await.unwrap().unwrap();
    assert!(partial.is_empty());
    // The job's room comes back once it is done (the sender drops it just after answering).
    let deadline = Instant::now() + Duration::from_secs(5);
    while q.reserve(100, None).is_err() {
        assert!(Instant::now() < deadline, "room never came back");
        tokio::task::yield_now().await;
    }
    let text = q.metrics.render();
    assert!(
        text.contains("weir_exporter_queue_batches{exporter=\"q\"} 0"),
        "{text}"
    );
}

/// A job as a reservation makes it, its client not waiting.
fn job(encoded: Encoded) -> Job {
    tenant_job(encoded, None)
}

fn tenant_job(encoded: Encoded, tenant: Option<&str>) -> Job {
    let budget = Arc::new(Semaphore::new(2));
    let (ack, _) = oneshot::channel();
    let items = encoded.items();
    Job {
        encoded,
        tenant: tenant.map(Arc::from),
        deadline: Instant::now(),
        ack,
        _accounted: Accounted {
            _batch: budget.clone().try_acquire_owned().unwrap(),
            _bytes: budget.try_acquire_owned().unwrap(),
            size: 0,
            items,
            name: Arc::from("q"),
            metrics: Arc::new(Metrics::new()),
        },
    }
}

/// Jobs put on a channel directly, the way reservations do, for the coalescer to group.
fn coalescer(config: CoalesceConfig, jobs: Vec<Encoded>) -> Coalescer {
    let (tx, rx) = mpsc::channel(jobs.len().max(1));
    for encoded in jobs {
        tx.try_send(job(encoded)).unwrap();
    }
    Coalescer {
        rx,
        held: None,
        config,
    }
}

fn shape(group: &[Job]) -> Vec<(Signal, usize)> {
    group
        .iter()
        .map(|j| (j.encoded.signal(), j.encoded.items()))
        .collect()
}

#[tokio::test]
async fn waiting_jobs_of_one_signal_merge_within_the_bounds() {
    let config = CoalesceConfig {
        max_items: 10,
        max_bytes: 1000,
        flush_interval: Duration::ZERO,
    };
    let t = Signal::Traces;
    let mut c = coalescer(
        config,
        vec![
            encoded(t, 4, 10),
            encoded(t, 4, 10),
            // Would make 12 items: starts the next group.
            encoded(t, 4, 10),
            // Another signal: a group of its own.
            encoded(Signal::Logs, 1, 10),
            // Alone above the byte bound: goes whole, on its own.
            encoded(t, 1, 5000),
            encoded(t, 1, 10),
        ],
    );
    assert_eq!(shape(&c.next().await.unwrap()), [(t, 4), (t, 4)]);
    assert_eq!(shape(&c.next().await.unwrap()), [(t, 4)]);
    assert_eq!(shape(&c.next().await.unwrap()), [(Signal::Logs, 1)]);
    assert_eq!(shape(&c.next().await.unwrap()), [(t, 1)]);
    assert_eq!(shape(&c.next().await.unwrap()), [(t, 1)]);
}

#[tokio::test]
async fn jobs_of_different_tenants_are_never_merged() {
    let (tx, rx) = mpsc::channel::<Job>(8);
    let t = Signal::Traces;
    for tenant in [Some("a"), Some("a"), Some("b"), None, None] {
        tx.try_send(tenant_job(encoded(t, 1, 10), tenant)).unwrap();
    }
    drop(tx);
    let mut c = Coalescer {
        rx,
        held: None,
        config: CoalesceConfig::default(),
    };
    let mut groups = Vec::new();
    while let Some(g) = c.next().await {
        groups.push(
            g.iter()
                .map(|j| j.tenant.as_deref().map(str::to_string))
                .collect::<Vec<_>>(),
        );
    }
    let (a, b) = (Some("a".to_string()), Some("b".to_string()));
    assert_eq!(groups, [vec![a.clone(), a], vec![b], vec![None, None]]);
}

#[tokio::test]
async fn without_a_flush_interval_a_sender_takes_only_what_waits() {
    let (tx, rx) = mpsc::channel::<Job>(4);
    let mut c = Coalescer {
        rx,
        held: None,
        config: CoalesceConfig::default(),
    };
    let span = || job(encoded(Signal::Traces, 1, 10));
    tx.try_send(span()).unwrap();
    // Nothing else is waiting: the group is the one job, at once, with no timer involved.
    assert_eq!(c.next().await.unwrap().len(), 1);
    // With an interval, a job sent while the sender waits joins its group.
    c.config.flush_interval = Duration::from_secs(30);
    tx.try_send(span()).unwrap();
    let late = span();
    let (group, ()) = tokio::join!(c.next(), async {
        tokio::task::yield_now().await;
        tx.send(late).await.unwrap();
        drop(tx);
    });
    assert_eq!(group.unwrap().len(), 2);
}
