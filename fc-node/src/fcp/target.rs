//! The FCP target: FCP_CMND in, FCP_XFER_RDY / FCP_DATA / FCP_RSP out, with the SCSI work done
//! by a shared [`ScsiEngine`]. Each command runs as its own tokio task, so a slow logical unit
//! never holds up another, and the node core only ever takes the engine's table locks for a
//! moment.
//!
//! The target is a [`Service`] of its node for TYPE FCP, open to ports with an FCP image pair
//! ([`Target::install`]): it sees only the exchanges, sessions and answers of the node's
//! service interface.
//!
//! - The I_T nexus of a command is the initiator's port name, from the node's session table.
//!   The engine hears of nexuses from the node's session events: an image pair made by PRLI
//!   adds one (a repeated PRLI first ends the old one: FCP-4 §6.3.3), PRLO, LOGO and a new
//!   PLOGI end one, and so does the loss of the link. Ending a nexus aborts its tasks (SAM-5
//!   I_T nexus loss).
//! - The command enters its logical unit's task set when FCP_CMND arrives (its tag is a
//!   number this target gives the exchange), so task attributes order it by arrival. A command
//!   that moves data out gets one FCP_XFER_RDY for all of it (`FCP_DATA_RO` 0, `FCP_BURST_LEN`
//!   what [`ScsiEngine::data_out_len`] says) and runs when that FCP_DATA sequence is complete.
//!   A command the engine rejects before reading data (out of range, bad CDB, unit attention)
//!   gets no XFER_RDY: it ends at once in CHECK CONDITION.
//! - Data-in goes as one FCP_DATA sequence with relative offsets, holding the sequence
//!   initiative, then FCP_RSP ends the exchange.
//! - An FCP_CMND that does not parse gets FCP_RSP with RSP_CODE "FCP_CMND fields invalid".
//!
//! # Task management (FCP-4 §9.2.2.5, §12.3)
//! FCP_CMND has no ABORT TASK flag: one command is aborted by the initiator's ABTS of its
//! exchange. The exchange manager answers BA_ACC and frees the exchange; the node core tells
//! the target ([`Service::ended`]), which aborts the engine's task: it sends nothing more.
//! The BA_ACC goes out at once, from the exchange manager, so a write that was already running
//! on the blocking pool may still land after it; a task management function, by contrast, is
//! answered only once the writes of the tasks it aborted have stopped.
//!
//! TASK MANAGEMENT FLAGS map to the engine's functions and are answered with FCP_RSP carrying
//! an RSP_CODE once the tasks they name have ended:
//!
//! | flags | engine | RSP_CODE |
//! |---|---|---|
//! | ABORT TASK SET | [`ScsiEngine::abort_task_set`] | 00h complete, 09h incorrect LUN |
//! | CLEAR TASK SET | [`ScsiEngine::clear_task_set`] | 00h complete, 09h incorrect LUN |
//! | LOGICAL UNIT RESET | [`ScsiEngine::logical_unit_reset`] | 00h complete, 09h incorrect LUN |
//! | TARGET RESET | [`ScsiEngine::target_reset`] | 00h complete |
//! | CLEAR ACA, several flags, unknown bits | — | 04h not supported |
//!
//! A function whose tasks have not ended within half the responder time-out (a device that
//! does not settle) is answered 05h, failed.
//!
//! The tasks a task management function aborts get no FCP_RSP. Their exchanges stay open
//! here, silent: FCP-4 §12.3 has the initiator terminate each with the recovery abort
//! protocol (ABTS), which the exchange manager accepts with BA_ACC; an exchange the initiator
//! never aborts is aborted by this port when it outlives its responder time-out.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fc_frames::ct::ns::Fc4Features;
use fc_frames::els::prli::TYPE_FCP;
use fc_frames::fcp::{FcpCmndRepr, FcpRspRepr, FcpXferRdyRepr, RspCode, TmFlags};
use fc_frames::scsi::Lun;
use fc_frames::{FcId, FcType, RCtl};
use tracing::Instrument;

use crate::exchange::Outbound;
use crate::node::{
    Access, Context, Ended, Inbound, Registration, Responder, Sequence, Service, ServiceKey,
    Services, SessionEvent,
};
use crate::scsi::{Nexus, Outcome, ScsiCommand, ScsiEngine, ScsiResponse, Task, TmfError};

/// How long a task management function may wait for its tasks to end before it is answered
/// "failed": half the default responder time-out, well before the initiator gives up.
const TMF_LIMIT: Duration = Duration::from_secs(10);

/// An FCP target: the SCSI engine it serves. Install it among a node's [`Services`].
#[derive(Debug, Clone)]
pub struct Target {
    engine: Arc<ScsiEngine>,
    counters: Arc<Counters>,
}

/// What a target counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetCounters {
    /// Commands that completed with a SCSI status (FCP_RSP sent).
    pub commands: u64,
    /// Commands aborted: by ABTS, by a task management function, by the loss of their nexus.
    pub aborted: u64,
    /// Task management functions answered.
    pub task_management: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commands: AtomicU64,
    aborted: AtomicU64,
    task_management: AtomicU64,
}

impl Target {
    /// A target serving `engine`'s logical units.
    pub fn new(engine: Arc<ScsiEngine>) -> Target {
        Target {
            engine,
            counters: Arc::default(),
        }
    }

    /// The engine, shared with the running target (to add or remove LUNs, queue unit
    /// attentions).
    pub fn engine(&self) -> Arc<ScsiEngine> {
        self.engine.clone()
    }

    /// What the target counted so far.
    pub fn counters(&self) -> TargetCounters {
        TargetCounters {
            commands: self.counters.commands.load(Ordering::Relaxed),
            aborted: self.counters.aborted.load(Ordering::Relaxed),
            task_management: self.counters.task_management.load(Ordering::Relaxed),
        }
    }

    /// Adds the target to `services`: TYPE FCP, from ports with an FCP image pair, registered
    /// with the name server as an FCP target.
    pub fn install(&self, services: &mut Services) {
        services.add(
            [ServiceKey::Type(FcType::FCP)],
            Access::FcpInitiator,
            Running {
                engine: self.engine.clone(),
                counters: self.counters.clone(),
                open: HashMap::new(),
                nexuses: HashMap::new(),
                next_tag: 1,
            },
        );
    }
}

/// FCP_DATA (if any, holding the initiative) then FCP_RSP (last).
fn response_sequences(r: &ScsiResponse) -> Vec<Outbound> {
    let mut seqs = Vec::with_capacity(2);
    if !r.data_in.is_empty() {
        seqs.push(
            Outbound::new(RCtl::SOLICITED_DATA, r.data_in.clone())
                .with_relative_offset(0)
                .hold_initiative(),
        );
    }
    seqs.push(Outbound::new(RCtl::COMMAND_STATUS, r.fcp_rsp().to_vec()).last());
    seqs
}

fn rsp(r: FcpRspRepr) -> Outbound {
    Outbound::new(RCtl::COMMAND_STATUS, r.to_vec()).last()
}

/// The RSP_CODE for a task management function's result; `None` when its tasks did not end
/// in time.
fn tmf_code(r: Option<Result<usize, TmfError>>) -> RspCode {
    match r {
        Some(Ok(_)) => RspCode::TMF_COMPLETE,
        Some(Err(TmfError::IncorrectLun(_))) => RspCode::TMF_INCORRECT_LUN,
        None => RspCode::TMF_FAILED,
    }
}

/// An engine task's name.
#[derive(Debug, Clone, Copy)]
struct TaskName {
    nexus: Nexus,
    lun: Lun,
    tag: u64,
}

enum Open {
    /// FCP_XFER_RDY sent; the task waits in its task set for the FCP_DATA.
    AwaitingData(Task, TaskName),
    /// Running as a tokio task (or aborted by a task management function, and silent).
    Executing(TaskName),
    /// A task management function in progress.
    Tmf,
}

/// A target serving commands on a running node: the node's FCP service.
struct Running {
    engine: Arc<ScsiEngine>,
    counters: Arc<Counters>,
    open: HashMap<Inbound, Open>,
    /// The initiator ports the engine knows as nexuses, by N_Port ID.
    nexuses: HashMap<FcId, Nexus>,
    /// The next task tag.
    next_tag: u64,
}

impl Service for Running {
    fn registration(&self) -> Option<Registration> {
        Some(Registration {
            fc4_type: TYPE_FCP,
            features: Fc4Features::TARGET,
        })
    }

    fn request(&mut self, cx: &mut Context<'_>, x: Inbound, seq: Sequence) {
        if seq.header.r_ctl != RCtl::UNSOLICITED_COMMAND {
            tracing::debug!(%x, r_ctl = %seq.header.r_ctl, "FCP sequence for no command");
            cx.abort(x);
            return;
        }
        if let Some(out) = self.command(cx, x, &seq.payload) {
            let _ = cx.send(x, out);
        }
    }

    fn sequence(&mut self, cx: &mut Context<'_>, x: Inbound, seq: Sequence) {
        match self.open.remove(&x) {
            Some(Open::AwaitingData(mut task, name))
                if seq.header.r_ctl == RCtl::SOLICITED_DATA =>
            {
                task.set_data_out(seq.payload);
                self.spawn(cx.responder(x), task, name);
            }
            Some(other) => {
                // Out of turn (a second command on the exchange, data nobody asked for).
                self.open.insert(x, other);
                tracing::debug!(%x, r_ctl = %seq.header.r_ctl, "unexpected FCP sequence dropped");
            }
            None => {
                tracing::debug!(%x, r_ctl = %seq.header.r_ctl, "FCP sequence for no command");
            }
        }
    }

    /// The exchange was aborted (ABTS from the initiator: FCP-4's ABORT TASK; our time-out;
    /// the link): its task is aborted.
    fn ended(&mut self, x: Inbound, _why: Ended) {
        if let Some(open) = self.open.remove(&x) {
            self.abort(open);
        }
    }

    fn finished(&mut self, x: Inbound) {
        self.open.remove(&x);
    }

    /// PRLI, PRLO, LOGO, PLOGI and link loss make and end FCP image pairs, which are I_T
    /// nexuses to the engine.
    fn session(&mut self, event: &SessionEvent) {
        let (port, now) = match event {
            SessionEvent::Opened(p) => (p, p.is_fcp_initiator().then(|| Nexus::new(p.port_name))),
            SessionEvent::Closed { port, .. } => (port, None),
        };
        let s_id = port.port_id;
        // FCP-4 §6.3.3: a PLOGI, or a PRLI that repeats an image pair, ends the old one first
        // (its tasks are aborted, as for PRLO).
        if let Some(old) = self.nexuses.remove(&s_id) {
            tracing::debug!(%s_id, nexus = %old, "I_T nexus ended");
            tokio::spawn(self.engine.remove_nexus(old));
        }
        if let Some(new) = now {
            tracing::debug!(%s_id, nexus = %new, "I_T nexus made");
            self.engine.add_nexus(new);
            self.nexuses.insert(s_id, new);
        }
    }
}

impl Running {
    /// The nexus of the initiator at `s_id`: known, or made known from the session table.
    fn nexus(&mut self, cx: &Context<'_>, s_id: FcId) -> Option<Nexus> {
        if let Some(&n) = self.nexuses.get(&s_id) {
            return Some(n);
        }
        let n = Nexus::new(cx.session(s_id)?.port_name);
        self.engine.add_nexus(n);
        self.nexuses.insert(s_id, n);
        Some(n)
    }

    fn command(&mut self, cx: &Context<'_>, x: Inbound, payload: &[u8]) -> Option<Outbound> {
        let (id, s_id) = (x, x.peer);
        let cmd = match FcpCmndRepr::parse(payload) {
            Ok(cmd) => cmd,
            Err(e) => {
                tracing::debug!(%id, error = %e, "bad FCP_CMND");
                return Some(rsp(FcpRspRepr::rsp_code(RspCode::CMND_FIELDS_INVALID)));
            }
        };
        let Some(nexus) = self.nexus(cx, s_id) else {
            tracing::debug!(%id, %s_id, "FCP_CMND from a port with no session");
            return None;
        };
        if cmd.is_task_management() {
            return self.task_management(cx.responder(x), nexus, &cmd);
        }
        let cdb = Bytes::copy_from_slice(&cmd.full_cdb());
        let out = self.engine.data_out_len(nexus, cmd.lun, &cdb, cmd.dl);
        let tag = self.next_tag;
        self.next_tag += 1;
        let name = TaskName {
            nexus,
            lun: cmd.lun,
            tag,
        };
        let task = self.engine.enter(
            ScsiCommand::new(nexus, cmd.lun, cdb, cmd.dl)
                .with_tag(tag)
                .with_attribute(cmd.task_attribute),
        );
        if out > 0 && !task.is_done() {
            self.open.insert(x, Open::AwaitingData(task, name));
            let xfer = FcpXferRdyRepr {
                data_ro: 0,
                burst_len: out,
            };
            return Some(Outbound::new(RCtl::DATA_DESCRIPTOR, xfer.to_vec()));
        }
        self.spawn(cx.responder(x), task, name);
        None
    }

    /// Runs `task` as its own tokio task; its answer goes out through the responder.
    fn spawn(&mut self, responder: Responder, task: Task, name: TaskName) {
        let x = responder.exchange();
        self.open.insert(x, Open::Executing(name));
        let counters = self.counters.clone();
        let span = tracing::debug_span!("fcp_task", %x, lun = %name.lun, tag = name.tag);
        tokio::spawn(
            async move {
                match task.run().await {
                    Outcome::Response(r) => {
                        counters.commands.fetch_add(1, Ordering::Relaxed);
                        responder.send_all(response_sequences(&r));
                    }
                    Outcome::Aborted => {
                        counters.aborted.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("task aborted: no FCP_RSP");
                    }
                }
            }
            .instrument(span),
        );
    }

    /// A task management request: started now, answered when its tasks have ended.
    fn task_management(
        &mut self,
        responder: Responder,
        nexus: Nexus,
        cmd: &FcpCmndRepr,
    ) -> Option<Outbound> {
        let id = responder.exchange();
        let e = &self.engine;
        let lun = cmd.lun;
        type Tmf = Pin<Box<dyn Future<Output = Result<usize, TmfError>> + Send>>;
        let tmf: Tmf = match cmd.tm_flags {
            f if f == TmFlags::ABORT_TASK_SET => Box::pin(e.abort_task_set(nexus, lun)),
            f if f == TmFlags::CLEAR_TASK_SET => Box::pin(e.clear_task_set(nexus, lun)),
            f if f == TmFlags::LOGICAL_UNIT_RESET => Box::pin(e.logical_unit_reset(nexus, lun)),
            f if f == TmFlags::TARGET_RESET => {
                let reset = e.target_reset(nexus);
                Box::pin(async move { Ok(reset.await) })
            }
            // CLEAR ACA (no ACA is ever established), several functions at once, reserved
            // bits: FCP-4 Table 31, TASK MANAGEMENT FUNCTION NOT SUPPORTED.
            other => {
                tracing::debug!(%id, flags = ?other, "task management function not supported");
                self.counters
                    .task_management
                    .fetch_add(1, Ordering::Relaxed);
                return Some(rsp(FcpRspRepr::rsp_code(RspCode::TMF_NOT_SUPPORTED)));
            }
        };
        tracing::debug!(%id, %nexus, %lun, flags = ?cmd.tm_flags, "task management function");
        self.open.insert(id, Open::Tmf);
        let counters = self.counters.clone();
        // Answered well before the exchange's own time-out: a function whose tasks do not
        // end by then (a device that never settles) failed.
        tokio::spawn(async move {
            let code = tmf_code(tokio::time::timeout(TMF_LIMIT, tmf).await.ok());
            counters.task_management.fetch_add(1, Ordering::Relaxed);
            responder.send(rsp(FcpRspRepr::rsp_code(code)));
        });
        None
    }

    /// Aborts the engine's side of an exchange that is gone.
    fn abort(&mut self, open: Open) {
        match open {
            Open::AwaitingData(task, _) => {
                // Dropping it takes it out of its task set; it never ran.
                drop(task);
                self.counters.aborted.fetch_add(1, Ordering::Relaxed);
            }
            Open::Executing(n) => {
                // The abort takes effect now; nobody waits for it (the exchange is gone).
                tokio::spawn(self.engine.abort_task(n.nexus, n.lun, n.tag));
            }
            Open::Tmf => {}
        }
    }
}
