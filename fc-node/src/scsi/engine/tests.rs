use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fc_frames::fcp::Residual;
use fc_frames::scsi::data::mode::{CachingFlags, ControlFlags};
use fc_frames::scsi::data::{
    BlockDescriptors, Designator, DeviceSpecific, ModeForm, ModePage, ModeParameters,
    ReadBlockLimitsData, ShortBlockDescriptor, UnmapParameterList, Vpd, VpdPage,
};
use fc_frames::scsi::sense::SenseFormat;
use fc_frames::scsi::{AdditionalSense, Lun, ScsiStatus, Sense, SenseKey};
use fc_frames::Wwn;
use proptest::prelude::*;

use super::*;
use crate::scsi::commands::MAX_UNMAP_BLOCKS;
use crate::scsi::{DeviceError, MemLun, Tier};

const BS: usize = 512;
const BLOCKS: u64 = 1024;

/// A MemLun that records FUA flags and flushes, and fails on request.
struct Probe {
    inner: MemLun,
    fua: Mutex<Vec<bool>>,
    flushes: AtomicUsize,
    fail: bool,
}

#[async_trait::async_trait]
impl BlockDevice for Probe {
    fn block_size(&self) -> u32 {
        self.inner.block_size()
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn tier(&self) -> Tier {
        self.inner.tier()
    }
    async fn read(&self, lba: u64, blocks: u64) -> std::result::Result<Bytes, DeviceError> {
        if self.fail {
            return Err(DeviceError::Read {
                lba,
                source: std::io::Error::other("bad sector"),
            });
        }
        self.inner.read(lba, blocks).await
    }
    async fn write(&self, lba: u64, buf: Bytes, fua: bool) -> std::result::Result<(), DeviceError> {
        if self.fail {
            return Err(DeviceError::Write {
                lba,
                source: std::io::Error::other("bad sector"),
            });
        }
        self.fua.lock().unwrap().push(fua);
        self.inner.write(lba, buf, fua).await
    }
    async fn flush(&self) -> std::result::Result<(), DeviceError> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        self.inner.flush().await
    }
    async fn unmap(&self, lba: u64, blocks: u64) -> std::result::Result<(), DeviceError> {
        self.inner.unmap(lba, blocks).await
    }
}

/// A device bigger than 2^32 blocks that reads zeros: for READ CAPACITY(10) FFFFFFFFh.
struct Huge;

#[async_trait::async_trait]
impl BlockDevice for Huge {
    fn block_size(&self) -> u32 {
        4096
    }
    fn block_count(&self) -> u64 {
        1 << 33
    }
    fn tier(&self) -> Tier {
        Tier::SlowHdd
    }
    async fn read(&self, _lba: u64, blocks: u64) -> std::result::Result<Bytes, DeviceError> {
        Ok(Bytes::from(vec![0; blocks as usize * 4096]))
    }
    async fn write(&self, _: u64, _: Bytes, _: bool) -> std::result::Result<(), DeviceError> {
        Ok(())
    }
    async fn flush(&self) -> std::result::Result<(), DeviceError> {
        Ok(())
    }
    async fn unmap(&self, _: u64, _: u64) -> std::result::Result<(), DeviceError> {
        Ok(())
    }
}

/// The nexus the ported tests use.
const HOST: Nexus = Nexus::new(Wwn([0x21, 0, 0, 0x24, 0xFF, 0, 0, 0x10]));

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
}

/// Runs `f` to completion on this thread's runtime.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RT.with(|rt| rt.block_on(f))
}

/// One SIMPLE command from [`HOST`], run to its response.
fn exec(e: &ScsiEngine, lun: Lun, cdb: &[u8], fcp_dl: u32, data_out: &[u8]) -> ScsiResponse {
    let cmd = ScsiCommand::new(HOST, lun, Bytes::copy_from_slice(cdb), fcp_dl)
        .with_data_out(Bytes::copy_from_slice(data_out));
    block_on(e.execute(cmd)).response().expect("not aborted")
}

fn lun(n: u16) -> Lun {
    Lun::from_index(n).unwrap()
}

const PORT: TargetPort = TargetPort {
    port_name: Wwn([0x21, 0, 0, 0x24, 0xFF, 0, 0, 1]),
    node_name: Wwn([0x20, 0, 0, 0x24, 0xFF, 0, 0, 1]),
    relative_port: 1,
};

fn tape_config() -> TapeConfig {
    TapeConfig {
        vendor: "FCSAN".into(),
        product: "VTAPE".into(),
        revision: "0001".into(),
        serial: "TAPE0".into(),
        naa: Wwn([0x60, 0, 0, 0, 0, 0, 0, 9]),
        block_limits: ReadBlockLimitsData::fixed(512),
    }
}

/// LUN 0: 1024-block RAM disk (SSD); LUN 1: tape; LUN 2: a huge slow disk.
fn engine() -> ScsiEngine {
    let e = ScsiEngine::new(PORT);
    let m = MemLun::new(BLOCKS, BS as u32, Tier::Ssd).unwrap();
    e.add_disk(
        lun(0),
        Arc::new(m),
        DiskConfig::new("SN0", Wwn([0x60, 1, 2, 3, 4, 5, 6, 7])),
    )
    .unwrap();
    e.add_tape(lun(1), tape_config()).unwrap();
    e.add_disk(
        lun(2),
        Arc::new(Huge),
        DiskConfig::new("SN2", Wwn([0x60, 0, 0, 0, 0, 0, 0, 2])),
    )
    .unwrap();
    e
}

fn probe_engine(fail: bool) -> (ScsiEngine, Arc<Probe>) {
    let p = Arc::new(Probe {
        inner: MemLun::new(BLOCKS, BS as u32, Tier::Ssd).unwrap(),
        fua: Mutex::new(Vec::new()),
        flushes: AtomicUsize::new(0),
        fail,
    });
    let e = ScsiEngine::new(PORT);
    e.add_disk(lun(0), p.clone(), DiskConfig::new("P", Wwn::ZERO))
        .unwrap();
    (e, p)
}

fn read16(lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = vec![0x88, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&blocks.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

fn write16(lba: u64, blocks: u32, fua: bool) -> Vec<u8> {
    let mut c = read16(lba, blocks);
    c[0] = 0x8A;
    c[1] = if fua { 0x08 } else { 0 };
    c
}

fn read10(lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = vec![0x28, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&blocks.to_be_bytes());
    c.push(0);
    c
}

fn write10(lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = read10(lba, blocks);
    c[0] = 0x2A;
    c
}

fn good(r: &ScsiResponse) {
    assert_eq!(r.status, ScsiStatus::GOOD, "{:?}", r.sense);
    assert!(r.sense.is_none());
}

/// CHECK CONDITION with `key` and `asc`/`ascq`, nothing moved.
fn check(r: &ScsiResponse, key: SenseKey, asc: (u8, u8)) {
    assert_eq!(r.status, ScsiStatus::CHECK_CONDITION);
    let s = r.sense.expect("sense");
    assert_eq!(s.key, key, "{s}");
    assert_eq!((s.additional.0, s.additional.1), asc, "{s}");
    assert!(r.data_in.is_empty());
}

fn illegal(r: &ScsiResponse, asc: (u8, u8)) {
    check(r, SenseKey::ILLEGAL_REQUEST, asc);
}

const LBA_OOR: (u8, u8) = (0x21, 0x00);
const BAD_OP: (u8, u8) = (0x20, 0x00);
const BAD_FIELD: (u8, u8) = (0x24, 0x00);

#[test]
fn test_test_unit_ready() {
    let e = engine();
    let r = exec(&e, lun(0), &[0; 16], 0, &[]);
    good(&r);
    assert_eq!(r.residual, Residual::None);
    good(&exec(&e, lun(1), &[0; 6], 0, &[]));
}

#[test]
fn test_missing_lun() {
    let e = engine();
    let r = exec(&e, lun(7), &[0; 6], 0, &[]);
    illegal(&r, (0x25, 0x00));
    illegal(&exec(&e, lun(7), &read10(0, 1), 512, &[]), (0x25, 0x00));
    // INQUIRY: peripheral qualifier 3, type 1Fh.
    let r = exec(&e, lun(7), &[0x12, 0, 0, 0, 36, 0], 36, &[]);
    good(&r);
    assert_eq!(r.data_in.len(), 36);
    assert_eq!(r.data_in[0], 0x7F);
    // VPD of a missing LUN.
    illegal(
        &exec(&e, lun(7), &[0x12, 1, 0, 0, 36, 0], 36, &[]),
        (0x25, 0x00),
    );
    // REQUEST SENSE: GOOD, with LOGICAL UNIT NOT SUPPORTED in the data.
    let r = exec(&e, lun(7), &[0x03, 0, 0, 0, 18, 0], 18, &[]);
    good(&r);
    assert_eq!(r.data_in[0], 0x70);
    assert_eq!(r.data_in[2], 0x05);
    assert_eq!((r.data_in[12], r.data_in[13]), (0x25, 0x00));
}

#[test]
fn test_inquiry_standard() {
    let e = engine();
    let r = exec(&e, lun(0), &[0x12, 0, 0, 0, 0xFF, 0], 0xFF, &[]);
    good(&r);
    let d = &r.data_in;
    assert!(d.len() >= 36);
    assert_eq!(&d[..3], &[0x00, 0x00, 0x06], "qualifier 0, disk, SPC-4");
    assert_eq!(d[3] & 0x0F, 0x02, "response data format 2");
    assert_eq!(usize::from(d[4]) + 5, d.len());
    assert_eq!(d[7] & 0x02, 0x02, "CMDQUE");
    assert_eq!(d[3] & 0x20, 0, "no NORMACA");
    assert_eq!(&d[8..16], b"FCSAN   ");
    assert_eq!(r.residual, Residual::Under(0xFF - d.len() as u32));
}

#[test]
fn test_inquiry_truncated_by_allocation_length() {
    let e = engine();
    let r = exec(&e, lun(0), &[0x12, 0, 0, 0, 36, 0], 0xFF, &[]);
    good(&r);
    assert_eq!(r.data_in.len(), 36);
    assert_eq!(r.residual, Residual::Under(0xFF - 36));
    // FCP_DL shorter than the allocation length: cut at FCP_DL, overrun reported.
    let r = exec(&e, lun(0), &[0x12, 0, 0, 0, 36, 0], 8, &[]);
    good(&r);
    assert_eq!(r.data_in.len(), 8);
    assert_eq!(r.residual, Residual::Over(28));
    // Allocation length zero: no data, GOOD.
    let r = exec(&e, lun(0), &[0x12, 0, 0, 0, 0, 0], 0, &[]);
    good(&r);
    assert!(r.data_in.is_empty());
}

#[test]
fn test_vpd_supported_pages() {
    let e = engine();
    let r = exec(&e, lun(0), &[0x12, 1, 0x00, 0, 0xFF, 0], 0xFF, &[]);
    good(&r);
    assert_eq!(
        &r.data_in[..],
        &[0, 0, 0, 6, 0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2]
    );
    let r = exec(&e, lun(1), &[0x12, 1, 0x00, 0, 0xFF, 0], 0xFF, &[]);
    assert_eq!(&r.data_in[..], &[1, 0, 0, 3, 0x00, 0x80, 0x83]);
}

#[test]
fn test_vpd_serial_and_identification() {
    let e = engine();
    let r = exec(&e, lun(0), &[0x12, 1, 0x80, 0, 0xFF, 0], 0xFF, &[]);
    assert_eq!(&r.data_in[..], &[0, 0x80, 0, 3, b'S', b'N', b'0']);
    let r = exec(&e, lun(0), &[0x12, 1, 0x83, 0, 0xFF, 0], 0xFF, &[]);
    good(&r);
    let VpdPage::DeviceIdentification(ds) = Vpd::parse(&r.data_in).unwrap().page else {
        panic!("not 0x83");
    };
    assert_eq!(ds[0], Designator::lu_naa(Wwn([0x60, 1, 2, 3, 4, 5, 6, 7])));
    assert!(ds.contains(&Designator::target_port_name(PORT.port_name)));
    assert!(ds.contains(&Designator::relative_target_port(1)));
}

#[test]
fn test_vpd_block_pages() {
    let e = engine();
    let r = exec(&e, lun(0), &[0x12, 1, 0xB0, 0, 0xFF, 0], 0xFF, &[]);
    assert_eq!(r.data_in.len(), 64);
    let VpdPage::BlockLimits(b) = Vpd::parse(&r.data_in).unwrap().page else {
        panic!()
    };
    assert_eq!(b.max_transfer_length, 16384);
    assert!(b.wsnz);
    assert_eq!(b.max_unmap_lba_count, MAX_UNMAP_BLOCKS);
    // Rotation rate from the tier: 1 for the SSD, 7200 for the slow disk.
    let r = exec(&e, lun(0), &[0x12, 1, 0xB1, 0, 0xFF, 0], 0xFF, &[]);
    assert_eq!(&r.data_in[..6], &[0, 0xB1, 0, 0x3C, 0, 1]);
    let r = exec(&e, lun(2), &[0x12, 1, 0xB1, 0, 0xFF, 0], 0xFF, &[]);
    assert_eq!(&r.data_in[4..6], &7200u16.to_be_bytes());
    let r = exec(&e, lun(0), &[0x12, 1, 0xB2, 0, 0xFF, 0], 0xFF, &[]);
    assert_eq!(r.data_in[5] & 0xC0, 0xC0, "LBPU LBPWS");
}

#[test]
fn test_vpd_unsupported_page() {
    let e = engine();
    let r = exec(&e, lun(0), &[0x12, 1, 0x89, 0, 0xFF, 0], 0xFF, &[]);
    illegal(&r, BAD_FIELD);
    let fp = r.sense.unwrap().field_pointer().unwrap();
    assert!(fp.in_cdb);
    assert_eq!(fp.byte, 2);
    // A tape has no block limits page.
    illegal(
        &exec(&e, lun(1), &[0x12, 1, 0xB0, 0, 0xFF, 0], 0xFF, &[]),
        BAD_FIELD,
    );
}

#[test]
fn test_tape() {
    let e = engine();
    let r = exec(&e, lun(1), &[0x12, 0, 0, 0, 0xFF, 0], 0xFF, &[]);
    good(&r);
    assert_eq!(r.data_in[0], 0x01);
    let r = exec(&e, lun(1), &[0x05, 0, 0, 0, 0, 0], 6, &[]);
    good(&r);
    assert_eq!(&r.data_in[..], &[0, 0, 2, 0, 2, 0]);
    illegal(&exec(&e, lun(1), &[0x05, 1, 0, 0, 0, 0], 6, &[]), BAD_FIELD);
    for cdb in [
        read10(0, 1),
        read16(0, 1),
        vec![0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
        vec![0x08, 0, 0, 0, 1, 0],
        vec![0x1A, 0, 0x3F, 0, 0xFF, 0],
    ] {
        illegal(&exec(&e, lun(1), &cdb, 512, &[]), BAD_OP);
    }
    good(&exec(&e, lun(1), &[0x03, 0, 0, 0, 18, 0], 18, &[]));
    good(&exec(
        &e,
        lun(1),
        &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0],
        16,
        &[],
    ));
    // A disk does not answer READ BLOCK LIMITS.
    illegal(&exec(&e, lun(0), &[0x05, 0, 0, 0, 0, 0], 6, &[]), BAD_OP);
}

#[test]
fn test_read_capacity() {
    let e = engine();
    let r = exec(&e, lun(0), &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8, &[]);
    good(&r);
    assert_eq!(&r.data_in[..], &[0, 0, 0x03, 0xFF, 0, 0, 0x02, 0x00]);
    let r = exec(&e, lun(2), &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8, &[]);
    assert_eq!(&r.data_in[..4], &[0xFF; 4]);
    let rc16 = [0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
    let r = exec(&e, lun(2), &rc16, 32, &[]);
    good(&r);
    assert_eq!(r.data_in.len(), 32);
    assert_eq!(
        &r.data_in[..12],
        &[0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x10, 0]
    );
    assert_eq!(r.data_in[14] & 0xC0, 0xC0, "LBPME LBPRZ");
    // Allocation length 12: cut.
    let mut c = rc16;
    c[13] = 12;
    let r = exec(&e, lun(0), &c, 32, &[]);
    assert_eq!(r.data_in.len(), 12);
    assert_eq!(r.residual, Residual::Under(20));
}

#[test]
fn test_read_write_at_start_and_end() {
    let e = engine();
    for blocks in [1u32, 2, 17, 255, 256] {
        for lba in [0, BLOCKS - u64::from(blocks)] {
            let n = blocks as usize * BS;
            let data: Vec<u8> = (0..n)
                .map(|i| (i as u64 + lba) as u8 ^ blocks as u8)
                .collect();
            let w = exec(&e, lun(0), &write16(lba, blocks, false), n as u32, &data);
            good(&w);
            assert_eq!(w.residual, Residual::None);
            let r = exec(&e, lun(0), &read16(lba, blocks), n as u32, &[]);
            good(&r);
            assert_eq!(&r.data_in[..], &data[..]);
        }
    }
    // READ(6) with TRANSFER LENGTH 0 is 256 blocks.
    let r = exec(&e, lun(0), &[0x08, 0, 0, 0, 0, 0], 256 * 512, &[]);
    good(&r);
    assert_eq!(r.data_in.len(), 256 * 512);
    // WRITE(6) with TRANSFER LENGTH 0 is 256 blocks too.
    let w = exec(
        &e,
        lun(0),
        &[0x0A, 0, 0, 0, 0, 0],
        256 * 512,
        &[0x66; 256 * 512],
    );
    good(&w);
    let r = exec(&e, lun(0), &read16(255, 1), 512, &[]);
    assert!(r.data_in.iter().all(|&b| b == 0x66));
    // READ(12).
    let r = exec(
        &e,
        lun(0),
        &[0xA8, 0, 0, 0, 0x03, 0xFF, 0, 0, 0, 1, 0, 0],
        512,
        &[],
    );
    good(&r);
}

#[test]
fn test_lba_out_of_range() {
    let e = engine();
    let cases: [(u64, u32); 5] = [
        (BLOCKS, 1),       // end + 1
        (1 << 31, 1),      // 2^31
        (u64::MAX, 1),     // 2^64 - 1
        (BLOCKS - 1, 2),   // partial overrun
        (u64::MAX - 1, 4), // lba + blocks overflows
    ];
    for (lba, blocks) in cases {
        let n = blocks * 512;
        let r = exec(&e, lun(0), &read16(lba, blocks), n, &[]);
        illegal(&r, LBA_OOR);
        assert_eq!(r.residual, Residual::Under(n), "nothing moved");
        let w = exec(
            &e,
            lun(0),
            &write16(lba, blocks, false),
            n,
            &vec![0xEE; n as usize],
        );
        illegal(&w, LBA_OOR);
    }
    // Nothing was written by the rejected partial overrun.
    let r = exec(&e, lun(0), &read16(BLOCKS - 1, 1), 512, &[]);
    assert!(r.data_in.iter().all(|&b| b == 0));
    // READ(10) forms: end + 1 and 2^31.
    illegal(
        &exec(&e, lun(0), &read10(BLOCKS as u32, 1), 512, &[]),
        LBA_OOR,
    );
    illegal(&exec(&e, lun(0), &read10(1 << 31, 1), 512, &[]), LBA_OOR);
    illegal(
        &exec(&e, lun(0), &write10(u32::MAX, 1), 512, &[0; 512]),
        LBA_OOR,
    );
}

#[test]
fn test_zero_length_transfers() {
    let e = engine();
    // At the last LBA: fine, nothing moved.
    let r = exec(&e, lun(0), &read16(BLOCKS - 1, 0), 0, &[]);
    good(&r);
    assert!(r.data_in.is_empty());
    good(&exec(&e, lun(0), &write16(BLOCKS - 1, 0, false), 0, &[]));
    good(&exec(&e, lun(0), &read10(BLOCKS as u32 - 1, 0), 0, &[]));
    // Past the end, the same address rules apply.
    for lba in [BLOCKS, 1 << 31, u64::MAX] {
        illegal(&exec(&e, lun(0), &read16(lba, 0), 0, &[]), LBA_OOR);
        illegal(&exec(&e, lun(0), &write16(lba, 0, false), 0, &[]), LBA_OOR);
    }
}

#[test]
fn test_read_residuals() {
    let e = engine();
    // Underrun: FCP_DL bigger than the transfer.
    let r = exec(&e, lun(0), &read16(0, 2), 4096, &[]);
    good(&r);
    assert_eq!(r.data_in.len(), 1024);
    assert_eq!(r.residual, Residual::Under(3072));
    // Overrun: FCP_DL smaller; only FCP_DL bytes are sent.
    let r = exec(&e, lun(0), &read16(0, 4), 1000, &[]);
    good(&r);
    assert_eq!(r.data_in.len(), 1000);
    assert_eq!(r.residual, Residual::Over(2048 - 1000));
    let rsp = r.fcp_rsp();
    assert_eq!(rsp.residual, Residual::Over(1048));
}

#[test]
fn test_write_residuals() {
    let e = engine();
    // Overrun: not executed, INVALID FIELD IN COMMAND INFORMATION UNIT, residual over.
    assert_eq!(e.data_out_len(HOST, lun(0), &write16(0, 4, false), 1024), 0);
    let w = exec(&e, lun(0), &write16(0, 4, false), 1024, &[0xAA; 1024]);
    illegal(&w, (0x0E, 0x03));
    assert_eq!(w.residual, Residual::Over(1024));
    let r = exec(&e, lun(0), &read16(0, 1), 512, &[]);
    assert!(r.data_in.iter().all(|&b| b == 0), "nothing written");
    // Underrun: written, residual under.
    assert_eq!(
        e.data_out_len(HOST, lun(0), &write16(0, 1, false), 4096),
        512
    );
    let w = exec(&e, lun(0), &write16(0, 1, false), 4096, &[0xAB; 512]);
    good(&w);
    assert_eq!(w.residual, Residual::Under(3584));
    let r = exec(&e, lun(0), &read16(0, 1), 512, &[]);
    assert!(r.data_in.iter().all(|&b| b == 0xAB));
    // Nothing is solicited for a write that will be rejected, or to a missing LUN.
    assert_eq!(
        e.data_out_len(HOST, lun(0), &write16(BLOCKS, 1, false), 512),
        0
    );
    assert_eq!(e.data_out_len(HOST, lun(7), &write16(0, 1, false), 512), 0);
    assert_eq!(e.data_out_len(HOST, lun(0), &read16(0, 1), 512), 0);
    // Less data-out than solicited: ABORTED COMMAND, DATA PHASE ERROR.
    let w = exec(&e, lun(0), &write16(0, 2, false), 1024, &[0; 100]);
    check(&w, SenseKey::ABORTED_COMMAND, (0x4B, 0x00));
}

#[test]
fn test_unsupported_opcode_and_bad_fields() {
    let e = engine();
    for op in [0xC0u8, 0x4D, 0x7F, 0xFF, 0x2E] {
        let mut c = [0u8; 16];
        c[0] = op;
        illegal(&exec(&e, lun(0), &c, 0, &[]), BAD_OP);
    }
    // SERVICE ACTION IN(16) with another service action.
    let r = exec(
        &e,
        lun(0),
        &[0x9E, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
        32,
        &[],
    );
    illegal(&r, BAD_OP);
    // INQUIRY with EVPD zero and a page code.
    let r = exec(&e, lun(0), &[0x12, 0, 0x80, 0, 0xFF, 0], 0xFF, &[]);
    illegal(&r, BAD_FIELD);
    assert_eq!(r.sense.unwrap().field_pointer().unwrap().byte, 2);
    // RDPROTECT without protection information.
    let mut c = read16(0, 1);
    c[1] = 0x20;
    let r = exec(&e, lun(0), &c, 512, &[]);
    illegal(&r, BAD_FIELD);
    assert_eq!(r.sense.unwrap().field_pointer().unwrap().byte, 1);
    // NACA.
    let mut c = [0u8; 6];
    c[5] = 0x04;
    let r = exec(&e, lun(0), &c, 0, &[]);
    illegal(&r, BAD_FIELD);
    assert_eq!(r.sense.unwrap().field_pointer().unwrap().byte, 5);
    // Transfer length above MAXIMUM TRANSFER LENGTH (on the huge disk, within capacity).
    illegal(
        &exec(&e, lun(2), &read16(0, 16385), u32::MAX, &[]),
        BAD_FIELD,
    );
    // Empty and truncated CDBs.
    illegal(&exec(&e, lun(0), &[], 0, &[]), BAD_FIELD);
    illegal(&exec(&e, lun(0), &[0x28, 0, 0], 0, &[]), BAD_FIELD);
}

#[test]
fn test_report_luns() {
    let e = engine();
    let cdb = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0];
    let expect = [
        0, 0, 0, 24, 0, 0, 0, 0, //
        0, 0, 0, 0, 0, 0, 0, 0, //
        0, 1, 0, 0, 0, 0, 0, 0, //
        0, 2, 0, 0, 0, 0, 0, 0,
    ];
    for l in [0, 1, 9] {
        let r = exec(&e, lun(l), &cdb, 256, &[]);
        good(&r);
        assert_eq!(&r.data_in[..], &expect[..]);
        assert_eq!(r.residual, Residual::Under(256 - 32));
    }
    // Allocation length 16: header and the first LUN.
    let r = exec(
        &e,
        lun(0),
        &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0],
        16,
        &[],
    );
    assert_eq!(&r.data_in[..], &expect[..16]);
    // Well-known only: none.
    let r = exec(
        &e,
        lun(0),
        &[0xA0, 0, 1, 0, 0, 0, 0, 0, 0, 16, 0, 0],
        16,
        &[],
    );
    assert_eq!(&r.data_in[..], &[0; 8]);
    illegal(
        &exec(
            &e,
            lun(0),
            &[0xA0, 0, 3, 0, 0, 0, 0, 0, 0, 16, 0, 0],
            16,
            &[],
        ),
        BAD_FIELD,
    );
    // Allocation length under 16.
    illegal(
        &exec(&e, lun(0), &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0], 8, &[]),
        BAD_FIELD,
    );
    // LUN 0 answers even with no unit there.
    let only1 = ScsiEngine::new(PORT);
    only1.add_tape(lun(1), tape_config()).unwrap();
    let r = exec(&only1, lun(0), &cdb, 256, &[]);
    good(&r);
    assert_eq!(
        &r.data_in[..],
        &[0, 0, 0, 8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn test_request_sense_and_unit_attention() {
    let e = engine();
    let rs = [0x03, 0, 0, 0, 252, 0];
    let r = exec(&e, lun(0), &rs, 252, &[]);
    good(&r);
    assert_eq!(r.data_in.len(), 18);
    assert_eq!(&r.data_in[..3], &[0x70, 0, 0]);
    assert_eq!((r.data_in[12], r.data_in[13]), (0, 0));
    assert!(e.queue_sense(lun(0), Sense::power_on_reset()));
    assert!(!e.queue_sense(lun(9), Sense::power_on_reset()));
    // INQUIRY is not stopped by the unit attention.
    good(&exec(&e, lun(0), &[0x12, 0, 0, 0, 36, 0], 36, &[]));
    // TEST UNIT READY reports it, and it is gone.
    check(
        &exec(&e, lun(0), &[0; 6], 0, &[]),
        SenseKey::UNIT_ATTENTION,
        (0x29, 0x00),
    );
    good(&exec(&e, lun(0), &[0; 6], 0, &[]));
    // REQUEST SENSE returns it and clears it; DESC gives descriptor format.
    e.queue_sense(lun(0), Sense::power_on_reset());
    let r = exec(&e, lun(0), &[0x03, 1, 0, 0, 252, 0], 252, &[]);
    good(&r);
    assert_eq!(&r.data_in[..4], &[0x72, 0x06, 0x29, 0x00]);
    let r = exec(&e, lun(0), &rs, 252, &[]);
    assert_eq!(r.data_in[2], 0);
    // Allocation length truncation.
    let r = exec(&e, lun(0), &[0x03, 0, 0, 0, 8, 0], 252, &[]);
    assert_eq!(r.data_in.len(), 8);
    assert_eq!(r.residual, Residual::Under(244));
}

#[test]
fn test_mode_sense_all_pages() {
    let e = engine();
    let r = exec(&e, lun(0), &[0x1A, 0, 0x3F, 0, 0xFF, 0], 0xFF, &[]);
    good(&r);
    let d = &r.data_in;
    // Header(6): length, medium type, DPOFUA, one 8-byte block descriptor.
    assert_eq!(usize::from(d[0]) + 1, d.len());
    assert_eq!(&d[1..4], &[0, 0x10, 8]);
    assert_eq!(&d[4..12], &[0, 0, 0x04, 0x00, 0, 0, 0x02, 0x00]);
    let p = ModeParameters::parse(d, ModeForm::Six).unwrap();
    assert_eq!(p.caching().unwrap().flags, CachingFlags::WCE);
    assert!(p.control().is_some());
    // DBD: no block descriptor.
    let r = exec(&e, lun(0), &[0x1A, 0x08, 0x3F, 0, 0xFF, 0], 0xFF, &[]);
    assert_eq!(r.data_in[3], 0);
    // MODE SENSE(10) with LLBAA: one long descriptor.
    let r = exec(
        &e,
        lun(2),
        &[0x5A, 0x10, 0x08, 0, 0, 0, 0, 0x01, 0, 0],
        256,
        &[],
    );
    good(&r);
    assert_eq!(r.data_in[4] & 1, 1, "LONGLBA");
    assert_eq!(&r.data_in[6..8], &[0, 16]);
    assert_eq!(&r.data_in[8..16], &(1u64 << 33).to_be_bytes());
    // One page only.
    let r = exec(&e, lun(0), &[0x1A, 0x08, 0x0A, 0, 0xFF, 0], 0xFF, &[]);
    assert_eq!(&r.data_in[4..6], &[0x0A, 0x0A]);
    // Truncated at the allocation length.
    let r = exec(&e, lun(0), &[0x1A, 0, 0x3F, 0, 4, 0], 0xFF, &[]);
    assert_eq!(r.data_in.len(), 4);
    // Unknown page, saved values.
    illegal(
        &exec(&e, lun(0), &[0x1A, 0, 0x19, 0, 0xFF, 0], 0xFF, &[]),
        BAD_FIELD,
    );
    illegal(
        &exec(&e, lun(0), &[0x1A, 0, 0xFF, 0, 0xFF, 0], 0xFF, &[]),
        (0x39, 0x00),
    );
    // Changeable values: WCE and D_SENSE.
    let r = exec(&e, lun(0), &[0x1A, 0x08, 0x7F, 0, 0xFF, 0], 0xFF, &[]);
    let p = ModeParameters::parse(&r.data_in, ModeForm::Six).unwrap();
    assert_eq!(p.control().unwrap().flags, ControlFlags::D_SENSE);
}

fn select6(params: &ModeParameters) -> (Vec<u8>, Vec<u8>) {
    let data = params.to_vec();
    (vec![0x15, 0x10, 0, 0, data.len() as u8, 0], data)
}

#[test]
fn test_mode_select() {
    let (e, probe) = probe_engine(false);
    let sense = exec(&e, lun(0), &[0x1A, 0x08, 0x3F, 0, 0xFF, 0], 0xFF, &[]);
    let mut p = ModeParameters::parse(&sense.data_in, ModeForm::Six).unwrap();
    p.device_specific = DeviceSpecific::empty();
    // WCE off: writes become FUA.
    for page in &mut p.pages {
        if let ModePage::Caching(c) = page {
            c.flags = CachingFlags::empty();
        }
    }
    let (cdb, data) = select6(&p);
    assert_eq!(e.data_out_len(HOST, lun(0), &cdb, 255), data.len() as u32);
    good(&exec(&e, lun(0), &cdb, data.len() as u32, &data));
    let r = exec(&e, lun(0), &[0x1A, 0x08, 0x08, 0, 0xFF, 0], 0xFF, &[]);
    let now = ModeParameters::parse(&r.data_in, ModeForm::Six).unwrap();
    assert_eq!(now.caching().unwrap().flags, CachingFlags::empty());
    good(&exec(&e, lun(0), &write16(0, 1, false), 512, &[1; 512]));
    assert_eq!(probe.fua.lock().unwrap().last(), Some(&true));
    // D_SENSE on: errors come in descriptor format.
    for page in &mut p.pages {
        if let ModePage::Control(c) = page {
            c.flags = ControlFlags::D_SENSE;
        }
    }
    let (cdb, data) = select6(&p);
    good(&exec(&e, lun(0), &cdb, data.len() as u32, &data));
    let r = exec(&e, lun(0), &read16(BLOCKS, 1), 512, &[]);
    illegal(&r, LBA_OOR);
    assert_eq!(r.sense.unwrap().format, SenseFormat::Descriptor);
    // Something that cannot be honoured: RCD.
    for page in &mut p.pages {
        if let ModePage::Caching(c) = page {
            c.flags = CachingFlags::RCD;
        }
    }
    let (cdb, data) = select6(&p);
    illegal(
        &exec(&e, lun(0), &cdb, data.len() as u32, &data),
        (0x26, 0x00),
    );
    // A different block length.
    let bad = ModeParameters {
        block_descriptors: BlockDescriptors::Short(vec![ShortBlockDescriptor {
            number_of_blocks: 0,
            block_length: 4096,
        }]),
        pages: Vec::new(),
        ..p.clone()
    };
    let (cdb, data) = select6(&bad);
    illegal(
        &exec(&e, lun(0), &cdb, data.len() as u32, &data),
        (0x26, 0x00),
    );
    // A page cut short: PARAMETER LIST LENGTH ERROR.
    let (mut cdb, data) = select6(&p);
    cdb[4] = 10;
    illegal(&exec(&e, lun(0), &cdb, 10, &data[..10]), (0x1A, 0x00));
    // SP set.
    illegal(
        &exec(&e, lun(0), &[0x15, 0x11, 0, 0, 0, 0], 0, &[]),
        BAD_FIELD,
    );
    // Empty list: nothing to do.
    good(&exec(&e, lun(0), &[0x15, 0x10, 0, 0, 0, 0], 0, &[]));
}

#[test]
fn test_fua_and_synchronize_cache() {
    let (e, probe) = probe_engine(false);
    good(&exec(&e, lun(0), &write16(5, 1, true), 512, &[3; 512]));
    good(&exec(&e, lun(0), &write16(6, 1, false), 512, &[3; 512]));
    assert_eq!(*probe.fua.lock().unwrap(), vec![true, false]);
    let sc10 = [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    good(&exec(&e, lun(0), &sc10, 0, &[]));
    let sc16 = [0x91, 0, 0, 0, 0, 0, 0, 0, 0x03, 0xFF, 0, 0, 0, 1, 0, 0];
    good(&exec(&e, lun(0), &sc16, 0, &[]));
    assert_eq!(probe.flushes.load(Ordering::SeqCst), 2);
    let mut past = sc16;
    past[9] = 0xFF;
    past[8] = 0x04;
    illegal(&exec(&e, lun(0), &past, 0, &[]), LBA_OOR);
    assert_eq!(probe.flushes.load(Ordering::SeqCst), 2);
}

#[test]
fn test_device_errors() {
    let (e, _) = probe_engine(true);
    let r = exec(&e, lun(0), &read16(3, 1), 512, &[]);
    check(&r, SenseKey::MEDIUM_ERROR, (0x11, 0x00));
    assert_eq!(r.sense.unwrap().information, Some(3));
    let w = exec(&e, lun(0), &write16(4, 1, true), 512, &[0; 512]);
    check(&w, SenseKey::MEDIUM_ERROR, (0x0C, 0x00));
}

fn verify10(lba: u32, blocks: u16, bytchk: u8) -> Vec<u8> {
    let mut c = read10(lba, blocks);
    c[0] = 0x2F;
    c[1] = bytchk << 1;
    c
}

#[test]
fn test_verify_medium_and_ranges() {
    let e = engine();
    good(&exec(&e, lun(0), &verify10(0, 1024, 0), 0, &[]));
    good(&exec(&e, lun(0), &verify10(1023, 0, 0), 0, &[]));
    illegal(&exec(&e, lun(0), &verify10(1000, 25, 0), 0, &[]), LBA_OOR);
    // BYTCHK 10b is reserved.
    let r = exec(&e, lun(0), &verify10(0, 1, 2), 512, &[0; 512]);
    illegal(&r, BAD_FIELD);
    assert_eq!(r.sense.unwrap().field_pointer().unwrap().byte, 1);
    let mut v16 = read16(u64::MAX, 1);
    v16[0] = 0x8F;
    illegal(&exec(&e, lun(0), &v16, 0, &[]), LBA_OOR);
    // VRPROTECT without protection information.
    let mut c = verify10(0, 1, 0);
    c[1] |= 0x20;
    illegal(&exec(&e, lun(0), &c, 0, &[]), BAD_FIELD);
}

/// BYTCHK 00b reads the medium: a read error is MEDIUM ERROR at the failing LBA.
#[test]
fn test_verify_read_error() {
    let (e, _) = probe_engine(true);
    let r = exec(&e, lun(0), &verify10(7, 4, 0), 0, &[]);
    check(&r, SenseKey::MEDIUM_ERROR, (0x11, 0x00));
    assert_eq!(r.sense.unwrap().information, Some(7));
    // The same for a comparison.
    let r = exec(&e, lun(0), &verify10(7, 1, 1), 512, &[0; 512]);
    check(&r, SenseKey::MEDIUM_ERROR, (0x11, 0x00));
}

/// BYTCHK 01b compares with the data-out: a match is GOOD, a miscompare is MISCOMPARE /
/// MISCOMPARE DURING VERIFY OPERATION with INFORMATION the offset of the first differing
/// byte in the data-out.
#[test]
fn test_verify_bytchk_compare() {
    let e = engine();
    let data: Vec<u8> = (0..4 * BS).map(|i| (i * 13 % 251) as u8).collect();
    good(&exec(&e, lun(0), &write16(20, 4, false), 2048, &data));
    let cdb = verify10(20, 4, 1);
    assert_eq!(e.data_out_len(HOST, lun(0), &cdb, 2048), 2048);
    let r = exec(&e, lun(0), &cdb, 2048, &data);
    good(&r);
    assert_eq!(r.residual, Residual::None);
    let mut bad = data.clone();
    bad[3 * BS + 17] ^= 0xFF;
    let r = exec(&e, lun(0), &cdb, 2048, &bad);
    check(&r, SenseKey::MISCOMPARE, (0x1D, 0x00));
    assert_eq!(r.sense.unwrap().information, Some(3 * BS as u64 + 17));
    // Unmapped blocks compare as zeros.
    good(&exec(&e, lun(0), &verify10(500, 2, 1), 1024, &[0; 1024]));
    // FCP_DL that does not cover the data-out: not executed, as for WRITE.
    assert_eq!(e.data_out_len(HOST, lun(0), &cdb, 1024), 0);
    let r = exec(&e, lun(0), &cdb, 1024, &data[..1024]);
    illegal(&r, (0x0E, 0x03));
    assert_eq!(r.residual, Residual::Over(1024));
    // Less data-out than solicited.
    let r = exec(&e, lun(0), &cdb, 2048, &data[..100]);
    check(&r, SenseKey::ABORTED_COMMAND, (0x4B, 0x00));
    // Nothing is solicited for one out of range.
    assert_eq!(e.data_out_len(HOST, lun(0), &verify10(1023, 2, 1), 1024), 0);
}

/// BYTCHK 11b compares every block with one block of data-out; INFORMATION counts through
/// the repeated Data-Out Buffer.
#[test]
fn test_verify_bytchk_compare_each() {
    let e = engine();
    let block: Vec<u8> = (0..BS).map(|i| i as u8).collect();
    good(&exec(&e, lun(0), &write_same16(0, 40, 8), 512, &block));
    let cdb = verify10(40, 8, 3);
    assert_eq!(e.data_out_len(HOST, lun(0), &cdb, 512), 512);
    good(&exec(&e, lun(0), &cdb, 512, &block));
    let mut odd = block.clone();
    odd[9] = 0xEE;
    good(&exec(&e, lun(0), &write16(45, 1, false), 512, &odd));
    let r = exec(&e, lun(0), &cdb, 512, &block);
    check(&r, SenseKey::MISCOMPARE, (0x1D, 0x00));
    assert_eq!(r.sense.unwrap().information, Some(5 * BS as u64 + 9));
}

fn write_same16(b1: u8, lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = read16(lba, blocks);
    c[0] = 0x93;
    c[1] = b1;
    c
}

#[test]
fn test_write_same() {
    let e = engine();
    let pattern: Vec<u8> = (0..512).map(|i| i as u8).collect();
    good(&exec(&e, lun(0), &write_same16(0, 10, 3), 512, &pattern));
    let r = exec(&e, lun(0), &read16(9, 5), 2560, &[]);
    assert!(r.data_in[..512].iter().all(|&b| b == 0));
    for i in 0..3 {
        assert_eq!(&r.data_in[512 * (i + 1)..512 * (i + 2)], &pattern[..]);
    }
    // UNMAP bit with a zero block: deallocated, reads zero.
    good(&exec(
        &e,
        lun(0),
        &write_same16(0x08, 10, 2),
        512,
        &[0; 512],
    ));
    // NDOB: zeros, no data out.
    assert_eq!(
        e.data_out_len(HOST, lun(0), &write_same16(0x01, 12, 1), 0),
        0
    );
    good(&exec(&e, lun(0), &write_same16(0x01, 12, 1), 0, &[]));
    let r = exec(&e, lun(0), &read16(10, 3), 1536, &[]);
    assert!(r.data_in.iter().all(|&b| b == 0));
    // Zero blocks (WSNZ), out of range, ANCHOR.
    illegal(
        &exec(&e, lun(0), &write_same16(0, 0, 0), 512, &pattern),
        BAD_FIELD,
    );
    illegal(
        &exec(&e, lun(0), &write_same16(0, 1020, 5), 512, &pattern),
        LBA_OOR,
    );
    illegal(
        &exec(&e, lun(0), &write_same16(0x18, 0, 1), 512, &pattern),
        BAD_FIELD,
    );
    illegal(
        &exec(&e, lun(0), &write_same16(0x10, 0, 1), 512, &pattern),
        BAD_FIELD,
    );
}

fn unmap_list(ranges: &[(u64, u32)]) -> Vec<u8> {
    UnmapParameterList {
        descriptors: ranges
            .iter()
            .map(|&(lba, blocks)| fc_frames::scsi::data::UnmapDescriptor { lba, blocks })
            .collect(),
    }
    .to_vec()
}

#[test]
fn test_unmap() {
    let e = engine();
    good(&exec(
        &e,
        lun(0),
        &write16(0, 8, false),
        4096,
        &[0xCC; 4096],
    ));
    let list = unmap_list(&[(1, 2), (6, 1)]);
    let cdb = [0x42, 0, 0, 0, 0, 0, 0, 0, list.len() as u8, 0];
    assert_eq!(e.data_out_len(HOST, lun(0), &cdb, 512), list.len() as u32);
    good(&exec(&e, lun(0), &cdb, list.len() as u32, &list));
    let r = exec(&e, lun(0), &read16(0, 8), 4096, &[]);
    let zeroed: Vec<bool> = r
        .data_in
        .chunks(512)
        .map(|b| b.iter().all(|&x| x == 0))
        .collect();
    assert_eq!(
        zeroed,
        [false, true, true, false, false, false, true, false]
    );
    // Out of range: nothing unmapped, not even the good first range.
    let list = unmap_list(&[(0, 1), (1023, 2)]);
    let cdb = [0x42, 0, 0, 0, 0, 0, 0, 0, list.len() as u8, 0];
    illegal(&exec(&e, lun(0), &cdb, list.len() as u32, &list), LBA_OOR);
    let r = exec(&e, lun(0), &read16(0, 1), 512, &[]);
    assert!(r.data_in.iter().all(|&b| b == 0xCC));
    // Bad lists: what DataError::parameter_list_sense says.
    let mut bad = unmap_list(&[(0, 1)]);
    bad[3] = 15; // descriptor length not a multiple of 16
    let cdb = [0x42, 0, 0, 0, 0, 0, 0, 0, bad.len() as u8, 0];
    illegal(
        &exec(&e, lun(0), &cdb, bad.len() as u32, &bad),
        (0x26, 0x00),
    );
    let short = [0u8, 22, 0, 16, 0];
    let cdb = [0x42, 0, 0, 0, 0, 0, 0, 0, 5, 0];
    illegal(&exec(&e, lun(0), &cdb, 5, &short), (0x1A, 0x00));
    // Zero-length list, ANCHOR.
    good(&exec(
        &e,
        lun(0),
        &[0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        0,
        &[],
    ));
    illegal(
        &exec(&e, lun(0), &[0x42, 1, 0, 0, 0, 0, 0, 0, 0, 0], 0, &[]),
        BAD_FIELD,
    );
}

#[test]
fn test_fcp_rsp() {
    let e = engine();
    let r = exec(&e, lun(0), &read16(BLOCKS, 1), 512, &[]);
    let rsp = r.fcp_rsp();
    assert_eq!(rsp.status, ScsiStatus::CHECK_CONDITION);
    assert_eq!(rsp.residual, Residual::Under(512));
    assert_eq!(Sense::parse(&rsp.sense_data).unwrap(), r.sense.unwrap());
}

proptest! {
    #[test]
    fn proptest_read_write_against_model(
        ops in proptest::collection::vec(
            (any::<bool>(), 0u64..1100, 0u32..40, any::<u8>()), 1..40)
    ) {
        let e = engine();
        let mut model = vec![0u8; BLOCKS as usize * BS];
        for (is_write, lba, blocks, seed) in ops {
            let n = blocks as usize * BS;
            let inside = lba + u64::from(blocks) <= BLOCKS && lba < BLOCKS;
            if is_write {
                let data: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(seed)).collect();
                let r = exec(&e, lun(0), &write16(lba, blocks, seed & 1 == 1), n as u32, &data);
                if inside {
                    prop_assert_eq!(r.status, ScsiStatus::GOOD);
                    model[lba as usize * BS..lba as usize * BS + n].copy_from_slice(&data);
                } else {
                    prop_assert_eq!(r.sense.unwrap().additional, AdditionalSense::LBA_OUT_OF_RANGE);
                }
            } else {
                let r = exec(&e, lun(0), &read16(lba, blocks), n as u32, &[]);
                if inside {
                    prop_assert_eq!(r.status, ScsiStatus::GOOD);
                    prop_assert_eq!(&r.data_in[..], &model[lba as usize * BS..lba as usize * BS + n]);
                } else {
                    prop_assert_eq!(r.sense.unwrap().additional, AdditionalSense::LBA_OUT_OF_RANGE);
                }
            }
        }
    }

    #[test]
    fn proptest_arbitrary_cdb_never_panics(
        cdb in proptest::collection::vec(any::<u8>(), 0..20),
        l in 0u16..4,
        fcp_dl in prop_oneof![Just(0u32), 0u32..70000, Just(u32::MAX)],
        data in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let e = engine();
        let want = e.data_out_len(HOST, lun(l), &cdb, fcp_dl);
        prop_assert!(want <= fcp_dl);
        let r = exec(&e, lun(l), &cdb, fcp_dl, &data);
        prop_assert!(r.data_in.len() as u64 <= u64::from(fcp_dl));
        prop_assert_eq!(r.sense.is_some(), r.status == ScsiStatus::CHECK_CONDITION);
    }
}
