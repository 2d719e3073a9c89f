//! Replay as a disk array: a fresh array node (the capture's names, seed, time-outs and LUNs,
//! zeroed LUN files in a temporary folder) whose link's other end is the replayer. It runs on
//! a current-thread tokio runtime with the clock paused: the node reads tokio's clock, which
//! moves only when every task waits, to the next time stamp of the capture (or the node's own
//! next timer). So the node handles each frame at the capture's time, and answers it before
//! time moves on, whatever the machine's speed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fabric::link::{self, Link, Received};
use fc_node::disk::DiskArray;
use fc_node::node::Connector;
use fc_pcap::capture::Direction;

use crate::compare::{compare, Sent};
use crate::{frames, Loaded, Outcome, ReplayError, Role};

/// Replays `loaded` as a disk array.
pub fn replay(loaded: &Loaded) -> Result<Outcome, ReplayError> {
    let setup = |why: String| ReplayError::Setup { role: "array", why };
    let meta = &loaded.metadata;
    let nc = topology::capture::node_config_from_json(&meta.config, meta.seed).map_err(setup)?;
    let dir = tempfile::tempdir().map_err(|e| setup(format!("temporary folder: {e}")))?;
    let (luns, tapes) =
        topology::capture::array_luns_from_json(&meta.config, dir.path()).map_err(setup)?;
    let mut notes = Vec::new();
    for l in meta.config["luns"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if l["fresh"] == serde_json::Value::Bool(false) {
            notes.push(format!(
                "LUN {} held data when the capture began; the replay starts it zeroed, so data \
                 it reads back may differ",
                l["lun"]
            ));
        }
    }
    let frames = frames(loaded)?;
    // The array logs out of the fabric only when it is stopped (a signal, not a frame): the
    // replay stops the fresh array when the capture shows that LOGO.
    let shutdown_at = frames
        .iter()
        .find(|f| f.1 == Direction::Outbound && is_fabric_logo(&f.4))
        .map(|f| f.0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| setup(format!("runtime: {e}")))?;
    let origin = Duration::from_nanos(meta.clock_origin_ns);
    let (node_end, replayer) = link::pair();
    let got: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let mut expected = Vec::new();
    let mut fed = 0;
    let result: Result<Vec<Sent>, ReplayError> = rt.block_on(async {
        let base = tokio::time::Instant::now();
        let array = DiskArray::start(nc, Once(Some(node_end)), &luns, &tapes)
            .map_err(|e| setup(format!("LUN files: {e}")))?;
        let Link { tx, mut rx } = replayer;
        let sink = got.clone();
        let collector = tokio::spawn(async move {
            while let Some(item) = rx.recv().await {
                if let Received::Frame(frame) = item {
                    tracing::debug!(
                        at = ?(tokio::time::Instant::now() - base),
                        frame = %crate::compare::summary(&frame),
                        "the fresh array sent"
                    );
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(Sent {
                        number: 0,
                        port: 0,
                        frame,
                    });
                }
            }
        });
        let mut last = base;
        let mut stopping = None;
        for (number, dir, _iface, ts, frame) in frames {
            let when = (base + ts.saturating_sub(origin)).max(last);
            last = when;
            if shutdown_at == Some(number) {
                tokio::time::sleep_until(when).await;
                // What the array had sent before it was stopped, it sends first here (the
                // answer to the last command may still be on the blocking pool).
                settle(&got, expected.len()).await;
                let node = array.node.clone();
                stopping = Some(tokio::spawn(async move { node.shutdown().await }));
            }
            match dir {
                Direction::Outbound => expected.push(Sent {
                    number,
                    port: 0,
                    frame,
                }),
                Direction::Inbound => {
                    tokio::time::sleep_until(when).await;
                    // What the array had sent before this frame came, it sends first here.
                    settle(&got, expected.len()).await;
                    tracing::debug!(
                        at = ?(tokio::time::Instant::now() - base),
                        number,
                        frame = %crate::compare::summary(&frame),
                        "fed"
                    );
                    if tx.send(frame).await.is_err() {
                        return Err(ReplayError::BadFrame {
                            number,
                            why: "the fresh array dropped its link".into(),
                        });
                    }
                    fed += 1;
                }
            }
        }
        tokio::time::sleep_until(last).await;
        settle(&got, expected.len()).await;
        // What it sent up to the capture's end; not the LOGO of its shutdown.
        let sent = std::mem::take(&mut *got.lock().unwrap_or_else(|e| e.into_inner()));
        drop(tx);
        if let Some(s) = stopping {
            s.abort();
        }
        array.node.shutdown().await;
        collector.abort();
        Ok(sent)
    });
    let got = result?;
    drop(rt);
    Ok(Outcome {
        role: Role::Array,
        fed,
        expected: expected.len(),
        sent: got.len(),
        difference: compare(&expected, &got),
        notes,
    })
}

/// Lets the array run, the clock standing still, until it has sent `want` frames (or 300 ms of real
/// time have passed: then it sent fewer than the capture holds, which the
/// comparison tells), and then a little longer for anything it sends beyond.
async fn settle(got: &Mutex<Vec<Sent>>, want: usize) {
    let count = || got.lock().unwrap_or_else(|e| e.into_inner()).len();
    let deadline = std::time::Instant::now() + Duration::from_millis(300);
    while count() < want && std::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

/// Hands out the replayer's link once; a node that asks again (its link went down) waits.
struct Once(Option<Link>);

impl Connector for Once {
    fn connect(&mut self) -> Pin<Box<dyn Future<Output = io::Result<Link>> + Send + '_>> {
        match self.0.take() {
            Some(l) => Box::pin(async move { Ok(l) }),
            None => Box::pin(std::future::pending()),
        }
    }
}

/// True for an ELS LOGO (command 0x05) to the F_Port (FFFFFE).
fn is_fabric_logo(f: &fc_frames::FcFrame) -> bool {
    f.header.d_id.to_u32() == 0xFF_FFFE
        && f.header.r_ctl.0 == 0x22
        && f.payload.first() == Some(&0x05)
}
