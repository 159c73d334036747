//! The durable queue's tests: delivery in order, replay and the delivery cursor across restarts,
//! group commit, delivery batches, segment deletion and corrupt segments; the storage fault walks
//! are in `faults`.

use bytes::Bytes;
use tokio::sync::oneshot;

use weir_core::Encoded;
use weir_wire::record;

use super::*;

fn open(dir: &Path, max: usize, segment: u64) -> Arc<DurableQueue> {
    DurableQueue::open(dir, "q", layout(max, segment), Arc::new(Metrics::new())).unwrap()
}

fn layout(max_bytes: usize, segment_bytes: u64) -> Layout {
    Layout {
        max_bytes,
        segment_bytes,
        max_record_bytes: 2 << 20,
        sync: true,
        // Only when a queue closes: the fault walk counts every call a run makes.
        cursor_every: Duration::from_secs(3600),
    }
}

fn encoded(body: &[u8]) -> Encoded {
    Encoded::trusted(Signal::Traces, Bytes::copy_from_slice(body), 1)
}

async fn put(q: &Arc<DurableQueue>, body: &[u8]) -> u64 {
    let permit = q.reserve(body.len(), None).expect("room");
    q.append(encoded(body), None, permit).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn delivers_in_order_and_replays_what_was_not_done_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path(), 1 << 20, 64);
    for i in 0..5u8 {
        put(&q, &[i; 10]).await;
    }
    let first = q.next().await;
    assert_eq!(q.read(&first).unwrap(), Bytes::from(vec![0u8; 10]));
    q.done(&first);
    let second = q.next().await;
    assert_eq!(second.seq, first.seq + 1);
    // Not done: replayed after a restart, with everything after it, in order.
    drop(q);
    let q = open(dir.path(), 1 << 20, 64);
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let r = q.next().await;
        bodies.push(q.read(&r).unwrap()[0]);
        q.done(&r);
    }
    assert_eq!(bodies, [1, 2, 3, 4]);
    // New records continue the sequence.
    let seq = put(&q, b"x").await;
    assert!(seq > second.seq + 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_delivered_before_a_stop_are_not_delivered_again() {
    let dir = tempfile::tempdir().unwrap();
    // One segment for everything: without the cursor, a restart would replay all five.
    let q = open(dir.path(), 1 << 20, 1 << 20);
    for i in 0..5u8 {
        put(&q, &[i; 10]).await;
    }
    // 0 and 2 delivered; 1 handed out and not done (in flight when weir stopped).
    let (a, b, c) = (q.next().await, q.next().await, q.next().await);
    q.done(&a);
    q.done(&c);
    drop(b);
    drop(q);
    let metrics = Arc::new(Metrics::new());
    let q = DurableQueue::open(dir.path(), "q", layout(1 << 20, 1 << 20), metrics.clone()).unwrap();
    let mut bodies = Vec::new();
    while !q.shared.lock().pending.is_empty() {
        let r = q.next().await;
        bodies.push(q.read(&r).unwrap()[0]);
    }
    // From the lowest not delivered on: 2 again (it came after one in flight), never 0.
    assert_eq!(bodies, [1, 2, 3, 4]);
    assert!(
        metrics
            .render()
            .contains(r#"weir_exporter_queue_replayed_items_total{exporter="q"} 4"#)
    );
}

/// Stops the queue as kill -9 would: its last rounds are on disk, the cursor is not recorded.
fn kill(q: Arc<DurableQueue>) {
    q.shared
        .killed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    drop(q);
}

/// Hands out and finishes everything waiting, returning the first byte of each body.
async fn deliver_all(q: &Arc<DurableQueue>) -> Vec<u8> {
    let mut bodies = Vec::new();
    while !q.shared.lock().pending.is_empty() {
        let r = q.next().await;
        bodies.push(q.read(&r).unwrap()[0]);
        q.done(&r);
    }
    bodies
}

#[tokio::test(flavor = "multi_thread")]
async fn numbering_never_goes_back_below_the_delivery_cursor() {
    // Issue 20: 50 delivered, clean stop, clean stop, 5 written with the upstream down, kill -9.
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path(), 1 << 20, 64);
    for i in 0..50u8 {
        put(&q, &[i; 10]).await;
    }
    assert_eq!(deliver_all(&q).await.len(), 50);
    drop(q);
    // A run with nothing in it that records no cursor of its own: numbering starts from what
    // the disk says, and no segment is left to say it.
    kill(open(dir.path(), 1 << 20, 64));
    let q = open(dir.path(), 1 << 20, 64);
    for i in 100..105u8 {
        put(&q, &[i; 10]).await;
    }
    kill(q);
    let q = open(dir.path(), 1 << 20, 64);
    assert_eq!(deliver_all(&q).await, [100, 101, 102, 103, 104]);
}

#[tokio::test(flavor = "multi_thread")]
async fn appends_that_arrive_together_share_a_record_and_come_back_as_one_body() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path(), 1 << 20, 1 << 20);
    // Eight appends queued while the test holds the state lock: the writer can take at most the
    // first ones into a round before it blocks on the lock, and the rest make the next round.
    let guard = q.shared.lock();
    let waits: Vec<_> = (0..8u8)
        .map(|i| {
            let permit = q.reserve(4, None).unwrap();
            let q = q.clone();
            // Queued on the writer's channel in order, before any of them is awaited.
            let (done, rx) = oneshot::channel();
            q.writer
                .as_ref()
                .unwrap()
                .send(Append {
                    encoded: encoded(&[i; 4]),
                    tenant: None,
                    permit: Some(permit),
                    done,
                })
                .unwrap();
            rx
        })
        .collect();
    drop(guard);
    let mut seqs = Vec::new();
    for w in waits {
        seqs.push(w.await.unwrap().unwrap());
    }
    let batch = q.next_batch(usize::MAX, usize::MAX, Duration::ZERO).await;
    let bodies: Vec<u8> = batch
        .iter()
        .flat_map(|r| q.read(r).unwrap().to_vec())
        .collect();
    let expected: Vec<u8> = (0..8u8).flat_map(|i| [i; 4]).collect();
    assert_eq!(bodies, expected, "every body, in order");
    assert_eq!(batch.iter().map(|r| r.items).sum::<usize>(), 8);
    // Two rounds at most, one record each.
    assert!(batch.len() <= 2, "{} records for 8 appends", batch.len());
    seqs.dedup();
    assert_eq!(seqs.len(), batch.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_flush_interval_delivery_waits_for_more_until_the_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path(), 1 << 20, 1 << 20);
    put(&q, b"a").await;
    // At most two items; waits up to 30 s for the second, which comes while it waits.
    let (batch, seq) = tokio::join!(
        q.next_batch(2, usize::MAX, Duration::from_secs(30)),
        async {
            tokio::task::yield_now().await;
            put(&q, b"b").await
        }
    );
    assert_eq!(batch.len(), 2, "both, as one delivery");
    assert_eq!(batch[1].seq, seq);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_for_delivery_is_one_signal_and_tenant_within_its_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path(), 1 << 20, 1 << 20);
    for (signal, n, tenant) in [
        (Signal::Traces, 1, None),
        (Signal::Traces, 2, None),
        (Signal::Logs, 1, None),
        (Signal::Traces, 1, None),
        (Signal::Traces, 1, Some("a")),
        (Signal::Traces, 1, Some("a")),
        (Signal::Traces, 1, Some("b")),
    ] {
        let permit = q.reserve(1, tenant).unwrap();
        q.append(
            Encoded::trusted(signal, Bytes::from_static(b"x"), n),
            tenant.map(Arc::from),
            permit,
        )
        .await
        .unwrap();
    }
    let shape = |b: Vec<Record>| b.iter().map(|r| (r.signal, r.items)).collect::<Vec<_>>();
    assert_eq!(
        shape(q.next_batch(2, usize::MAX, Duration::ZERO).await),
        [(Signal::Traces, 1)],
        "two items at most"
    );
    assert_eq!(
        shape(q.next_batch(10, usize::MAX, Duration::ZERO).await),
        [(Signal::Traces, 2)]
    );
    assert_eq!(
        shape(q.next_batch(10, usize::MAX, Duration::ZERO).await),
        [(Signal::Logs, 1)]
    );
    assert_eq!(
        shape(q.next_batch(10, usize::MAX, Duration::ZERO).await),
        [(Signal::Traces, 1)],
        "no tenant and tenant a do not mix"
    );
    let tenants = |b: Vec<Record>| {
        b.iter()
            .map(|r| r.tenant.as_deref().map(str::to_string))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        tenants(q.next_batch(10, usize::MAX, Duration::ZERO).await),
        [Some("a".to_string()), Some("a".to_string())]
    );
    // None was marked done: all are replayed after a restart, each with its tenant.
    drop(q);
    let q = open(dir.path(), 1 << 20, 1 << 20);
    let mut replayed = Vec::new();
    for _ in 0..7 {
        replayed.extend(tenants(q.next_batch(1, usize::MAX, Duration::ZERO).await));
    }
    let (a, b) = (Some("a".to_string()), Some("b".to_string()));
    assert_eq!(replayed, [None, None, None, None, a.clone(), a, b]);
}

#[tokio::test(flavor = "multi_thread")]
async fn delivered_segments_are_deleted_and_their_room_given_back() {
    let dir = tempfile::tempdir().unwrap();
    // Room for about three records of 100 bytes; segments of one record each.
    let q = open(dir.path(), 3 * (100 + record::OVERHEAD), 1);
    for _ in 0..3 {
        put(&q, &[1; 100]).await;
    }
    assert!(q.reserve(100, None).is_none(), "full");
    let files = || std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files(), 3);
    for _ in 0..2 {
        let r = q.next().await;
        q.done(&r);
    }
    // Two sealed segments went; the active one stays until it rolls.
    assert_eq!(files(), 1);
    assert!(q.reserve(100, None).is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_segment_is_skipped_and_the_others_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path(), 1 << 20, 1);
    for i in 0..3u8 {
        put(&q, &[i; 50]).await;
    }
    drop(q);
    let mut segs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    // Damage the middle segment's body.
    let mut data = std::fs::read(&segs[1]).unwrap();
    let n = data.len();
    data[n - 1] ^= 0xff;
    std::fs::write(&segs[1], data).unwrap();
    let metrics = Arc::new(Metrics::new());
    let q = DurableQueue::open(dir.path(), "q", layout(1 << 20, 1), metrics.clone()).unwrap();
    let a = q.next().await;
    let b = q.next().await;
    assert_eq!((q.read(&a).unwrap()[0], q.read(&b).unwrap()[0]), (0, 2));
    let text = metrics.render();
    assert!(
        text.contains(r#"weir_exporter_queue_corrupt_segments_total{exporter="q"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"weir_exporter_queue_replayed_items_total{exporter="q"} 2"#));
}

mod faults;
