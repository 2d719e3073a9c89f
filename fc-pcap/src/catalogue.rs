//! A scripted conversation that holds every message kind `fc-frames` encodes, in the order a
//! real SAN would send them: a host logs in to the fabric, registers with the name server,
//! finds a disk array, logs in to it, runs SCSI over FCP (discovery, reads and writes, errors
//! with sense), aborts an exchange, receives an RSCN, checks the link, and logs out.
//!
//! `fcsan pcap catalogue` writes it to `captures/fc-frames.pcap`; the tshark agreement test checks that
//! Wireshark decodes every field as encoded. Everything here is deterministic: the same bytes
//! every run.

use std::time::Duration;

use bytes::Bytes;
use fc_frames::bls::{BaAccRepr, BaRjt, BaRjtExplanation, BaRjtReason};
use fc_frames::ct::ns::{
    Fc4FeatureMap, Fc4Features, Fc4Types, NsAccept, NsExplanation, NsRequest, SymbolicName,
    FC4_TYPE_FCP,
};
use fc_frames::ct::CtReason;
use fc_frames::els::{
    Echo, ElsCode, ElsReply, ElsRequest, FcpServiceParams, LoginRepr, Logo, LsRjt,
    LsRjtExplanation, LsRjtReason, PrliPage, PrliRepr, PrliResponseCode, Rscn, RscnAddressFormat,
    RscnEventQualifier, RscnPage, Scr, ScrFunction,
};
use fc_frames::fcp::{DataDirection, FcpCmndRepr, FcpRspRepr, FcpXferRdyRepr, Residual};
use fc_frames::frame::MAX_PAYLOAD;
use fc_frames::header::UNASSIGNED_XID;
use fc_frames::scsi::data::mode::CachingFlags;
use fc_frames::scsi::data::vpd::RotationRate;
use fc_frames::scsi::data::{
    BlockDescriptors, BlockDeviceCharacteristics, CachingPage, Capacity, ControlPage, Designator,
    DeviceSpecific, InquiryData, ModeForm, ModePage, ModeParameters, Peripheral,
    ReadBlockLimitsData, ReportLunsData, ShortBlockDescriptor, UnmapDescriptor, UnmapParameterList,
    Vpd, VpdPage,
};
use fc_frames::scsi::sense::SenseFormat;
use fc_frames::scsi::{Lun, Sense};
use fc_frames::{Eof, FCtl, FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Sof, Wwn};

/// Time stamp of the first frame: 2026-11-24 00:00:00 UTC.
pub const START: Duration = Duration::from_secs(1_795_478_400);

/// The host's port and node names.
pub const HOST_WWPN: Wwn = Wwn([0x21, 0x00, 0x00, 0x24, 0xff, 0x4a, 0x00, 0x01]);
/// The host's node name.
pub const HOST_WWNN: Wwn = Wwn([0x20, 0x00, 0x00, 0x24, 0xff, 0x4a, 0x00, 0x01]);
/// The disk array's port name.
pub const DISK_WWPN: Wwn = Wwn([0x50, 0x06, 0x01, 0x60, 0x3e, 0xa0, 0x00, 0x01]);
/// The disk array's node name.
pub const DISK_WWNN: Wwn = Wwn([0x50, 0x06, 0x01, 0x60, 0xbe, 0xa0, 0x00, 0x01]);
/// The switch's F_Port name.
pub const F_PORT_WWPN: Wwn = Wwn([0x20, 0x01, 0x00, 0x05, 0x1e, 0x00, 0x00, 0x01]);
/// The fabric name.
pub const FABRIC_WWN: Wwn = Wwn([0x10, 0x00, 0x00, 0x05, 0x1e, 0x00, 0x00, 0x01]);

/// The host's N_Port ID, as the switch of domain 1 assigns it.
pub const HOST: FcId = FcId::from_parts(0x01, 0x01, 0x00);
/// The host's second (NPIV) N_Port ID.
pub const HOST_NPIV: FcId = FcId::from_parts(0x01, 0x01, 0x01);
/// The disk array's N_Port ID.
pub const DISK: FcId = FcId::from_parts(0x01, 0x02, 0x00);
/// A second target the name server knows.
pub const DISK2: FcId = FcId::from_parts(0x02, 0x1a, 0x00);

const BLOCK: u32 = 512;

/// Builds the conversation frame by frame, allocating OX_IDs and RX_IDs.
struct Script {
    frames: Vec<FcFrame>,
    next_ox: u16,
    next_rx: u16,
}

/// One open exchange: its request header, to answer.
#[derive(Clone, Copy)]
struct Exchange {
    req: FrameHeaderRepr,
    rx_id: u16,
}

impl Script {
    fn new() -> Script {
        Script {
            frames: Vec::new(),
            next_ox: 0x0100,
            next_rx: 0x8000,
        }
    }

    fn push(&mut self, sof: Sof, header: FrameHeaderRepr, payload: Vec<u8>, eof: Eof) {
        self.frames
            .push(FcFrame::new(sof, header, Bytes::from(payload), eof));
    }

    /// Opens an exchange with a one-frame request sequence.
    fn request(&mut self, r_ctl: RCtl, t: FcType, s: FcId, d: FcId, payload: Vec<u8>) -> Exchange {
        let req = FrameHeaderRepr::request(r_ctl, t, d, s, self.next_ox);
        self.next_ox += 1;
        let rx_id = self.next_rx;
        self.next_rx += 1;
        self.push(Sof::I3, req, payload, Eof::T);
        Exchange { req, rx_id }
    }

    /// The responder's last sequence, ending the exchange.
    fn reply(&mut self, x: Exchange, r_ctl: RCtl, payload: Vec<u8>) {
        let h = FrameHeaderRepr::reply_to(&x.req, r_ctl, x.rx_id);
        self.push(Sof::I3, h, payload, Eof::T);
    }

    fn els(&mut self, s: FcId, d: FcId, req: ElsRequest, reply: ElsReply) {
        let x = self.request(RCtl::ELS_REQUEST, FcType::ELS, s, d, req.to_vec());
        self.reply(x, RCtl::ELS_REPLY, reply.to_vec());
    }

    fn ns(&mut self, req: NsRequest, accept: Result<NsAccept, (CtReason, NsExplanation)>) {
        let resp = match accept {
            Ok(a) => req.accept(a),
            Err((reason, expl)) => req.reject(reason, expl),
        };
        let x = self.request(
            RCtl::UNSOLICITED_CONTROL,
            FcType::CT,
            HOST,
            FcId::DIRECTORY_SERVER,
            req.to_vec(),
        );
        self.reply(x, RCtl::SOLICITED_CONTROL, resp.to_vec());
    }

    /// FLOGI or FDISC from the unidentified address, accepted by the F_Port to `assigned`.
    fn fabric_login(&mut self, login: ElsRequest, assigned: FcId) {
        let x = self.request(
            RCtl::ELS_REQUEST,
            FcType::ELS,
            FcId::UNIDENTIFIED,
            FcId::F_PORT_CONTROLLER,
            login.to_vec(),
        );
        let mut acc = FrameHeaderRepr::reply_to(&x.req, RCtl::ELS_REPLY, x.rx_id);
        acc.d_id = assigned;
        let fabric = LoginRepr::fabric_accept(F_PORT_WWPN, FABRIC_WWN, 2048, 10_000, 2_000);
        self.push(Sof::I3, acc, ElsReply::Login(fabric).to_vec(), Eof::T);
    }

    /// One SCSI command on `lun`: FCP_CMND, data in (`data_in`) or out (`data_out`, after an
    /// FCP_XFER_RDY), then FCP_RSP.
    fn scsi(&mut self, lun: Lun, cdb: &[u8], data_in: Vec<u8>, data_out: Vec<u8>, rsp: FcpRspRepr) {
        let (dir, dl) = if !data_out.is_empty() {
            (DataDirection::Write, data_out.len())
        } else if !data_in.is_empty() {
            (DataDirection::Read, data_in.len())
        } else {
            (DataDirection::None, 0)
        };
        self.scsi_dl(lun, cdb, dir, dl as u32, data_in, data_out, rsp);
    }

    #[allow(clippy::too_many_arguments)]
    fn scsi_dl(
        &mut self,
        lun: Lun,
        cdb: &[u8],
        dir: DataDirection,
        dl: u32,
        data_in: Vec<u8>,
        data_out: Vec<u8>,
        rsp: FcpRspRepr,
    ) {
        // The catalogue's CDBs are all 16 bytes or shorter; FcpCmndRepr::new cannot fail.
        let cmnd = FcpCmndRepr::new(lun, cdb, dir, dl).unwrap_or_default();
        let x = self.request(
            RCtl::UNSOLICITED_COMMAND,
            FcType::FCP,
            HOST,
            DISK,
            cmnd.to_vec(),
        );
        let seq_in = x.req.seq_id.wrapping_add(1);
        if !data_out.is_empty() {
            let xfer = FcpXferRdyRepr {
                data_ro: 0,
                burst_len: data_out.len() as u32,
            };
            let mut h = FrameHeaderRepr::reply_to(&x.req, RCtl::DATA_DESCRIPTOR, x.rx_id);
            h.f_ctl = FCtl::EXCHANGE_CONTEXT | FCtl::END_SEQUENCE | FCtl::SEQUENCE_INITIATIVE;
            self.push(Sof::I3, h, xfer.to_vec(), Eof::T);
            let mut h = x.req;
            h.rx_id = x.rx_id;
            h.seq_id = seq_in.wrapping_add(1);
            self.data_sequence(h, FCtl::SEQUENCE_INITIATIVE, &data_out);
        } else if !data_in.is_empty() {
            let mut h = FrameHeaderRepr::reply_to(&x.req, RCtl::SOLICITED_DATA, x.rx_id);
            h.seq_id = seq_in;
            self.data_sequence(h, FCtl::EXCHANGE_CONTEXT, &data_in);
        }
        let mut h = FrameHeaderRepr::reply_to(&x.req, RCtl::COMMAND_STATUS, x.rx_id);
        h.seq_id = seq_in.wrapping_add(2);
        self.push(Sof::I3, h, rsp.to_vec(), Eof::T);
    }

    /// A data sequence split into frames of at most 2048 bytes with relative offsets.
    fn data_sequence(&mut self, mut h: FrameHeaderRepr, base: FCtl, data: &[u8]) {
        h.r_ctl = RCtl::SOLICITED_DATA;
        let chunks: Vec<&[u8]> = data.chunks(2048.min(MAX_PAYLOAD)).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            h.seq_cnt = i as u16;
            h.parameter = (i * 2048) as u32;
            h.f_ctl = base | FCtl::RELATIVE_OFFSET;
            if last {
                h.f_ctl |= FCtl::END_SEQUENCE;
            } else {
                h.f_ctl.remove(FCtl::SEQUENCE_INITIATIVE);
            }
            let sof = if i == 0 { Sof::I3 } else { Sof::N3 };
            let eof = if last { Eof::T } else { Eof::N };
            self.push(sof, h, chunk.to_vec(), eof);
        }
    }
}

/// READ(10)/WRITE(10) CDB bytes.
fn rw10(opcode: u8, lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = vec![opcode, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&blocks.to_be_bytes());
    c.push(0);
    c
}

/// READ(16)/WRITE(16) CDB bytes.
fn rw16(opcode: u8, lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = vec![opcode, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&blocks.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

/// Deterministic block contents: `n` bytes of a pattern seeded by `seed`.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The whole conversation.
pub fn conversation() -> Vec<FcFrame> {
    let mut s = Script::new();
    let lun0 = Lun::ZERO;
    let lun1 = Lun::from_index(1).unwrap_or(Lun::ZERO);
    let capacity =
        Capacity::new(2_097_152, BLOCK).unwrap_or_else(|_| unreachable!("valid capacity"));

    // Fabric login, from the unidentified address; the accept assigns 010100.
    let flogi = LoginRepr::request(ElsCode::FLOGI, HOST_WWPN, HOST_WWNN, 2048);
    s.fabric_login(ElsRequest::Flogi(flogi), HOST);

    // State change registration with the fabric controller.
    s.els(
        HOST,
        FcId::FABRIC_CONTROLLER,
        ElsRequest::Scr(Scr {
            function: ScrFunction::FULL,
        }),
        ElsReply::Acc,
    );

    // Name server: register, then query.
    s.ns(
        NsRequest::rft_id(HOST, Fc4Types::default().with(FC4_TYPE_FCP)),
        Ok(NsAccept::RftId),
    );
    s.ns(
        NsRequest::rff_id(HOST, Fc4Features::INITIATOR, FC4_TYPE_FCP),
        Ok(NsAccept::RffId),
    );
    s.ns(NsRequest::rnn_id(HOST, HOST_WWNN), Ok(NsAccept::RnnId));
    let name = SymbolicName::new(&b"fcsan host 0 port 0"[..]).unwrap_or_default();
    s.ns(NsRequest::rspn_id(HOST, name), Ok(NsAccept::RspnId));
    s.ns(
        NsRequest::gid_ft(FC4_TYPE_FCP),
        Ok(NsAccept::GidFt(vec![DISK, DISK2])),
    );
    s.ns(NsRequest::gpn_id(DISK), Ok(NsAccept::GpnId(DISK_WWPN)));
    s.ns(NsRequest::gnn_id(DISK), Ok(NsAccept::GnnId(DISK_WWNN)));
    s.ns(
        NsRequest::gff_id(DISK),
        Ok(NsAccept::GffId(
            Fc4FeatureMap::default().with(FC4_TYPE_FCP, Fc4Features::TARGET),
        )),
    );
    s.ns(
        NsRequest::gpn_id(FcId::from_parts(0x01, 0x09, 0x00)),
        Err((
            CtReason::UNABLE_TO_PERFORM,
            NsExplanation::PORT_ID_NOT_REGISTERED,
        )),
    );

    // A second N_Port ID on the same link (NPIV).
    let npiv_wwpn = Wwn([0x21, 0x00, 0x00, 0x24, 0xff, 0x4a, 0x00, 0x02]);
    let fdisc = LoginRepr::request(ElsCode::FDISC, npiv_wwpn, HOST_WWNN, 2048);
    s.fabric_login(ElsRequest::Fdisc(fdisc), HOST_NPIV);

    // Port login and process login to the disk array.
    let mut plogi_acc = LoginRepr::request(ElsCode::LS_ACC, DISK_WWPN, DISK_WWNN, 2048);
    plogi_acc.code = ElsCode::LS_ACC;
    s.els(
        HOST,
        DISK,
        ElsRequest::Plogi(LoginRepr::request(
            ElsCode::PLOGI,
            HOST_WWPN,
            HOST_WWNN,
            2048,
        )),
        ElsReply::Login(plogi_acc),
    );
    let initiator = FcpServiceParams::INITIATOR_FUNCTION | FcpServiceParams::READ_XFER_RDY_DISABLED;
    let target = FcpServiceParams::TARGET_FUNCTION | FcpServiceParams::READ_XFER_RDY_DISABLED;
    s.els(
        HOST,
        DISK,
        ElsRequest::Prli(PrliRepr::single(
            ElsCode::PRLI,
            PrliPage::fcp_request(initiator),
        )),
        ElsReply::Prli(PrliRepr::single(
            ElsCode::LS_ACC,
            PrliPage::fcp_accept(target, PrliResponseCode::REQUEST_EXECUTED),
        )),
    );

    // SCSI discovery.
    let good = FcpRspRepr::good;
    let luns = ReportLunsData::new(vec![lun0, lun1]);
    s.scsi(
        lun0,
        &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0],
        luns.to_vec(),
        vec![],
        good(),
    );
    let inquiry = InquiryData::disk("FCSAN", "fcsan disk array", "0.1");
    s.scsi(
        lun0,
        &[0x12, 0, 0, 0, 96, 0],
        inquiry.to_vec(),
        vec![],
        good(),
    );
    let vpd83 = Vpd {
        peripheral: Peripheral::DISK,
        page: VpdPage::DeviceIdentification(vec![
            Designator::lu_naa(Wwn([0x60, 0x06, 0x01, 0x60, 0x3e, 0xa0, 0x00, 0x00])),
            Designator::target_port_name(DISK_WWPN),
            Designator::relative_target_port(1),
        ]),
    };
    s.scsi(
        lun0,
        &[0x12, 0x01, 0x83, 0, 0xFF, 0],
        vpd83.to_vec(),
        vec![],
        good(),
    );
    let vpdb1 = Vpd {
        peripheral: Peripheral::DISK,
        page: VpdPage::BlockDeviceCharacteristics(BlockDeviceCharacteristics {
            rotation_rate: RotationRate(15000),
            ..BlockDeviceCharacteristics::default()
        }),
    };
    s.scsi(
        lun0,
        &[0x12, 0x01, 0xB1, 0, 0x40, 0],
        vpdb1.to_vec(),
        vec![],
        good(),
    );
    s.scsi(
        lun0,
        &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        capacity.to_read_capacity_10().to_vec(),
        vec![],
        good(),
    );
    s.scsi(
        lun0,
        &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
        capacity.to_read_capacity_16().to_vec(),
        vec![],
        good(),
    );
    let mode = ModeParameters {
        form: ModeForm::Six,
        medium_type: 0,
        device_specific: DeviceSpecific::DPOFUA,
        block_descriptors: BlockDescriptors::Short(vec![ShortBlockDescriptor::for_capacity(
            capacity,
        )]),
        pages: vec![
            ModePage::Caching(CachingPage {
                flags: CachingFlags::WCE,
                ..CachingPage::default()
            }),
            ModePage::Control(ControlPage::default()),
        ],
    };
    s.scsi(
        lun0,
        &[0x1A, 0, 0x3F, 0, 0xFF, 0],
        mode.to_vec(),
        vec![],
        good(),
    );
    s.scsi(lun0, &[0x00; 6], vec![], vec![], good());

    // Writes and reads of every size.
    let data = pattern(8 * BLOCK as usize, 1);
    s.scsi(lun0, &rw10(0x2A, 2048, 8), vec![], data.clone(), good());
    s.scsi(lun0, &rw10(0x28, 2048, 8), data, vec![], good());
    let block = pattern(BLOCK as usize, 2);
    s.scsi(
        lun0,
        &rw16(0x8A, 1_000_000, 1),
        vec![],
        block.clone(),
        good(),
    );
    s.scsi(
        lun0,
        &rw16(0x88, 1_000_000, 1),
        block.clone(),
        vec![],
        good(),
    );
    s.scsi(
        lun0,
        &[0x0A, 0x00, 0x10, 0x00, 0x01, 0x00],
        vec![],
        block.clone(),
        good(),
    );
    s.scsi(
        lun0,
        &[0x08, 0x00, 0x10, 0x00, 0x01, 0x00],
        block.clone(),
        vec![],
        good(),
    );
    s.scsi(
        lun0,
        &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![],
        vec![],
        good(),
    );
    s.scsi(
        lun0,
        &[0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![],
        vec![],
        good(),
    );
    let mut ws = rw16(0x93, 4096, 64);
    ws[1] = 0x08; // UNMAP
    s.scsi(lun0, &ws, vec![], vec![0; BLOCK as usize], good());
    let unmap = UnmapParameterList {
        descriptors: vec![UnmapDescriptor {
            lba: 8192,
            blocks: 128,
        }],
    };
    let unmap = unmap.to_vec();
    s.scsi(
        lun0,
        &[0x42, 0, 0, 0, 0, 0, 0, 0, unmap.len() as u8, 0],
        vec![],
        unmap,
        good(),
    );

    // Errors: past the end (fixed sense with the LBA; descriptor sense for a 64-bit LBA), an unknown opcode (descriptor sense), an
    // underrun, and REQUEST SENSE.
    let end = capacity.blocks() as u32;
    s.scsi_dl(
        lun0,
        &rw10(0x28, end, 1),
        DataDirection::Read,
        BLOCK,
        vec![],
        vec![],
        FcpRspRepr::check_condition(&Sense::lba_out_of_range().with_information(end as u64))
            .with_residual(Residual::Under(BLOCK)),
    );
    s.scsi_dl(
        lun0,
        &rw16(0x88, 1 << 32, 1),
        DataDirection::Read,
        BLOCK,
        vec![],
        vec![],
        FcpRspRepr::check_condition(
            &Sense::lba_out_of_range()
                .with_information(1 << 32)
                .with_format(SenseFormat::Descriptor),
        )
        .with_residual(Residual::Under(BLOCK)),
    );
    s.scsi_dl(
        lun0,
        &[0xC0, 0, 0, 0, 0, 0],
        DataDirection::None,
        0,
        vec![],
        vec![],
        FcpRspRepr::check_condition(&Sense::invalid_opcode().with_format(SenseFormat::Descriptor)),
    );
    s.scsi_dl(
        lun0,
        &rw10(0x28, 0, 4),
        DataDirection::Read,
        4 * BLOCK,
        pattern(2 * BLOCK as usize, 3),
        vec![],
        good().with_residual(Residual::Under(2 * BLOCK)),
    );
    s.scsi(
        lun0,
        &[0x03, 0, 0, 0, 18, 0],
        Sense::new(
            fc_frames::scsi::SenseKey::NO_SENSE,
            fc_frames::scsi::AdditionalSense::NO_ADDITIONAL_SENSE,
        )
        .to_vec(),
        vec![],
        good(),
    );

    // The tape LUN.
    let limits = ReadBlockLimitsData {
        granularity: 0,
        max_block_length: 0x0010_0000,
        min_block_length: 1,
    };
    s.scsi(
        lun1,
        &[0x05, 0, 0, 0, 0, 0],
        limits.to_vec(),
        vec![],
        good(),
    );

    // Abort: one accepted, one rejected.
    let cmnd = FcpCmndRepr::new(lun0, &rw10(0x28, 0, 8), DataDirection::Read, 8 * BLOCK)
        .unwrap_or_default();
    let x = s.request(
        RCtl::UNSOLICITED_COMMAND,
        FcType::FCP,
        HOST,
        DISK,
        cmnd.to_vec(),
    );
    let mut abts = x.req;
    abts.r_ctl = RCtl::ABTS;
    abts.fc_type = FcType::BLS;
    abts.rx_id = x.rx_id;
    abts.f_ctl = FCtl::END_SEQUENCE | FCtl::SEQUENCE_INITIATIVE;
    s.push(Sof::I3, abts, vec![], Eof::T);
    let acc = BaAccRepr::exchange_aborted(x.req.ox_id, x.rx_id);
    s.reply(
        Exchange {
            req: abts,
            rx_id: x.rx_id,
        },
        RCtl::BA_ACC,
        acc.to_vec(),
    );
    let mut abts2 = abts;
    abts2.ox_id = 0x0fff;
    abts2.rx_id = UNASSIGNED_XID;
    s.push(Sof::I3, abts2, vec![], Eof::T);
    let rjt = BaRjt {
        reason: BaRjtReason::LOGICAL_ERROR,
        explanation: BaRjtExplanation::INVALID_OX_ID_RX_ID,
        vendor_unique: 0,
    };
    s.reply(
        Exchange {
            req: abts2,
            rx_id: UNASSIGNED_XID,
        },
        RCtl::BA_RJT,
        rjt.to_vec(),
    );

    // The fabric reports a port that came: RSCN to the host.
    s.els(
        FcId::FABRIC_CONTROLLER,
        HOST,
        ElsRequest::Rscn(Rscn {
            pages: vec![RscnPage {
                qualifier: RscnEventQualifier::default(),
                format: RscnAddressFormat::PORT,
                affected: DISK2,
            }],
        }),
        ElsReply::Acc,
    );

    // Link checks, an unsupported ELS, and logouts.
    let echo = Echo::request(b"fcsan echo".to_vec());
    s.els(
        HOST,
        DISK,
        ElsRequest::Echo(echo.clone()),
        ElsReply::Echo(echo.accept().data),
    );
    s.els(
        HOST,
        FcId::F_PORT_CONTROLLER,
        ElsRequest::Lka,
        ElsReply::Acc,
    );
    s.els(
        HOST,
        DISK,
        ElsRequest::Unknown {
            code: ElsCode(0x78),
            payload: vec![0; 7],
        },
        ElsReply::Rjt(LsRjt {
            reason: LsRjtReason::COMMAND_NOT_SUPPORTED,
            explanation: LsRjtExplanation::NONE,
            vendor_unique: 0,
        }),
    );
    s.els(
        HOST,
        DISK,
        ElsRequest::Prlo(PrliRepr::single(
            ElsCode::PRLO,
            PrliPage::fcp_logout(PrliResponseCode::NONE),
        )),
        ElsReply::Prlo(PrliRepr::single(
            ElsCode::LS_ACC,
            PrliPage::fcp_logout(PrliResponseCode::REQUEST_EXECUTED),
        )),
    );
    s.els(
        HOST,
        DISK,
        ElsRequest::Logo(Logo {
            n_port_id: HOST,
            port_name: HOST_WWPN,
        }),
        ElsReply::Acc,
    );
    s.els(
        HOST,
        FcId::F_PORT_CONTROLLER,
        ElsRequest::Logo(Logo {
            n_port_id: HOST,
            port_name: HOST_WWPN,
        }),
        ElsReply::Acc,
    );
    s.frames
}
