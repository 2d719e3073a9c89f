//! [`ScsiEngine`]: the task manager and device server for every logical unit of one target
//! port, shared by the transports (`Arc<ScsiEngine>`, used through `&self`).
//!
//! # Tasks
//! A command is a task of its logical unit (SAM-5 §8), named by its I_T nexus ([`Nexus`], the
//! initiator port) and tag. [`ScsiEngine::enter`] puts it in the unit's task set when the
//! transport receives it (its place in the order is decided then, before its data-out has
//! arrived); [`Task::run`] waits until the task attributes let it start ([`super::tasks`]),
//! executes it and takes it out of the set. [`ScsiEngine::execute`] is both at once. Commands
//! of different logical units, and SIMPLE commands of one, run at the same time: the engine's
//! locks guard its tables for a few instructions and are never held across an `.await`, and
//! device I/O ([`BlockDevice`]) is asynchronous.
//!
//! # Task management (SAM-5 §7)
//! [`abort_task`](ScsiEngine::abort_task), [`abort_task_set`](ScsiEngine::abort_task_set),
//! [`clear_task_set`](ScsiEngine::clear_task_set),
//! [`logical_unit_reset`](ScsiEngine::logical_unit_reset) and
//! [`target_reset`](ScsiEngine::target_reset) take effect when they are called (commands
//! received later are not affected) and return a future that ends when every task they
//! named has ended and the devices have settled. Then:
//! - an aborted task never returns status: [`Task::run`] gives [`Outcome::Aborted`] and the
//!   transport sends nothing;
//! - an aborted task never changes the medium any more. A device future that is only waiting
//!   (a slow or remote device) is dropped at once; I/O that cannot be cancelled (a `pwrite`
//!   on the blocking pool) is waited for ([`BlockDevice::settle`]).
//!
//! | function | tasks aborted | then |
//! |---|---|---|
//! | ABORT TASK | the nexus's task with that tag | — |
//! | ABORT TASK SET | the nexus's tasks on the LU | — |
//! | CLEAR TASK SET | every task on the LU | COMMANDS CLEARED BY ANOTHER INITIATOR (2F/00) to the other nexuses that lost tasks (the Control page's TAS is 0) |
//! | LOGICAL UNIT RESET | every task on the LU | mode pages back to their defaults (no saved values); BUS DEVICE RESET FUNCTION OCCURRED (29/03) to every other nexus |
//! | TARGET RESET | every task on every LU the nexus sees | a logical unit reset of each of them |
//! | I_T nexus loss ([`remove_nexus`](ScsiEngine::remove_nexus)) | the nexus's tasks everywhere | its unit attentions are forgotten with it |
//!
//! # Unit attentions (SAM-5 §5.14)
//! Unit attention conditions are kept per I_T nexus and logical unit. The next command of that
//! nexus to that LU other than INQUIRY, REPORT LUNS and REQUEST SENSE ends in CHECK CONDITION
//! with the oldest one and clears it; REQUEST SENSE returns it and clears it.
//! - Adding or removing a logical unit, or a change of what LUN masks answer
//!   ([`set_mask`](ScsiEngine::set_mask), [`masks_changed`](ScsiEngine::masks_changed)), gives
//!   every known nexus REPORTED LUNS DATA HAS CHANGED (3F/0E) once: it is reported on the
//!   nexus's next command to any LU it sees, and then cleared for that nexus on every LU
//!   (SPC-4 §6.33 says REPORT LUNS data changed for the target, not for one LU).
//! - A disk whose device reports another size gives every known nexus CAPACITY DATA HAS
//!   CHANGED (2A/09) on that LU, once; READ CAPACITY reports the new size. The engine looks at
//!   each command; [`ScsiEngine::notice_capacity`] looks at once.
//! - A MODE SELECT that changes the (shared) mode pages gives the other nexuses MODE PARAMETERS
//!   CHANGED (2A/01) (SPC-4 §6.9).
//!
//! Nexuses are known from [`add_nexus`](ScsiEngine::add_nexus) (FCP: a PRLI made an image
//! pair) or from a command; [`remove_nexus`](ScsiEngine::remove_nexus) forgets one (PRLO,
//! LOGO, link loss).
//!
//! # LUN masking
//! A logical unit may have a [`LunMask`] ([`add_disk_masked`](ScsiEngine::add_disk_masked),
//! [`set_mask`](ScsiEngine::set_mask)): a closure that says, by initiator port name, which
//! nexuses may see it (none: every nexus). To a nexus its mask refuses, the LU is as if it
//! did not exist, exactly as a LUN with no unit:
//! - REPORT LUNS leaves it out; standard INQUIRY answers PERIPHERAL QUALIFIER 011b, PERIPHERAL
//!   DEVICE TYPE 1Fh; REQUEST SENSE answers GOOD with LOGICAL UNIT NOT SUPPORTED (25/00) in
//!   the data; every other command ends in CHECK CONDITION, ILLEGAL REQUEST / LOGICAL UNIT
//!   NOT SUPPORTED, and it does not report or clear the nexus's unit attentions;
//! - [`data_out_len`](ScsiEngine::data_out_len) is 0;
//! - ABORT TASK, ABORT TASK SET, CLEAR TASK SET and LOGICAL UNIT RESET addressed to it answer
//!   INCORRECT LOGICAL UNIT NUMBER ([`TmfError::IncorrectLun`]), and a TARGET RESET by that
//!   nexus leaves it alone (it resets the LUs the nexus sees).
//!
//! The mask is asked on every command, with the engine's tables locked: it must be quick,
//! must not call the engine, and whoever calls the engine must not hold a lock the mask
//! takes. It may consult state that changes; when its answers may have changed, call
//! [`masks_changed`](ScsiEngine::masks_changed): every known nexus gets REPORTED LUNS DATA
//! HAS CHANGED, as when a LU is added or removed ([`set_mask`](ScsiEngine::set_mask) does
//! that itself). A change of view does not touch tasks already entered: they run to their
//! end.
//!
//! The clauses cited here are from memory of SPC-4 r37, SBC-3 r35 and SAM-5 (the standards'
//! text was not at hand); the MUST sentences are paraphrased above the checks that enforce
//! them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use fc_frames::fcp::{FcpRspRepr, Residual, TaskAttribute};
use fc_frames::scsi::cdb::{Cdb, OperationCode};
use fc_frames::scsi::data::{Capacity, DataError, ReadBlockLimitsData, ReportLunsData};
use fc_frames::scsi::{AdditionalSense, Lun, ScsiStatus, Sense};
use fc_frames::Wwn;
use tokio::sync::{oneshot, Notify};

use super::commands;
use super::device::BlockDevice;
use super::tasks::{Aborted, Attr, TaskSet};

/// Whether the initiator port with this N_Port_Name may see a logical unit (true: it may).
/// See the module docs, "LUN masking".
pub type LunMask = Arc<dyn Fn(Wwn) -> bool + Send + Sync>;

/// Unit attentions kept for one nexus on one LU at most; later ones are dropped (the oldest
/// are the ones reported first).
const MAX_UNIT_ATTENTIONS: usize = 16;

/// The target port the engine serves, for the device identification VPD page (0x83).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPort {
    /// N_Port_Name of the target port.
    pub port_name: Wwn,
    /// Node_Name of the target device.
    pub node_name: Wwn,
    /// RELATIVE TARGET PORT IDENTIFIER (1 = port A).
    pub relative_port: u16,
}

/// An I_T nexus as the engine sees it (SAM-5 §4.8): the initiator port, by its port name (the
/// target port is the engine's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nexus {
    /// The initiator port's name (FC: its N_Port_Name).
    pub initiator_port: Wwn,
}

impl Nexus {
    /// The nexus of the initiator port `initiator_port`.
    pub const fn new(initiator_port: Wwn) -> Nexus {
        Nexus { initiator_port }
    }
}

tokio::task_local! {
    static INITIATOR: Wwn;
}

/// The initiator port whose command a block device is serving now: inside
/// [`BlockDevice`](super::BlockDevice) methods the engine calls, the command's I_T nexus's
/// initiator; `None` elsewhere. (A virtualization controller uses it to tell which controller
/// sent a forwarded write.)
pub fn current_initiator() -> Option<Wwn> {
    INITIATOR.try_with(|w| *w).ok()
}

impl fmt::Display for Nexus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "I_T nexus {}", self.initiator_port)
    }
}

/// A disk logical unit's identity and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// T10 vendor identification (8 ASCII bytes).
    pub vendor: String,
    /// Product identification (16 ASCII bytes).
    pub product: String,
    /// Product revision (4 ASCII bytes).
    pub revision: String,
    /// Unit serial number (VPD page 0x80).
    pub serial: String,
    /// The logical unit's NAA name (VPD page 0x83).
    pub naa: Wwn,
    /// MAXIMUM TRANSFER LENGTH in blocks; longer READ/WRITE/VERIFY with BYTCHK 01b are
    /// INVALID FIELD IN CDB.
    pub max_transfer_blocks: u32,
    /// Whether UNMAP and WRITE SAME with UNMAP are offered (LBPME, VPD page 0xB2).
    pub unmap: bool,
}

impl DiskConfig {
    /// Defaults: vendor `FCSAN`, product `FILE DISK`, 8 MiB transfers of 512-byte blocks,
    /// UNMAP on.
    pub fn new(serial: &str, naa: Wwn) -> DiskConfig {
        DiskConfig {
            vendor: "FCSAN".into(),
            product: "FILE DISK".into(),
            revision: "0001".into(),
            serial: serial.into(),
            naa,
            max_transfer_blocks: 16384,
            unmap: true,
        }
    }
}

/// A tape logical unit's identity: it answers INQUIRY, TEST UNIT READY, READ BLOCK LIMITS,
/// REQUEST SENSE and REPORT LUNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeConfig {
    /// T10 vendor identification.
    pub vendor: String,
    /// Product identification.
    pub product: String,
    /// Product revision.
    pub revision: String,
    /// Unit serial number.
    pub serial: String,
    /// The logical unit's NAA name.
    pub naa: Wwn,
    /// READ BLOCK LIMITS data.
    pub block_limits: ReadBlockLimitsData,
}

/// One command as the transport received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiCommand {
    /// Who sent it.
    pub nexus: Nexus,
    /// The task tag, unique among the nexus's tasks in progress (FCP: the transport's name for
    /// the exchange). ABORT TASK names a task by it.
    pub tag: u64,
    /// SIMPLE, ORDERED, HEAD OF QUEUE (ACA is refused: no ACA is ever established).
    pub attribute: TaskAttribute,
    /// The logical unit.
    pub lun: Lun,
    /// The CDB (padding after it is ignored).
    pub cdb: Bytes,
    /// FCP_DL: the bytes the initiator expects to move.
    pub fcp_dl: u32,
    /// The data-out received for it ([`ScsiEngine::data_out_len`] bytes were solicited).
    pub data_out: Bytes,
}

impl ScsiCommand {
    /// A SIMPLE command with tag 0 and no data-out.
    pub fn new(nexus: Nexus, lun: Lun, cdb: impl Into<Bytes>, fcp_dl: u32) -> ScsiCommand {
        ScsiCommand {
            nexus,
            tag: 0,
            attribute: TaskAttribute::SIMPLE,
            lun,
            cdb: cdb.into(),
            fcp_dl,
            data_out: Bytes::new(),
        }
    }

    /// With this tag.
    #[must_use]
    pub fn with_tag(mut self, tag: u64) -> ScsiCommand {
        self.tag = tag;
        self
    }

    /// With this task attribute.
    #[must_use]
    pub fn with_attribute(mut self, attribute: TaskAttribute) -> ScsiCommand {
        self.attribute = attribute;
        self
    }

    /// With this data-out.
    #[must_use]
    pub fn with_data_out(mut self, data_out: impl Into<Bytes>) -> ScsiCommand {
        self.data_out = data_out.into();
        self
    }
}

/// What the target sends back for one command: FCP_DATA (`data_in`) and FCP_RSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiResponse {
    /// SCSI status.
    pub status: ScsiStatus,
    /// Sense data with CHECK CONDITION.
    pub sense: Option<Sense>,
    /// Data-in, at most FCP_DL bytes.
    pub data_in: Bytes,
    /// FCP_RESID against FCP_DL.
    pub residual: Residual,
}

impl ScsiResponse {
    /// GOOD with `data` (the whole response the command produced), cut to `min(data, FCP_DL)`.
    pub(super) fn good(data: impl Into<Bytes>, fcp_dl: u32) -> ScsiResponse {
        let mut data = data.into();
        let residual = Residual::between(fcp_dl, data.len() as u64);
        data.truncate(fcp_dl as usize);
        ScsiResponse {
            status: ScsiStatus::GOOD,
            sense: None,
            data_in: data,
            residual,
        }
    }

    /// GOOD, no data.
    pub(super) fn no_data(fcp_dl: u32) -> ScsiResponse {
        ScsiResponse::good(Bytes::new(), fcp_dl)
    }

    /// CHECK CONDITION with `sense`; nothing moved.
    pub(super) fn check(sense: Sense, fcp_dl: u32) -> ScsiResponse {
        ScsiResponse {
            status: ScsiStatus::CHECK_CONDITION,
            sense: Some(sense),
            data_in: Bytes::new(),
            residual: Residual::between(fcp_dl, 0),
        }
    }

    /// The FCP_RSP for this response.
    pub fn fcp_rsp(&self) -> FcpRspRepr {
        FcpRspRepr {
            status: self.status,
            residual: self.residual,
            sense_data: self.sense.map(|s| s.to_vec()).unwrap_or_default(),
            ..FcpRspRepr::default()
        }
    }
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// It completed: send this.
    Response(ScsiResponse),
    /// It was aborted (task management, nexus loss, its LU removed): send nothing.
    Aborted,
}

impl Outcome {
    /// The response, unless the task was aborted.
    pub fn response(self) -> Option<ScsiResponse> {
        match self {
            Outcome::Response(r) => Some(r),
            Outcome::Aborted => None,
        }
    }
}

/// Why a task management function was not performed (SAM-5 §7.11 service responses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TmfError {
    /// INCORRECT LOGICAL UNIT NUMBER: there is no such logical unit.
    #[error("no logical unit {0}")]
    IncorrectLun(Lun),
}

/// Why a logical unit could not be added or removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LunError {
    /// A logical unit is there already.
    #[error("LUN {0} is in use")]
    InUse(Lun),
    /// No logical unit is there.
    #[error("no logical unit {0}")]
    NoSuchLun(Lun),
    /// The device reports zero blocks or a zero block size.
    #[error("bad capacity: {0}")]
    Capacity(#[from] DataError),
}

/// The SCSI target device of one target port: its logical units, by LUN, the nexuses it
/// knows, and their tasks. See the module docs.
pub struct ScsiEngine {
    shared: Arc<Shared>,
}

impl fmt::Debug for ScsiEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScsiEngine")
            .field("port", &self.shared.port)
            .field("luns", &self.luns())
            .finish()
    }
}

/// What tasks need of the engine after they were entered.
pub(super) struct Shared {
    pub port: TargetPort,
    inventory: Mutex<Inventory>,
}

struct Inventory {
    units: BTreeMap<Lun, Slot>,
    nexuses: HashMap<Nexus, NexusState>,
}

/// A logical unit in the inventory, and who may see it.
struct Slot {
    unit: Arc<Unit>,
    /// None: every nexus.
    mask: Option<LunMask>,
}

impl Slot {
    /// Whether `nexus` may see the unit.
    fn visible_to(&self, nexus: Nexus) -> bool {
        self.mask.as_ref().is_none_or(|m| m(nexus.initiator_port))
    }
}

#[derive(Debug, Default)]
struct NexusState {
    /// REPORTED LUNS DATA HAS CHANGED not yet reported to it.
    luns_changed: bool,
}

/// A logical unit.
pub(super) struct Unit {
    pub kind: Kind,
    state: Mutex<UnitState>,
    /// Fired when a task leaves the task set.
    changed: Notify,
}

pub(super) enum Kind {
    Disk(Disk),
    Tape(TapeConfig),
}

pub(super) struct Disk {
    pub dev: Arc<dyn BlockDevice>,
    pub config: DiskConfig,
}

/// A logical unit's changing state.
pub(super) struct UnitState {
    /// A disk's capacity as last reported to initiators.
    pub cap: Option<Capacity>,
    /// WCE of the Caching page: off means every write is FUA.
    pub wce: bool,
    /// D_SENSE of the Control page: sense data in descriptor format.
    pub d_sense: bool,
    /// Unit attentions by nexus, oldest first.
    ua: HashMap<Nexus, VecDeque<Sense>>,
    tasks: TaskSet,
}

impl UnitState {
    fn establish(&mut self, nexus: Nexus, sense: Sense) {
        let q = self.ua.entry(nexus).or_default();
        if !q.contains(&sense) && q.len() < MAX_UNIT_ATTENTIONS {
            q.push_back(sense);
        }
    }

    fn has_ua(&self, nexus: Nexus) -> bool {
        self.ua.get(&nexus).is_some_and(|q| !q.is_empty())
    }

    /// Back to the mode pages' default values (there are no saved values).
    fn reset_mode(&mut self) {
        self.wce = true;
        self.d_sense = false;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every table here stays consistent across a panic: each update is a single insert,
    // remove or assignment.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Unit {
    fn new(kind: Kind, cap: Option<Capacity>) -> Unit {
        Unit {
            kind,
            state: Mutex::new(UnitState {
                cap,
                wce: true,
                d_sense: false,
                ua: HashMap::new(),
                tasks: TaskSet::default(),
            }),
            changed: Notify::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, UnitState> {
        lock(&self.state)
    }

    /// Compares a disk's device size with what was reported; on a change, records the new one
    /// and gives every nexus in `nexuses` CAPACITY DATA HAS CHANGED. True on a change.
    fn notice_capacity<'n>(
        &self,
        state: &mut UnitState,
        nexuses: impl Iterator<Item = &'n Nexus>,
    ) -> bool {
        let Kind::Disk(d) = &self.kind else {
            return false;
        };
        let Ok(now) = Capacity::new(d.dev.block_count(), d.dev.block_size()) else {
            return false;
        };
        if state.cap == Some(now) {
            return false;
        }
        tracing::info!(blocks = now.blocks(), "logical unit capacity changed");
        state.cap = Some(now);
        for &n in nexuses {
            state.establish(
                n,
                Sense::unit_attention(AdditionalSense::CAPACITY_DATA_HAS_CHANGED),
            );
        }
        true
    }

    /// Tells the tasks `pick` chooses to abort.
    fn abort(&self, pick: impl FnMut(&super::tasks::Entry) -> bool) -> Aborted {
        let out = self.lock().tasks.abort(pick);
        self.changed.notify_waiters();
        out
    }

    /// Ends when none of `running` is in the task set any more and the device has settled.
    async fn wait_ended(&self, running: &[u64]) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.lock().tasks.any(running) {
                break;
            }
            changed.await;
        }
        if let Kind::Disk(d) = &self.kind {
            d.dev.settle().await;
        }
    }
}

/// Tasks told to abort, to wait for.
struct Aborting {
    units: Vec<(Arc<Unit>, Vec<u64>)>,
    count: usize,
}

impl Aborting {
    fn new() -> Aborting {
        Aborting {
            units: Vec::new(),
            count: 0,
        }
    }

    fn add(&mut self, unit: &Arc<Unit>, aborted: Aborted) {
        self.count += aborted.count;
        self.units.push((unit.clone(), aborted.running));
    }

    async fn wait(self) -> usize {
        for (unit, running) in &self.units {
            unit.wait_ended(running).await;
        }
        self.count
    }
}

impl Shared {
    fn inventory(&self) -> MutexGuard<'_, Inventory> {
        lock(&self.inventory)
    }

    /// Takes the unit attention REQUEST SENSE reports for `nexus` on `unit`: the unit's own
    /// first, else REPORTED LUNS DATA HAS CHANGED.
    pub(super) fn take_unit_attention(&self, unit: &Unit, nexus: Nexus) -> Option<Sense> {
        let mut inv = self.inventory();
        let mut state = unit.lock();
        if let Some(s) = state.ua.get_mut(&nexus).and_then(VecDeque::pop_front) {
            return Some(s);
        }
        let n = inv.nexuses.get_mut(&nexus)?;
        std::mem::take(&mut n.luns_changed)
            .then(|| Sense::unit_attention(AdditionalSense::REPORTED_LUNS_DATA_HAS_CHANGED))
    }

    /// The mode pages of `unit` changed through `by`: MODE PARAMETERS CHANGED to the others.
    pub(super) fn mode_changed(&self, unit: &Unit, by: Nexus) {
        let inv = self.inventory();
        let mut state = unit.lock();
        for &n in inv.nexuses.keys().filter(|&&n| n != by) {
            state.establish(
                n,
                Sense::unit_attention(AdditionalSense::MODE_PARAMETERS_CHANGED),
            );
        }
    }
}

impl Inventory {
    fn luns_changed(&mut self) {
        for n in self.nexuses.values_mut() {
            n.luns_changed = true;
        }
    }

    /// The unit at `lun` if there is one and `nexus` may see it.
    fn visible(&self, nexus: Nexus, lun: Lun) -> Option<&Arc<Unit>> {
        self.units
            .get(&lun)
            .filter(|s| s.visible_to(nexus))
            .map(|s| &s.unit)
    }

    /// The unit at `lun` for a task management function of `nexus`.
    fn unit(&self, nexus: Nexus, lun: Lun) -> Result<Arc<Unit>, TmfError> {
        self.visible(nexus, lun)
            .cloned()
            .ok_or(TmfError::IncorrectLun(lun))
    }
}

impl ScsiEngine {
    /// An engine with no logical units.
    pub fn new(port: TargetPort) -> ScsiEngine {
        ScsiEngine {
            shared: Arc::new(Shared {
                port,
                inventory: Mutex::new(Inventory {
                    units: BTreeMap::new(),
                    nexuses: HashMap::new(),
                }),
            }),
        }
    }

    /// The target port.
    pub fn port(&self) -> TargetPort {
        self.shared.port
    }

    /// Adds a disk at `lun` that every nexus sees: [`add_disk_masked`](Self::add_disk_masked)
    /// with no mask.
    pub fn add_disk(
        &self,
        lun: Lun,
        dev: Arc<dyn BlockDevice>,
        config: DiskConfig,
    ) -> Result<(), LunError> {
        self.add_disk_masked(lun, dev, config, None)
    }

    /// Adds a disk at `lun` that only the nexuses `mask` accepts see (every nexus when
    /// `None`); an error when the LUN is in use or the device reports zero blocks or a zero
    /// block size. Every known nexus gets REPORTED LUNS DATA HAS CHANGED.
    pub fn add_disk_masked(
        &self,
        lun: Lun,
        dev: Arc<dyn BlockDevice>,
        config: DiskConfig,
        mask: Option<LunMask>,
    ) -> Result<(), LunError> {
        let cap = Capacity::new(dev.block_count(), dev.block_size())?;
        let unit = Unit::new(Kind::Disk(Disk { dev, config }), Some(cap));
        self.add(lun, unit, mask)
    }

    /// Adds a tape drive at `lun`; an error when the LUN is in use. Every known nexus gets
    /// REPORTED LUNS DATA HAS CHANGED.
    pub fn add_tape(&self, lun: Lun, config: TapeConfig) -> Result<(), LunError> {
        self.add(lun, Unit::new(Kind::Tape(config), None), None)
    }

    fn add(&self, lun: Lun, unit: Unit, mask: Option<LunMask>) -> Result<(), LunError> {
        let mut inv = self.shared.inventory();
        if inv.units.contains_key(&lun) {
            return Err(LunError::InUse(lun));
        }
        let unit = Arc::new(unit);
        inv.units.insert(lun, Slot { unit, mask });
        inv.luns_changed();
        Ok(())
    }

    /// Replaces the mask of the logical unit at `lun` (`None`: every nexus sees it); every
    /// known nexus gets REPORTED LUNS DATA HAS CHANGED. False when there is no such LUN.
    pub fn set_mask(&self, lun: Lun, mask: Option<LunMask>) -> bool {
        let mut inv = self.shared.inventory();
        let Some(slot) = inv.units.get_mut(&lun) else {
            return false;
        };
        slot.mask = mask;
        inv.luns_changed();
        true
    }

    /// The masks' answers may have changed (the state they consult changed): every known
    /// nexus gets REPORTED LUNS DATA HAS CHANGED, and the masks are asked afresh from now on.
    pub fn masks_changed(&self) {
        self.shared.inventory().luns_changed();
    }

    /// Removes the logical unit at `lun`: commands received from now on find no LU there,
    /// every known nexus gets REPORTED LUNS DATA HAS CHANGED, and its tasks are aborted. The
    /// future ends when they have ended, with their number.
    pub fn remove_lun(
        &self,
        lun: Lun,
    ) -> impl Future<Output = Result<usize, LunError>> + Send + 'static {
        let removed = {
            let mut inv = self.shared.inventory();
            let u = inv.units.remove(&lun);
            if u.is_some() {
                inv.luns_changed();
            }
            u.map(|s| s.unit)
        };
        let aborting = removed.map(|unit| {
            let mut a = Aborting::new();
            a.add(&unit, unit.abort(|_| true));
            a
        });
        async move {
            match aborting {
                Some(a) => Ok(a.wait().await),
                None => Err(LunError::NoSuchLun(lun)),
            }
        }
    }

    /// Makes `nexus` known (FCP: PRLI made an image pair): it gets the unit attentions
    /// established from now on.
    pub fn add_nexus(&self, nexus: Nexus) {
        self.shared.inventory().nexuses.entry(nexus).or_default();
    }

    /// The I_T nexus is gone (FCP: PRLO, LOGO, link loss; SAM-5 §6.3.4 I_T nexus loss): its
    /// tasks are aborted and its unit attentions forgotten. The future ends when its tasks
    /// have ended, with their number.
    pub fn remove_nexus(&self, nexus: Nexus) -> impl Future<Output = usize> + Send + 'static {
        let mut a = Aborting::new();
        {
            let mut inv = self.shared.inventory();
            inv.nexuses.remove(&nexus);
            for Slot { unit, .. } in inv.units.values() {
                unit.lock().ua.remove(&nexus);
                a.add(unit, unit.abort(|e| e.nexus == nexus));
            }
        }
        a.wait()
    }

    /// The nexuses known now.
    pub fn nexuses(&self) -> Vec<Nexus> {
        let mut v: Vec<Nexus> = self.shared.inventory().nexuses.keys().copied().collect();
        v.sort();
        v
    }

    /// Establishes a unit attention (or deferred error) on `lun` for every known nexus: each
    /// one's next command other than INQUIRY, REPORT LUNS and REQUEST SENSE ends in CHECK
    /// CONDITION with it, or REQUEST SENSE returns it; either clears it for that nexus
    /// (SAM-5 §5.14). Returns false when there is no such LUN.
    pub fn queue_sense(&self, lun: Lun, sense: Sense) -> bool {
        let inv = self.shared.inventory();
        let Some(Slot { unit, .. }) = inv.units.get(&lun) else {
            return false;
        };
        let mut state = unit.lock();
        for &n in inv.nexuses.keys() {
            state.establish(n, sense);
        }
        true
    }

    /// Looks at the size of the disk at `lun` now; on a change, every known nexus gets
    /// CAPACITY DATA HAS CHANGED for it. True on a change.
    pub fn notice_capacity(&self, lun: Lun) -> bool {
        let inv = self.shared.inventory();
        let Some(Slot { unit, .. }) = inv.units.get(&lun) else {
            return false;
        };
        let mut state = unit.lock();
        unit.notice_capacity(&mut state, inv.nexuses.keys())
    }

    /// The LUNs, ascending, whatever their masks.
    pub fn luns(&self) -> Vec<Lun> {
        self.shared.inventory().units.keys().copied().collect()
    }

    /// Tasks in the task set of `lun` now (entered, waiting or running).
    pub fn tasks(&self, lun: Lun) -> usize {
        let inv = self.shared.inventory();
        inv.units.get(&lun).map_or(0, |s| s.unit.lock().tasks.len())
    }

    /// Data-out bytes to solicit with FCP_XFER_RDY for this command: `min(FCP_DL, what the
    /// CDB transfers)`, or 0 when the command moves no data out or will be rejected before
    /// reading it (unknown LUN or one masked from `nexus`, pending unit attention for `nexus`,
    /// bad CDB, out of range, too long or overrunning FCP_DL).
    pub fn data_out_len(&self, nexus: Nexus, lun: Lun, cdb: &[u8], fcp_dl: u32) -> u32 {
        let inv = self.shared.inventory();
        let Some(unit) = inv.visible(nexus, lun) else {
            return 0;
        };
        let Kind::Disk(d) = &unit.kind else {
            return 0;
        };
        if inv.nexuses.get(&nexus).is_some_and(|n| n.luns_changed) {
            return 0;
        }
        let state = unit.lock();
        let Some(cap) = state.cap else {
            return 0;
        };
        let size_changed =
            Capacity::new(d.dev.block_count(), d.dev.block_size()).is_ok_and(|now| now != cap);
        if state.has_ua(nexus) || size_changed {
            return 0;
        }
        match Cdb::parse(cdb) {
            Ok(cdb) => commands::data_out_len(&cdb, d, cap, fcp_dl),
            Err(_) => 0,
        }
    }

    /// Enters a command into its logical unit's task set now, before its data-out has arrived
    /// (give that with [`Task::set_data_out`]); [`Task::run`] executes it. A command that ends
    /// at once (no such LU, or one masked from the nexus; a unit attention; REPORT LUNS data) is
    /// a task that only returns its response.
    pub fn enter(&self, cmd: ScsiCommand) -> Task {
        let shared = self.shared.clone();
        let op = OperationCode(cmd.cdb.first().copied().unwrap_or(0));
        let done = |r: ScsiResponse| Task {
            shared: self.shared.clone(),
            body: Body::Done(r),
        };
        let mut inv = self.shared.inventory();
        inv.nexuses.entry(cmd.nexus).or_default();
        // Only REPORT LUNS needs the inventory; don't build it on the I/O path. It lists the
        // LUs the nexus may see.
        let report = (op == OperationCode::REPORT_LUNS).then(|| {
            let luns = inv.units.iter().filter(|(_, s)| s.visible_to(cmd.nexus));
            ReportLunsData::new(luns.map(|(&l, _)| l).collect())
        });
        let Some(unit) = inv.visible(cmd.nexus, cmd.lun).cloned() else {
            let report = report.unwrap_or_default();
            return done(commands::no_unit(op, &cmd.cdb, cmd.fcp_dl, report));
        };
        let attr = match cmd.attribute {
            TaskAttribute::SIMPLE | TaskAttribute::UNTAGGED => Attr::Simple,
            TaskAttribute::ORDERED => Attr::Ordered,
            TaskAttribute::HEAD_OF_QUEUE => Attr::HeadOfQueue,
            // SAM-5 §8.6: an ACA task needs an ACA condition, and none is ever established
            // here (NORMACA is 0); other values are reserved. The command is refused as a
            // bad field of the command's information unit.
            _ => {
                let s = Sense::illegal_request(
                    AdditionalSense::INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT,
                );
                let d_sense = unit.lock().d_sense;
                return done(ScsiResponse::check(
                    s.with_format(commands::sense_format(d_sense)),
                    cmd.fcp_dl,
                ));
            }
        };
        let exempt = matches!(
            op,
            OperationCode::INQUIRY | OperationCode::REPORT_LUNS | OperationCode::REQUEST_SENSE
        );
        let Inventory { nexuses, .. } = &mut *inv;
        let mut state = unit.lock();
        unit.notice_capacity(&mut state, nexuses.keys());
        // SAM-5 §5.14: a pending unit attention terminates the next command (except INQUIRY,
        // REPORT LUNS and REQUEST SENSE) with CHECK CONDITION and is then cleared.
        if !exempt {
            let fmt = commands::sense_format(state.d_sense);
            if let Some(s) = state.ua.get_mut(&cmd.nexus).and_then(VecDeque::pop_front) {
                return done(ScsiResponse::check(s.with_format(fmt), cmd.fcp_dl));
            }
            if let Some(n) = nexuses.get_mut(&cmd.nexus).filter(|n| n.luns_changed) {
                n.luns_changed = false;
                let s = Sense::unit_attention(AdditionalSense::REPORTED_LUNS_DATA_HAS_CHANGED);
                return done(ScsiResponse::check(s.with_format(fmt), cmd.fcp_dl));
            }
        }
        let (seq, abort) = state.tasks.enter(cmd.nexus, cmd.tag, attr);
        drop(state);
        drop(inv);
        Task {
            shared,
            body: Body::Queued(Queued {
                unit,
                seq,
                abort,
                aborted: false,
                nexus: cmd.nexus,
                cdb: cmd.cdb,
                fcp_dl: cmd.fcp_dl,
                data_out: cmd.data_out,
                report,
            }),
        }
    }

    /// Executes one command: [`enter`](Self::enter) and [`Task::run`].
    pub async fn execute(&self, cmd: ScsiCommand) -> Outcome {
        self.enter(cmd).run().await
    }

    /// ABORT TASK (SAM-5 §7.2): aborts the task `tag` of `nexus` on `lun`. The future ends
    /// when it has ended (if there was one), with the number aborted. Like every task
    /// management function addressed to a LUN, [`TmfError::IncorrectLun`] when there is no
    /// such LU or its mask refuses `nexus`.
    pub fn abort_task(
        &self,
        nexus: Nexus,
        lun: Lun,
        tag: u64,
    ) -> impl Future<Output = Result<usize, TmfError>> + Send + 'static {
        self.abort_on(nexus, lun, move |e| e.nexus == nexus && e.tag == tag)
    }

    /// ABORT TASK SET (SAM-5 §7.3): aborts every task of `nexus` on `lun`.
    pub fn abort_task_set(
        &self,
        nexus: Nexus,
        lun: Lun,
    ) -> impl Future<Output = Result<usize, TmfError>> + Send + 'static {
        self.abort_on(nexus, lun, move |e| e.nexus == nexus)
    }

    fn abort_on(
        &self,
        nexus: Nexus,
        lun: Lun,
        pick: impl FnMut(&super::tasks::Entry) -> bool,
    ) -> impl Future<Output = Result<usize, TmfError>> + Send + 'static {
        let aborting = self.shared.inventory().unit(nexus, lun).map(|unit| {
            let mut a = Aborting::new();
            a.add(&unit, unit.abort(pick));
            a
        });
        async move {
            match aborting {
                Ok(a) => Ok(a.wait().await),
                Err(e) => Err(e),
            }
        }
    }

    /// CLEAR TASK SET (SAM-5 §7.4): aborts every task on `lun`, whoever sent it. The other
    /// nexuses that lost tasks get COMMANDS CLEARED BY ANOTHER INITIATOR (TAS is 0).
    pub fn clear_task_set(
        &self,
        nexus: Nexus,
        lun: Lun,
    ) -> impl Future<Output = Result<usize, TmfError>> + Send + 'static {
        let aborting = self.shared.inventory().unit(nexus, lun).map(|unit| {
            let aborted = unit.abort(|_| true);
            let mut state = unit.lock();
            for &n in aborted.nexuses.iter().filter(|&&n| n != nexus) {
                state.establish(
                    n,
                    Sense::unit_attention(AdditionalSense::COMMANDS_CLEARED_BY_ANOTHER_INITIATOR),
                );
            }
            drop(state);
            let mut a = Aborting::new();
            a.add(&unit, aborted);
            a
        });
        async move {
            match aborting {
                Ok(a) => Ok(a.wait().await),
                Err(e) => Err(e),
            }
        }
    }

    /// LOGICAL UNIT RESET (SAM-5 §7.7, §6.3.3): aborts every task on `lun`, returns its mode
    /// pages to their default values (there are no saved values), and gives every other nexus
    /// BUS DEVICE RESET FUNCTION OCCURRED.
    pub fn logical_unit_reset(
        &self,
        nexus: Nexus,
        lun: Lun,
    ) -> impl Future<Output = Result<usize, TmfError>> + Send + 'static {
        let aborting = {
            let inv = self.shared.inventory();
            inv.unit(nexus, lun).map(|unit| {
                let mut a = Aborting::new();
                reset_unit(&inv, &unit, nexus, &mut a);
                a
            })
        };
        async move {
            match aborting {
                Ok(a) => Ok(a.wait().await),
                Err(e) => Err(e),
            }
        }
    }

    /// TARGET RESET (SAM-5 §7.10, obsolete there but still sent by FCP initiators): a logical
    /// unit reset of every logical unit `nexus` sees (those masked from it are left alone).
    pub fn target_reset(&self, nexus: Nexus) -> impl Future<Output = usize> + Send + 'static {
        let mut a = Aborting::new();
        {
            let inv = self.shared.inventory();
            for slot in inv.units.values().filter(|s| s.visible_to(nexus)) {
                reset_unit(&inv, &slot.unit, nexus, &mut a);
            }
        }
        a.wait()
    }
}

/// The immediate part of a logical unit reset by `nexus`.
fn reset_unit(inv: &Inventory, unit: &Arc<Unit>, nexus: Nexus, a: &mut Aborting) {
    let aborted = unit.abort(|_| true);
    let mut state = unit.lock();
    state.reset_mode();
    for &n in inv.nexuses.keys().filter(|&&n| n != nexus) {
        state.establish(
            n,
            Sense::unit_attention(AdditionalSense::BUS_DEVICE_RESET_FUNCTION_OCCURRED),
        );
    }
    drop(state);
    a.add(unit, aborted);
}

/// A command in its logical unit's task set. Dropping it takes it out of the set (the
/// transport lost the exchange).
#[must_use = "a task does nothing until run"]
pub struct Task {
    shared: Arc<Shared>,
    body: Body,
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.body {
            Body::Done(_) => "done",
            Body::Queued(_) => "queued",
            Body::Finished => "finished",
        };
        f.debug_struct("Task").field("state", &state).finish()
    }
}

enum Body {
    /// Ended when it was entered.
    Done(ScsiResponse),
    Queued(Queued),
    Finished,
}

struct Queued {
    unit: Arc<Unit>,
    seq: u64,
    abort: oneshot::Receiver<()>,
    /// The abort receiver has fired (it must not be polled again).
    aborted: bool,
    nexus: Nexus,
    cdb: Bytes,
    fcp_dl: u32,
    data_out: Bytes,
    report: Option<ReportLunsData>,
}

impl Task {
    /// Gives the task its data-out (FCP: the FCP_DATA that answered FCP_XFER_RDY).
    pub fn set_data_out(&mut self, data_out: Bytes) {
        if let Body::Queued(q) = &mut self.body {
            q.data_out = data_out;
        }
    }

    /// True when the task ended when it was entered (its response is ready).
    pub fn is_done(&self) -> bool {
        matches!(self.body, Body::Done(_))
    }

    /// Waits until the task attributes let the task start, executes it, and takes it out of
    /// the task set. [`Outcome::Aborted`] when a task management function (or nexus loss, or
    /// the LU's removal) aborted it: nothing is to be sent then.
    pub async fn run(mut self) -> Outcome {
        let q = match std::mem::replace(&mut self.body, Body::Finished) {
            Body::Done(r) => return Outcome::Response(r),
            Body::Finished => return Outcome::Aborted,
            Body::Queued(q) => q,
        };
        // From here the guard takes the task out of the set however this future ends.
        let mut guard = Guard(Some(q));
        let response = match guard.0.as_mut() {
            Some(q) => q.run(&self.shared).await,
            None => None,
        };
        let ended = guard.finish();
        match response {
            Some(r) if ended => Outcome::Response(r),
            _ => Outcome::Aborted,
        }
    }
}

impl Queued {
    /// Waits for the task's turn and executes it; `None` when told to abort first.
    async fn run(&mut self, shared: &Shared) -> Option<ScsiResponse> {
        loop {
            let changed = self.unit.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.unit.lock().tasks.try_enable(self.seq) {
                break;
            }
            tokio::select! {
                biased;
                _ = &mut self.abort => {
                    self.aborted = true;
                    return None;
                }
                () = changed => {}
            }
        }
        let Queued {
            unit,
            abort,
            aborted,
            nexus,
            cdb,
            fcp_dl,
            data_out,
            report,
            ..
        } = self;
        let cmd = commands::Cmd {
            shared,
            unit,
            nexus: *nexus,
            fcp_dl: *fcp_dl,
            report: report.as_ref(),
        };
        // The command's future (and the device futures in it) is dropped at once when the
        // task is told to abort.
        tokio::select! {
            biased;
            _ = abort => {
                *aborted = true;
                None
            }
            r = INITIATOR.scope(nexus.initiator_port, cmd.execute(cdb, data_out)) => Some(r),
        }
    }
}

/// Takes a queued task out of its task set when dropped.
struct Guard(Option<Queued>);

impl Guard {
    /// Takes the task out; true when it ended on its own rather than by an abort.
    fn finish(&mut self) -> bool {
        let Some(q) = self.0.take() else {
            return false;
        };
        let ended = q.unit.lock().tasks.finish(q.seq);
        q.unit.changed.notify_waiters();
        ended && !q.aborted
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Body::Queued(q) = std::mem::replace(&mut self.body, Body::Finished) {
            Guard(Some(q)).finish();
        }
    }
}

#[cfg(test)]
mod task_tests;
#[cfg(test)]
mod tests;
