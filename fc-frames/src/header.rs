//! The FC-2 frame header (FC-FS-4 §9): 24 bytes in front of every frame's payload.
//!
//! ```text
//!  word | bits 31-24 | 23-16  | 15-8     | 7-0
//! ------+------------+--------+----------+------
//!   0   | R_CTL      | D_ID                      |
//!   1   | CS_CTL/Pri | S_ID                      |
//!   2   | TYPE       | F_CTL                     |
//!   3   | SEQ_ID     | DF_CTL | SEQ_CNT           |
//!   4   | OX_ID               | RX_ID             |
//!   5   | Parameter (relative offset when F_CTL says so) |
//! ```

use core::fmt;

use bitflags::bitflags;

use crate::addr::FcId;
use crate::error::{Layer, LenError};
use crate::wire::{be16, be24, be32, put_be16, put_be24, put_be32};

mod field {
    use crate::wire::Field;
    pub const R_CTL: usize = 0;
    pub const D_ID: Field = 1..4;
    pub const CS_CTL: usize = 4;
    pub const S_ID: Field = 5..8;
    pub const TYPE: usize = 8;
    pub const F_CTL: Field = 9..12;
    pub const SEQ_ID: usize = 12;
    pub const DF_CTL: usize = 13;
    pub const SEQ_CNT: Field = 14..16;
    pub const OX_ID: Field = 16..18;
    pub const RX_ID: Field = 18..20;
    pub const PARAMETER: Field = 20..24;
}

/// Length of the frame header in bytes.
pub const HEADER_LEN: usize = 24;

/// The value of an unassigned OX_ID or RX_ID (FC-FS-4 §9.11).
pub const UNASSIGNED_XID: u16 = 0xFFFF;

code_point! {
    /// R_CTL: routing (bits 7-4) and information category (bits 3-0). Open: any byte is data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct RCtl(pub u8) {
        /// FC-4 device data, solicited data (FCP_DATA).
        SOLICITED_DATA = 0x01 => "solicited data",
        /// FC-4 device data, unsolicited control (CT request).
        UNSOLICITED_CONTROL = 0x02 => "unsolicited control",
        /// FC-4 device data, solicited control (CT response).
        SOLICITED_CONTROL = 0x03 => "solicited control",
        /// FC-4 device data, unsolicited data.
        UNSOLICITED_DATA = 0x04 => "unsolicited data",
        /// FC-4 device data, data descriptor (FCP_XFER_RDY).
        DATA_DESCRIPTOR = 0x05 => "data descriptor",
        /// FC-4 device data, unsolicited command (FCP_CMND).
        UNSOLICITED_COMMAND = 0x06 => "unsolicited command",
        /// FC-4 device data, command status (FCP_RSP).
        COMMAND_STATUS = 0x07 => "command status",
        /// Extended link service request.
        ELS_REQUEST = 0x22 => "ELS request",
        /// Extended link service reply.
        ELS_REPLY = 0x23 => "ELS reply",
        /// Basic link service: ABTS.
        ABTS = 0x81 => "ABTS",
        /// Basic link service: BA_ACC.
        BA_ACC = 0x84 => "BA_ACC",
        /// Basic link service: BA_RJT.
        BA_RJT = 0x85 => "BA_RJT",
        /// Link control: ACK_1.
        ACK_1 = 0xC0 => "ACK_1",
        /// Link control: ACK_0.
        ACK_0 = 0xC1 => "ACK_0",
        /// Link control: P_RJT.
        P_RJT = 0xC2 => "P_RJT",
        /// Link control: F_RJT.
        F_RJT = 0xC3 => "F_RJT",
        /// Link control: P_BSY.
        P_BSY = 0xC4 => "P_BSY",
        /// Link control: F_BSY to a data frame.
        F_BSY = 0xC5 => "F_BSY",
    }

    /// A name for the common values.
    pub const fn name;
}

impl RCtl {
    /// The routing bits (7-4).
    pub const fn routing(self) -> Routing {
        Routing(self.0 >> 4)
    }

    /// The information category (bits 3-0).
    pub const fn info(self) -> InfoCategory {
        InfoCategory(self.0 & 0x0F)
    }
}

impl fmt::Display for RCtl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "R_CTL {:#04x}", self.0),
        }
    }
}

/// The routing bits of R_CTL (FC-FS-4 Table 22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Routing(pub u8);

impl Routing {
    /// FC-4 device data frame.
    pub const DEVICE_DATA: Routing = Routing(0x0);
    /// Extended link data (ELS).
    pub const EXTENDED_LINK_DATA: Routing = Routing(0x2);
    /// FC-4 link data.
    pub const FC4_LINK_DATA: Routing = Routing(0x3);
    /// Video data.
    pub const VIDEO_DATA: Routing = Routing(0x4);
    /// Extended headers.
    pub const EXTENDED_HEADERS: Routing = Routing(0x5);
    /// Basic link data (BLS).
    pub const BASIC_LINK_DATA: Routing = Routing(0x8);
    /// Link control frame.
    pub const LINK_CONTROL: Routing = Routing(0xC);
}

/// The information category bits of R_CTL (FC-FS-4 Table 23).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InfoCategory(pub u8);

impl InfoCategory {
    /// Uncategorized.
    pub const UNCATEGORIZED: InfoCategory = InfoCategory(0x0);
    /// Solicited data.
    pub const SOLICITED_DATA: InfoCategory = InfoCategory(0x1);
    /// Unsolicited control.
    pub const UNSOLICITED_CONTROL: InfoCategory = InfoCategory(0x2);
    /// Solicited control.
    pub const SOLICITED_CONTROL: InfoCategory = InfoCategory(0x3);
    /// Unsolicited data.
    pub const UNSOLICITED_DATA: InfoCategory = InfoCategory(0x4);
    /// Data descriptor.
    pub const DATA_DESCRIPTOR: InfoCategory = InfoCategory(0x5);
    /// Unsolicited command.
    pub const UNSOLICITED_COMMAND: InfoCategory = InfoCategory(0x6);
    /// Command status.
    pub const COMMAND_STATUS: InfoCategory = InfoCategory(0x7);
}

code_point! {
    /// TYPE: the data structure type of the payload (FC-FS-4 Table 34). Open.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct FcType(pub u8) {
        /// Basic link service.
        BLS = 0x00 => "BLS",
        /// Extended link service.
        ELS = 0x01 => "ELS",
        /// IP over FC (IEEE 802.2 LLC/SNAP).
        IP = 0x05 => "IP",
        /// SCSI FCP.
        FCP = 0x08 => "FCP",
        /// Fibre Channel services (CT: name server, management server).
        CT = 0x20 => "CT",
        /// Fabric switch internal link services (SW_ILS).
        SW_ILS = 0x22 => "SW_ILS",
        /// FC-NVMe.
        NVME = 0x28 => "NVMe",
    }

    /// A name for the common values.
    pub const fn name;
}

impl fmt::Display for FcType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "TYPE {:#04x}", self.0),
        }
    }
}

bitflags! {
    /// F_CTL, the 24-bit frame control field (FC-FS-4 §9.6, Table 39). Multi-bit fields are
    /// masks; read them with the accessor methods.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct FCtl: u32 {
        /// Set by the exchange responder, clear by the originator.
        const EXCHANGE_CONTEXT = 0x80_0000;
        /// Set by the sequence recipient, clear by the initiator.
        const SEQUENCE_CONTEXT = 0x40_0000;
        /// First sequence of the exchange.
        const FIRST_SEQUENCE = 0x20_0000;
        /// Last sequence of the exchange.
        const LAST_SEQUENCE = 0x10_0000;
        /// Last frame of the sequence.
        const END_SEQUENCE = 0x08_0000;
        /// CS_CTL holds a priority, not class-specific control.
        const PRIORITY_ENABLE = 0x02_0000;
        /// Sequence initiative passes to the recipient.
        const SEQUENCE_INITIATIVE = 0x01_0000;
        /// ACK_Form (bits 13-12), a two-bit field.
        const ACK_FORM = 0x00_3000;
        /// Retransmitted sequence.
        const RETRANSMITTED_SEQUENCE = 0x00_0200;
        /// Continue sequence condition (bits 7-6), a two-bit field.
        const CONTINUE_SEQUENCE = 0x00_00C0;
        /// Abort sequence condition (bits 5-4), a two-bit field.
        const ABORT_SEQUENCE = 0x00_0030;
        /// The Parameter field is a relative offset.
        const RELATIVE_OFFSET = 0x00_0008;
        /// Exchange reassembly.
        const EXCHANGE_REASSEMBLY = 0x00_0004;
        /// Fill data bytes (bits 1-0): pad bytes at the end of the payload.
        const FILL_BYTES = 0x00_0003;
    }
}

impl FCtl {
    /// Number of fill bytes (0-3) at the end of the payload.
    pub const fn fill_bytes(self) -> usize {
        (self.bits() & 0x3) as usize
    }

    /// These flags with the fill count replaced by `fill` (0-3).
    pub const fn with_fill_bytes(self, fill: usize) -> FCtl {
        FCtl::from_bits_retain((self.bits() & !0x3) | (fill as u32 & 0x3))
    }

    /// Abort sequence condition (0-3).
    pub const fn abort_sequence(self) -> u8 {
        ((self.bits() >> 4) & 0x3) as u8
    }

    /// F_CTL of the first frame the originator sends in a new exchange (the request of an ELS,
    /// CT or FCP_CMND): first sequence, end of sequence, sequence initiative passed.
    pub const REQUEST: FCtl = FCtl::FIRST_SEQUENCE
        .union(FCtl::END_SEQUENCE)
        .union(FCtl::SEQUENCE_INITIATIVE);

    /// F_CTL of a responder's last frame that ends the exchange (the ELS/CT reply, FCP_RSP).
    pub const LAST_REPLY: FCtl = FCtl::EXCHANGE_CONTEXT
        .union(FCtl::LAST_SEQUENCE)
        .union(FCtl::END_SEQUENCE)
        .union(FCtl::SEQUENCE_INITIATIVE);
}

/// DF_CTL: which optional headers precede the payload (FC-FS-4 §9.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DfCtl(pub u8);

impl DfCtl {
    /// ESP header present.
    pub const ESP_HEADER: u8 = 0x40;
    /// Network header present (16 bytes).
    pub const NETWORK_HEADER: u8 = 0x20;
    /// Association header present (32 bytes).
    pub const ASSOCIATION_HEADER: u8 = 0x10;
    /// Device header size mask (0, 16, 32 or 64 bytes).
    pub const DEVICE_HEADER_MASK: u8 = 0x03;

    /// Bytes of optional headers (network, association, device) in front of the payload; the ESP
    /// header's length is not fixed and is not counted.
    pub const fn optional_headers_len(self) -> usize {
        let mut n = 0;
        if self.0 & Self::NETWORK_HEADER != 0 {
            n += 16;
        }
        if self.0 & Self::ASSOCIATION_HEADER != 0 {
            n += 32;
        }
        n + match self.0 & Self::DEVICE_HEADER_MASK {
            0 => 0,
            1 => 16,
            2 => 32,
            _ => 64,
        }
    }
}

/// A view of a frame header over a byte buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FrameHeader<T> {
    /// Wraps a buffer without checking its length. Accessors panic on a buffer shorter than
    /// [`HEADER_LEN`]: use only on buffers this program sized.
    pub const fn new_unchecked(buffer: T) -> FrameHeader<T> {
        FrameHeader { buffer }
    }

    /// Wraps a buffer of at least [`HEADER_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<FrameHeader<T>, LenError> {
        LenError::check(Layer::FrameHeader, HEADER_LEN, buffer.as_ref().len())?;
        Ok(FrameHeader { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// R_CTL.
    #[inline]
    pub fn r_ctl(&self) -> RCtl {
        RCtl(self.buffer.as_ref()[field::R_CTL])
    }

    /// D_ID, the destination.
    #[inline]
    pub fn d_id(&self) -> FcId {
        fc_id(be24(self.buffer.as_ref(), field::D_ID.start))
    }

    /// CS_CTL, or the priority when F_CTL has PRIORITY_ENABLE.
    #[inline]
    pub fn cs_ctl(&self) -> u8 {
        self.buffer.as_ref()[field::CS_CTL]
    }

    /// S_ID, the source.
    #[inline]
    pub fn s_id(&self) -> FcId {
        fc_id(be24(self.buffer.as_ref(), field::S_ID.start))
    }

    /// TYPE.
    #[inline]
    pub fn fc_type(&self) -> FcType {
        FcType(self.buffer.as_ref()[field::TYPE])
    }

    /// F_CTL.
    #[inline]
    pub fn f_ctl(&self) -> FCtl {
        FCtl::from_bits_retain(be24(self.buffer.as_ref(), field::F_CTL.start))
    }

    /// SEQ_ID.
    #[inline]
    pub fn seq_id(&self) -> u8 {
        self.buffer.as_ref()[field::SEQ_ID]
    }

    /// DF_CTL.
    #[inline]
    pub fn df_ctl(&self) -> DfCtl {
        DfCtl(self.buffer.as_ref()[field::DF_CTL])
    }

    /// SEQ_CNT.
    #[inline]
    pub fn seq_cnt(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SEQ_CNT.start)
    }

    /// OX_ID.
    #[inline]
    pub fn ox_id(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OX_ID.start)
    }

    /// RX_ID.
    #[inline]
    pub fn rx_id(&self) -> u16 {
        be16(self.buffer.as_ref(), field::RX_ID.start)
    }

    /// The Parameter field (relative offset when F_CTL has RELATIVE_OFFSET).
    #[inline]
    pub fn parameter(&self) -> u32 {
        be32(self.buffer.as_ref(), field::PARAMETER.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FrameHeader<T> {
    /// Sets R_CTL.
    #[inline]
    pub fn set_r_ctl(&mut self, v: RCtl) {
        self.buffer.as_mut()[field::R_CTL] = v.0;
    }

    /// Sets D_ID.
    #[inline]
    pub fn set_d_id(&mut self, v: FcId) {
        put_be24(self.buffer.as_mut(), field::D_ID.start, v.to_u32());
    }

    /// Sets CS_CTL.
    #[inline]
    pub fn set_cs_ctl(&mut self, v: u8) {
        self.buffer.as_mut()[field::CS_CTL] = v;
    }

    /// Sets S_ID.
    #[inline]
    pub fn set_s_id(&mut self, v: FcId) {
        put_be24(self.buffer.as_mut(), field::S_ID.start, v.to_u32());
    }

    /// Sets TYPE.
    #[inline]
    pub fn set_fc_type(&mut self, v: FcType) {
        self.buffer.as_mut()[field::TYPE] = v.0;
    }

    /// Sets F_CTL (24 bits; higher bits are dropped).
    #[inline]
    pub fn set_f_ctl(&mut self, v: FCtl) {
        put_be24(self.buffer.as_mut(), field::F_CTL.start, v.bits());
    }

    /// Sets SEQ_ID.
    #[inline]
    pub fn set_seq_id(&mut self, v: u8) {
        self.buffer.as_mut()[field::SEQ_ID] = v;
    }

    /// Sets DF_CTL.
    #[inline]
    pub fn set_df_ctl(&mut self, v: DfCtl) {
        self.buffer.as_mut()[field::DF_CTL] = v.0;
    }

    /// Sets SEQ_CNT.
    #[inline]
    pub fn set_seq_cnt(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::SEQ_CNT.start, v);
    }

    /// Sets OX_ID.
    #[inline]
    pub fn set_ox_id(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::OX_ID.start, v);
    }

    /// Sets RX_ID.
    #[inline]
    pub fn set_rx_id(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::RX_ID.start, v);
    }

    /// Sets the Parameter field.
    #[inline]
    pub fn set_parameter(&mut self, v: u32) {
        put_be32(self.buffer.as_mut(), field::PARAMETER.start, v);
    }
}

/// A 24-bit value read from the wire is always a valid FC_ID.
#[inline]
fn fc_id(v: u32) -> FcId {
    FcId::from_parts((v >> 16) as u8, (v >> 8) as u8, v as u8)
}

/// An owned frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FrameHeaderRepr {
    /// Routing and information category.
    pub r_ctl: RCtl,
    /// Destination.
    pub d_id: FcId,
    /// Class-specific control or priority.
    pub cs_ctl: u8,
    /// Source.
    pub s_id: FcId,
    /// Payload type.
    pub fc_type: FcType,
    /// Frame control.
    pub f_ctl: FCtl,
    /// Sequence identifier.
    pub seq_id: u8,
    /// Optional headers present.
    pub df_ctl: DfCtl,
    /// Frame number within the sequence.
    pub seq_cnt: u16,
    /// Originator exchange ID.
    pub ox_id: u16,
    /// Responder exchange ID.
    pub rx_id: u16,
    /// Parameter or relative offset.
    pub parameter: u32,
}

impl FrameHeaderRepr {
    /// Reads every field of a header view. A header has no invalid bit pattern, so this
    /// cannot fail once the view exists.
    pub fn parse<T: AsRef<[u8]>>(h: &FrameHeader<T>) -> FrameHeaderRepr {
        FrameHeaderRepr {
            r_ctl: h.r_ctl(),
            d_id: h.d_id(),
            cs_ctl: h.cs_ctl(),
            s_id: h.s_id(),
            fc_type: h.fc_type(),
            f_ctl: h.f_ctl(),
            seq_id: h.seq_id(),
            df_ctl: h.df_ctl(),
            seq_cnt: h.seq_cnt(),
            ox_id: h.ox_id(),
            rx_id: h.rx_id(),
            parameter: h.parameter(),
        }
    }

    /// Parses the first [`HEADER_LEN`] bytes of `buf`.
    pub fn parse_bytes(buf: &[u8]) -> Result<FrameHeaderRepr, LenError> {
        Ok(Self::parse(&FrameHeader::new_checked(buf)?))
    }

    /// Always [`HEADER_LEN`].
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `buf` (panics if shorter).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut FrameHeader<T>) {
        h.set_r_ctl(self.r_ctl);
        h.set_d_id(self.d_id);
        h.set_cs_ctl(self.cs_ctl);
        h.set_s_id(self.s_id);
        h.set_fc_type(self.fc_type);
        h.set_f_ctl(self.f_ctl);
        h.set_seq_id(self.seq_id);
        h.set_df_ctl(self.df_ctl);
        h.set_seq_cnt(self.seq_cnt);
        h.set_ox_id(self.ox_id);
        h.set_rx_id(self.rx_id);
        h.set_parameter(self.parameter);
    }

    /// The header as its 24 wire bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        self.emit(&mut FrameHeader::new_unchecked(&mut b[..]));
        b
    }

    /// The header of the first frame of a new exchange that the originator sends
    /// (ELS/CT request, FCP_CMND): F_CTL [`FCtl::REQUEST`], RX_ID unassigned.
    pub const fn request(
        r_ctl: RCtl,
        fc_type: FcType,
        d_id: FcId,
        s_id: FcId,
        ox_id: u16,
    ) -> FrameHeaderRepr {
        FrameHeaderRepr {
            r_ctl,
            d_id,
            cs_ctl: 0,
            s_id,
            fc_type,
            f_ctl: FCtl::REQUEST,
            seq_id: 0,
            df_ctl: DfCtl(0),
            seq_cnt: 0,
            ox_id,
            rx_id: UNASSIGNED_XID,
            parameter: 0,
        }
    }

    /// The header of the responder's frame answering `req` and ending the exchange
    /// (ELS/CT reply, FCP_RSP, BA_ACC): addresses swapped, F_CTL [`FCtl::LAST_REPLY`].
    pub const fn reply_to(req: &FrameHeaderRepr, r_ctl: RCtl, rx_id: u16) -> FrameHeaderRepr {
        FrameHeaderRepr {
            r_ctl,
            d_id: req.s_id,
            cs_ctl: 0,
            s_id: req.d_id,
            fc_type: req.fc_type,
            f_ctl: FCtl::LAST_REPLY,
            seq_id: req.seq_id.wrapping_add(1),
            df_ctl: DfCtl(0),
            seq_cnt: 0,
            ox_id: req.ox_id,
            rx_id,
            parameter: 0,
        }
    }
}

/// One line, as a trace shows it: `010100 -> 010200 ELS request ELS ox=1234 rx=ffff f_ctl=290000`.
impl fmt::Display for FrameHeaderRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} {} {} ox={:04x} rx={:04x} seq={:02x}/{} f_ctl={:06x}",
            self.s_id,
            self.d_id,
            self.r_ctl,
            self.fc_type,
            self.ox_id,
            self.rx_id,
            self.seq_id,
            self.seq_cnt,
            self.f_ctl.bits()
        )?;
        if self.f_ctl.contains(FCtl::RELATIVE_OFFSET) {
            write!(f, " ro={}", self.parameter)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;

    /// A PLOGI request header: 010100 -> 010200, OX_ID 0x1234, as checked with tshark
    /// (fc.d_id 01.02.00, fc.f_ctl 0x290000, fcels.opcode 0x03).
    static PLOGI_HEADER: [u8; 24] =
        hex!("22 010200 00 010100 01 290000 00 00 0000 1234 ffff 00000000");

    fn plogi_repr() -> FrameHeaderRepr {
        FrameHeaderRepr::request(
            RCtl::ELS_REQUEST,
            FcType::ELS,
            FcId::from_parts(1, 2, 0),
            FcId::from_parts(1, 1, 0),
            0x1234,
        )
    }

    #[test]
    fn test_parse() {
        let h = FrameHeader::new_checked(&PLOGI_HEADER[..]).unwrap();
        assert_eq!(h.r_ctl(), RCtl::ELS_REQUEST);
        assert_eq!(h.r_ctl().routing(), Routing::EXTENDED_LINK_DATA);
        assert_eq!(h.r_ctl().info(), InfoCategory::UNSOLICITED_CONTROL);
        assert_eq!(h.d_id(), FcId::from_parts(1, 2, 0));
        assert_eq!(h.s_id(), FcId::from_parts(1, 1, 0));
        assert_eq!(h.fc_type(), FcType::ELS);
        assert_eq!(h.f_ctl(), FCtl::REQUEST);
        assert_eq!(h.ox_id(), 0x1234);
        assert_eq!(h.rx_id(), UNASSIGNED_XID);
        assert_eq!(FrameHeaderRepr::parse(&h), plogi_repr());
    }

    #[test]
    fn test_emit() {
        assert_eq!(plogi_repr().to_bytes(), PLOGI_HEADER);
    }

    #[test]
    fn test_reply_to() {
        let reply = FrameHeaderRepr::reply_to(&plogi_repr(), RCtl::ELS_REPLY, 0x5678);
        assert_eq!(
            reply.to_bytes(),
            hex!("23 010100 00 010200 01 990000 01 00 0000 1234 5678 00000000")
        );
    }

    #[test]
    fn test_fcp_data_header_with_offset_and_fill() {
        // FCP_DATA, 3 fill bytes, relative offset 4096.
        let bytes = hex!("01 010100 00 010200 08 88000b 05 00 0002 0010 0020 00001000");
        let h = FrameHeaderRepr::parse_bytes(&bytes).unwrap();
        assert_eq!(h.r_ctl, RCtl::SOLICITED_DATA);
        assert_eq!(h.f_ctl.fill_bytes(), 3);
        assert!(h
            .f_ctl
            .contains(FCtl::RELATIVE_OFFSET | FCtl::EXCHANGE_CONTEXT));
        assert_eq!(h.parameter, 4096);
        assert_eq!(h.seq_cnt, 2);
        assert_eq!(h.to_bytes(), bytes);
        assert_eq!(
            h.to_string(),
            "010200 -> 010100 solicited data FCP ox=0010 rx=0020 seq=05/2 f_ctl=88000b ro=4096"
        );
    }

    #[test]
    fn test_fill_bytes_accessor() {
        let f = FCtl::REQUEST.with_fill_bytes(2);
        assert_eq!(f.fill_bytes(), 2);
        assert_eq!(f.with_fill_bytes(0), FCtl::REQUEST);
    }

    #[test]
    fn test_df_ctl_optional_headers() {
        assert_eq!(DfCtl(0).optional_headers_len(), 0);
        assert_eq!(DfCtl(0x20).optional_headers_len(), 16);
        assert_eq!(DfCtl(0x33).optional_headers_len(), 16 + 32 + 64);
    }

    #[test]
    fn test_truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                FrameHeaderRepr::parse_bytes(&PLOGI_HEADER[..len]),
                Err(LenError {
                    layer: Layer::FrameHeader,
                    required: HEADER_LEN,
                    actual: len
                })
            );
        }
    }

    prop_compose! {
        pub(crate) fn arb_header()(
            r_ctl: u8, d_id in 0u32..0x100_0000, cs_ctl: u8, s_id in 0u32..0x100_0000,
            fc_type: u8, f_ctl in 0u32..0x100_0000, seq_id: u8, df_ctl: u8, seq_cnt: u16,
            ox_id: u16, rx_id: u16, parameter: u32,
        ) -> FrameHeaderRepr {
            FrameHeaderRepr {
                r_ctl: RCtl(r_ctl),
                d_id: fc_id(d_id),
                cs_ctl,
                s_id: fc_id(s_id),
                fc_type: FcType(fc_type),
                f_ctl: FCtl::from_bits_retain(f_ctl),
                seq_id,
                df_ctl: DfCtl(df_ctl),
                seq_cnt,
                ox_id,
                rx_id,
                parameter,
            }
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(h in arb_header()) {
            prop_assert_eq!(FrameHeaderRepr::parse_bytes(&h.to_bytes()), Ok(h));
        }

        #[test]
        fn prop_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let r = FrameHeaderRepr::parse_bytes(&bytes);
            prop_assert_eq!(r.is_ok(), bytes.len() >= HEADER_LEN);
            if let Ok(h) = r {
                prop_assert_eq!(&h.to_bytes()[..], &bytes[..HEADER_LEN]);
            }
        }
    }
}
