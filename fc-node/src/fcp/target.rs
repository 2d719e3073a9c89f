//! The FCP target: FCP_CMND in, FCP_XFER_RDY / FCP_DATA / FCP_RSP out, with the SCSI work done
//! by a [`ScsiEngine`] on a worker thread so that file I/O never stalls the port.
//!
//! - A command that moves data out gets one FCP_XFER_RDY for all of it (`FCP_DATA_RO` 0,
//!   `FCP_BURST_LEN` what [`ScsiEngine::data_out_len`] says); the command runs when that
//!   FCP_DATA sequence is complete. A command the engine will reject before reading data
//!   (out of range, bad CDB, unit attention) gets no XFER_RDY: it ends at once in CHECK
//!   CONDITION.
//! - Data-in goes as one FCP_DATA sequence with relative offsets, holding the sequence
//!   initiative, then FCP_RSP ends the exchange.
//! - An FCP_CMND that does not parse gets FCP_RSP with RSP_CODE "FCP_CMND fields invalid";
//!   task management requests are answered "function complete" (nothing is queued here, so
//!   there is nothing to abort or reset).

use std::collections::HashMap;
use std::sync::{mpsc as std_mpsc, Arc, Mutex, MutexGuard};
use std::thread;

use bytes::Bytes;
use fc_frames::fcp::{FcpCmndRepr, FcpRspRepr, FcpXferRdyRepr, RspCode};
use fc_frames::{FrameHeaderRepr, RCtl};

use crate::exchange::{ExchangeId, Outbound};
use crate::node::CoreHandle;
use crate::scsi::{ScsiEngine, ScsiResponse};

/// An FCP target: the SCSI engine it serves. Hand it to [`Node::spawn`](crate::node::Node::spawn).
#[derive(Clone)]
pub struct Target {
    engine: Arc<Mutex<ScsiEngine>>,
}

impl Target {
    /// A target serving `engine`'s logical units.
    pub fn new(engine: ScsiEngine) -> Target {
        Target {
            engine: Arc::new(Mutex::new(engine)),
        }
    }

    /// The engine, shared with the running target (to add LUNs or queue unit attentions).
    pub fn engine(&self) -> Arc<Mutex<ScsiEngine>> {
        self.engine.clone()
    }

    pub(crate) fn start(self, core: CoreHandle) -> Running {
        let (jobs, rx) = std_mpsc::channel::<Job>();
        let engine = self.engine.clone();
        let worker = thread::Builder::new()
            .name("fcp-target".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let response = lock(&engine).execute(
                        job.cmd.lun,
                        &job.cmd.full_cdb(),
                        job.cmd.dl,
                        &job.data_out,
                    );
                    core.count(|c| c.fcp_commands += 1);
                    core.respond(job.generation, job.id, response_sequences(&response));
                }
            });
        if let Err(e) = &worker {
            tracing::error!(error = %e, "cannot start the FCP target worker");
        }
        Running {
            engine: self.engine,
            jobs,
            open: HashMap::new(),
            generation: 0,
        }
    }
}

fn lock(engine: &Mutex<ScsiEngine>) -> MutexGuard<'_, ScsiEngine> {
    // The engine's state stays consistent across a panic in a device call: each command
    // updates it only after the device returned.
    engine.lock().unwrap_or_else(|e| e.into_inner())
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

struct Job {
    generation: u64,
    id: ExchangeId,
    cmd: FcpCmndRepr,
    data_out: Bytes,
}

enum Open {
    /// FCP_XFER_RDY sent; waiting for this many bytes of FCP_DATA.
    AwaitingData(FcpCmndRepr),
    /// With the worker.
    Executing,
}

/// A target serving commands on a running node.
pub(crate) struct Running {
    engine: Arc<Mutex<ScsiEngine>>,
    jobs: std_mpsc::Sender<Job>,
    open: HashMap<ExchangeId, Open>,
    /// Bumped when the link goes down: exchange handles are per link, so the worker's answers
    /// for an older link must not reach the new one.
    generation: u64,
}

impl Running {
    /// True when `id` is a command in progress.
    pub(crate) fn is_open(&self, id: ExchangeId) -> bool {
        self.open.contains_key(&id)
    }

    /// A sequence of an FCP exchange from an initiator with an image pair; what to send at
    /// once, if anything (the rest comes from the worker).
    pub(crate) fn sequence(
        &mut self,
        id: ExchangeId,
        header: &FrameHeaderRepr,
        payload: Bytes,
    ) -> Option<Outbound> {
        match self.open.remove(&id) {
            Some(Open::AwaitingData(cmd)) if header.r_ctl == RCtl::SOLICITED_DATA => {
                self.dispatch(id, cmd, payload);
                None
            }
            Some(other) => {
                // Out of turn (a second command on the exchange, data nobody asked for).
                self.open.insert(id, other);
                tracing::debug!(%id, r_ctl = %header.r_ctl, "unexpected FCP sequence dropped");
                None
            }
            None if header.r_ctl == RCtl::UNSOLICITED_COMMAND => self.command(id, &payload),
            None => {
                tracing::debug!(%id, r_ctl = %header.r_ctl, "FCP sequence for no command");
                None
            }
        }
    }

    fn command(&mut self, id: ExchangeId, payload: &[u8]) -> Option<Outbound> {
        let cmd = match FcpCmndRepr::parse(payload) {
            Ok(cmd) => cmd,
            Err(e) => {
                tracing::debug!(%id, error = %e, "bad FCP_CMND");
                return Some(rsp(FcpRspRepr::rsp_code(RspCode::CMND_FIELDS_INVALID)));
            }
        };
        if cmd.is_task_management() {
            return Some(rsp(FcpRspRepr::rsp_code(RspCode::TMF_COMPLETE)));
        }
        let out = lock(&self.engine).data_out_len(cmd.lun, &cmd.full_cdb(), cmd.dl);
        if out > 0 {
            self.open.insert(id, Open::AwaitingData(cmd));
            let xfer = FcpXferRdyRepr {
                data_ro: 0,
                burst_len: out,
            };
            return Some(Outbound::new(RCtl::DATA_DESCRIPTOR, xfer.to_vec()));
        }
        self.dispatch(id, cmd, Bytes::new());
        None
    }

    fn dispatch(&mut self, id: ExchangeId, cmd: FcpCmndRepr, data_out: Bytes) {
        self.open.insert(id, Open::Executing);
        let job = Job {
            generation: self.generation,
            id,
            cmd,
            data_out,
        };
        if self.jobs.send(job).is_err() {
            self.open.remove(&id);
        }
    }

    /// The exchange ended or was aborted.
    pub(crate) fn forget(&mut self, id: ExchangeId) {
        self.open.remove(&id);
    }

    /// The link went down: every exchange is gone.
    pub(crate) fn clear(&mut self) {
        self.open.clear();
        self.generation += 1;
    }

    /// The worker's answer for `id` of link `generation` may go out: removes the command.
    pub(crate) fn complete(&mut self, generation: u64, id: ExchangeId) -> bool {
        generation == self.generation && self.open.remove(&id).is_some()
    }
}
