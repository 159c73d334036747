//! The storage fault walk (issue 13): a scenario of appends, a delivery, a dead-lettered record
//! and more appends, run once per file-system call it makes with that call failing, then a crash
//! (only synced bytes and synced names survive) and a recovery.
//! Two more walks: each call of a recovery failing in turn, and four runs under every sequence of
//! clean stops, kills, kills between the cursor's write and its rename, and power losses.

use std::collections::BTreeSet;

use weir_core::fs::sim::{Op, SimDisk};

use super::*;

const DIR: &str = "/state/queues/q";
const BODY: usize = 60;

#[derive(Debug, Default)]
struct Run {
    acked: BTreeSet<u8>,
    refused: BTreeSet<u8>,
    /// Given to a sender in this run (read back and delivered, or dead-lettered).
    handed_out: BTreeSet<u8>,
    /// Delivered upstream.
    delivered: BTreeSet<u8>,
    /// Let go after a dead-letter write: only the dead-letter file holds them now.
    dead: BTreeSet<u8>,
}

fn ids(body: &[u8]) -> impl Iterator<Item = u8> + '_ {
    body.chunks(BODY).map(|c| c[0])
}

fn queue_on(disk: &SimDisk) -> Result<Arc<DurableQueue>, DurableError> {
    DurableQueue::open_on(
        Arc::new(disk.clone()),
        Path::new(DIR),
        "q",
        // Two records a segment: the scenario rolls, seals and deletes segments.
        layout(1 << 20, 2 * (BODY + record::OVERHEAD) as u64),
        Arc::new(Metrics::new()),
    )
}

fn pending(q: &DurableQueue) -> usize {
    q.shared.lock().pending.len()
}

async fn append(q: &Arc<DurableQueue>, run: &mut Run, id: u8) {
    let permit = q.reserve(BODY, None).expect("room");
    match q.append(encoded(&[id; BODY]), None, permit).await {
        Ok(_) => run.acked.insert(id),
        Err(_) => run.refused.insert(id),
    };
}

/// Reads a record back as a sender does: a failed read is retried (the fault fires once).
fn read_back(q: &DurableQueue, r: &Record) -> Bytes {
    q.read(r).or_else(|_| q.read(r)).expect("read back")
}

async fn deliver_one(q: &Arc<DurableQueue>, run: &mut Run) {
    if pending(q) == 0 {
        return;
    }
    let r = q.next().await;
    let body = read_back(q, &r);
    run.handed_out.extend(ids(&body));
    run.delivered.extend(ids(&body));
    q.done(&r);
}

async fn dead_letter_one(q: &Arc<DurableQueue>, run: &mut Run) {
    if pending(q) == 0 {
        return;
    }
    let r = q.next().await;
    let body = read_back(q, &r);
    run.handed_out.extend(ids(&body));
    let parts = [Encoded::trusted(r.signal, body.clone(), r.items)];
    // As a sender holds and retries a dead-letter write that failed.
    let written = (0..3).any(|_| {
        q.dead_letter(r.seq, r.enqueued_unix_ms, None, &parts)
            .is_ok()
    });
    assert!(
        written,
        "a dead-letter write succeeds once its fault has fired"
    );
    run.dead.extend(ids(&body));
    q.done(&r);
}

/// Opens the queue again after a stop. A start that fails (a fault while reading what is
/// there) leaves everything in place, and the next start succeeds.
fn reopen(disk: &SimDisk) -> Arc<DurableQueue> {
    queue_on(disk)
        .or_else(|_| queue_on(disk))
        .expect("the second start, its fault fired")
}

async fn scenario(disk: &SimDisk) -> Result<Run, DurableError> {
    let q = queue_on(disk)?;
    let mut run = Run::default();
    for id in 0..4 {
        append(&q, &mut run, id).await;
    }
    deliver_one(&q, &mut run).await;
    dead_letter_one(&q, &mut run).await;
    // A clean stop (the cursor is recorded) and a start.
    drop(q);
    let q = reopen(disk);
    for id in 4..8 {
        append(&q, &mut run, id).await;
    }
    deliver_one(&q, &mut run).await;
    deliver_one(&q, &mut run).await;
    // kill -9 and a start.
    kill(q);
    let q = reopen(disk);
    deliver_one(&q, &mut run).await;
    append(&q, &mut run, 8).await;
    // Whatever failed, the queue takes the next request.
    if run.refused.contains(&8) {
        append(&q, &mut run, 9).await;
    }
    Ok(run)
}

/// What a restart on `disk` finds: the records replayed and the dead-lettered ones.
fn recover(disk: &SimDisk) -> Result<BTreeSet<u8>, DurableError> {
    let q = queue_on(disk)?;
    let mut found = BTreeSet::new();
    let records: Vec<Record> = q.shared.lock().pending.iter().cloned().collect();
    for r in &records {
        found.extend(ids(&q.read(r)?));
    }
    let dead = Path::new(DIR).join("dead-letter");
    let paths = match disk.list(&dead) {
        Ok(paths) => paths,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(&dead)(e)),
    };
    for path in paths {
        let data = Bytes::from(disk.read(&path).map_err(io(&path))?);
        let batch = crate::dead_letter::parse(&path, data).expect("a whole dead-letter file");
        for req in batch.requests {
            found.extend(ids(&req.body));
        }
    }
    Ok(found)
}

fn check(what: &str, run: &Run, after_crash: &BTreeSet<u8>) {
    let lost: Vec<u8> = run
        .acked
        .iter()
        .filter(|id| !run.delivered.contains(*id) && !after_crash.contains(*id))
        .copied()
        .collect();
    assert!(
        lost.is_empty(),
        "{what}: acknowledged, then lost: {lost:?} ({run:?}, found {after_crash:?})"
    );
    assert!(
        run.refused.len() <= 1,
        "{what}: one fault refuses one request at most: {run:?}"
    );
    for refused in &run.refused {
        assert!(
            run.acked.contains(&(refused + 1)),
            "{what}: the queue keeps serving after the fault: {run:?}"
        );
    }
    let sent_refused: Vec<_> = run.refused.intersection(&run.handed_out).collect();
    assert!(
        sent_refused.is_empty(),
        "{what}: refused, yet delivered: {sent_refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_failing_storage_call_loses_nothing_acknowledged_and_the_queue_keeps_serving() {
    // The calls a fault-free run makes, by kind.
    let clean = SimDisk::new();
    let run = scenario(&clean).await.unwrap();
    assert_eq!(run.acked.len(), 9, "{run:?}");
    check("no fault", &run, &recover(&clean.crash()).unwrap());
    let steps = clean.counts();
    for op in [
        Op::Append,
        Op::Sync,
        Op::Create,
        Op::SyncDir,
        Op::Remove,
        Op::Rename,
        Op::ReadAt,
    ] {
        assert!(
            steps.contains_key(&op),
            "the scenario never calls {op:?}: {steps:?}"
        );
    }
    let mut faults: Vec<Vec<(Op, usize)>> = steps
        .iter()
        .flat_map(|(&op, &n)| (1..=n).map(move |nth| vec![(op, nth)]))
        .collect();
    // A torn write whose cut-off fails as well.
    faults.extend((1..=steps[&Op::Append]).map(|nth| vec![(Op::Append, nth), (Op::SetLen, 1)]));
    let (mut walked, mut cut_failed) = (0, 0);
    for fault in faults {
        let what = format!("{fault:?}");
        let disk = SimDisk::new();
        for &(op, nth) in &fault {
            disk.fail_next(op, nth);
        }
        match scenario(&disk).await {
            Ok(run) => {
                // A cut-off fails only after a torn segment write (a dead-letter file's
                // failed write is removed instead).
                let fired = disk.fired();
                assert_eq!(fired.first(), fault.first(), "{what}: the fault fired");
                cut_failed += usize::from(fired.len() == 2);
                check(&what, &run, &recover(&disk.crash()).unwrap());
            }
            // Failing to open the directory is weir refusing to start, with an error: no
            // request was taken.
            Err(e) => assert!(
                matches!(fault[0].0, Op::CreateDir | Op::List),
                "{what}: opening failed: {e}"
            ),
        }
        walked += 1;
    }
    assert!(walked > 40, "{walked} faults walked");
    assert!(cut_failed > 0, "no torn write whose cut-off failed");
}

/// How a run of the restart walk ends.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// The queue closes and records the cursor.
    Clean,
    /// kill -9: what was written stays, the cursor is not recorded.
    Kill,
    /// Killed between writing the cursor's temporary file and renaming it into place.
    CursorTorn,
    /// A power loss: only synced bytes and names stay.
    PowerLoss,
}

fn stop(q: Arc<DurableQueue>, disk: SimDisk, how: Stop) -> SimDisk {
    match how {
        Stop::Clean => drop(q),
        Stop::Kill => kill(q),
        Stop::CursorTorn => {
            // Closing writes cursor.tmp and renames it: the rename never happens.
            disk.fail_next(Op::Rename, 1);
            drop(q);
        }
        Stop::PowerLoss => {
            kill(q);
            return disk.crash();
        }
    }
    disk
}

#[tokio::test(flavor = "multi_thread")]
async fn no_sequence_of_stops_kills_and_power_losses_loses_an_acknowledged_record() {
    use Stop::*;
    // Each run's work: everything written and delivered (no segment left), nothing at all,
    // a backlog that outlives the run, and a run that writes while the upstream is down.
    const RUNS: usize = 4;
    let mut walked = 0;
    for combo in 0..4usize.pow(RUNS as u32) {
        let stops: Vec<Stop> = (0..RUNS)
            .map(|i| [Clean, Kill, CursorTorn, PowerLoss][combo / 4usize.pow(i as u32) % 4])
            .collect();
        let mut disk = SimDisk::new();
        let mut run = Run::default();
        let mut next_id = 0u8;
        for (i, &how) in stops.iter().enumerate() {
            let q = queue_on(&disk).unwrap();
            let (appends, deliveries) = match i {
                0 => (5, usize::MAX),
                1 => (0, 0),
                2 => (3, 1),
                _ => (2, 0),
            };
            if i == 3 {
                while pending(&q) > 0 {
                    deliver_one(&q, &mut run).await;
                }
            }
            for _ in 0..appends {
                append(&q, &mut run, next_id).await;
                next_id += 1;
            }
            let mut n = 0;
            while n < deliveries && pending(&q) > 0 {
                deliver_one(&q, &mut run).await;
                n += 1;
            }
            disk = stop(q, disk, how);
        }
        let found = recover(&disk).unwrap();
        check(&format!("{stops:?}"), &run, &found);
        assert!(run.refused.is_empty(), "{stops:?}: {run:?}");
        walked += 1;
    }
    assert_eq!(walked, 256);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_call_during_recovery_is_an_error_or_a_whole_replay_never_a_loss() {
    let disk = SimDisk::new();
    let run = scenario(&disk).await.unwrap();
    let crashed = disk.crash();
    let all = recover(&crashed).unwrap();
    check("no fault", &run, &all);
    let steps = {
        let probe = disk.crash();
        recover(&probe).unwrap();
        probe.counts()
    };
    for (&op, &n) in &steps {
        for nth in 1..=n {
            let after = disk.crash();
            after.fail_next(op, nth);
            match recover(&after) {
                Ok(found) => check(&format!("recovery {op:?} #{nth}"), &run, &found),
                // Refusing to start leaves everything in place for the next start.
                Err(_) => assert_eq!(recover(&after).unwrap(), all, "{op:?} #{nth}"),
            }
        }
    }
}
