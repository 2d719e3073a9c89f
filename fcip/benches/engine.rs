//! Receive engine throughput, beside the FC CRC alone over the same bytes.
//!
//! `cargo bench -p fcip`. For 2112-byte and 64-byte payloads, a stream of encapsulated frames
//! (about 1 MiB) is fed in 64 KiB chunks, the way a TCP read loop would:
//! - `crc_only`: `crc32fast` over each frame's FC header and payload (the reference: every
//!   receiver has to do this much);
//! - `receiver`: `Receiver::push` of each chunk, then `poll` until it needs more; frames are
//!   dropped as they come out.
//!
//! Throughput is in bytes of the encapsulated stream; frames/s is bytes/s divided by the
//! frame size (2176 or 128 bytes).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fc_frames::encap::{emit_encapsulated, Timestamp, HEADER_LEN};
use fc_frames::{FcFrame, FcId, FcType, FrameHeaderRepr, RCtl};
use fcip::{Output, Receiver, ReceiverConfig};

const CHUNK: usize = 64 * 1024;

fn frame(payload_len: usize, i: usize) -> FcFrame {
    let mut header = FrameHeaderRepr::request(
        RCtl::SOLICITED_DATA,
        FcType::FCP,
        FcId::from_parts(1, 2, 0),
        FcId::from_parts(1, 1, 0),
        i as u16,
    );
    header.parameter = (i * payload_len) as u32;
    let payload: Vec<u8> = (0..payload_len).map(|k| (k * 7 + i) as u8).collect();
    FcFrame::single(header, payload)
}

fn bench_size(c: &mut Criterion, name: &str, payload_len: usize) {
    let one = {
        let mut b = BytesMut::new();
        emit_encapsulated(&frame(payload_len, 0), Timestamp::ZERO, &mut b);
        b.len()
    };
    let n = (1 << 20) / one;
    let mut stream = BytesMut::new();
    for i in 0..n {
        emit_encapsulated(&frame(payload_len, i), Timestamp::ZERO, &mut stream);
    }
    let stream = stream.freeze();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("crc_only", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for f in stream.chunks_exact(one) {
                // Header + payload + fill, as the FC CRC covers them.
                acc ^= crc32fast::hash(&f[HEADER_LEN + 4..one - 8]);
            }
            black_box(acc)
        })
    });
    group.bench_function("receiver", |b| {
        let mut rx = Receiver::new(ReceiverConfig::default());
        b.iter(|| {
            let mut frames = 0usize;
            for chunk in stream.chunks(CHUNK) {
                let mut rest = chunk;
                while !rest.is_empty() {
                    let took = rx.push(rest);
                    rest = &rest[took..];
                    while let Some(out) = rx.poll(Timestamp::ZERO) {
                        if let Output::Frame { frame, .. } = out {
                            frames += frame.payload.len();
                        }
                    }
                }
            }
            black_box(frames)
        });
        assert_eq!(rx.counters().encapsulation_errors, 0);
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_size(c, "fcip_rx_2112", 2112);
    bench_size(c, "fcip_rx_64", 64);
}

criterion_group!(engine, benches);
criterion_main!(engine);
