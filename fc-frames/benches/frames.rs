//! Frame decode + CRC check and build + CRC, beside the CRC alone over the same bytes.
//!
//! `cargo bench -p fc-frames`. For each frame size the group reports, in one run:
//! - `crc_only`: `fc_crc` over header + payload (the reference);
//! - `decode_check_crc`: length checks, header parse, CRC check, payload cut (zero-copy);
//! - `decode_header_repr_check_crc`: checks, CRC and every header field into a repr, borrowed;
//! - `decode_view_check_crc`: checks, CRC and the routing fields through the view, as a switch
//!   forwards;
//! - `build_crc_parts`: header emit + CRC for a vectored write (payload not copied);
//! - `build_crc_copy`: the same into one contiguous buffer (payload copied).
//!
//! The target: for full-size frames, header work adds under 20% to the CRC alone.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fc_frames::frame::fc_crc;
use fc_frames::{FcFrame, FcId, FcType, Frame, FrameHeaderRepr, RCtl};

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
    // As a receiver holds it: cut from a receive buffer (`BytesMut::split_to(..).freeze()`).
    let wire: Bytes = BytesMut::from(&f.to_vec()[..]).split().freeze();
    let covered = wire.len() - 4;
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("crc_only", |b| {
        b.iter(|| fc_crc(black_box(&wire[..covered])))
    });
    group.bench_function("decode_check_crc", |b| {
        // The receiver owns the buffer it parses: hand each iteration its own reference, made
        // (and the parsed frame dropped) outside the timing.
        // Batches of 256 stay in cache, as a receive loop's frames do.
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            let mut outputs = Vec::with_capacity(256);
            while left > 0 {
                let n = left.min(256);
                left -= n;
                let inputs: Vec<Bytes> = (0..n).map(|_| wire.clone()).collect();
                let start = Instant::now();
                for w in inputs {
                    outputs.push(FcFrame::parse(f.sof, w, f.eof));
                }
                elapsed += start.elapsed();
                outputs.clear();
            }
            elapsed
        })
    });
    group.bench_function("decode_header_repr_check_crc", |b| {
        // All header work of a decode, no ownership: checks, CRC, every header field.
        b.iter(|| {
            let v = Frame::new_checked(black_box(&wire[..]))?;
            v.check_crc()?;
            Ok::<_, fc_frames::FrameError>((FrameHeaderRepr::parse(&v.header()), v.payload().len()))
        })
    });
    group.bench_function("decode_view_check_crc", |b| {
        b.iter(|| {
            // Zero-copy path of a switch that routes a frame it does not own: checked view,
            // CRC check, header fields.
            let v = Frame::new_checked(black_box(&wire[..]))?;
            v.check_crc()?;
            let h = v.header();
            Ok::<_, fc_frames::FrameError>((h.d_id(), h.ox_id(), v.payload().len()))
        })
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
