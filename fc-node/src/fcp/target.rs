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
//!
//! The target is a [`Service`] of its node for TYPE FCP, open to ports with an FCP image pair
//! ([`Target::install`]); it answers through the node's service interface and nothing else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, MutexGuard};
use std::thread;

use bytes::Bytes;
use fc_frames::ct::ns::Fc4Features;
use fc_frames::els::prli::TYPE_FCP;
use fc_frames::fcp::{FcpCmndRepr, FcpRspRepr, FcpXferRdyRepr, RspCode};
use fc_frames::{FcType, RCtl};

use crate::exchange::Outbound;
use crate::node::{
    Access, Context, Ended, Inbound, Registration, Responder, Sequence, Service, ServiceKey,
    Services,
};
use crate::scsi::{ScsiEngine, ScsiResponse};

/// An FCP target: the SCSI engine it serves. Install it among a node's [`Services`].
#[derive(Clone)]
pub struct Target {
    engine: Arc<Mutex<ScsiEngine>>,
    counters: Arc<TargetCounters>,
}

/// What an FCP target counts.
#[derive(Debug, Default)]
pub struct TargetCounters {
    /// Commands executed (status returned).
    pub commands: AtomicU64,
}

impl Target {
    /// A target serving `engine`'s logical units.
    pub fn new(engine: ScsiEngine) -> Target {
        Target {
            engine: Arc::new(Mutex::new(engine)),
            counters: Arc::default(),
        }
    }

    /// Commands executed so far.
    pub fn commands(&self) -> u64 {
        self.counters.commands.load(Ordering::Relaxed)
    }

    /// Adds the target to `services`: TYPE FCP, from ports with an FCP image pair, registered
    /// with the name server as an FCP target.
    pub fn install(&self, services: &mut Services) {
        services.add(
            [ServiceKey::Type(FcType::FCP)],
            Access::FcpInitiator,
            self.clone().start(),
        );
    }

    /// The engine, shared with the running target (to add LUNs or queue unit attentions).
    pub fn engine(&self) -> Arc<Mutex<ScsiEngine>> {
        self.engine.clone()
    }

    fn start(self) -> Running {
        let (jobs, rx) = std_mpsc::channel::<Job>();
        let engine = self.engine.clone();
        let counters = self.counters.clone();
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
                    counters.commands.fetch_add(1, Ordering::Relaxed);
                    job.responder.send_all(response_sequences(&response));
                }
            });
        if let Err(e) = &worker {
            tracing::error!(error = %e, "cannot start the FCP target worker");
        }
        Running {
            engine: self.engine,
            jobs,
            open: HashMap::new(),
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
    responder: Responder,
    cmd: FcpCmndRepr,
    data_out: Bytes,
}

enum Open {
    /// FCP_XFER_RDY sent; waiting for this many bytes of FCP_DATA.
    AwaitingData(FcpCmndRepr),
}

/// A target serving commands on a running node: the node's FCP service.
struct Running {
    engine: Arc<Mutex<ScsiEngine>>,
    jobs: std_mpsc::Sender<Job>,
    open: HashMap<Inbound, Open>,
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
            Some(Open::AwaitingData(cmd)) if seq.header.r_ctl == RCtl::SOLICITED_DATA => {
                self.dispatch(cx.responder(x), cmd, seq.payload);
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

    fn ended(&mut self, x: Inbound, _why: Ended) {
        self.open.remove(&x);
    }
}

impl Running {
    /// A new FCP_CMND: what to send at once, if anything (the rest comes from the worker).
    fn command(&mut self, cx: &mut Context<'_>, x: Inbound, payload: &[u8]) -> Option<Outbound> {
        let cmd = match FcpCmndRepr::parse(payload) {
            Ok(cmd) => cmd,
            Err(e) => {
                tracing::debug!(%x, error = %e, "bad FCP_CMND");
                return Some(rsp(FcpRspRepr::rsp_code(RspCode::CMND_FIELDS_INVALID)));
            }
        };
        if cmd.is_task_management() {
            return Some(rsp(FcpRspRepr::rsp_code(RspCode::TMF_COMPLETE)));
        }
        let out = lock(&self.engine).data_out_len(cmd.lun, &cmd.full_cdb(), cmd.dl);
        if out > 0 {
            self.open.insert(x, Open::AwaitingData(cmd));
            let xfer = FcpXferRdyRepr {
                data_ro: 0,
                burst_len: out,
            };
            return Some(Outbound::new(RCtl::DATA_DESCRIPTOR, xfer.to_vec()));
        }
        self.dispatch(cx.responder(x), cmd, Bytes::new());
        None
    }

    fn dispatch(&mut self, responder: Responder, cmd: FcpCmndRepr, data_out: Bytes) {
        let job = Job {
            responder,
            cmd,
            data_out,
        };
        if let Err(e) = self.jobs.send(job) {
            // The worker is gone: the exchange must not linger.
            e.0.responder.abort();
        }
    }
}
