//! The journal: after `kill -9` during steady ingest, a restarted collector writes from its
//! journal everything acknowledged before the last journal sync, and counts it exactly once; a
//! journal disk that fills up makes the collector refuse, never acknowledge what it cannot keep.

use super::backpressure::{
    POINTS_PER_REQUEST, POINTS_STORED_TWICE, SPANS_STORED_TWICE, metrics_request_of, request,
    send_metric_requests,
};
use plumb_otlp::client::{METRICS_EXPORT_PATH, RawGrpcClient, TRACE_EXPORT_PATH};
use plumb_test_support::*;
use prost::Message;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_histograms_never_flushed_come_from_the_journal() {
    // Histograms are never flushed before the crash, so all of them come from the journal;
    // span rows are written every second, so some are in ClickHouse already.
    kill_and_restart("1h", "100ms").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_flushed_generations_are_not_counted_again() {
    // Flushes five times a second, the journal is cleaned once a second: it holds flushed
    // generations not yet removed, whose replay must find their flush markers and add nothing.
    let replayed = kill_and_restart("200ms", "1s").await;
    assert!(replayed > 1, "{replayed} generations replayed");
}

/// Sends steadily to a collector flushing histograms every `flush_interval` and syncing its
/// journal every `sync`, kills it with SIGKILL, restarts it on the same journal and checks what
/// ClickHouse holds; returns how many journal generations the restart replayed.
async fn kill_and_restart(flush_interval: &str, sync: &str) -> u64 {
    let database = unique_database("crash");
    let dirs = tempfile::tempdir().expect("dirs");
    let journal_dir = dirs.path().join("journal").display().to_string();
    let spool_dir = dirs.path().join("spool").display().to_string();
    let settings = [
        "--journal-dir",
        &journal_dir,
        "--spool-dir",
        &spool_dir,
        "--journal-sync",
        sync,
        "--trace-window",
        "0",
    ];
    let mut first_settings = settings.to_vec();
    first_settings.extend(["--flush-interval", flush_interval]);
    let first = Collector::start(&database, &first_settings).await;

    let acknowledged = Arc::new(AtomicU64::new(0));
    let attempted = Arc::new(AtomicU64::new(0));
    let points_acknowledged = Arc::new(AtomicU64::new(0));
    let points_attempted = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (acknowledged, attempted, stop) =
            (acknowledged.clone(), attempted.clone(), stop.clone());
        let (points_acknowledged, points_attempted) =
            (points_acknowledged.clone(), points_attempted.clone());
        let mut client = RawGrpcClient::connect(first.grpc_url(), TRACE_EXPORT_PATH, None)
            .await
            .expect("connect");
        let mut metrics_client =
            RawGrpcClient::connect(first.grpc_url(), METRICS_EXPORT_PATH, None)
                .await
                .expect("connect");
        tokio::spawn(async move {
            let mut seed = 0;
            while !stop.load(Ordering::Relaxed) {
                seed += 1;
                attempted.fetch_add(100, Ordering::SeqCst);
                if client
                    .send(request(seed).encode_to_vec().into())
                    .await
                    .is_err()
                {
                    return;
                }
                acknowledged.fetch_add(100, Ordering::SeqCst);
                // A metric request after every fifth trace request.
                if seed % 5 == 0 {
                    points_attempted.fetch_add(POINTS_PER_REQUEST, Ordering::SeqCst);
                    let body = metrics_request_of(seed).encode_to_vec();
                    if metrics_client.send(body.into()).await.is_err() {
                        return;
                    }
                    points_acknowledged.fetch_add(POINTS_PER_REQUEST, Ordering::SeqCst);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Everything acknowledged by now is synced within `sync`; the crash comes later, while
    // requests keep coming.
    let acknowledged_before_sync = acknowledged.load(Ordering::SeqCst);
    let points_before_sync = points_acknowledged.load(Ordering::SeqCst);
    assert!(acknowledged_before_sync >= 1000, "the sender is running");
    let sync_every = humantime::parse_duration(sync).expect("duration");
    tokio::time::sleep(sync_every * 2 + Duration::from_millis(300)).await;
    first.kill();
    stop.store(true, Ordering::Relaxed);
    let _ = sender.await;
    let attempted = attempted.load(Ordering::SeqCst);
    let points_attempted = points_attempted.load(Ordering::SeqCst);

    let second = Collector::start(&database, &settings).await;
    let log = second.log();
    let replayed = log
        .lines()
        .find(|l| l.contains("journal replayed"))
        .unwrap_or_else(|| panic!("{log}"));
    eprintln!("{replayed}");
    assert!(!log.contains("could not look up"), "{log}");
    let counted = query_number(
        &database,
        "SELECT sum(requests) FROM latency_minute WHERE service != ''",
    )
    .await;
    let distinct_spans =
        query_number(&database, "SELECT uniqExact(trace_id, span_id) FROM spans").await;
    // Rows the writers stored before the crash are not written again.
    let stored_spans = query_number(&database, "SELECT count() FROM spans").await;
    assert_eq!(stored_spans, distinct_spans, "no span stored twice\n{log}");
    assert_eq!(
        query_number(&database, POINTS_STORED_TWICE).await,
        0,
        "no metric point stored twice\n{log}"
    );
    let points = query_number(&database, "SELECT count() FROM metrics").await;
    assert!(
        points_before_sync <= points && points <= points_attempted,
        "metric points acknowledged before the last sync {points_before_sync}, stored {points}, \
         sent {points_attempted}\n{log}"
    );
    assert!(
        acknowledged_before_sync <= counted
            && counted <= distinct_spans
            && distinct_spans <= attempted,
        "acknowledged before the last sync {acknowledged_before_sync}, histograms count {counted}, \
         distinct spans stored {distinct_spans}, spans sent {attempted}\n{log}"
    );
    // The journal is left with the new collector's own, empty generation only.
    let metrics = second.metrics_text().await;
    assert!(
        metrics.contains("plumb_journal_requests_replayed_total"),
        "{metrics}"
    );

    // A clean stop and another start replay nothing more: nothing counts twice.
    assert!(second.stop().await);
    let third = Collector::start(&database, &settings).await;
    assert_eq!(
        query_number(
            &database,
            "SELECT sum(requests) FROM latency_minute WHERE service != ''",
        )
        .await,
        counted
    );
    assert!(third.stop().await);
    log.split("generations=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the replay line names its generations")
}

/// What sending requests one by one got.
struct Sent {
    /// Spans acknowledged.
    acknowledged: u64,
    /// Every refusal, in order.
    refusals: Vec<tonic::Status>,
    /// Whether a request was accepted after the first refusal.
    accepted_after_refusal: bool,
}

/// Sends the requests of `seeds` (100 spans each) one by one, `pause` apart, without retrying.
async fn send_each(
    collector: &Collector,
    seeds: std::ops::RangeInclusive<u64>,
    pause: Duration,
) -> Sent {
    let mut client = RawGrpcClient::connect(collector.grpc_url(), TRACE_EXPORT_PATH, None)
        .await
        .expect("connect");
    let mut sent = Sent {
        acknowledged: 0,
        refusals: Vec::new(),
        accepted_after_refusal: false,
    };
    for seed in seeds {
        match client.send(request(seed).encode_to_vec().into()).await {
            Ok(_) => {
                sent.acknowledged += 100;
                sent.accepted_after_refusal |= !sent.refusals.is_empty();
            }
            Err(status) => sent.refusals.push(status),
        }
        tokio::time::sleep(pause).await;
    }
    sent
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    /// Mounts a tmpfs of `size` (e.g. `256k`); `None` where mounting is not allowed.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("mount point");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_disk_is_refused_with_unavailable_and_nothing_acknowledged_is_lost() {
    let Some(disk) = SmallDisk::mount("256k") else {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    };
    let database = unique_database("journal_full");
    let journal_dir = disk.0.path().display().to_string();
    let collector = Collector::start(
        &database,
        &[
            "--journal-dir",
            &journal_dir,
            "--journal-sync",
            "100ms",
            "--trace-window",
            "0",
        ],
    )
    .await;
    // About 25 kB a request: the disk holds ten. Refusals come first, then (as flushed
    // generations are removed) acceptance again.
    let sent = send_each(&collector, 1..=300, Duration::from_millis(10)).await;
    let acknowledged = sent.acknowledged;
    for status in &sent.refusals {
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    }
    let refusal = sent
        .refusals
        .first()
        .expect("the full disk made the collector refuse");
    assert!(refusal.message().contains("journal"), "{refusal:?}");
    assert!(
        sent.accepted_after_refusal,
        "accepting again once there is room"
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let counted = query_number(
            &database,
            "SELECT sum(requests) FROM latency_minute WHERE service != ''",
        )
        .await;
        let stored = query_number(&database, "SELECT count() FROM spans").await;
        if (counted, stored) == (acknowledged, acknowledged) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{counted} counted, {stored} stored of {acknowledged}\n{}",
            collector.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(collector.stop().await, "no panic: clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_at_its_limit_pushes_back_and_keeps_what_it_acknowledged() {
    let database = unique_database("journal_limit");
    // Histograms are not flushed until shutdown, so no generation can go and the journal fills.
    let collector = Collector::start(
        &database,
        &[
            "--journal-max-bytes",
            "200000",
            "--max-request-bytes",
            "100000",
            "--flush-interval",
            "1h",
            "--trace-window",
            "0",
        ],
    )
    .await;
    let sent = send_each(&collector, 1..=30, Duration::ZERO).await;
    let acknowledged = sent.acknowledged;
    let refusal = sent.refusals.first().expect("the full journal pushed back");
    assert_eq!(
        refusal.code(),
        tonic::Code::ResourceExhausted,
        "{refusal:?}"
    );
    assert!(
        tonic_types::StatusExt::get_details_retry_info(refusal).is_some(),
        "a retry hint: {refusal:?}"
    );
    assert!(acknowledged >= 100, "some accepted before the limit");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = collector.metrics_text().await;
    let held: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("plumb_journal_bytes ")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(held > 0 && held <= 200_000, "{held} bytes in the journal");

    // Everything acknowledged is written by the shutdown flush, and only that.
    assert!(collector.stop().await);
    assert_eq!(
        query_number(
            &database,
            "SELECT sum(requests) FROM latency_minute WHERE service != ''"
        )
        .await,
        acknowledged
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_stored_before_a_crash_but_not_noted_are_found_and_not_written_again() {
    let database = unique_database("crash_probe");
    let dirs = tempfile::tempdir().expect("dirs");
    let journal_dir = dirs.path().join("journal");
    let journal_arg = journal_dir.display().to_string();
    let settings = ["--journal-dir", &journal_arg, "--trace-window", "0"];
    let mut first_settings = settings.to_vec();
    first_settings.extend(["--flush-interval", "1h"]);
    let first = Collector::start(&database, &first_settings).await;
    let mut client = RawGrpcClient::connect(first.grpc_url(), TRACE_EXPORT_PATH, None)
        .await
        .expect("connect");
    for seed in 1..=20 {
        client
            .send(request(seed).encode_to_vec().into())
            .await
            .expect("accepted");
    }
    let points = send_metric_requests(&first, 1..=5).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while query_number(&database, "SELECT count() FROM spans").await < 2000
        || query_number(&database, "SELECT count() FROM metrics").await < points
    {
        assert!(std::time::Instant::now() < deadline, "{}", first.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // As if the crash came between the INSERT and the note of it: the rows are in ClickHouse,
    // the journal does not know.
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill();
    let notes: Vec<_> = std::fs::read_dir(&journal_dir)
        .expect("journal")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".rows"))
        .collect();
    assert!(!notes.is_empty(), "the writer noted its rows");
    for note in notes {
        std::fs::remove_file(note.path()).expect("remove note");
    }

    let second = Collector::start(&database, &settings).await;
    let log = second.log();
    assert!(log.contains("found_stored=25"), "{log}");
    assert_eq!(
        query_number(&database, "SELECT count() FROM spans").await,
        2000,
        "no span stored twice"
    );
    assert_eq!(query_number(&database, SPANS_STORED_TWICE).await, 0);
    assert_eq!(
        query_number(&database, "SELECT count() FROM metrics").await,
        points,
        "no metric point stored twice"
    );
    assert_eq!(
        query_number(
            &database,
            "SELECT sum(requests) FROM latency_minute WHERE service != ''"
        )
        .await,
        2000
    );
    assert!(second.stop().await);
}
