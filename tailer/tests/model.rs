//! A model-based test: random sequences of writes, rename rotations, copytruncate rotations,
//! truncations, graceful restarts and crashes, with or without a header line that starts every
//! file (as CSV and W3C logs have); whatever the sequence, every line written arrives under
//! exactly one id and nothing else arrives.

mod common;

use std::fs::{self, OpenOptions};
use std::time::Duration;

use common::{Fixture, LogWriter, settle};
use proptest::prelude::*;
use tailer::Tailer;
use testkit::{IngestSink, SinkOptions};

const T: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
enum Op {
    Write(usize),
    RotateRename,
    CopyTruncate,
    /// Truncate in place once everything was delivered (otherwise the unread lines are gone
    /// with the truncation, which is the writer's doing, not the tailer's).
    TruncateDrained,
    Restart {
        crash: bool,
    },
    /// Let the tailer catch up to within `n` lines of the writer, so that the other operations
    /// meet it at every stage: not yet following a file, in the middle of it, at its end.
    CatchUp(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1usize..120).prop_map(Op::Write),
        2 => Just(Op::RotateRename),
        2 => Just(Op::CopyTruncate),
        1 => Just(Op::TruncateDrained),
        2 => any::<bool>().prop_map(|crash| Op::Restart { crash }),
        4 => (0usize..60).prop_map(Op::CatchUp),
    ]
}

/// The line every file starts with when the case has headers (not syslog: skipped).
const HEADER: &str = "#Fields: date time host message\n";

async fn run(header: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let fx = Fixture::new();
    let sink = IngestSink::start(SinkOptions::default()).await;
    let config = || fx.config(&sink.url(), &["app.log*"]);
    let mut tailer = Some(Tailer::start(config()).await.expect("start"));
    let mut w = LogWriter::new(0);
    let active = fx.log("app.log");
    let mut rotated = 0;
    for op in &ops {
        match op {
            Op::Write(n) => {
                if header && fs::metadata(&active).map_or(true, |m| m.len() == 0) {
                    fs::write(&active, HEADER).expect("header");
                }
                w.write(&active, *n)
            }
            Op::RotateRename => {
                if active.exists() {
                    rotated += 1;
                    fs::rename(&active, fx.log(&format!("app.log.{rotated}"))).expect("rename");
                }
            }
            Op::CopyTruncate => {
                if active.exists() {
                    rotated += 1;
                    fs::copy(&active, fx.log(&format!("app.log.{rotated}"))).expect("copy");
                    OpenOptions::new().write(true).open(&active).expect("open").set_len(0).expect("truncate");
                }
            }
            Op::TruncateDrained => {
                if active.exists() {
                    let want = w.written.len();
                    prop_assert!(sink.wait_until(T, |s| s.unique_ids as usize >= want).await, "drained");
                    OpenOptions::new().write(true).open(&active).expect("open").set_len(0).expect("truncate");
                }
            }
            Op::CatchUp(n) => {
                let want = w.written.len().saturating_sub(*n);
                prop_assert!(sink.wait_until(T, |s| s.unique_ids as usize >= want).await, "caught up");
            }
            Op::Restart { crash } => {
                let t = tailer.take().expect("running");
                if *crash {
                    t.kill().await;
                } else {
                    t.shutdown().await.expect("shutdown");
                }
                tailer = Some(Tailer::start(config()).await.expect("restart"));
            }
        }
    }
    let v = settle(&sink, &w.written, T).await;
    prop_assert!(v.complete(), "header {}, ops {:?}: {:?}", header, ops, v);
    if let Some(t) = tailer {
        t.shutdown().await.expect("shutdown");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, max_shrink_iters: 20, ..ProptestConfig::default() })]

    #[test]
    fn no_line_is_lost_whatever_happens_to_the_files(header in any::<bool>(), ops in proptest::collection::vec(op(), 1..20)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(run(header, ops))?;
    }
}
