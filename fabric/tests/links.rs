//! TCP links over 127.0.0.1: frames arrive byte-exact and in order, bad CRCs are reported,
//! bad framing and closed ends take the link down.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fabric::link::{tcp, Link, Received, DEFAULT_CAPACITY};
use fc_frames::encap::{emit_encapsulated, Timestamp};
use fc_frames::frame::MAX_PAYLOAD;
use fc_frames::{FcFrame, FcId, FcType, FrameError, FrameHeaderRepr, RCtl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

/// A data frame with `payload`, OX_ID `ox`, fill count set as it will arrive.
fn frame(ox: u16, payload: impl Into<Bytes>) -> FcFrame {
    let mut f = FcFrame::single(
        FrameHeaderRepr::request(
            RCtl::SOLICITED_DATA,
            FcType::FCP,
            FcId::from_parts(1, 2, 0),
            FcId::from_parts(1, 1, 0),
            ox,
        ),
        payload,
    );
    f.header.f_ctl = f.header.f_ctl.with_fill_bytes(f.fill_len());
    f
}

/// A TCP link pair: (the connecting end, the accepting end).
async fn tcp_pair() -> (Link, Link) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, accepted) = tokio::join!(tcp::connect(addr), listener.accept());
    let (stream, _) = accepted.expect("accept");
    (client.expect("connect"), tcp::spawn(stream))
}

/// A raw client socket and the link end that accepted it.
async fn raw_pair() -> (TcpStream, Link) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (raw, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (stream, _) = accepted.expect("accept");
    (raw.expect("connect"), tcp::spawn(stream))
}

async fn recv(link: &mut Link) -> Option<Received> {
    timeout(WAIT, link.rx.recv()).await.expect("timed out")
}

async fn recv_frame(link: &mut Link) -> FcFrame {
    match recv(link).await {
        Some(Received::Frame(f)) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payload_size_round_trips_in_order() {
    let (mut a, mut b) = tcp_pair().await;
    let mut sizes: Vec<usize> = (0..=MAX_PAYLOAD).step_by(97).collect();
    sizes.push(MAX_PAYLOAD);
    let frames: Vec<FcFrame> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let payload: Vec<u8> = (0..n).map(|j| (j * 7 + i) as u8).collect();
            frame(i as u16, payload)
        })
        .collect();
    for f in &frames {
        a.tx.send(f.clone()).await.expect("a up");
        b.tx.send(f.clone()).await.expect("b up");
    }
    for f in &frames {
        assert_eq!(&recv_frame(&mut b).await, f);
        assert_eq!(&recv_frame(&mut a).await, f);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_frames_arrive_in_order() {
    const N: u32 = 100_000;
    let (a, mut b) = tcp_pair().await;
    let tx = a.tx.clone();
    let sender = tokio::spawn(async move {
        for i in 0..N {
            tx.send(frame(i as u16, i.to_be_bytes().to_vec()))
                .await
                .expect("link up");
        }
    });
    let mut batch = Vec::new();
    let mut next = 0u32;
    while next < N {
        batch.clear();
        let n = timeout(WAIT, b.rx.recv_many(&mut batch, 1024))
            .await
            .expect("timed out");
        assert!(n > 0, "link went down after {next} frames");
        for item in batch.drain(..) {
            let Received::Frame(f) = item else {
                panic!("frame {next} malformed: {item:?}");
            };
            assert_eq!(f.header.ox_id, next as u16);
            assert_eq!(&f.payload[..], &next.to_be_bytes());
            next += 1;
        }
    }
    sender.await.expect("sender");
    assert!(b.rx.try_recv().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_crc_arrives_malformed_and_the_link_stays_up() {
    let (mut raw, mut link) = raw_pair().await;
    let bad = frame(1, vec![0x11; 40]);
    let good = frame(2, vec![0x22; 40]);
    let mut buf = BytesMut::new();
    emit_encapsulated(&bad, Timestamp::ZERO, &mut buf);
    buf[32 + 24 + 5] ^= 0x40; // a payload bit: framing intact, FC CRC wrong
    emit_encapsulated(&good, Timestamp::ZERO, &mut buf);
    raw.write_all(&buf).await.expect("write");
    match recv(&mut link).await {
        Some(Received::Malformed { bytes, error }) => {
            assert_eq!(bytes, 24 + 40 + 4);
            assert!(matches!(error, FrameError::BadCrc { .. }), "{error}");
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    assert_eq!(recv_frame(&mut link).await, good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_ends_the_link() {
    let (mut raw, mut link) = raw_pair().await;
    // A good frame first, then a header whose complements are wrong.
    let mut buf = BytesMut::new();
    emit_encapsulated(&frame(7, vec![1, 2, 3]), Timestamp::ZERO, &mut buf);
    buf.extend_from_slice(&[0x5a; 64]);
    raw.write_all(&buf).await.expect("write");
    assert_eq!(recv_frame(&mut link).await.header.ox_id, 7);
    assert!(recv(&mut link).await.is_none(), "link should be down");
    // The connection is closed toward the raw peer too.
    let mut rest = Vec::new();
    let n = timeout(WAIT, raw.read_to_end(&mut rest))
        .await
        .expect("timed out");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    timeout(WAIT, link.tx.closed()).await.expect("tx closed");
    assert!(link.tx.send(frame(8, vec![])).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_one_end_takes_the_other_down() {
    let (a, mut b) = tcp_pair().await;
    a.tx.send(frame(1, vec![9; 8])).await.expect("up");
    drop(a);
    // What was sent before the drop still arrives, then the link is down.
    assert_eq!(recv_frame(&mut b).await.header.ox_id, 1);
    assert!(recv(&mut b).await.is_none());
    timeout(WAIT, b.tx.closed()).await.expect("tx closed");

    // Dropping only the receiving half ends the connection as well.
    let (a, mut b) = tcp_pair().await;
    let Link { tx: a_tx, rx: a_rx } = a;
    drop(a_rx);
    assert!(recv(&mut b).await.is_none());
    timeout(WAIT, a_tx.closed()).await.expect("a tx closed");
}

/// A receiver that does not take its frames stops the reader, not the memory: the link's
/// queue stays at its capacity, the socket's buffers fill, and the peer's writes wait. Taking
/// the frames lets every one through, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_stops_the_reader_and_tcp_pushes_back() {
    const FRAMES: u32 = 30_000; // 65 MB: more than the queue and both socket buffers hold
    let (mut raw, mut link) = raw_pair().await;
    let writer = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        for i in 0..FRAMES {
            emit_encapsulated(
                &frame(i as u16, vec![(i % 251) as u8; MAX_PAYLOAD]),
                Timestamp::ZERO,
                &mut buf,
            );
            if buf.len() >= 1 << 20 {
                raw.write_all(&buf).await.expect("write");
                buf.clear();
            }
        }
        raw.write_all(&buf).await.expect("write");
        raw
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !writer.is_finished(),
        "the peer wrote everything into a full link"
    );
    assert!(link.rx.len() <= DEFAULT_CAPACITY, "{}", link.rx.len());
    let mut batch = Vec::new();
    let mut next = 0u32;
    while next < FRAMES {
        let n = timeout(WAIT, link.rx.recv_many(&mut batch, 1024))
            .await
            .expect("timed out");
        assert!(n > 0, "link went down after {next} frames");
        for item in batch.drain(..) {
            let Received::Frame(f) = item else {
                panic!("frame {next} malformed");
            };
            assert_eq!(f.header.ox_id, next as u16);
            next += 1;
        }
    }
    timeout(WAIT, writer)
        .await
        .expect("writer")
        .expect("writer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_nothing_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    assert!(tcp::connect(addr).await.is_err());
}

/// Throughput and frame rate, for a look by hand:
/// `cargo test --release -p fabric --test links -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn throughput() {
    for (payload, count) in [(MAX_PAYLOAD, 500_000u32), (64, 2_000_000)] {
        let (a, mut b) = tcp_pair().await;
        let data = Bytes::from(vec![0xa5; payload]);
        let start = std::time::Instant::now();
        let tx = a.tx.clone();
        let sender = tokio::spawn(async move {
            for i in 0..count {
                tx.send(frame(i as u16, data.clone())).await.expect("up");
                if i % 4096 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
        let mut batch = Vec::new();
        let mut got = 0u32;
        while got < count {
            batch.clear();
            let n = b.rx.recv_many(&mut batch, 1024).await;
            assert!(n > 0);
            got += n as u32;
        }
        sender.await.expect("sender");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "payload {payload}: {:.0} frames/s, {:.2} GB/s",
            f64::from(count) / secs,
            f64::from(count) * payload as f64 / secs / 1e9
        );
    }
}
