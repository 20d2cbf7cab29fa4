//! The tailer in-process against a local server speaking the event-service API: every line
//! written is acknowledged exactly once by id, through rotation, restarts and service
//! failures; the edge cases (long lines, bad UTF-8, partial lines, deletion, a checkpoint that
//! cannot be written) each behave as documented.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::time::Duration;

use common::{Fixture, LogWriter, checkpoint_offsets, settle, verdict, wait_for, wait_for_wall};
use tailer::Tailer;
use testkit::{IngestSink, SinkOptions, SinkResponse};

const T: Duration = Duration::from_secs(30);

async fn sink() -> IngestSink {
    IngestSink::start(SinkOptions::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_many_files_arrives_once_and_is_checkpointed() {
    let fx = Fixture::new();
    let sink = sink().await;
    let mut w = LogWriter::new(0);
    for i in 0..40 {
        w.write(&fx.log(&format!("app{i}.log")), 50 + i);
    }
    let tailer = Tailer::start(fx.config(&sink.url(), &["*.log"])).await.expect("start");
    for i in 0..40 {
        w.write(&fx.log(&format!("app{i}.log")), 25);
    }
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    assert_eq!(v.resent, 0, "{v:?}");
    assert_eq!(v.unique, w.written.len());
    // The checkpoint reaches the end of every file.
    let done = wait_for(T, || {
        let cp = checkpoint_offsets(&fx.data);
        (0..40).all(|i| {
            let p = fx.log(&format!("app{i}.log"));
            cp.get(&p).copied() == fs::metadata(&p).ok().map(|m| m.len())
        })
    })
    .await;
    assert!(done, "checkpoint {:?}", checkpoint_offsets(&fx.data));
    assert_eq!(tailer.metrics().lines_read.get(), w.written.len() as u64);
    assert_eq!(tailer.metrics().events_acked.get(), w.written.len() as u64);
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_derived_from_host_file_identity_and_offset() {
    let fx = Fixture::new();
    let sink = sink().await;
    let mut w = LogWriter::new(0);
    let path = fx.log("app.log");
    w.write(&path, 3);
    let text = fs::read_to_string(&path).expect("read");
    let first_line = &text[..=text.find('\n').expect("newline")];
    // The fingerprint: the first line, the device and inode, the generation (0 for the first
    // file followed at this inode).
    let meta = fs::metadata(&path).expect("stat");
    let mut key = first_line.as_bytes().to_vec();
    key.extend_from_slice(&std::os::unix::fs::MetadataExt::dev(&meta).to_le_bytes());
    key.extend_from_slice(&std::os::unix::fs::MetadataExt::ino(&meta).to_le_bytes());
    key.extend_from_slice(&0u32.to_le_bytes());
    let fp = xxhash_rust::xxh3::xxh3_64(&key);
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log"])).await.expect("start");
    settle(&sink, &w.written, T).await;
    let mut offset = 0u64;
    let events = sink.accepted_events();
    for line in text.lines() {
        let id = event_model::deterministic_event_id(common::HOST, fp, offset);
        let e = events.iter().find(|e| e.id == id).unwrap_or_else(|| panic!("no event with id {id}"));
        assert_eq!(e.source, common::HOST);
        assert_eq!(e.r#type, "play");
        // The event time is the syslog header's.
        let t = e.event_time.expect("event time");
        let header = event_model::parse_rfc3339(line.split(' ').next().expect("time")).expect("header time");
        assert_eq!((t.seconds, t.nanos), (header.seconds, header.nanos));
        offset += line.len() as u64 + 1;
    }
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_rotation_while_writing_loses_nothing() {
    let fx = Fixture::new();
    let sink = sink().await;
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log*"])).await.expect("start");
    let mut w = LogWriter::new(0);
    let path = fx.log("app.log");
    for round in 0..6 {
        // A logger holding its file open keeps writing to it after the rename, until it reopens.
        let mut f = OpenOptions::new().create(true).append(true).open(&path).expect("open");
        w.write_to(&mut f, 200);
        for k in (1..=round).rev() {
            let _ = fs::rename(fx.log(&format!("app.log.{k}")), fx.log(&format!("app.log.{}", k + 1)));
        }
        fs::rename(&path, fx.log("app.log.1")).expect("rotate");
        w.write_to(&mut f, 50);
        drop(f);
        w.write(&path, 100);
    }
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    assert_eq!(v.resent, 0, "{v:?}");
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_renamed_out_of_the_globs_is_read_to_its_end() {
    let fx = Fixture::new();
    let sink = sink().await;
    // Only the live name is followed: the rotated file is read to its end through the open
    // handle, then let go.
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log"])).await.expect("start");
    let mut w = LogWriter::new(0);
    let path = fx.log("app.log");
    let mut f = OpenOptions::new().create(true).append(true).open(&path).expect("open");
    w.write_to(&mut f, 300);
    assert!(sink.wait_until(T, |s| s.unique_ids >= 1).await, "tailer picked up the file");
    fs::rename(&path, fx.log("app.log.old")).expect("rotate");
    w.write_to(&mut f, 300);
    drop(f);
    w.write(&path, 100);
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    assert!(wait_for(T, || tailer.metrics().files_released.get() >= 1).await, "rotated file let go");
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_rotation_reads_the_rest_from_the_copy() {
    let fx = Fixture::new();
    let sink = sink().await;
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log*"])).await.expect("start");
    let mut w = LogWriter::new(0);
    let path = fx.log("app.log");
    for round in 0..5 {
        w.write(&path, 400);
        // The tailer follows the file (and may not have read all of it) when it is rotated.
        let seen = w.written.len() - 300;
        assert!(
            sink.wait_until(T, |s| s.unique_ids as usize >= seen).await,
            "round {round}: {:?}",
            sink.stats()
        );
        // Copy and truncate at once.
        let copy = fx.log(&format!("app.log.{round}"));
        fs::copy(&path, &copy).expect("copy");
        OpenOptions::new().write(true).open(&path).expect("open").set_len(0).expect("truncate");
        w.write(&path, 100);
    }
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    assert_eq!(v.resent, 0, "{v:?}");
    assert!(tailer.metrics().truncations.get() >= 1);
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_file_is_read_again_from_the_start() {
    let fx = Fixture::new();
    let sink = sink().await;
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log"])).await.expect("start");
    let mut w = LogWriter::new(0);
    let path = fx.log("app.log");
    w.write(&path, 500);
    let first = w.written.clone();
    assert!(sink.wait_until(T, |s| s.unique_ids as usize >= first.len()).await);
    OpenOptions::new().write(true).open(&path).expect("open").set_len(0).expect("truncate");
    // More than was there before, so only the changed first line tells of the truncation.
    w.write(&path, 800);
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    assert!(tailer.metrics().truncations.get() >= 1);
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_and_pushing_back_service_delays_but_loses_nothing() {
    let fx = Fixture::new();
    let sink = sink().await;
    sink.push_responses([
        SinkResponse::Status { code: 503, retry_after_secs: None },
        SinkResponse::Status { code: 429, retry_after_secs: Some(1) },
        SinkResponse::DropConnection,
        SinkResponse::Status { code: 500, retry_after_secs: None },
        SinkResponse::Delay(Duration::from_millis(300)),
        SinkResponse::Status { code: 502, retry_after_secs: None },
        SinkResponse::Status { code: 401, retry_after_secs: None },
        SinkResponse::Status { code: 504, retry_after_secs: None },
    ]);
    let tailer = Tailer::start(fx.config(&sink.url(), &["*.log"])).await.expect("start");
    let mut w = LogWriter::new(0);
    for i in 0..5 {
        w.write(&fx.log(&format!("app{i}.log")), 400);
    }
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    assert_eq!(v.resent, 0, "nothing was processed twice: {v:?}");
    assert!(tailer.metrics().retries.get() >= 7, "retries {}", tailer.metrics().retries.get());
    assert_eq!(sink.stats().canned, 8);
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lost_after_processing_is_resent_under_the_same_ids() {
    let fx = Fixture::new();
    let sink = sink().await;
    sink.push_responses([SinkResponse::ProcessThenDrop, SinkResponse::ProcessThenDrop]);
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log"])).await.expect("start");
    let mut w = LogWriter::new(0);
    w.write(&fx.log("app.log"), 1000);
    settle(&sink, &w.written, T).await;
    // The re-send of a batch whose answer was lost may come after its ids were counted.
    assert!(
        wait_for(T, || tailer.pending_batches() == 0 && tailer.metrics().events_acked.get() >= 1000).await
    );
    let v = verdict(&sink, &w.written);
    assert!(v.complete(), "{v:?}");
    assert!(v.resent > 0, "the re-sent batch counts twice by id: {v:?}");
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_resume_from_the_checkpoint() {
    let fx = Fixture::new();
    let sink = sink().await;
    let path = fx.log("app.log");
    let mut w = LogWriter::new(0);
    for round in 0..4 {
        w.write(&path, 300);
        let tailer = Tailer::start(fx.config(&sink.url(), &["app.log*"])).await.expect("start");
        w.write(&path, 300);
        if round % 2 == 0 {
            // Graceful: what was acknowledged is checkpointed; nothing is sent twice.
            assert!(sink.wait_until(T, |s| s.unique_ids as usize >= w.written.len()).await);
            tailer.shutdown().await.expect("shutdown");
        } else {
            // A crash: lines acknowledged after the last checkpoint are sent again, same ids.
            sink.wait_until(T, |s| s.unique_ids as usize >= w.written.len() - 100).await;
            tailer.kill().await;
            fs::rename(&path, fx.log(&format!("app.log.{round}"))).expect("rotate while down");
        }
    }
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log*"])).await.expect("start");
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_tailer_on_the_same_data_dir_is_refused() {
    let fx = Fixture::new();
    let sink = sink().await;
    let a = Tailer::start(fx.config(&sink.url(), &["app.log"])).await.expect("start");
    let e = Tailer::start(fx.config(&sink.url(), &["app.log"])).await.expect_err("second");
    assert!(e.to_string().contains("in use"), "{e}");
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_cases_each_behave_as_documented() {
    let fx = Fixture::new();
    let sink = sink().await;
    let mut config = fx.config(&sink.url(), &["*.log"]);
    config.read.max_line_bytes = 2000;
    let tailer = Tailer::start(config).await.expect("start");
    let mut w = LogWriter::new(0);
    let path = fx.log("edge.log");
    w.write(&path, 5);
    let mut f = OpenOptions::new().append(true).open(&path).expect("open");
    // A line over the limit: skipped, counted.
    f.write_all(format!("{}\n", "x".repeat(5000)).as_bytes()).expect("write");
    // Invalid UTF-8: sent with U+FFFD.
    f.write_all(b"2026-11-23T18:00:00.000Z h app: play\tuser=\xff\xfe\tseq=1000000\n").expect("write");
    w.written.insert(1_000_000);
    // CRLF line end.
    f.write_all(b"2026-11-23T18:00:00.000Z h app: play\tuser=crlf\tseq=1000001\r\n").expect("write");
    w.written.insert(1_000_001);
    // A line the rule cannot parse: skipped, counted.
    f.write_all(b"not a syslog line\n").expect("write");
    w.write_to(&mut f, 5);
    drop(f);
    // A deleted file with an unfinished last line: read to its end, the partial line sent.
    let doomed = fx.log("doomed.log");
    w.write(&doomed, 20);
    assert!(sink.wait_until(T, |s| s.unique_ids >= 31).await);
    let mut f = OpenOptions::new().append(true).open(&doomed).expect("open");
    f.write_all(b"2026-11-23T18:00:00.000Z h app: play\tuser=partial\tseq=1000002").expect("write");
    w.written.insert(1_000_002);
    fs::remove_file(&doomed).expect("delete");
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    let m = tailer.metrics();
    assert_eq!(m.skipped_count("too_long"), 1);
    assert_eq!(m.skipped_count("malformed"), 1);
    assert_eq!(m.lines_invalid_utf8.get(), 1);
    assert_eq!(m.partial_lines.get(), 1);
    let events = sink.accepted_events();
    let bad = events.iter().find(|e| common::seq_of(e) == Some(1_000_000)).expect("utf8 event");
    assert_eq!(bad.fields["user"].kind, Some(event_model::ValueKind::StringValue("\u{fffd}\u{fffd}".into())));
    let crlf = events.iter().find(|e| common::seq_of(e) == Some(1_000_001)).expect("crlf event");
    assert_eq!(common::seq_of(crlf), Some(1_000_001), "no \\r in the last field");
    // The checkpoint moves past the skipped lines too.
    let size = fs::metadata(&path).expect("stat").len();
    assert!(wait_for(T, || checkpoint_offsets(&fx.data).get(&path) == Some(&size)).await);
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_that_cannot_be_written_is_retried_while_lines_keep_flowing() {
    let fx = Fixture::new();
    let sink = sink().await;
    fs::create_dir_all(&fx.data).expect("data dir");
    // A directory where the temporary checkpoint goes makes every write fail, like a full disk.
    fs::create_dir(fx.data.join("checkpoint.json.tmp")).expect("block the checkpoint");
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log"])).await.expect("start");
    let mut w = LogWriter::new(0);
    w.write(&fx.log("app.log"), 500);
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    assert!(wait_for(T, || tailer.metrics().checkpoint_failures.get() >= 2).await);
    fs::remove_dir(fx.data.join("checkpoint.json.tmp")).expect("unblock");
    let size = fs::metadata(fx.log("app.log")).expect("stat").len();
    assert!(wait_for(T, || checkpoint_offsets(&fx.data).get(&fx.log("app.log")) == Some(&size)).await);
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_pauses_while_the_service_holds_every_request() {
    let fx = Fixture::new();
    let sink = sink().await;
    sink.push_responses((0..4).map(|_| SinkResponse::Delay(Duration::from_secs(2))));
    let mut config = fx.config(&sink.url(), &["app.log"]);
    config.batch.max_in_flight = 2;
    config.batch.max_events = 10;
    let tailer = Tailer::start(config).await.expect("start");
    let mut w = LogWriter::new(0);
    w.write(&fx.log("app.log"), 5000);
    // With two slots and batches of ten, at most a handful of batches can be outstanding
    // while the service holds the requests: reading has paused, not buffered everything.
    assert!(wait_for(T, || tailer.metrics().in_flight_requests.get() == 2).await);
    assert!(tailer.metrics().events_sent.get() <= 50, "sent {}", tailer.metrics().events_sent.get());
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    assert!(tailer.metrics().read_paused_seconds.get() > 0.0);
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served() {
    let fx = Fixture::new();
    let sink = sink().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr");
    let config = fx.config(&sink.url(), &["app.log"]).with_metrics_listen(port);
    let tailer = Tailer::start(config).await.expect("start");
    let mut w = LogWriter::new(0);
    w.write(&fx.log("app.log"), 10);
    settle(&sink, &w.written, T).await;
    // The lag gauges are set when a checkpoint covering the acknowledged lines is made (a
    // checkpoint is also made as soon as a file is identified, before any line is sent).
    let deadline = tokio::time::Instant::now() + T;
    let body = loop {
        let body =
            reqwest::get(format!("http://{port}/metrics")).await.expect("get").text().await.expect("body");
        if body.contains("tailer_lag_bytes{") || tokio::time::Instant::now() >= deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(body.contains("tailer_lines_read_total 10"), "{body}");
    assert!(body.contains("tailer_events_acked_total 10"), "{body}");
    assert!(body.contains("tailer_lag_bytes"), "{body}");
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_shorter_than_the_read_offset_is_noted_once_not_rescanned() {
    let fx = Fixture::new();
    let sink = sink().await;
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log*"])).await.expect("start");
    let mut w = LogWriter::new(0);
    let path = fx.log("app.log");
    w.write(&path, 200);
    assert!(sink.wait_until(T, |s| s.unique_ids >= 200).await);
    // logrotate's copytruncate when the app wrote between the copy and the truncation: the
    // copy holds only the first half of what the tailer has already read.
    let text = fs::read(&path).expect("read");
    let half =
        text.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(99).map(|(i, _)| i + 1).expect("line");
    fs::write(fx.log("app.log.1"), &text[..half]).expect("copy");
    OpenOptions::new().write(true).open(&path).expect("open").set_len(0).expect("truncate");
    w.write(&path, 50);
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    assert_eq!(v.resent, 0, "nothing of the copy is sent again: {v:?}");
    assert!(wait_for(T, || tailer.metrics().short_copies.get() == 1).await);
    // Many scans later the copy is still the one noted: no rescan or truncation per turn.
    let m = tailer.metrics();
    let scans = m.scans.get();
    assert!(wait_for(T, || m.scans.get() >= scans + 20).await, "scans go on");
    assert_eq!(m.truncations.get(), 1, "one truncation, seen once");
    assert_eq!(m.short_copies.get(), 1, "the copy is noted once");
    assert!(m.scans.get() < scans + 200, "no scan loop: {} scans", m.scans.get() - scans);
    tailer.shutdown().await.expect("shutdown");
}

/// A day (on the paused clock) during which the service holds every request: the file whose
/// lines were all acknowledged before is still followed (the reader waits behind the held
/// batches) and must stay in the checkpoint, so a restart resumes it where it was.
#[tokio::test(start_paused = true)]
async fn a_followed_file_held_up_by_a_day_of_back_pressure_stays_in_the_checkpoint() {
    const DAY: Duration = Duration::from_secs(86_400);
    let fx = Fixture::new();
    let sink = sink().await;
    let config = || {
        let mut c = fx.config(&sink.url(), &["*.log"]);
        c.batch.max_in_flight = 1;
        c.batch.max_events = 10;
        c.read.checkpoint_interval_ms = 60_000;
        c.read.forget_after_secs = DAY.as_secs();
        c.service.timeout_secs = 3 * DAY.as_secs();
        c
    };
    let tailer = Tailer::start(config()).await.expect("start");
    let mut a = LogWriter::new(0);
    let a_path = fx.log("a.log");
    a.write(&a_path, 20);
    let a_size = fs::metadata(&a_path).expect("stat").len();
    assert!(wait_for_wall(T, || sink.stats().unique_ids >= 20 && tailer.pending_batches() == 0).await);
    // Now the service holds every request for two days; b.log fills the one request slot, the
    // queue, and the reader waits.
    sink.push_responses((0..20).map(|_| SinkResponse::Delay(2 * DAY)));
    let mut b = LogWriter::new(1_000);
    b.write(&fx.log("b.log"), 100);
    assert!(wait_for_wall(T, || tailer.metrics().events_sent.get() >= 30).await, "reader blocked");
    tokio::time::sleep(DAY + Duration::from_secs(3_600)).await;
    assert!(tailer.metrics().checkpoint_writes.get() >= 1);
    tailer.shutdown().await.expect("shutdown");
    let cp = checkpoint_offsets(&fx.data);
    assert_eq!(cp.get(&a_path), Some(&a_size), "a.log kept at its acknowledged end: {cp:?}");

    // A restart resumes a.log where it was: only its new lines and b.log's are sent.
    let sink = IngestSink::start(SinkOptions::default()).await;
    let mut c = config();
    c.service.url = sink.url();
    let tailer = Tailer::start(c).await.expect("restart");
    let mut more = LogWriter::new(500);
    more.write(&a_path, 10);
    let mut want = more.written.clone();
    want.extend(b.written.iter().copied());
    assert!(wait_for_wall(T, || sink.stats().unique_ids >= want.len() as u64).await);
    let v = verdict(&sink, &want);
    assert!(v.complete(), "nothing of a.log re-read from 0: {v:?}");
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_with_the_same_header_resume_at_their_own_offsets_after_a_restart() {
    const HEADER: &str = "#Fields: date time host message\n";
    let fx = Fixture::new();
    let sink = sink().await;
    let mut w = LogWriter::new(0);
    for name in ["a.log", "b.log"] {
        fs::write(fx.log(name), HEADER).expect("header");
        w.write(&fx.log(name), 50);
    }
    let tailer = Tailer::start(fx.config(&sink.url(), &["*.log"])).await.expect("start");
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    tailer.shutdown().await.expect("shutdown");
    for name in ["a.log", "b.log"] {
        w.write(&fx.log(name), 30);
    }
    let tailer = Tailer::start(fx.config(&sink.url(), &["*.log"])).await.expect("restart");
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    assert_eq!(v.resent, 0, "each file resumed at its own offset: {v:?}");
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copytruncate_while_the_tailer_is_down_reads_the_rest_from_the_copy() {
    let fx = Fixture::new();
    let sink = sink().await;
    let path = fx.log("app.log");
    let mut w = LogWriter::new(0);
    w.write(&path, 100);
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log*"])).await.expect("start");
    assert!(sink.wait_until(T, |s| s.unique_ids >= 100).await);
    tailer.shutdown().await.expect("shutdown");
    // While it is down: more lines, then the copy and the truncation, then new lines.
    w.write(&path, 50);
    fs::copy(&path, fx.log("app.log.1")).expect("copy");
    OpenOptions::new().write(true).open(&path).expect("open").set_len(0).expect("truncate");
    w.write(&path, 20);
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log*"])).await.expect("restart");
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "{v:?}");
    assert_eq!(v.resent, 0, "{v:?}");
    assert_eq!(tailer.metrics().truncations.get(), 1);
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banner_after_o_trunc_starts_a_new_file_with_ids_of_its_own() {
    const BANNER: &str = "=== app 1.2.3 starting ===\n";
    let fx = Fixture::new();
    let sink = sink().await;
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log"])).await.expect("start");
    let mut w = LogWriter::new(0);
    let path = fx.log("app.log");
    fs::write(&path, BANNER).expect("banner");
    w.write(&path, 20);
    assert!(sink.wait_until(T, |s| s.unique_ids >= 20).await);
    let before = fs::metadata(&path).expect("stat");
    // The app restarts: O_TRUNC (same inode), the same banner, and more lines than before, so
    // the file is longer than what was read and starts with the same line.
    let mut f = OpenOptions::new().write(true).truncate(true).open(&path).expect("O_TRUNC");
    f.write_all(BANNER.as_bytes()).expect("banner");
    w.write_to(&mut f, 60);
    drop(f);
    let after = fs::metadata(&path).expect("stat");
    assert_eq!(std::os::unix::fs::MetadataExt::ino(&before), std::os::unix::fs::MetadataExt::ino(&after));
    assert!(after.len() > before.len());
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "the new head is not skipped: {v:?}");
    assert_eq!(v.resent, 0, "no id of the old file reused: {v:?}");
    assert_eq!(v.unique, 80);
    assert!(tailer.metrics().truncations.get() >= 1);
    tailer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_checkpoint_resumes_its_files_with_their_old_ids() {
    let fx = Fixture::new();
    let sink = sink().await;
    let path = fx.log("app.log");
    let mut old = LogWriter::new(0);
    old.write(&path, 10);
    let text = fs::read_to_string(&path).expect("read");
    let first_line = &text[..=text.find('\n').expect("newline")];
    let legacy_fp = xxhash_rust::xxh3::xxh3_64(first_line.as_bytes());
    let offset = text.len() as u64;
    // The checkpoint an older tailer wrote: files keyed by the hash of their first line.
    fs::create_dir_all(&fx.data).expect("data dir");
    let v1 = serde_json::json!({
        "version": 1,
        "host": common::HOST,
        "files": { format!("{legacy_fp:016x}"): { "path": path, "offset": offset, "last_seen": 1 } },
    });
    fs::write(fx.data.join("checkpoint.json"), v1.to_string()).expect("write v1");
    let mut w = LogWriter::new(100);
    w.write(&path, 5);
    let tailer = Tailer::start(fx.config(&sink.url(), &["app.log"])).await.expect("start");
    let v = settle(&sink, &w.written, T).await;
    assert!(v.complete(), "only the lines after the v1 offset: {v:?}");
    // Under the ids the older tailer would have given them.
    let first_new = event_model::deterministic_event_id(common::HOST, legacy_fp, offset);
    assert!(sink.accepted_ids().contains_key(&first_new), "{:?}", sink.accepted_ids());
    let size = fs::metadata(&path).expect("stat").len();
    assert!(wait_for(T, || checkpoint_offsets(&fx.data).get(&path) == Some(&size)).await);
    let cp: serde_json::Value =
        serde_json::from_slice(&fs::read(fx.data.join("checkpoint.json")).expect("read")).expect("json");
    assert_eq!(cp["version"], 2);
    tailer.shutdown().await.expect("shutdown");
}
