//! The engine as task manager: nexuses and their unit attentions, task ordering by
//! attribute, task management functions, logical units coming and going.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fc_frames::fcp::TaskAttribute;
use fc_frames::scsi::data::mode::CachingFlags;
use fc_frames::scsi::data::{ModeForm, ModePage, ModeParameters, ReadBlockLimitsData};
use fc_frames::scsi::{Lun, ScsiStatus, Sense, SenseKey};
use fc_frames::Wwn;
use tokio::task::JoinHandle;

use super::*;
use crate::scsi::{DeviceError, MemLun, Tier};

const A: Nexus = Nexus::new(Wwn([0x21, 0, 0, 0, 0, 0, 0, 0xA]));
const B: Nexus = Nexus::new(Wwn([0x21, 0, 0, 0, 0, 0, 0, 0xB]));
const C: Nexus = Nexus::new(Wwn([0x21, 0, 0, 0, 0, 0, 0, 0xC]));
const BS: u32 = 512;

fn lun(n: u16) -> Lun {
    Lun::from_index(n).unwrap()
}

/// What a [`Slow`] device did, by the LBA of the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Start(u64),
    End(u64),
}

/// A RAM disk whose operations at some LBAs take time, and that records when each operation
/// starts and ends (an operation whose future is dropped has no end).
struct Slow {
    inner: MemLun,
    delays: Mutex<HashMap<u64, Duration>>,
    log: Mutex<Vec<Ev>>,
}

impl Slow {
    fn new(blocks: u64) -> Arc<Slow> {
        Arc::new(Slow {
            inner: MemLun::new(blocks, BS, Tier::Ssd).unwrap(),
            delays: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
        })
    }

    fn delay(&self, lba: u64, d: Duration) {
        self.delays.lock().unwrap().insert(lba, d);
    }

    fn log(&self) -> Vec<Ev> {
        self.log.lock().unwrap().clone()
    }

    async fn around<T>(&self, lba: u64, op: impl std::future::Future<Output = T>) -> T {
        self.log.lock().unwrap().push(Ev::Start(lba));
        let d = self.delays.lock().unwrap().get(&lba).copied();
        if let Some(d) = d {
            tokio::time::sleep(d).await;
        }
        let r = op.await;
        self.log.lock().unwrap().push(Ev::End(lba));
        r
    }
}

#[async_trait::async_trait]
impl BlockDevice for Slow {
    fn block_size(&self) -> u32 {
        BS
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn tier(&self) -> Tier {
        Tier::Ssd
    }
    async fn read(&self, lba: u64, blocks: u64) -> Result<Bytes, DeviceError> {
        self.around(lba, self.inner.read(lba, blocks)).await
    }
    async fn write(&self, lba: u64, data: Bytes, fua: bool) -> Result<(), DeviceError> {
        self.around(lba, self.inner.write(lba, data, fua)).await
    }
    async fn flush(&self) -> Result<(), DeviceError> {
        Ok(())
    }
    async fn unmap(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        self.around(lba, self.inner.unmap(lba, blocks)).await
    }
}

/// A device whose writes, once started, cannot be stopped: they land on a thread of their
/// own after `delay`, whatever happens to the future; `settle` waits for them.
struct Stubborn {
    inner: Arc<MemLun>,
    delay: Duration,
    started: AtomicBool,
    landed: Arc<AtomicBool>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

#[async_trait::async_trait]
impl BlockDevice for Stubborn {
    fn block_size(&self) -> u32 {
        BS
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn tier(&self) -> Tier {
        Tier::Ssd
    }
    async fn read(&self, lba: u64, blocks: u64) -> Result<Bytes, DeviceError> {
        self.inner.read(lba, blocks).await
    }
    async fn write(&self, lba: u64, data: Bytes, fua: bool) -> Result<(), DeviceError> {
        let (inner, landed, delay) = (self.inner.clone(), self.landed.clone(), self.delay);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let t = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let r = rt.block_on(inner.write(lba, data, fua));
            landed.store(true, Ordering::SeqCst);
            let _ = tx.send(r);
        });
        self.threads.lock().unwrap().push(t);
        self.started.store(true, Ordering::SeqCst);
        rx.await.unwrap_or(Ok(()))
    }
    async fn flush(&self) -> Result<(), DeviceError> {
        Ok(())
    }
    async fn unmap(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        self.inner.unmap(lba, blocks).await
    }
    async fn settle(&self) {
        let threads: Vec<_> = std::mem::take(&mut *self.threads.lock().unwrap());
        for t in threads {
            // A test device: joining on the runtime thread is fine here.
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

fn read16(lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = vec![0x88, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&blocks.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

fn write16(lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = read16(lba, blocks);
    c[0] = 0x8A;
    c
}

const TUR: [u8; 6] = [0; 6];

fn cmd(nexus: Nexus, l: Lun, cdb: &[u8], dl: u32) -> ScsiCommand {
    ScsiCommand::new(nexus, l, Bytes::copy_from_slice(cdb), dl)
}

async fn run(e: &ScsiEngine, c: ScsiCommand) -> ScsiResponse {
    e.execute(c).await.response().expect("not aborted")
}

/// The ASC/ASCQ of a unit attention, or None for GOOD.
fn ua(r: &ScsiResponse) -> Option<(u8, u8)> {
    match r.status {
        ScsiStatus::GOOD => None,
        _ => {
            let s = r.sense.expect("sense");
            assert_eq!(s.key, SenseKey::UNIT_ATTENTION, "{s}");
            Some((s.additional.0, s.additional.1))
        }
    }
}

const LUNS_CHANGED: Option<(u8, u8)> = Some((0x3F, 0x0E));
const CAPACITY_CHANGED: Option<(u8, u8)> = Some((0x2A, 0x09));

fn tape() -> TapeConfig {
    TapeConfig {
        vendor: "FCSAN".into(),
        product: "VTAPE".into(),
        revision: "0001".into(),
        serial: "T".into(),
        naa: Wwn::ZERO,
        block_limits: ReadBlockLimitsData::fixed(512),
    }
}

/// One RAM disk at LUN 0 of 1024 blocks; its device.
fn engine() -> (Arc<ScsiEngine>, Arc<MemLun>) {
    let e = ScsiEngine::new(TargetPort::default());
    let m = Arc::new(MemLun::new(1024, BS, Tier::Ssd).unwrap());
    e.add_disk(lun(0), m.clone(), DiskConfig::new("D0", Wwn::ZERO))
        .unwrap();
    (Arc::new(e), m)
}

#[tokio::test]
async fn test_lun_added_and_removed_reported_once_per_nexus() {
    let (e, _) = engine();
    e.add_nexus(A);
    e.add_nexus(B);
    e.add_tape(lun(3), tape()).unwrap();
    // INQUIRY and REPORT LUNS do not report it, nor clear it.
    let inq = [0x12, 0, 0, 0, 36, 0];
    assert_eq!(ua(&run(&e, cmd(A, lun(0), &inq, 36)).await), None);
    assert_eq!(
        ua(&run(&e, cmd(A, lun(0), &TUR, 0)).await),
        LUNS_CHANGED,
        "A sees it"
    );
    assert_eq!(ua(&run(&e, cmd(A, lun(0), &TUR, 0)).await), None, "once");
    assert_eq!(
        ua(&run(&e, cmd(A, lun(3), &TUR, 0)).await),
        None,
        "not per LU"
    );
    // B sees it too, on another LU.
    assert_eq!(ua(&run(&e, cmd(B, lun(3), &TUR, 0)).await), LUNS_CHANGED);
    assert_eq!(ua(&run(&e, cmd(B, lun(0), &TUR, 0)).await), None);
    // A nexus that comes later did not miss anything.
    e.add_nexus(C);
    assert_eq!(ua(&run(&e, cmd(C, lun(0), &TUR, 0)).await), None);
    // Removing: every nexus once again.
    assert_eq!(e.remove_lun(lun(3)).await, Ok(0));
    assert_eq!(e.luns(), vec![lun(0)]);
    for n in [A, B, C] {
        assert_eq!(ua(&run(&e, cmd(n, lun(0), &TUR, 0)).await), LUNS_CHANGED);
        assert_eq!(ua(&run(&e, cmd(n, lun(0), &TUR, 0)).await), None);
    }
    assert_eq!(e.remove_lun(lun(3)).await, Err(LunError::NoSuchLun(lun(3))));
    assert_eq!(e.add_tape(lun(0), tape()), Err(LunError::InUse(lun(0))));
    // REQUEST SENSE returns it and clears it.
    e.add_tape(lun(4), tape()).unwrap();
    let r = run(&e, cmd(A, lun(0), &[0x03, 0, 0, 0, 18, 0], 18)).await;
    assert_eq!(r.status, ScsiStatus::GOOD);
    assert_eq!(
        (r.data_in[2], r.data_in[12], r.data_in[13]),
        (0x06, 0x3F, 0x0E)
    );
    assert_eq!(ua(&run(&e, cmd(A, lun(0), &TUR, 0)).await), None);
}

#[tokio::test]
async fn test_capacity_change_reported_once_per_nexus() {
    let (e, m) = engine();
    e.add_nexus(A);
    e.add_nexus(B);
    let rc10 = [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let r = run(&e, cmd(A, lun(0), &rc10, 8)).await;
    assert_eq!(&r.data_in[..4], &1023u32.to_be_bytes());
    assert!(m.resize(2048));
    // Nothing is solicited for a write that will end in the unit attention.
    assert_eq!(e.data_out_len(A, lun(0), &write16(0, 1), 512), 0);
    assert_eq!(
        ua(&run(&e, cmd(A, lun(0), &rc10, 8)).await),
        CAPACITY_CHANGED
    );
    let r = run(&e, cmd(A, lun(0), &rc10, 8)).await;
    assert_eq!(ua(&r), None, "once");
    assert_eq!(&r.data_in[..4], &2047u32.to_be_bytes(), "the new size");
    assert_eq!(
        ua(&run(&e, cmd(B, lun(0), &TUR, 0)).await),
        CAPACITY_CHANGED
    );
    assert_eq!(ua(&run(&e, cmd(B, lun(0), &TUR, 0)).await), None);
    // The new blocks are addressable.
    let r = run(&e, cmd(B, lun(0), &read16(2047, 1), 512)).await;
    assert_eq!(r.status, ScsiStatus::GOOD);
    // Announced at once through the engine: reported once as well.
    assert!(m.resize(4096));
    assert!(e.notice_capacity(lun(0)));
    assert!(!e.notice_capacity(lun(0)));
    assert_eq!(
        ua(&run(&e, cmd(A, lun(0), &TUR, 0)).await),
        CAPACITY_CHANGED
    );
    assert_eq!(ua(&run(&e, cmd(A, lun(0), &TUR, 0)).await), None);
    assert_eq!(
        ua(&run(&e, cmd(B, lun(0), &TUR, 0)).await),
        CAPACITY_CHANGED
    );
}

#[tokio::test]
async fn test_queue_sense_reaches_every_nexus_and_mode_select_tells_the_others() {
    let (e, _) = engine();
    e.add_nexus(A);
    e.add_nexus(B);
    assert!(e.queue_sense(lun(0), Sense::power_on_reset()));
    assert!(!e.queue_sense(lun(9), Sense::power_on_reset()));
    for n in [A, B] {
        assert_eq!(ua(&run(&e, cmd(n, lun(0), &TUR, 0)).await), Some((0x29, 0)));
        assert_eq!(ua(&run(&e, cmd(n, lun(0), &TUR, 0)).await), None);
    }
    // A turns the write cache off: B hears MODE PARAMETERS CHANGED, A does not.
    let sense = run(&e, cmd(A, lun(0), &[0x1A, 0x08, 0x08, 0, 0xFF, 0], 0xFF)).await;
    let mut p = ModeParameters::parse(&sense.data_in, ModeForm::Six).unwrap();
    p.device_specific = fc_frames::scsi::data::DeviceSpecific::empty();
    for page in &mut p.pages {
        if let ModePage::Caching(c) = page {
            c.flags = CachingFlags::empty();
        }
    }
    let data = p.to_vec();
    let select = [0x15, 0x10, 0, 0, data.len() as u8, 0];
    let r = run(
        &e,
        cmd(A, lun(0), &select, data.len() as u32).with_data_out(data.clone()),
    )
    .await;
    assert_eq!(r.status, ScsiStatus::GOOD, "{:?}", r.sense);
    assert_eq!(ua(&run(&e, cmd(A, lun(0), &TUR, 0)).await), None);
    assert_eq!(
        ua(&run(&e, cmd(B, lun(0), &TUR, 0)).await),
        Some((0x2A, 0x01))
    );
    // The same values again change nothing: no unit attention.
    let r = run(
        &e,
        cmd(A, lun(0), &select, data.len() as u32).with_data_out(data),
    )
    .await;
    assert_eq!(r.status, ScsiStatus::GOOD);
    assert_eq!(ua(&run(&e, cmd(B, lun(0), &TUR, 0)).await), None);
}

#[tokio::test]
async fn test_aca_attribute_refused() {
    let (e, _) = engine();
    let r = run(
        &e,
        cmd(A, lun(0), &TUR, 0).with_attribute(TaskAttribute::ACA),
    )
    .await;
    assert_eq!(r.status, ScsiStatus::CHECK_CONDITION);
    let s = r.sense.unwrap();
    assert_eq!(
        (s.key, s.additional.0, s.additional.1),
        (SenseKey::ILLEGAL_REQUEST, 0x0E, 0x03)
    );
    assert_eq!(e.tasks(lun(0)), 0);
}

/// An engine with a [`Slow`] disk at LUN 0.
fn slow_engine() -> (Arc<ScsiEngine>, Arc<Slow>) {
    let e = ScsiEngine::new(TargetPort::default());
    let dev = Slow::new(1024);
    e.add_disk(lun(0), dev.clone(), DiskConfig::new("S", Wwn::ZERO))
        .unwrap();
    (Arc::new(e), dev)
}

/// Enters a READ of block `lba` with `attr` now, and runs it as its own tokio task.
fn spawn_read(e: &ScsiEngine, nexus: Nexus, lba: u64, attr: TaskAttribute) -> JoinHandle<Outcome> {
    let task = e.enter(
        cmd(nexus, lun(0), &read16(lba, 1), 512)
            .with_tag(lba)
            .with_attribute(attr),
    );
    tokio::spawn(task.run())
}

/// Waits until the device's log satisfies `f`.
async fn until(dev: &Slow, f: impl Fn(&[Ev]) -> bool) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !f(&dev.log()) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the device never got there");
}

fn position(log: &[Ev], ev: Ev) -> usize {
    log.iter()
        .position(|&e| e == ev)
        .unwrap_or_else(|| panic!("{ev:?} not in {log:?}"))
}

#[tokio::test]
async fn test_simple_tasks_overlap() {
    let (e, dev) = slow_engine();
    for lba in 1..=3 {
        dev.delay(lba, Duration::from_millis(100));
    }
    let tasks: Vec<_> = (1..=3)
        .map(|lba| spawn_read(&e, A, lba, TaskAttribute::SIMPLE))
        .collect();
    for t in tasks {
        assert_eq!(
            t.await.unwrap().response().unwrap().status,
            ScsiStatus::GOOD
        );
    }
    let log = dev.log();
    let last_start = (1..=3).map(|l| position(&log, Ev::Start(l))).max().unwrap();
    let first_end = (1..=3).map(|l| position(&log, Ev::End(l))).min().unwrap();
    assert!(last_start < first_end, "all three ran at once: {log:?}");
}

#[tokio::test]
async fn test_ordered_task_waits_for_older_and_holds_back_newer() {
    let (e, dev) = slow_engine();
    dev.delay(1, Duration::from_millis(100));
    dev.delay(2, Duration::from_millis(30));
    // Entered in this order: SIMPLE 1 (slow), ORDERED 2, SIMPLE 3, SIMPLE 4.
    let t1 = e.enter(cmd(A, lun(0), &read16(1, 1), 512).with_tag(1));
    let t2 = e.enter(
        cmd(A, lun(0), &read16(2, 1), 512)
            .with_tag(2)
            .with_attribute(TaskAttribute::ORDERED),
    );
    let t3 = e.enter(cmd(B, lun(0), &read16(3, 1), 512).with_tag(3));
    let t4 = e.enter(cmd(B, lun(0), &read16(4, 1), 512).with_tag(4));
    // Run in the opposite order: the order of entry decides.
    let h4 = tokio::spawn(t4.run());
    let h3 = tokio::spawn(t3.run());
    let h2 = tokio::spawn(t2.run());
    let h1 = tokio::spawn(t1.run());
    for h in [h1, h2, h3, h4] {
        assert_eq!(
            h.await.unwrap().response().unwrap().status,
            ScsiStatus::GOOD
        );
    }
    let log = dev.log();
    let at = |ev| position(&log, ev);
    assert!(
        at(Ev::End(1)) < at(Ev::Start(2)),
        "ORDERED after the older SIMPLE: {log:?}"
    );
    for later in [3, 4] {
        assert!(at(Ev::End(2)) < at(Ev::Start(later)), "held back: {log:?}");
    }
    assert_eq!(e.tasks(lun(0)), 0);
}

#[tokio::test]
async fn test_head_of_queue_starts_at_once() {
    let (e, dev) = slow_engine();
    dev.delay(1, Duration::from_millis(150));
    let ordered = spawn_read(&e, A, 1, TaskAttribute::ORDERED);
    until(&dev, |l| l.contains(&Ev::Start(1))).await;
    let simple = spawn_read(&e, A, 2, TaskAttribute::SIMPLE);
    let hoq = spawn_read(&e, B, 3, TaskAttribute::HEAD_OF_QUEUE);
    for h in [hoq, ordered, simple] {
        assert_eq!(
            h.await.unwrap().response().unwrap().status,
            ScsiStatus::GOOD
        );
    }
    let log = dev.log();
    let at = |ev| position(&log, ev);
    assert!(
        at(Ev::End(3)) < at(Ev::End(1)),
        "HEAD OF QUEUE did not wait: {log:?}"
    );
    assert!(
        at(Ev::End(1)) < at(Ev::Start(2)),
        "SIMPLE waited for the ORDERED: {log:?}"
    );
}

/// A slow read on tag 1 of A and another on tag 2; ABORT TASK of tag 1 drops its device
/// future at once, the task returns no status, and the other goes on.
#[tokio::test]
async fn test_abort_task() {
    let (e, dev) = slow_engine();
    dev.delay(1, Duration::from_secs(30));
    dev.delay(2, Duration::from_millis(200));
    let stuck = spawn_read(&e, A, 1, TaskAttribute::SIMPLE);
    let other = spawn_read(&e, A, 2, TaskAttribute::SIMPLE);
    until(&dev, |l| {
        l.contains(&Ev::Start(1)) && l.contains(&Ev::Start(2))
    })
    .await;
    let n = tokio::time::timeout(Duration::from_secs(2), e.abort_task(A, lun(0), 1))
        .await
        .expect("ABORT TASK does not wait for the slow device");
    assert_eq!(n, Ok(1));
    assert_eq!(stuck.await.unwrap(), Outcome::Aborted);
    assert!(
        !dev.log().contains(&Ev::End(1)),
        "its device future was dropped"
    );
    assert_eq!(
        other.await.unwrap().response().unwrap().status,
        ScsiStatus::GOOD
    );
    // Unknown tag: nothing aborted; unknown LUN: INCORRECT LOGICAL UNIT NUMBER.
    assert_eq!(e.abort_task(A, lun(0), 99).await, Ok(0));
    assert_eq!(
        e.abort_task(A, lun(5), 1).await,
        Err(TmfError::IncorrectLun(lun(5)))
    );
}

#[tokio::test]
async fn test_abort_task_set_is_per_nexus() {
    let (e, dev) = slow_engine();
    for lba in 1..=3 {
        dev.delay(lba, Duration::from_millis(300));
    }
    let a1 = spawn_read(&e, A, 1, TaskAttribute::SIMPLE);
    let a2 = spawn_read(&e, A, 2, TaskAttribute::SIMPLE);
    let b3 = spawn_read(&e, B, 3, TaskAttribute::SIMPLE);
    // A task still waiting for its data-out (never run) is aborted too.
    let a4 = e.enter(cmd(A, lun(0), &write16(4, 1), 512).with_tag(4));
    until(&dev, |l| l.len() >= 3).await;
    assert_eq!(e.abort_task_set(A, lun(0)).await, Ok(3));
    assert_eq!(a1.await.unwrap(), Outcome::Aborted);
    assert_eq!(a2.await.unwrap(), Outcome::Aborted);
    assert_eq!(a4.run().await, Outcome::Aborted);
    assert_eq!(
        b3.await.unwrap().response().unwrap().status,
        ScsiStatus::GOOD
    );
    // Neither nexus gets a unit attention for it.
    for n in [A, B] {
        assert_eq!(ua(&run(&e, cmd(n, lun(0), &TUR, 0)).await), None);
    }
}

#[tokio::test]
async fn test_clear_task_set_tells_the_other_initiators() {
    let (e, dev) = slow_engine();
    e.add_nexus(C);
    dev.delay(1, Duration::from_secs(30));
    dev.delay(2, Duration::from_secs(30));
    let a = spawn_read(&e, A, 1, TaskAttribute::SIMPLE);
    let b = spawn_read(&e, B, 2, TaskAttribute::SIMPLE);
    until(&dev, |l| l.len() == 2).await;
    assert_eq!(e.clear_task_set(A, lun(0)).await, Ok(2));
    assert_eq!(a.await.unwrap(), Outcome::Aborted);
    assert_eq!(b.await.unwrap(), Outcome::Aborted);
    assert_eq!(ua(&run(&e, cmd(A, lun(0), &TUR, 0)).await), None);
    assert_eq!(
        ua(&run(&e, cmd(B, lun(0), &TUR, 0)).await),
        Some((0x2F, 0x00))
    );
    assert_eq!(
        ua(&run(&e, cmd(C, lun(0), &TUR, 0)).await),
        None,
        "lost nothing"
    );
    assert!(dev.log().iter().all(|ev| matches!(ev, Ev::Start(_))));
}

#[tokio::test]
async fn test_logical_unit_reset() {
    let (e, dev) = slow_engine();
    e.add_nexus(B);
    // A turns the write cache off first; B takes the mode change unit attention.
    let sense = run(&e, cmd(A, lun(0), &[0x1A, 0x08, 0x08, 0, 0xFF, 0], 0xFF)).await;
    let mut p = ModeParameters::parse(&sense.data_in, ModeForm::Six).unwrap();
    p.device_specific = fc_frames::scsi::data::DeviceSpecific::empty();
    for page in &mut p.pages {
        if let ModePage::Caching(c) = page {
            c.flags = CachingFlags::empty();
        }
    }
    let data = p.to_vec();
    let select = [0x15, 0x10, 0, 0, data.len() as u8, 0];
    let r = run(
        &e,
        cmd(A, lun(0), &select, data.len() as u32).with_data_out(data),
    )
    .await;
    assert_eq!(r.status, ScsiStatus::GOOD);
    assert_eq!(
        ua(&run(&e, cmd(B, lun(0), &TUR, 0)).await),
        Some((0x2A, 0x01))
    );

    dev.delay(1, Duration::from_secs(30));
    let a = spawn_read(&e, A, 1, TaskAttribute::SIMPLE);
    let b = spawn_read(&e, B, 1, TaskAttribute::ORDERED);
    until(&dev, |l| l.contains(&Ev::Start(1))).await;
    assert_eq!(e.logical_unit_reset(A, lun(0)).await, Ok(2));
    assert_eq!(a.await.unwrap(), Outcome::Aborted);
    assert_eq!(b.await.unwrap(), Outcome::Aborted);
    // BUS DEVICE RESET FUNCTION OCCURRED to the other nexus only.
    assert_eq!(ua(&run(&e, cmd(A, lun(0), &TUR, 0)).await), None);
    assert_eq!(
        ua(&run(&e, cmd(B, lun(0), &TUR, 0)).await),
        Some((0x29, 0x03))
    );
    // The mode pages are back to their defaults: WCE on.
    let r = run(&e, cmd(A, lun(0), &[0x1A, 0x08, 0x08, 0, 0xFF, 0], 0xFF)).await;
    let now = ModeParameters::parse(&r.data_in, ModeForm::Six).unwrap();
    assert_eq!(now.caching().unwrap().flags, CachingFlags::WCE);
    assert_eq!(
        e.logical_unit_reset(A, lun(7)).await,
        Err(TmfError::IncorrectLun(lun(7)))
    );
}

/// A reset waits for a write that cannot be cancelled: when it returns, the write has landed
/// (it changes the medium no more), and the task returned no status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reset_waits_for_uncancellable_write() {
    let e = ScsiEngine::new(TargetPort::default());
    let dev = Arc::new(Stubborn {
        inner: Arc::new(MemLun::new(64, BS, Tier::Ssd).unwrap()),
        delay: Duration::from_millis(300),
        started: AtomicBool::new(false),
        landed: Arc::new(AtomicBool::new(false)),
        threads: Mutex::new(Vec::new()),
    });
    e.add_disk(lun(0), dev.clone(), DiskConfig::new("X", Wwn::ZERO))
        .unwrap();
    let e = Arc::new(e);
    let w = tokio::spawn({
        let e = e.clone();
        async move {
            e.execute(cmd(A, lun(0), &write16(3, 1), 512).with_data_out(vec![9u8; 512]))
                .await
        }
    });
    while !dev.started.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(e.logical_unit_reset(B, lun(0)).await, Ok(1));
    assert!(
        dev.landed.load(Ordering::SeqCst),
        "the reset returned before the write stopped changing the medium"
    );
    assert_eq!(w.await.unwrap(), Outcome::Aborted);
}

#[tokio::test]
async fn test_target_reset_and_nexus_loss() {
    let (e, dev) = slow_engine();
    let other = Slow::new(64);
    e.add_disk(lun(1), other.clone(), DiskConfig::new("O", Wwn::ZERO))
        .unwrap();
    dev.delay(1, Duration::from_secs(30));
    other.delay(1, Duration::from_secs(30));
    let on0 = spawn_read(&e, A, 1, TaskAttribute::SIMPLE);
    let on1 = tokio::spawn(
        e.enter(cmd(B, lun(1), &read16(1, 1), 512).with_tag(1))
            .run(),
    );
    until(&dev, |l| !l.is_empty()).await;
    until(&other, |l| !l.is_empty()).await;
    assert_eq!(e.target_reset(A).await, 2);
    assert_eq!(on0.await.unwrap(), Outcome::Aborted);
    assert_eq!(on1.await.unwrap(), Outcome::Aborted);
    assert_eq!(
        ua(&run(&e, cmd(B, lun(0), &TUR, 0)).await),
        Some((0x29, 0x03))
    );
    assert_eq!(
        ua(&run(&e, cmd(B, lun(1), &TUR, 0)).await),
        Some((0x29, 0x03))
    );

    // I_T nexus loss: B's tasks go, A's stay; B is forgotten with its unit attentions.
    let b = spawn_read(&e, B, 1, TaskAttribute::SIMPLE);
    dev.delay(2, Duration::from_millis(100));
    let a = spawn_read(&e, A, 2, TaskAttribute::SIMPLE);
    until(&dev, |l| l.len() >= 3).await;
    assert!(e.queue_sense(lun(0), Sense::power_on_reset()));
    assert_eq!(e.remove_nexus(B).await, 1);
    assert_eq!(b.await.unwrap(), Outcome::Aborted);
    // A's read was entered before the unit attention: it completes.
    assert_eq!(
        a.await.unwrap().response().unwrap().status,
        ScsiStatus::GOOD
    );
    assert!(!e.nexuses().contains(&B));
    assert_eq!(ua(&run(&e, cmd(B, lun(0), &TUR, 0)).await), None);
}

/// Removing a logical unit while its commands run aborts them.
#[tokio::test]
async fn test_remove_lun_aborts_its_tasks() {
    let (e, dev) = slow_engine();
    dev.delay(1, Duration::from_secs(30));
    let t = spawn_read(&e, A, 1, TaskAttribute::SIMPLE);
    until(&dev, |l| !l.is_empty()).await;
    assert_eq!(e.remove_lun(lun(0)).await, Ok(1));
    assert_eq!(t.await.unwrap(), Outcome::Aborted);
    let r = run(&e, cmd(A, lun(0), &read16(1, 1), 512)).await;
    assert_eq!(
        r.sense.unwrap().additional.0,
        0x25,
        "LOGICAL UNIT NOT SUPPORTED"
    );
}

/// A task dropped by its transport leaves the task set, and an ORDERED task behind it runs.
#[tokio::test]
async fn test_dropped_task_leaves_the_set() {
    let (e, dev) = slow_engine();
    dev.delay(1, Duration::from_secs(30));
    let stuck = spawn_read(&e, A, 1, TaskAttribute::SIMPLE);
    until(&dev, |l| !l.is_empty()).await;
    let ordered = spawn_read(&e, A, 2, TaskAttribute::ORDERED);
    let never = e.enter(cmd(A, lun(0), &write16(5, 1), 512));
    assert_eq!(e.tasks(lun(0)), 3);
    stuck.abort();
    drop(never);
    let r = tokio::time::timeout(Duration::from_secs(2), ordered)
        .await
        .expect("the ORDERED task ran once the others were gone");
    assert_eq!(r.unwrap().response().unwrap().status, ScsiStatus::GOOD);
    assert_eq!(e.tasks(lun(0)), 0);
}

// LUN masking.

const REPORT_LUNS: [u8; 12] = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0];
const INQUIRY: [u8; 6] = [0x12, 0, 0, 0, 36, 0];
const NOT_SUPPORTED: (u8, u8) = (0x25, 0x00);

/// The LUNs REPORT LUNS (sent to LUN 0) lists for `nexus`.
async fn reported(e: &ScsiEngine, nexus: Nexus) -> Vec<Lun> {
    let r = run(e, cmd(nexus, lun(0), &REPORT_LUNS, 256)).await;
    assert_eq!(r.status, ScsiStatus::GOOD, "{:?}", r.sense);
    ReportLunsData::parse(&r.data_in).unwrap().luns
}

/// CHECK CONDITION, ILLEGAL REQUEST with `asc`, nothing moved.
fn illegal(r: &ScsiResponse, asc: (u8, u8)) {
    assert_eq!(r.status, ScsiStatus::CHECK_CONDITION);
    let s = r.sense.expect("sense");
    assert_eq!(s.key, SenseKey::ILLEGAL_REQUEST, "{s}");
    assert_eq!((s.additional.0, s.additional.1), asc, "{s}");
    assert!(r.data_in.is_empty());
}

/// A mask that lets only these nexuses see the LU.
fn only(nexuses: &[Nexus]) -> LunMask {
    let ports: Vec<Wwn> = nexuses.iter().map(|n| n.initiator_port).collect();
    Arc::new(move |w| ports.contains(&w))
}

/// `lun` answers `nexus` as a LUN with no unit does, and the other LUs are untouched.
async fn invisible(e: &ScsiEngine, nexus: Nexus, l: Lun) {
    assert!(!reported(e, nexus).await.contains(&l));
    // INQUIRY: peripheral qualifier 3, type 1Fh.
    let r = run(e, cmd(nexus, l, &INQUIRY, 36)).await;
    assert_eq!(r.status, ScsiStatus::GOOD);
    assert_eq!(r.data_in.len(), 36);
    assert_eq!(r.data_in[0], 0x7F);
    // VPD pages, READ, WRITE, TEST UNIT READY: LOGICAL UNIT NOT SUPPORTED.
    illegal(
        &run(e, cmd(nexus, l, &[0x12, 1, 0x80, 0, 0xFF, 0], 0xFF)).await,
        NOT_SUPPORTED,
    );
    illegal(
        &run(e, cmd(nexus, l, &read16(0, 1), BS)).await,
        NOT_SUPPORTED,
    );
    let w = cmd(nexus, l, &write16(0, 1), BS).with_data_out(vec![0xEE; BS as usize]);
    illegal(&run(e, w).await, NOT_SUPPORTED);
    illegal(&run(e, cmd(nexus, l, &TUR, 0)).await, NOT_SUPPORTED);
    // REQUEST SENSE: GOOD, with LOGICAL UNIT NOT SUPPORTED in the data.
    let r = run(e, cmd(nexus, l, &[0x03, 0, 0, 0, 18, 0], 18)).await;
    assert_eq!(r.status, ScsiStatus::GOOD);
    assert_eq!(
        (r.data_in[2], r.data_in[12], r.data_in[13]),
        (0x05, 0x25, 0x00)
    );
    // Nothing is solicited for a write.
    assert_eq!(e.data_out_len(nexus, l, &write16(0, 1), BS), 0);
    // Task management addressed to it: as for a LUN with no unit.
    let no_lu = Err(TmfError::IncorrectLun(l));
    assert_eq!(e.abort_task(nexus, l, 1).await, no_lu);
    assert_eq!(e.abort_task_set(nexus, l).await, no_lu);
    assert_eq!(e.clear_task_set(nexus, l).await, no_lu);
    assert_eq!(e.logical_unit_reset(nexus, l).await, no_lu);
}

#[tokio::test]
async fn test_masked_lun_invisible_to_refused_nexus_usable_by_allowed() {
    let (e, _) = engine();
    let m = Arc::new(MemLun::new(64, BS, Tier::Ssd).unwrap());
    let naa = Wwn([0x60, 0, 0, 0, 0, 0, 0, 1]);
    e.add_disk_masked(
        lun(1),
        m.clone(),
        DiskConfig::new("D1", naa),
        Some(only(&[A])),
    )
    .unwrap();
    assert_eq!(e.luns(), vec![lun(0), lun(1)], "the engine lists every LU");
    assert_eq!(
        e.add_disk_masked(lun(1), m.clone(), DiskConfig::new("X", naa), None),
        Err(LunError::InUse(lun(1)))
    );

    // B: LUN 1 is not there; LUN 0 is as before.
    invisible(&e, B, lun(1)).await;
    assert_eq!(reported(&e, B).await, vec![lun(0)]);
    assert_eq!(
        run(&e, cmd(B, lun(0), &REPORT_LUNS, 256)).await.data_in,
        Bytes::from_static(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    );
    assert_eq!(ua(&run(&e, cmd(B, lun(0), &TUR, 0)).await), None);
    assert_eq!(e.data_out_len(B, lun(0), &write16(0, 1), BS), BS);

    // A: LUN 1 is a disk like any other.
    assert_eq!(reported(&e, A).await, vec![lun(0), lun(1)]);
    let r = run(&e, cmd(A, lun(1), &INQUIRY, 36)).await;
    assert_eq!(r.status, ScsiStatus::GOOD);
    assert_eq!(r.data_in[0], 0x00, "qualifier 0, disk");
    assert_eq!(ua(&run(&e, cmd(A, lun(1), &TUR, 0)).await), None);
    assert_eq!(e.data_out_len(A, lun(1), &write16(3, 1), BS), BS);
    let w = cmd(A, lun(1), &write16(3, 1), BS).with_data_out(vec![0xAB; BS as usize]);
    assert_eq!(run(&e, w).await.status, ScsiStatus::GOOD);
    let r = run(&e, cmd(A, lun(1), &read16(3, 1), BS)).await;
    assert_eq!(r.status, ScsiStatus::GOOD);
    assert_eq!(&r.data_in[..], &[0xAB; BS as usize][..]);
    assert_eq!(e.abort_task_set(A, lun(1)).await, Ok(0));
    // B's refused write changed nothing.
    let r = run(&e, cmd(A, lun(1), &read16(0, 1), BS)).await;
    assert_eq!(&r.data_in[..], &[0; BS as usize][..]);

    // A TARGET RESET by B resets the LUs B sees only: A hears of it on LUN 0, not on LUN 1.
    assert_eq!(e.target_reset(B).await, 0);
    assert_eq!(
        ua(&run(&e, cmd(A, lun(1), &TUR, 0)).await),
        None,
        "LUN 1 was not reset"
    );
    assert_eq!(
        ua(&run(&e, cmd(A, lun(0), &TUR, 0)).await),
        Some((0x29, 0x03))
    );
    // And by A, both.
    assert_eq!(e.target_reset(A).await, 0);
    assert_eq!(
        ua(&run(&e, cmd(B, lun(0), &TUR, 0)).await),
        Some((0x29, 0x03))
    );
}

#[tokio::test]
async fn test_set_mask_reports_luns_changed_once_then_the_new_view() {
    let (e, _) = engine();
    let m = Arc::new(MemLun::new(64, BS, Tier::Ssd).unwrap());
    e.add_disk(lun(1), m, DiskConfig::new("D1", Wwn::ZERO))
        .unwrap();
    for n in [A, B, C] {
        e.add_nexus(n);
        assert_eq!(reported(&e, n).await, vec![lun(0), lun(1)]);
    }
    assert!(!e.set_mask(lun(9), None), "no such LUN");
    assert!(e.set_mask(lun(1), Some(only(&[A]))));
    for n in [A, B, C] {
        // A command to the LU it cannot see neither reports nor clears the unit attention.
        if n != A {
            illegal(&run(&e, cmd(n, lun(1), &TUR, 0)).await, NOT_SUPPORTED);
        }
        assert_eq!(ua(&run(&e, cmd(n, lun(0), &TUR, 0)).await), LUNS_CHANGED);
        assert_eq!(ua(&run(&e, cmd(n, lun(0), &TUR, 0)).await), None, "once");
    }
    assert_eq!(reported(&e, A).await, vec![lun(0), lun(1)]);
    assert_eq!(ua(&run(&e, cmd(A, lun(1), &TUR, 0)).await), None);
    for n in [B, C] {
        invisible(&e, n, lun(1)).await;
    }
    // Back to every nexus: reported again, and C sees LUN 1 once more.
    assert!(e.set_mask(lun(1), None));
    for n in [A, B, C] {
        assert_eq!(ua(&run(&e, cmd(n, lun(0), &TUR, 0)).await), LUNS_CHANGED);
        assert_eq!(ua(&run(&e, cmd(n, lun(1), &TUR, 0)).await), None, "once");
        assert_eq!(reported(&e, n).await, vec![lun(0), lun(1)]);
    }
}

#[tokio::test]
async fn test_mask_consulting_changing_state_and_masks_changed() {
    let (e, _) = engine();
    e.add_nexus(A);
    e.add_nexus(B);
    let peers = Arc::new(Mutex::new(vec![A.initiator_port]));
    let mask: LunMask = {
        let peers = peers.clone();
        Arc::new(move |w| peers.lock().unwrap().contains(&w))
    };
    let m = Arc::new(MemLun::new(64, BS, Tier::Ssd).unwrap());
    e.add_disk_masked(lun(2), m, DiskConfig::new("D2", Wwn::ZERO), Some(mask))
        .unwrap();
    for n in [A, B] {
        assert_eq!(ua(&run(&e, cmd(n, lun(0), &TUR, 0)).await), LUNS_CHANGED);
    }
    assert_eq!(reported(&e, A).await, vec![lun(0), lun(2)]);
    invisible(&e, B, lun(2)).await;

    // B becomes a peer, A stops being one.
    *peers.lock().unwrap() = vec![B.initiator_port];
    e.masks_changed();
    for n in [A, B] {
        assert_eq!(ua(&run(&e, cmd(n, lun(0), &TUR, 0)).await), LUNS_CHANGED);
        assert_eq!(ua(&run(&e, cmd(n, lun(0), &TUR, 0)).await), None, "once");
    }
    assert_eq!(reported(&e, B).await, vec![lun(0), lun(2)]);
    assert_eq!(ua(&run(&e, cmd(B, lun(2), &TUR, 0)).await), None);
    assert_eq!(e.data_out_len(B, lun(2), &write16(0, 1), BS), BS);
    invisible(&e, A, lun(2)).await;
}

#[tokio::test]
async fn test_mask_refusing_everyone_hides_the_lun_from_all() {
    let (e, _) = engine();
    let m = Arc::new(MemLun::new(64, BS, Tier::Ssd).unwrap());
    let nobody: LunMask = Arc::new(|_| false);
    e.add_disk_masked(lun(1), m, DiskConfig::new("D1", Wwn::ZERO), Some(nobody))
        .unwrap();
    for n in [A, B, C] {
        invisible(&e, n, lun(1)).await;
        assert_eq!(reported(&e, n).await, vec![lun(0)]);
    }
    assert_eq!(e.luns(), vec![lun(0), lun(1)]);
    // Removed, it is gone for the engine too; a new LU there has no mask.
    assert_eq!(e.remove_lun(lun(1)).await, Ok(0));
    e.add_tape(lun(1), tape()).unwrap();
    assert_eq!(reported(&e, A).await, vec![lun(0), lun(1)]);
}
