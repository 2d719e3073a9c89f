//! Frame decode + CRC check and build + CRC, beside the CRC alone over the same bytes.
//!
//! `cargo bench -p fc-frames`. For each frame size the group reports, in one run:
//! - `crc_only`: `fc_crc` over header + payload (the reference);
//! - `decode_check_crc`: length checks, header parse, CRC check, payload cut (zero-copy);
//! - `build_crc_parts`: header emit + CRC for a vectored write (payload not copied);
//! - `build_crc_copy`: the same into one contiguous buffer (payload copied).
//!
//! The target: for full-size frames, header work adds under 20% to the CRC alone.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fc_frames::frame::fc_crc;
use fc_frames::{FcFrame, FcId, FcType, FrameHeaderRepr, RCtl};

fn frame(payload_len: usize) -> FcFrame {
    let mut header = FrameHeaderRepr::request(
        RCtl::SOLICITED_DATA,
        FcType::FCP,
        FcId::from_parts(1, 2, 0),
        FcId::from_parts(1, 1, 0),
        0x1234,
    );
    header.parameter = 0x10_0000;
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7) as u8).collect();
    FcFrame::single(header, payload)
}

fn bench_size(c: &mut Criterion, name: &str, payload_len: usize) {
    let f = frame(payload_len);
    let wire = Bytes::from(f.to_vec());
    let covered = wire.len() - 4;
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("crc_only", |b| {
        b.iter(|| fc_crc(black_box(&wire[..covered])))
    });
    group.bench_function("decode_check_crc", |b| {
        // The receiver owns the buffer it parses: hand each iteration its own reference, made
        // (and the frame dropped) outside the timing.
        b.iter_batched(
            || wire.clone(),
            |w| FcFrame::parse(f.sof, w, f.eof),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("build_crc_parts", |b| {
        b.iter(|| {
            let p = black_box(&f).encode_parts();
            (p.header[0], p.trailer()[0])
        })
    });
    let mut buf = vec![0u8; wire.len()];
    group.bench_function("build_crc_copy", |b| {
        b.iter(|| {
            black_box(&f).emit(&mut buf);
            buf[0]
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_size(c, "frame_2112", 2112);
    bench_size(c, "frame_64", 64);
}

criterion_group!(frames, benches);
criterion_main!(frames);
