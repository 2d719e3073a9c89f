//! Fibre Channel Common Transport (FC-GS-7 §4): the CT_IU that carries every generic service
//! request and response — name server, management server, alias, time and key distribution.
//!
//! A CT_IU is the payload of an FC frame with TYPE 0x20; requests travel as unsolicited control
//! (R_CTL 0x02) and replies as solicited control (R_CTL 0x03). That frame header is not this
//! module's business: here are the 16-byte basic preamble (FC-GS-7 §4.3.2), the command/response
//! codes, and the reject reasons (FC-GS-7 §4.4.3). The directory name server's requests and
//! responses (FC-GS-7 §5.2) are in [`ns`].
//!
//! ```text
//!          byte 0         byte 1         byte 2         byte 3
//!  word 0 | Revision (01) |               IN_ID                          |
//!  word 1 | GS_TYPE       | GS_Subtype    | Options       | Reserved     |
//!  word 2 | Command/Response code         | Maximum/Residual Size        |
//!  word 3 | Fragment ID   | Reason Code   | Reason Code   | Vendor       |
//!         |               |               | Explanation   | Specific     |
//!  word 4.. Additional information (the request or accept payload)
//! ```
//!
//! Maximum/Residual Size counts 32-bit words of the additional information, the preamble not
//! included (as the Linux qla2xxx driver computes it: `(response bytes - 16) / 4`). In a request
//! it is the largest accept the requester takes; in an FS_ACC the words the server left out.
//!
//! The FC-GS-7 text is not at hand here: the field layout and code points below follow the
//! standard as remembered and as Wireshark's `packet-fcct.c`/`packet-fcdns.c` decode them.

pub mod ns;

use core::fmt;

use crate::addr::FcId;
use crate::error::{Layer, LenError};
use crate::wire::{be16, be24, put_be16, put_be24};

/// Length of the basic CT_IU preamble.
pub const PREAMBLE_LEN: usize = 16;

/// The only CT revision FC-GS-7 defines.
pub const REVISION: u8 = 0x01;

/// A Maximum Size, in words, that lets the accept fill one full-size frame:
/// (2112 payload bytes − 16 preamble bytes) / 4.
pub const MAX_SIZE_ONE_FRAME: u16 = 524;

/// Errors decoding a CT_IU or a name server payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CtError {
    /// Too short for the preamble or for the body the command code calls for.
    #[error(transparent)]
    Len(#[from] LenError),
    /// The preamble's Revision is not 0x01.
    #[error("CT_IU revision {0:#04x} is not 0x01")]
    BadRevision(u8),
    /// A name server decoder got a CT_IU for another service.
    #[error("CT_IU GS_TYPE {gs_type} GS_Subtype {gs_subtype} is not the directory name server (0xfc/0x02)")]
    NotNameServer {
        /// GS_TYPE found.
        gs_type: GsType,
        /// GS_Subtype found.
        gs_subtype: GsSubtype,
    },
    /// A response decoder got a command code that is neither FS_ACC nor FS_RJT.
    #[error("CT_IU command code {0} is neither FS_ACC nor FS_RJT")]
    NotAResponse(CtCommand),
    /// A symbolic name's length byte claims more bytes than the payload holds.
    #[error("symbolic name length {declared} exceeds the {present} bytes present")]
    SymbolicNameLength {
        /// The length byte.
        declared: u8,
        /// Name bytes actually present after it.
        present: usize,
    },
    /// A symbolic name longer than the 255 bytes its length byte can count.
    #[error("symbolic name of {0} bytes is longer than 255")]
    SymbolicNameTooLong(usize),
    /// A port identifier list (GID_FT accept) ends without an entry flagged last.
    #[error("port list: none of the {0} complete entries is flagged last")]
    UnterminatedPortList(usize),
}

impl CtError {
    /// The FS_RJT reason a server answers a request that failed to decode with this error.
    pub fn reject_reason(&self) -> CtReason {
        match self {
            CtError::Len(_) | CtError::SymbolicNameLength { .. } => CtReason::INVALID_IU_SIZE,
            // FC-GS-7 §4.4.3: a revision the server does not support is rejected with
            // "invalid version level".
            CtError::BadRevision(_) => CtReason::INVALID_VERSION,
            CtError::NotNameServer { .. } => CtReason::SERVER_NOT_AVAILABLE,
            CtError::SymbolicNameTooLong(_) => CtReason::LOGICAL_ERROR,
            CtError::NotAResponse(_) | CtError::UnterminatedPortList(_) => CtReason::PROTOCOL_ERROR,
        }
    }
}

code_point! {
    /// GS_TYPE: which generic service a CT_IU is for (FC-GS-7 §4.3.2.3). Open: unknown values
    /// are data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct GsType(pub u8) {
        /// Key distribution service (D_ID FFFFF7).
        KEY_DISTRIBUTION = 0xF7 => "key distribution service",
        /// Alias service (FFFFF8).
        ALIAS = 0xF8 => "alias service",
        /// Management service (FFFFFA).
        MANAGEMENT = 0xFA => "management service",
        /// Time service (FFFFFB).
        TIME = 0xFB => "time service",
        /// Directory service (FFFFFC): the name server.
        DIRECTORY = 0xFC => "directory service",
        /// Fabric controller service (FFFFFD).
        FABRIC_CONTROLLER = 0xFD => "fabric controller service",
    }

    /// The service's name, for known values.
    pub const fn name;
}

impl fmt::Display for GsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{:#04x}", self.0),
        }
    }
}

/// GS_Subtype: the server within a GS_TYPE (FC-GS-7 §4.3.2.4). Its meaning depends on the
/// GS_TYPE, so it is shown as hex; [`server_name`] names the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GsSubtype(pub u8);

impl GsSubtype {
    /// Name server, under [`GsType::DIRECTORY`].
    pub const NAME_SERVER: GsSubtype = GsSubtype(0x02);
    /// IP address server, under [`GsType::DIRECTORY`] (obsolete).
    pub const IP_ADDRESS_SERVER: GsSubtype = GsSubtype(0x03);
    /// Fabric configuration server, under [`GsType::MANAGEMENT`].
    pub const FABRIC_CONFIGURATION_SERVER: GsSubtype = GsSubtype(0x01);
    /// Unzoned name server, under [`GsType::MANAGEMENT`].
    pub const UNZONED_NAME_SERVER: GsSubtype = GsSubtype(0x02);
    /// Fabric zone server, under [`GsType::MANAGEMENT`].
    pub const FABRIC_ZONE_SERVER: GsSubtype = GsSubtype(0x03);
    /// HBA management server (FDMI), under [`GsType::MANAGEMENT`].
    pub const HBA_MANAGEMENT_SERVER: GsSubtype = GsSubtype(0x10);
    /// Time server, under [`GsType::TIME`]; also the alias server under [`GsType::ALIAS`].
    pub const TIME_SERVER: GsSubtype = GsSubtype(0x01);
}

impl fmt::Display for GsSubtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x}", self.0)
    }
}

/// The server a GS_TYPE/GS_Subtype pair addresses, where known.
pub fn server_name(gs_type: GsType, gs_subtype: GsSubtype) -> Option<&'static str> {
    Some(match (gs_type, gs_subtype.0) {
        (GsType::DIRECTORY, 0x02) => "name server",
        (GsType::DIRECTORY, 0x03) => "IP address server",
        (GsType::MANAGEMENT, 0x01) => "fabric configuration server",
        (GsType::MANAGEMENT, 0x02) => "unzoned name server",
        (GsType::MANAGEMENT, 0x03) => "fabric zone server",
        (GsType::MANAGEMENT, 0x10) => "HBA management server",
        (GsType::TIME, 0x01) => "time server",
        (GsType::ALIAS, 0x01) => "alias server",
        _ => return None,
    })
}

code_point! {
    /// Command/Response code (FC-GS-7 §4.3.2.6): a request's command, or FS_ACC/FS_RJT in a reply.
    ///
    /// Request codes are per server; the constants here are the name server's (FC-GS-7 §5.2.5),
    /// which is what [`CtCommand::name`] names. Open: any other value is data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct CtCommand(pub u16) {
        /// Reject (FS_RJT).
        FS_RJT = 0x8001 => "FS_RJT",
        /// Accept (FS_ACC).
        FS_ACC = 0x8002 => "FS_ACC",
        /// Get all next.
        GA_NXT = 0x0100 => "GA_NXT",
        /// Get identifiers, scope.
        GID_A = 0x0101 => "GID_A",
        /// Get Port_Name by port identifier.
        GPN_ID = 0x0112 => "GPN_ID",
        /// Get Node_Name by port identifier.
        GNN_ID = 0x0113 => "GNN_ID",
        /// Get class of service by port identifier.
        GCS_ID = 0x0114 => "GCS_ID",
        /// Get FC-4 TYPEs by port identifier.
        GFT_ID = 0x0117 => "GFT_ID",
        /// Get symbolic Port_Name by port identifier.
        GSPN_ID = 0x0118 => "GSPN_ID",
        /// Get port type by port identifier.
        GPT_ID = 0x011A => "GPT_ID",
        /// Get fabric Port_Name by port identifier.
        GFPN_ID = 0x011C => "GFPN_ID",
        /// Get FC-4 features by port identifier.
        GFF_ID = 0x011F => "GFF_ID",
        /// Get port identifier by Port_Name.
        GID_PN = 0x0121 => "GID_PN",
        /// Get port identifiers by Node_Name.
        GID_NN = 0x0131 => "GID_NN",
        /// Get symbolic Node_Name by Node_Name.
        GSNN_NN = 0x0139 => "GSNN_NN",
        /// Get port identifiers by FC-4 TYPE.
        GID_FT = 0x0171 => "GID_FT",
        /// Get Port_Names by FC-4 TYPE.
        GPN_FT = 0x0172 => "GPN_FT",
        /// Get Node_Names by FC-4 TYPE.
        GNN_FT = 0x0173 => "GNN_FT",
        /// Get port identifiers by port type.
        GID_PT = 0x01A1 => "GID_PT",
        /// Get port identifiers by FC-4 features.
        GID_FF = 0x01F1 => "GID_FF",
        /// Register Port_Name.
        RPN_ID = 0x0212 => "RPN_ID",
        /// Register Node_Name.
        RNN_ID = 0x0213 => "RNN_ID",
        /// Register class of service.
        RCS_ID = 0x0214 => "RCS_ID",
        /// Register FC-4 TYPEs.
        RFT_ID = 0x0217 => "RFT_ID",
        /// Register symbolic Port_Name.
        RSPN_ID = 0x0218 => "RSPN_ID",
        /// Register port type.
        RPT_ID = 0x021A => "RPT_ID",
        /// Register FC-4 features.
        RFF_ID = 0x021F => "RFF_ID",
        /// Register symbolic Node_Name.
        RSNN_NN = 0x0239 => "RSNN_NN",
        /// De-register all.
        DA_ID = 0x0300 => "DA_ID",
    }

    /// The code's name (name server request codes, FS_ACC, FS_RJT).
    pub const fn name;
}

impl CtCommand {
    /// True for FS_ACC and FS_RJT, the two response codes.
    pub fn is_response(self) -> bool {
        self == CtCommand::FS_ACC || self == CtCommand::FS_RJT
    }
}

impl fmt::Display for CtCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{:#06x}", self.0),
        }
    }
}

code_point! {
    /// FS_RJT reason code (FC-GS-7 §4.4.3, Table "CT_IU reject reason codes"; from memory, and
    /// agreeing with Wireshark's `packet-fcct.c` for 0x01-0x0B). Open: other values are data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct CtReason(pub u8) {
        /// Invalid command code.
        INVALID_COMMAND = 0x01 => "invalid command code",
        /// Invalid version level: the Revision is not supported.
        INVALID_VERSION = 0x02 => "invalid version level",
        /// Logical error.
        LOGICAL_ERROR = 0x03 => "logical error",
        /// Invalid CT_IU size.
        INVALID_IU_SIZE = 0x04 => "invalid CT_IU size",
        /// Logical busy.
        LOGICAL_BUSY = 0x05 => "logical busy",
        /// Protocol error.
        PROTOCOL_ERROR = 0x07 => "protocol error",
        /// Unable to perform command request (with an explanation such as "FC-4 TYPEs not
        /// registered" when a GID_FT finds nothing).
        UNABLE_TO_PERFORM = 0x09 => "unable to perform",
        /// Command not supported.
        COMMAND_NOT_SUPPORTED = 0x0B => "command not supported",
        /// Server not available.
        SERVER_NOT_AVAILABLE = 0x0D => "server not available",
        /// Session could not be established.
        SESSION_NOT_ESTABLISHED = 0x0E => "session could not be established",
        /// Vendor specific error (see the Vendor Specific byte).
        VENDOR_SPECIFIC = 0xFF => "vendor specific error",
    }

    /// The reason's name, for known values.
    pub const fn name;
}

impl fmt::Display for CtReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{:#04x}", self.0),
        }
    }
}

mod field {
    use crate::wire::Field;

    pub const REVISION: usize = 0;
    pub const IN_ID: Field = 1..4;
    pub const GS_TYPE: usize = 4;
    pub const GS_SUBTYPE: usize = 5;
    pub const OPTIONS: usize = 6;
    pub const RESERVED: usize = 7;
    pub const COMMAND: Field = 8..10;
    pub const MAX_SIZE: Field = 10..12;
    pub const FRAGMENT_ID: usize = 12;
    pub const REASON: usize = 13;
    pub const EXPLANATION: usize = 14;
    pub const VENDOR: usize = 15;
    pub const PAYLOAD: usize = 16;
}

/// A view over a CT_IU: the 16-byte basic preamble and the additional information after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtPreamble<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> CtPreamble<T> {
    /// Wraps a buffer without checking its length; getters panic if it is shorter than 16 bytes.
    pub const fn new_unchecked(buffer: T) -> CtPreamble<T> {
        CtPreamble { buffer }
    }

    /// Wraps a buffer after checking that it holds a whole preamble.
    pub fn new_checked(buffer: T) -> Result<CtPreamble<T>, LenError> {
        LenError::check(Layer::CtPreamble, PREAMBLE_LEN, buffer.as_ref().len())?;
        Ok(CtPreamble { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Revision (0x01).
    pub fn revision(&self) -> u8 {
        self.buffer.as_ref()[field::REVISION]
    }

    /// IN_ID: the original requester's N_Port ID where a server forwards a request; usually 0.
    pub fn in_id(&self) -> FcId {
        let v = be24(self.buffer.as_ref(), field::IN_ID.start);
        FcId::from_parts((v >> 16) as u8, (v >> 8) as u8, v as u8)
    }

    /// GS_TYPE.
    pub fn gs_type(&self) -> GsType {
        GsType(self.buffer.as_ref()[field::GS_TYPE])
    }

    /// GS_Subtype.
    pub fn gs_subtype(&self) -> GsSubtype {
        GsSubtype(self.buffer.as_ref()[field::GS_SUBTYPE])
    }

    /// Options byte, kept raw.
    pub fn options(&self) -> u8 {
        self.buffer.as_ref()[field::OPTIONS]
    }

    /// Command/Response code.
    pub fn command(&self) -> CtCommand {
        CtCommand(be16(self.buffer.as_ref(), field::COMMAND.start))
    }

    /// Maximum (request) or residual (FS_ACC) size, in words of additional information.
    pub fn max_size(&self) -> u16 {
        be16(self.buffer.as_ref(), field::MAX_SIZE.start)
    }

    /// Fragment ID.
    pub fn fragment_id(&self) -> u8 {
        self.buffer.as_ref()[field::FRAGMENT_ID]
    }

    /// Reason code (FS_RJT).
    pub fn reason(&self) -> CtReason {
        CtReason(self.buffer.as_ref()[field::REASON])
    }

    /// Reason code explanation (FS_RJT); its meaning is per server, see
    /// [`ns::NsExplanation`] for the name server's.
    pub fn explanation(&self) -> u8 {
        self.buffer.as_ref()[field::EXPLANATION]
    }

    /// Vendor specific byte (FS_RJT).
    pub fn vendor(&self) -> u8 {
        self.buffer.as_ref()[field::VENDOR]
    }

    /// The additional information after the preamble.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> CtPreamble<T> {
    /// Sets the Revision.
    pub fn set_revision(&mut self, v: u8) {
        self.buffer.as_mut()[field::REVISION] = v;
    }

    /// Sets IN_ID.
    pub fn set_in_id(&mut self, v: FcId) {
        put_be24(self.buffer.as_mut(), field::IN_ID.start, v.to_u32());
    }

    /// Sets GS_TYPE.
    pub fn set_gs_type(&mut self, v: GsType) {
        self.buffer.as_mut()[field::GS_TYPE] = v.0;
    }

    /// Sets GS_Subtype.
    pub fn set_gs_subtype(&mut self, v: GsSubtype) {
        self.buffer.as_mut()[field::GS_SUBTYPE] = v.0;
    }

    /// Sets the Options byte.
    pub fn set_options(&mut self, v: u8) {
        self.buffer.as_mut()[field::OPTIONS] = v;
    }

    /// Zeroes the reserved byte of word 1.
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::RESERVED] = 0;
    }

    /// Sets the Command/Response code.
    pub fn set_command(&mut self, v: CtCommand) {
        put_be16(self.buffer.as_mut(), field::COMMAND.start, v.0);
    }

    /// Sets the Maximum/Residual Size.
    pub fn set_max_size(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::MAX_SIZE.start, v);
    }

    /// Sets the Fragment ID.
    pub fn set_fragment_id(&mut self, v: u8) {
        self.buffer.as_mut()[field::FRAGMENT_ID] = v;
    }

    /// Sets the reason code.
    pub fn set_reason(&mut self, v: CtReason) {
        self.buffer.as_mut()[field::REASON] = v.0;
    }

    /// Sets the reason code explanation.
    pub fn set_explanation(&mut self, v: u8) {
        self.buffer.as_mut()[field::EXPLANATION] = v;
    }

    /// Sets the vendor specific byte.
    pub fn set_vendor(&mut self, v: u8) {
        self.buffer.as_mut()[field::VENDOR] = v;
    }

    /// The additional information, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// The CT_IU basic preamble, owned. Revision is not kept: parse accepts only 0x01 and emit
/// writes 0x01; the reserved byte is ignored on parse and zero on emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CtPreambleRepr {
    /// IN_ID.
    pub in_id: FcId,
    /// GS_TYPE.
    pub gs_type: GsType,
    /// GS_Subtype.
    pub gs_subtype: GsSubtype,
    /// Options byte.
    pub options: u8,
    /// Command/Response code.
    pub command: CtCommand,
    /// Maximum/Residual Size in words.
    pub max_size: u16,
    /// Fragment ID.
    pub fragment_id: u8,
    /// Reason code (zero unless FS_RJT).
    pub reason: CtReason,
    /// Reason code explanation (zero unless FS_RJT).
    pub explanation: u8,
    /// Vendor specific byte.
    pub vendor: u8,
}

impl CtPreambleRepr {
    /// A name server request preamble: revision 1, GS_TYPE 0xFC, GS_Subtype 0x02, IN_ID 0,
    /// Maximum Size [`MAX_SIZE_ONE_FRAME`].
    pub const fn name_server_request(command: CtCommand) -> CtPreambleRepr {
        CtPreambleRepr {
            in_id: FcId::UNIDENTIFIED,
            gs_type: GsType::DIRECTORY,
            gs_subtype: GsSubtype::NAME_SERVER,
            options: 0,
            command,
            max_size: MAX_SIZE_ONE_FRAME,
            fragment_id: 0,
            reason: CtReason(0),
            explanation: 0,
            vendor: 0,
        }
    }

    /// A name server FS_ACC preamble with residual size 0.
    pub const fn name_server_accept() -> CtPreambleRepr {
        let mut p = Self::name_server_request(CtCommand::FS_ACC);
        p.max_size = 0;
        p
    }

    /// A name server FS_RJT preamble.
    pub const fn name_server_reject(reason: CtReason, explanation: u8) -> CtPreambleRepr {
        let mut p = Self::name_server_accept();
        p.command = CtCommand::FS_RJT;
        p.reason = reason;
        p.explanation = explanation;
        p
    }

    /// True when GS_TYPE/GS_Subtype address the directory name server.
    pub fn is_name_server(&self) -> bool {
        self.gs_type == GsType::DIRECTORY && self.gs_subtype == GsSubtype::NAME_SERVER
    }

    /// Parses the preamble at the start of `buf` (the rest is ignored).
    pub fn parse(buf: &[u8]) -> Result<CtPreambleRepr, CtError> {
        let view = CtPreamble::new_checked(buf)?;
        // FC-GS-7 §4.3.2.1: Revision is 0x01; a server that gets another answers FS_RJT with
        // "invalid version level".
        if view.revision() != REVISION {
            return Err(CtError::BadRevision(view.revision()));
        }
        Ok(CtPreambleRepr {
            in_id: view.in_id(),
            gs_type: view.gs_type(),
            gs_subtype: view.gs_subtype(),
            options: view.options(),
            command: view.command(),
            max_size: view.max_size(),
            fragment_id: view.fragment_id(),
            reason: view.reason(),
            explanation: view.explanation(),
            vendor: view.vendor(),
        })
    }

    /// Always [`PREAMBLE_LEN`].
    pub const fn buffer_len(&self) -> usize {
        PREAMBLE_LEN
    }

    /// Writes the preamble into the first 16 bytes of `buf`. Panics if `buf` is shorter (a
    /// caller bug: emit buffers are ours).
    pub fn emit(&self, buf: &mut [u8]) {
        let mut view = CtPreamble::new_unchecked(buf);
        view.set_revision(REVISION);
        view.set_in_id(self.in_id);
        view.set_gs_type(self.gs_type);
        view.set_gs_subtype(self.gs_subtype);
        view.set_options(self.options);
        view.clear_reserved();
        view.set_command(self.command);
        view.set_max_size(self.max_size);
        view.set_fragment_id(self.fragment_id);
        view.set_reason(self.reason);
        view.set_explanation(self.explanation);
        view.set_vendor(self.vendor);
    }

    /// The 16 preamble bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; PREAMBLE_LEN];
        self.emit(&mut v);
        v
    }
}

/// `CT fc/02 GID_FT max=524`, `CT fc/02 FS_RJT reason=logical busy (0x05) explanation=0x00`.
impl fmt::Display for CtPreambleRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CT {:02x}/{:02x} {}",
            self.gs_type.0, self.gs_subtype.0, self.command
        )?;
        if self.command == CtCommand::FS_RJT {
            write!(
                f,
                " reason={} ({:#04x}) explanation={:#04x}",
                self.reason, self.reason.0, self.explanation
            )?;
        } else {
            write!(f, " max={}", self.max_size)?;
        }
        if self.in_id != FcId::UNIDENTIFIED {
            write!(f, " in_id={}", self.in_id)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    use super::*;
    use crate::addr::Wwn;

    pub(crate) fn fc_id() -> impl Strategy<Value = FcId> {
        any::<[u8; 3]>().prop_map(FcId::from_bytes)
    }

    pub(crate) fn wwn() -> impl Strategy<Value = Wwn> {
        any::<[u8; 8]>().prop_map(Wwn)
    }

    prop_compose! {
        pub(crate) fn preamble()(
            in_id in fc_id(),
            gs_type in any::<u8>(),
            gs_subtype in any::<u8>(),
            options in any::<u8>(),
            command in any::<u16>(),
            max_size in any::<u16>(),
            fragment_id in any::<u8>(),
            reason in any::<u8>(),
            explanation in any::<u8>(),
            vendor in any::<u8>(),
        ) -> CtPreambleRepr {
            CtPreambleRepr {
                in_id,
                gs_type: GsType(gs_type),
                gs_subtype: GsSubtype(gs_subtype),
                options,
                command: CtCommand(command),
                max_size,
                fragment_id,
                reason: CtReason(reason),
                explanation,
                vendor,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;

    /// GID_FT request preamble, IN_ID 0, max size 524 (0x020c).
    static GID_FT_PREAMBLE: [u8; 16] = hex!("01000000 fc020000 0171020c 00000000");
    /// FS_RJT: unable to perform (0x09), FC-4 TYPEs not registered (0x07), vendor 0x5a.
    static RJT_PREAMBLE: [u8; 16] = hex!("01010203 fc020000 80010000 0009075a");

    #[test]
    fn test_parse() {
        let p = CtPreambleRepr::parse(&GID_FT_PREAMBLE).unwrap();
        assert_eq!(p, CtPreambleRepr::name_server_request(CtCommand::GID_FT));
        assert!(p.is_name_server());
        assert_eq!(p.max_size, 524);

        let r = CtPreambleRepr::parse(&RJT_PREAMBLE).unwrap();
        assert_eq!(r.in_id, FcId::from_parts(1, 2, 3));
        assert_eq!(r.command, CtCommand::FS_RJT);
        assert_eq!(r.reason, CtReason::UNABLE_TO_PERFORM);
        assert_eq!(r.explanation, 0x07);
        assert_eq!(r.vendor, 0x5a);
        assert_eq!(r.max_size, 0);
    }

    #[test]
    fn test_emit() {
        let p = CtPreambleRepr::name_server_request(CtCommand::GID_FT);
        assert_eq!(p.buffer_len(), 16);
        assert_eq!(p.to_vec(), GID_FT_PREAMBLE);

        let mut r = CtPreambleRepr::name_server_reject(CtReason::UNABLE_TO_PERFORM, 0x07);
        r.in_id = FcId::from_parts(1, 2, 3);
        r.vendor = 0x5a;
        let bytes = r.to_vec();
        assert_eq!(bytes, RJT_PREAMBLE);
        assert_eq!(CtPreambleRepr::parse(&bytes), Ok(r));
    }

    #[test]
    fn test_view_getters_and_setters() {
        let mut buf = [0u8; 20];
        let mut v = CtPreamble::new_checked(&mut buf[..]).unwrap();
        v.set_revision(1);
        v.set_in_id(FcId::from_parts(0xab, 0xcd, 0xef));
        v.set_gs_type(GsType::MANAGEMENT);
        v.set_gs_subtype(GsSubtype::HBA_MANAGEMENT_SERVER);
        v.set_options(0x80);
        v.set_command(CtCommand(0x0200));
        v.set_max_size(0x1234);
        v.set_fragment_id(7);
        v.set_reason(CtReason::LOGICAL_BUSY);
        v.set_explanation(0x11);
        v.set_vendor(0x22);
        v.payload_mut().copy_from_slice(&[9, 8, 7, 6]);
        assert_eq!(v.in_id().to_u32(), 0xabcdef);
        assert_eq!(v.gs_type(), GsType::MANAGEMENT);
        assert_eq!(v.gs_subtype(), GsSubtype(0x10));
        assert_eq!(v.options(), 0x80);
        assert_eq!(v.command(), CtCommand(0x0200));
        assert_eq!(v.max_size(), 0x1234);
        assert_eq!(v.fragment_id(), 7);
        assert_eq!(v.reason(), CtReason(0x05));
        assert_eq!(v.explanation(), 0x11);
        assert_eq!(v.vendor(), 0x22);
        assert_eq!(v.payload(), &[9, 8, 7, 6]);
        assert_eq!(buf, hex!("01abcdef fa108000 02001234 07051122 09080706"));
    }

    #[test]
    fn test_bad_revision() {
        let mut b = GID_FT_PREAMBLE;
        b[0] = 0x02;
        let err = CtPreambleRepr::parse(&b).unwrap_err();
        assert_eq!(err, CtError::BadRevision(0x02));
        assert_eq!(err.reject_reason(), CtReason::INVALID_VERSION);
        assert_eq!(err.to_string(), "CT_IU revision 0x02 is not 0x01");
    }

    #[test]
    fn test_truncated() {
        for len in 0..PREAMBLE_LEN {
            let err = CtPreambleRepr::parse(&GID_FT_PREAMBLE[..len]).unwrap_err();
            assert_eq!(
                err,
                CtError::Len(LenError {
                    layer: Layer::CtPreamble,
                    required: 16,
                    actual: len
                })
            );
            assert_eq!(err.reject_reason(), CtReason::INVALID_IU_SIZE);
        }
    }

    #[test]
    fn test_code_names() {
        assert_eq!(CtCommand::GID_FT.to_string(), "GID_FT");
        assert_eq!(CtCommand::FS_ACC.to_string(), "FS_ACC");
        assert_eq!(CtCommand(0x0999).to_string(), "0x0999");
        assert!(CtCommand::FS_RJT.is_response());
        assert!(!CtCommand::GID_FT.is_response());
        assert_eq!(CtReason::UNABLE_TO_PERFORM.to_string(), "unable to perform");
        assert_eq!(CtReason(0x42).to_string(), "0x42");
        assert_eq!(GsType::DIRECTORY.to_string(), "directory service");
        assert_eq!(GsType(0x20).to_string(), "0x20");
        assert_eq!(GsSubtype::NAME_SERVER.to_string(), "0x02");
        assert_eq!(
            server_name(GsType::DIRECTORY, GsSubtype(2)),
            Some("name server")
        );
        assert_eq!(
            server_name(GsType::MANAGEMENT, GsSubtype(2)),
            Some("unzoned name server")
        );
        assert_eq!(server_name(GsType::TIME, GsSubtype(2)), None);
    }

    #[test]
    fn test_display() {
        let p = CtPreambleRepr::parse(&GID_FT_PREAMBLE).unwrap();
        assert_eq!(p.to_string(), "CT fc/02 GID_FT max=524");
        let r = CtPreambleRepr::parse(&RJT_PREAMBLE).unwrap();
        assert_eq!(
            r.to_string(),
            "CT fc/02 FS_RJT reason=unable to perform (0x09) explanation=0x07 in_id=010203"
        );
    }

    proptest! {
        #[test]
        fn prop_round_trip(p in strategies::preamble()) {
            let bytes = p.to_vec();
            prop_assert_eq!(bytes.len(), p.buffer_len());
            prop_assert_eq!(CtPreambleRepr::parse(&bytes), Ok(p));
        }

        #[test]
        fn prop_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..3000)) {
            if let Ok(p) = CtPreambleRepr::parse(&buf) {
                let _ = p.to_string();
                prop_assert_eq!(&p.to_vec()[8..], &buf[8..16]);
            }
            if let Ok(v) = CtPreamble::new_checked(&buf[..]) {
                prop_assert_eq!(v.payload().len(), buf.len() - 16);
            }
        }
    }
}
