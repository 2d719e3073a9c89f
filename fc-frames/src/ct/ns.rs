//! The directory name server (FC-GS-7 §5.2): requests and responses carried in a CT_IU with
//! GS_TYPE 0xFC (directory service), GS_Subtype 0x02 (name server), sent to D_ID FFFFFC.
//!
//! [`NsRequest::parse`] decodes a whole CT payload (preamble and body) of a request; an unknown
//! command code becomes [`NsRequestBody::Unknown`] so that the server can answer FS_RJT
//! "command not supported". [`NsResponse::parse`] decodes a reply, given the request's command
//! code (an FS_ACC does not say what it accepts). The constructors fill the preamble in
//! (revision 1, GS_TYPE 0xFC, GS_Subtype 0x02, Maximum Size one frame).
//!
//! Request bodies (after the 16-byte preamble; `R` reserved, sent as zero, ignored on receipt):
//!
//! ```text
//! GA_NXT 0100, GPN_ID 0112, GNN_ID 0113, GFF_ID 011F:  | R | port identifier (3) |
//! GID_FT 0171:  | R | domain ID scope | area ID scope | FC-4 TYPE |
//! GID_PN 0121:  | Port_Name (8) |
//! RNN_ID 0213:  | R | port identifier (3) | Node_Name (8) |
//! RFT_ID 0217:  | R | port identifier (3) | FC-4 TYPEs bitmap (32) |
//! RSPN_ID 0218: | R | port identifier (3) | name length n | symbolic name (n <= 255) | pad to 4 |
//! RFF_ID 021F:  | R | port identifier (3) | R | R | FC-4 features | FC-4 TYPE |
//! ```
//!
//! FS_ACC bodies:
//!
//! ```text
//! GID_FT: entries of | control (bit 7: last) | port identifier (3) |, up to the one flagged last
//! GPN_ID, GNN_ID: | Port_Name or Node_Name (8) |
//! GFF_ID: | FC-4 features (128): 4 bits per FC-4 TYPE t, in word t/8, nibble t%8 from the
//!         | least significant end (FCP, TYPE 8: low nibble of byte 7)
//! GID_PN: | R | port identifier (3) |
//! GA_NXT: | port type | port id (3) | Port_Name (8) | sym. port name length | name (255) |
//!         | Node_Name (8) | sym. node name length | name (255) | IPA (8) | IP address (16) |
//!         | class of service (4) | FC-4 TYPEs (32) | port IP address (16) |
//!         | fabric Port_Name (8) | R | hard address (3) |                         = 620 bytes
//! RFT_ID, RFF_ID, RNN_ID, RSPN_ID: empty
//! ```
//!
//! FS_RJT has no body: the reason code, explanation and vendor byte are in the preamble.
//!
//! The FC-GS-7 text is not at hand: the layouts follow the standard as remembered, Wireshark's
//! `packet-fcdns.c` (which tshark 4.0.17 decodes them with) and the Linux lpfc and qla2xxx
//! drivers (GFF_ID: lpfc reads FCP's features at byte 7).

use core::fmt;

use bitflags::bitflags;

use super::{CtCommand, CtError, CtPreamble, CtPreambleRepr, CtReason, GsSubtype, GsType};
use super::{MAX_SIZE_ONE_FRAME, PREAMBLE_LEN, REVISION};
use crate::addr::{FcId, Wwn};
use crate::error::{Layer, LenError};
use crate::wire::{be32, put_be32, put_wwn_at, wwn_at};

/// FC-4 TYPE of IP over FC (RFC 4338).
pub const FC4_TYPE_IP: u8 = 0x05;
/// FC-4 TYPE of FCP (SCSI).
pub const FC4_TYPE_FCP: u8 = 0x08;
/// FC-4 TYPE of the generic services (CT).
pub const FC4_TYPE_CT: u8 = 0x20;

code_point! {
    /// Name server reason code explanation, the byte after the reason code in an FS_RJT
    /// (FC-GS-7 §5.2.4, Table "Name Server reason code explanations" — numbered from memory;
    /// 0x00-0x13 and 0xF0-0xF2 agree with Wireshark's `packet-fcdns.c`). Open: other values are
    /// data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct NsExplanation(pub u8) {
        /// No additional explanation.
        NONE = 0x00 => "no additional explanation",
        /// Port identifier not registered.
        PORT_ID_NOT_REGISTERED = 0x01 => "port identifier not registered",
        /// Port name not registered.
        PORT_NAME_NOT_REGISTERED = 0x02 => "port name not registered",
        /// Node name not registered.
        NODE_NAME_NOT_REGISTERED = 0x03 => "node name not registered",
        /// Class of service not registered.
        CLASS_OF_SERVICE_NOT_REGISTERED = 0x04 => "class of service not registered",
        /// IP address (node) not registered.
        NODE_IP_ADDRESS_NOT_REGISTERED = 0x05 => "IP address (node) not registered",
        /// Initial process associator not registered.
        IPA_NOT_REGISTERED = 0x06 => "IPA not registered",
        /// FC-4 TYPEs not registered; also the answer to a GID_FT that finds no port.
        FC4_TYPES_NOT_REGISTERED = 0x07 => "FC-4 TYPEs not registered",
        /// Symbolic port name not registered.
        SYMBOLIC_PORT_NAME_NOT_REGISTERED = 0x08 => "symbolic port name not registered",
        /// Symbolic node name not registered.
        SYMBOLIC_NODE_NAME_NOT_REGISTERED = 0x09 => "symbolic node name not registered",
        /// Port type not registered.
        PORT_TYPE_NOT_REGISTERED = 0x0A => "port type not registered",
        /// IP address (port) not registered.
        PORT_IP_ADDRESS_NOT_REGISTERED = 0x0B => "IP address (port) not registered",
        /// Fabric port name not registered.
        FABRIC_PORT_NAME_NOT_REGISTERED = 0x0C => "fabric port name not registered",
        /// Hard address not registered.
        HARD_ADDRESS_NOT_REGISTERED = 0x0D => "hard address not registered",
        /// FC-4 descriptor not registered.
        FC4_DESCRIPTOR_NOT_REGISTERED = 0x0E => "FC-4 descriptor not registered",
        /// FC-4 features not registered.
        FC4_FEATURES_NOT_REGISTERED = 0x0F => "FC-4 features not registered",
        /// Access denied.
        ACCESS_DENIED = 0x10 => "access denied",
        /// Unacceptable port identifier.
        UNACCEPTABLE_PORT_ID = 0x11 => "unacceptable port identifier",
        /// Data base empty.
        DATABASE_EMPTY = 0x12 => "data base empty",
        /// No object registered in the specified scope.
        NO_OBJECT_IN_SCOPE = 0x13 => "no object registered in the specified scope",
        /// Domain ID not present.
        DOMAIN_ID_NOT_PRESENT = 0x14 => "domain ID not present",
        /// Port number not present.
        PORT_NUMBER_NOT_PRESENT = 0x15 => "port number not present",
        /// No device attached.
        NO_DEVICE_ATTACHED = 0x16 => "no device attached",
        /// Authorization exception.
        AUTHORIZATION_EXCEPTION = 0xF0 => "authorization exception",
        /// Authentication exception.
        AUTHENTICATION_EXCEPTION = 0xF1 => "authentication exception",
        /// Data base full.
        DATABASE_FULL = 0xF2 => "data base full",
    }

    /// The explanation's text, for known values.
    pub const fn name;
}

impl fmt::Display for NsExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{:#04x}", self.0),
        }
    }
}

code_point! {
    /// Port type, as GA_NXT reports it (FC-GS-7 §5.2.3.x). Open: other values are data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct PortType(pub u8) {
        /// Unidentified.
        UNIDENTIFIED = 0x00 => "unidentified",
        /// N_Port.
        N_PORT = 0x01 => "N_Port",
        /// NL_Port.
        NL_PORT = 0x02 => "NL_Port",
        /// F/NL_Port.
        F_NL_PORT = 0x03 => "F/NL_Port",
        /// Nx_Port.
        NX_PORT = 0x7F => "Nx_Port",
        /// F_Port.
        F_PORT = 0x81 => "F_Port",
        /// FL_Port.
        FL_PORT = 0x82 => "FL_Port",
        /// E_Port.
        E_PORT = 0x84 => "E_Port",
        /// B_Port.
        B_PORT = 0x85 => "B_Port",
    }

    /// The port type's name, for known values.
    pub const fn name;
}

impl fmt::Display for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{:#04x}", self.0),
        }
    }
}

/// The FC-4 TYPEs bitmap of RFT_ID, GFT_ID and GA_NXT: 256 bits, one per TYPE; TYPE `t` is bit
/// `t % 32` of big-endian word `t / 32` (so FCP, TYPE 8, is `00 00 01 00` in word 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fc4Types(pub [u8; 32]);

impl Fc4Types {
    /// Bytes on the wire.
    pub const LEN: usize = 32;

    /// No TYPE.
    pub const fn new() -> Fc4Types {
        Fc4Types([0; 32])
    }

    /// Byte index and mask of TYPE `t`. The index is at most 7 * 4 + 3 = 31.
    const fn position(t: u8) -> (usize, u8) {
        let word = (t / 32) as usize;
        let bit = t % 32;
        (word * 4 + 3 - (bit / 8) as usize, 1 << (bit % 8))
    }

    /// True when TYPE `t` is set.
    pub const fn contains(&self, t: u8) -> bool {
        let (i, mask) = Self::position(t);
        self.0[i] & mask != 0
    }

    /// Sets TYPE `t`.
    pub fn insert(&mut self, t: u8) {
        let (i, mask) = Self::position(t);
        self.0[i] |= mask;
    }

    /// Clears TYPE `t`.
    pub fn remove(&mut self, t: u8) {
        let (i, mask) = Self::position(t);
        self.0[i] &= !mask;
    }

    /// This set with TYPE `t` added.
    pub fn with(mut self, t: u8) -> Fc4Types {
        self.insert(t);
        self
    }

    /// True when no TYPE is set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|b| *b == 0)
    }

    /// The TYPEs set, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=u8::MAX).filter(move |t| self.contains(*t))
    }

    /// From the 32 bytes at the start of `buf`; the caller guarantees `buf.len() >= 32`.
    fn from_slice(buf: &[u8]) -> Fc4Types {
        let mut b = [0; 32];
        b.copy_from_slice(&buf[..Self::LEN]);
        Fc4Types(b)
    }
}

impl FromIterator<u8> for Fc4Types {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Fc4Types {
        let mut s = Fc4Types::new();
        for t in iter {
            s.insert(t);
        }
        s
    }
}

/// `0x08,0x20`, or `none`.
impl fmt::Display for Fc4Types {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for t in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{t:#04x}")?;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

bitflags! {
    /// FC-4 features of one FC-4 TYPE (RFF_ID, GFF_ID). For FCP: bit 0 target, bit 1 initiator.
    /// Read with `from_bits_retain`, so other bits are kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Fc4Features: u8 {
        /// FCP target function.
        const TARGET = 0x01;
        /// FCP initiator function.
        const INITIATOR = 0x02;
    }
}

/// `initiator`, `target`, `initiator+target`, `none`; other bits in hex.
impl fmt::Display for Fc4Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if self.contains(Fc4Features::INITIATOR) {
            parts.push("initiator".into());
        }
        if self.contains(Fc4Features::TARGET) {
            parts.push("target".into());
        }
        let rest = self.bits() & !Fc4Features::all().bits();
        if rest != 0 {
            parts.push(format!("{rest:#04x}"));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join("+"))
        }
    }
}

/// The 128-byte FC-4 features field of a GFF_ID accept: four bits per FC-4 TYPE; TYPE `t` is
/// nibble `t % 8`, counted from the least significant end, of big-endian word `t / 8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fc4FeatureMap(pub [u8; 128]);

impl Default for Fc4FeatureMap {
    fn default() -> Fc4FeatureMap {
        Fc4FeatureMap::new()
    }
}

impl Fc4FeatureMap {
    /// Bytes on the wire.
    pub const LEN: usize = 128;

    /// No features for any TYPE.
    pub const fn new() -> Fc4FeatureMap {
        Fc4FeatureMap([0; 128])
    }

    /// Byte index and shift of TYPE `t`'s nibble. The index is at most 31 * 4 + 3 = 127.
    const fn position(t: u8) -> (usize, u8) {
        let word = (t / 8) as usize;
        let nibble = t % 8;
        (word * 4 + 3 - (nibble / 2) as usize, (nibble % 2) * 4)
    }

    /// The features of TYPE `t`.
    pub const fn get(&self, t: u8) -> Fc4Features {
        let (i, shift) = Self::position(t);
        Fc4Features::from_bits_retain((self.0[i] >> shift) & 0x0F)
    }

    /// Sets the features of TYPE `t`; only the low four bits fit and are kept.
    pub fn set(&mut self, t: u8, features: Fc4Features) {
        let (i, shift) = Self::position(t);
        self.0[i] = (self.0[i] & !(0x0F << shift)) | ((features.bits() & 0x0F) << shift);
    }

    /// This map with TYPE `t`'s features set.
    pub fn with(mut self, t: u8, features: Fc4Features) -> Fc4FeatureMap {
        self.set(t, features);
        self
    }

    /// The TYPEs with non-zero features, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u8, Fc4Features)> + '_ {
        (0..=u8::MAX)
            .map(move |t| (t, self.get(t)))
            .filter(|(_, f)| !f.is_empty())
    }

    /// From the 128 bytes at the start of `buf`; the caller guarantees `buf.len() >= 128`.
    fn from_slice(buf: &[u8]) -> Fc4FeatureMap {
        let mut b = [0; 128];
        b.copy_from_slice(&buf[..Self::LEN]);
        Fc4FeatureMap(b)
    }
}

/// `0x08=initiator 0x05=target`, or `none`.
impl fmt::Display for Fc4FeatureMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (t, feat) in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{t:#04x}={feat}")?;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// A symbolic port or node name: at most 255 bytes (its length travels in one byte). Kept as
/// bytes; FC-GS does not promise UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SymbolicName(Vec<u8>);

impl SymbolicName {
    /// Longest name.
    pub const MAX_LEN: usize = 255;

    /// A name from bytes, refused beyond 255 bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<SymbolicName, CtError> {
        let v = bytes.into();
        if v.len() > Self::MAX_LEN {
            return Err(CtError::SymbolicNameTooLong(v.len()));
        }
        Ok(SymbolicName(v))
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The name's length, as its length byte carries it.
    pub fn len(&self) -> u8 {
        // Invariant: at most 255 bytes (checked in `new` and by every parser).
        u8::try_from(self.0.len()).unwrap_or(u8::MAX)
    }

    /// True for the empty name.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses a length byte at `buf[0]` and the name after it, checking the length against the
    /// bytes of `buf` (the payload, or the name's fixed-size field).
    fn parse_counted(buf: &[u8]) -> Result<SymbolicName, CtError> {
        let (&declared, rest) = buf.split_first().ok_or(LenError {
            layer: Layer::NameServer,
            required: 1,
            actual: 0,
        })?;
        let name = rest
            .get(..declared as usize)
            .ok_or(CtError::SymbolicNameLength {
                declared,
                present: rest.len(),
            })?;
        Ok(SymbolicName(name.to_vec()))
    }
}

impl TryFrom<&str> for SymbolicName {
    type Error = CtError;
    fn try_from(s: &str) -> Result<SymbolicName, CtError> {
        SymbolicName::new(s.as_bytes())
    }
}

/// The name with non-printable bytes escaped (`\x00`).
impl fmt::Display for SymbolicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

/// GID_FT request: the port identifiers of the ports registered for an FC-4 TYPE, within a
/// scope (domain 0 = whole fabric; area 0 = whole domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GidFt {
    /// Domain ID scope (0: all domains).
    pub domain_scope: u8,
    /// Area ID scope (0: all areas of the domain).
    pub area_scope: u8,
    /// FC-4 TYPE asked for.
    pub fc4_type: u8,
}

/// The body of a name server request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NsRequestBody {
    /// GA_NXT: all attributes of the next port after this identifier.
    GaNxt(FcId),
    /// GID_FT: port identifiers by FC-4 TYPE.
    GidFt(GidFt),
    /// GPN_ID: Port_Name of a port identifier.
    GpnId(FcId),
    /// GNN_ID: Node_Name of a port identifier.
    GnnId(FcId),
    /// GFF_ID: FC-4 features of a port identifier.
    GffId(FcId),
    /// GID_PN: port identifier of a Port_Name.
    GidPn(Wwn),
    /// RFT_ID: register FC-4 TYPEs.
    RftId {
        /// Registering port.
        port_id: FcId,
        /// TYPEs it supports.
        types: Fc4Types,
    },
    /// RFF_ID: register FC-4 features for one TYPE.
    RffId {
        /// Registering port.
        port_id: FcId,
        /// Features (target/initiator for FCP).
        features: Fc4Features,
        /// The FC-4 TYPE they are for.
        fc4_type: u8,
    },
    /// RNN_ID: register Node_Name.
    RnnId {
        /// Registering port.
        port_id: FcId,
        /// Its Node_Name.
        node_name: Wwn,
    },
    /// RSPN_ID: register symbolic Port_Name.
    RspnId {
        /// Registering port.
        port_id: FcId,
        /// The name.
        name: SymbolicName,
    },
    /// A command this crate does not decode; its body is kept as is.
    Unknown {
        /// The command code.
        command: CtCommand,
        /// Everything after the preamble.
        payload: Vec<u8>,
    },
}

/// Reads the port identifier in bytes 1-3. The caller guarantees `buf.len() >= 4`.
fn port_id_at1(buf: &[u8]) -> FcId {
    FcId::from_parts(buf[1], buf[2], buf[3])
}

/// Writes `| 0 | port identifier |` in bytes 0-3.
fn put_port_id_at1(buf: &mut [u8], id: FcId) {
    buf[0] = 0;
    buf[1..4].copy_from_slice(&id.to_bytes());
}

/// Checks that a body (after the preamble) holds `n` bytes; the error counts the whole CT_IU.
fn need(body: &[u8], n: usize) -> Result<(), LenError> {
    LenError::check(
        Layer::NameServer,
        PREAMBLE_LEN + n,
        PREAMBLE_LEN + body.len(),
    )
}

impl NsRequestBody {
    /// The command code this body goes with.
    pub fn command(&self) -> CtCommand {
        match self {
            NsRequestBody::GaNxt(_) => CtCommand::GA_NXT,
            NsRequestBody::GidFt(_) => CtCommand::GID_FT,
            NsRequestBody::GpnId(_) => CtCommand::GPN_ID,
            NsRequestBody::GnnId(_) => CtCommand::GNN_ID,
            NsRequestBody::GffId(_) => CtCommand::GFF_ID,
            NsRequestBody::GidPn(_) => CtCommand::GID_PN,
            NsRequestBody::RftId { .. } => CtCommand::RFT_ID,
            NsRequestBody::RffId { .. } => CtCommand::RFF_ID,
            NsRequestBody::RnnId { .. } => CtCommand::RNN_ID,
            NsRequestBody::RspnId { .. } => CtCommand::RSPN_ID,
            NsRequestBody::Unknown { command, .. } => *command,
        }
    }

    /// True for the requests that register an attribute (RFT_ID, RFF_ID, RNN_ID, RSPN_ID).
    pub fn is_registration(&self) -> bool {
        matches!(
            self,
            NsRequestBody::RftId { .. }
                | NsRequestBody::RffId { .. }
                | NsRequestBody::RnnId { .. }
                | NsRequestBody::RspnId { .. }
        )
    }

    /// Decodes the body after the preamble for `command`. Bytes past what the command needs
    /// are ignored.
    pub fn parse(command: CtCommand, body: &[u8]) -> Result<NsRequestBody, CtError> {
        Ok(match command {
            CtCommand::GA_NXT | CtCommand::GPN_ID | CtCommand::GNN_ID | CtCommand::GFF_ID => {
                need(body, 4)?;
                let id = port_id_at1(body);
                match command {
                    CtCommand::GA_NXT => NsRequestBody::GaNxt(id),
                    CtCommand::GPN_ID => NsRequestBody::GpnId(id),
                    CtCommand::GNN_ID => NsRequestBody::GnnId(id),
                    _ => NsRequestBody::GffId(id),
                }
            }
            CtCommand::GID_FT => {
                need(body, 4)?;
                NsRequestBody::GidFt(GidFt {
                    domain_scope: body[1],
                    area_scope: body[2],
                    fc4_type: body[3],
                })
            }
            CtCommand::GID_PN => {
                need(body, 8)?;
                NsRequestBody::GidPn(wwn_at(body, 0))
            }
            CtCommand::RFT_ID => {
                need(body, 4 + Fc4Types::LEN)?;
                NsRequestBody::RftId {
                    port_id: port_id_at1(body),
                    types: Fc4Types::from_slice(&body[4..]),
                }
            }
            CtCommand::RFF_ID => {
                need(body, 8)?;
                NsRequestBody::RffId {
                    port_id: port_id_at1(body),
                    features: Fc4Features::from_bits_retain(body[6]),
                    fc4_type: body[7],
                }
            }
            CtCommand::RNN_ID => {
                need(body, 12)?;
                NsRequestBody::RnnId {
                    port_id: port_id_at1(body),
                    node_name: wwn_at(body, 4),
                }
            }
            CtCommand::RSPN_ID => {
                need(body, 5)?;
                NsRequestBody::RspnId {
                    port_id: port_id_at1(body),
                    // The length byte must not claim more name than the payload holds.
                    name: SymbolicName::parse_counted(&body[4..])?,
                }
            }
            _ => NsRequestBody::Unknown {
                command,
                payload: body.to_vec(),
            },
        })
    }

    /// Bytes the body takes after the preamble (RSPN_ID padded to a word).
    pub fn buffer_len(&self) -> usize {
        match self {
            NsRequestBody::GaNxt(_)
            | NsRequestBody::GidFt(_)
            | NsRequestBody::GpnId(_)
            | NsRequestBody::GnnId(_)
            | NsRequestBody::GffId(_) => 4,
            NsRequestBody::GidPn(_) | NsRequestBody::RffId { .. } => 8,
            NsRequestBody::RnnId { .. } => 12,
            NsRequestBody::RftId { .. } => 4 + Fc4Types::LEN,
            NsRequestBody::RspnId { name, .. } => (5 + name.as_bytes().len()).next_multiple_of(4),
            NsRequestBody::Unknown { payload, .. } => payload.len(),
        }
    }

    /// Writes the body into `buf`. Panics if `buf` is shorter than [`Self::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        let buf = &mut buf[..self.buffer_len()];
        buf.fill(0);
        match self {
            NsRequestBody::GaNxt(id)
            | NsRequestBody::GpnId(id)
            | NsRequestBody::GnnId(id)
            | NsRequestBody::GffId(id) => put_port_id_at1(buf, *id),
            NsRequestBody::GidFt(g) => {
                buf[1] = g.domain_scope;
                buf[2] = g.area_scope;
                buf[3] = g.fc4_type;
            }
            NsRequestBody::GidPn(w) => put_wwn_at(buf, 0, *w),
            NsRequestBody::RftId { port_id, types } => {
                put_port_id_at1(buf, *port_id);
                buf[4..36].copy_from_slice(&types.0);
            }
            NsRequestBody::RffId {
                port_id,
                features,
                fc4_type,
            } => {
                put_port_id_at1(buf, *port_id);
                buf[6] = features.bits();
                buf[7] = *fc4_type;
            }
            NsRequestBody::RnnId { port_id, node_name } => {
                put_port_id_at1(buf, *port_id);
                put_wwn_at(buf, 4, *node_name);
            }
            NsRequestBody::RspnId { port_id, name } => {
                put_port_id_at1(buf, *port_id);
                buf[4] = name.len();
                buf[5..5 + name.as_bytes().len()].copy_from_slice(name.as_bytes());
            }
            NsRequestBody::Unknown { payload, .. } => buf.copy_from_slice(payload),
        }
    }
}

/// `GID_FT type=0x08`, `GPN_ID port=010200`, `RFF_ID port=010100 type=0x08 features=initiator`.
impl fmt::Display for NsRequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cmd = self.command();
        match self {
            NsRequestBody::GaNxt(id)
            | NsRequestBody::GpnId(id)
            | NsRequestBody::GnnId(id)
            | NsRequestBody::GffId(id) => write!(f, "{cmd} port={id}"),
            NsRequestBody::GidFt(g) => {
                write!(f, "{cmd} type={:#04x}", g.fc4_type)?;
                if g.domain_scope != 0 {
                    write!(f, " domain={:02x}", g.domain_scope)?;
                }
                if g.area_scope != 0 {
                    write!(f, " area={:02x}", g.area_scope)?;
                }
                Ok(())
            }
            NsRequestBody::GidPn(w) => write!(f, "{cmd} wwpn={w}"),
            NsRequestBody::RftId { port_id, types } => {
                write!(f, "{cmd} port={port_id} types={types}")
            }
            NsRequestBody::RffId {
                port_id,
                features,
                fc4_type,
            } => write!(
                f,
                "{cmd} port={port_id} type={fc4_type:#04x} features={features}"
            ),
            NsRequestBody::RnnId { port_id, node_name } => {
                write!(f, "{cmd} port={port_id} wwnn={node_name}")
            }
            NsRequestBody::RspnId { port_id, name } => {
                write!(f, "{cmd} port={port_id} name=\"{name}\"")
            }
            NsRequestBody::Unknown { payload, .. } => write!(f, "{cmd} ({} bytes)", payload.len()),
        }
    }
}

/// Checks the preamble of a name server CT_IU and returns its view.
fn name_server_preamble(payload: &[u8]) -> Result<CtPreamble<&[u8]>, CtError> {
    let view = CtPreamble::new_checked(payload)?;
    // FC-GS-7 §4.3.2.1: the Revision is 0x01; another is answered with FS_RJT "invalid
    // version level".
    if view.revision() != REVISION {
        return Err(CtError::BadRevision(view.revision()));
    }
    if view.gs_type() != GsType::DIRECTORY || view.gs_subtype() != GsSubtype::NAME_SERVER {
        return Err(CtError::NotNameServer {
            gs_type: view.gs_type(),
            gs_subtype: view.gs_subtype(),
        });
    }
    Ok(view)
}

/// A whole name server request CT_IU: the preamble fields a request uses, and the body. The
/// command code comes from the body; reason bytes are zero in a request (ignored on parse).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NsRequest {
    /// IN_ID (usually 0).
    pub in_id: FcId,
    /// Options byte.
    pub options: u8,
    /// Maximum Size of the accept, in words after the preamble.
    pub max_size: u16,
    /// Fragment ID.
    pub fragment_id: u8,
    /// The request.
    pub body: NsRequestBody,
}

impl NsRequest {
    /// A request with IN_ID 0, no options, Maximum Size [`MAX_SIZE_ONE_FRAME`].
    pub fn new(body: NsRequestBody) -> NsRequest {
        NsRequest {
            in_id: FcId::UNIDENTIFIED,
            options: 0,
            max_size: MAX_SIZE_ONE_FRAME,
            fragment_id: 0,
            body,
        }
    }

    /// GID_FT for the whole fabric.
    pub fn gid_ft(fc4_type: u8) -> NsRequest {
        Self::new(NsRequestBody::GidFt(GidFt {
            domain_scope: 0,
            area_scope: 0,
            fc4_type,
        }))
    }

    /// GA_NXT.
    pub fn ga_nxt(port_id: FcId) -> NsRequest {
        Self::new(NsRequestBody::GaNxt(port_id))
    }

    /// GPN_ID.
    pub fn gpn_id(port_id: FcId) -> NsRequest {
        Self::new(NsRequestBody::GpnId(port_id))
    }

    /// GNN_ID.
    pub fn gnn_id(port_id: FcId) -> NsRequest {
        Self::new(NsRequestBody::GnnId(port_id))
    }

    /// GFF_ID.
    pub fn gff_id(port_id: FcId) -> NsRequest {
        Self::new(NsRequestBody::GffId(port_id))
    }

    /// GID_PN.
    pub fn gid_pn(port_name: Wwn) -> NsRequest {
        Self::new(NsRequestBody::GidPn(port_name))
    }

    /// RFT_ID.
    pub fn rft_id(port_id: FcId, types: Fc4Types) -> NsRequest {
        Self::new(NsRequestBody::RftId { port_id, types })
    }

    /// RFF_ID.
    pub fn rff_id(port_id: FcId, features: Fc4Features, fc4_type: u8) -> NsRequest {
        Self::new(NsRequestBody::RffId {
            port_id,
            features,
            fc4_type,
        })
    }

    /// RNN_ID.
    pub fn rnn_id(port_id: FcId, node_name: Wwn) -> NsRequest {
        Self::new(NsRequestBody::RnnId { port_id, node_name })
    }

    /// RSPN_ID.
    pub fn rspn_id(port_id: FcId, name: SymbolicName) -> NsRequest {
        Self::new(NsRequestBody::RspnId { port_id, name })
    }

    /// The command code.
    pub fn command(&self) -> CtCommand {
        self.body.command()
    }

    /// The preamble this request is sent with.
    pub fn preamble(&self) -> CtPreambleRepr {
        let mut p = CtPreambleRepr::name_server_request(self.command());
        p.in_id = self.in_id;
        p.options = self.options;
        p.max_size = self.max_size;
        p.fragment_id = self.fragment_id;
        p
    }

    /// Decodes a whole CT payload. A command this crate does not decode is not an error: it
    /// comes back as [`NsRequestBody::Unknown`].
    pub fn parse(payload: &[u8]) -> Result<NsRequest, CtError> {
        let view = name_server_preamble(payload)?;
        Ok(NsRequest {
            in_id: view.in_id(),
            options: view.options(),
            max_size: view.max_size(),
            fragment_id: view.fragment_id(),
            body: NsRequestBody::parse(view.command(), view.payload())?,
        })
    }

    /// Bytes of the whole CT_IU.
    pub fn buffer_len(&self) -> usize {
        PREAMBLE_LEN + self.body.buffer_len()
    }

    /// Writes the CT_IU into `buf`. Panics if `buf` is shorter than [`Self::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        self.preamble().emit(buf);
        self.body.emit(&mut buf[PREAMBLE_LEN..]);
    }

    /// The CT_IU bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// An FS_ACC to this request, with the same IN_ID.
    pub fn accept(&self, accept: NsAccept) -> NsResponse {
        NsResponse {
            in_id: self.in_id,
            ..NsResponse::accept(accept)
        }
    }

    /// An FS_RJT to this request, with the same IN_ID.
    pub fn reject(&self, reason: CtReason, explanation: NsExplanation) -> NsResponse {
        NsResponse {
            in_id: self.in_id,
            ..NsResponse::reject(reason, explanation)
        }
    }
}

impl fmt::Display for NsRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.body.fmt(f)
    }
}

mod ga_nxt {
    use crate::wire::Field;

    pub const PORT_TYPE: usize = 0;
    pub const PORT_ID: Field = 1..4;
    pub const PORT_NAME: usize = 4;
    pub const SYM_PORT_NAME: Field = 12..268;
    pub const NODE_NAME: usize = 268;
    pub const SYM_NODE_NAME: Field = 276..532;
    pub const IPA: Field = 532..540;
    pub const NODE_IP: Field = 540..556;
    pub const CLASS_OF_SERVICE: usize = 556;
    pub const FC4_TYPES: Field = 560..592;
    pub const PORT_IP: Field = 592..608;
    pub const FABRIC_PORT_NAME: usize = 608;
    pub const HARD_ADDRESS: Field = 617..620;
    pub const LEN: usize = 620;
}

/// The GA_NXT accept: every attribute the name server holds for one port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GaNxtAccept {
    /// Port type.
    pub port_type: PortType,
    /// Port identifier.
    pub port_id: FcId,
    /// Port_Name.
    pub port_name: Wwn,
    /// Symbolic Port_Name.
    pub symbolic_port_name: SymbolicName,
    /// Node_Name.
    pub node_name: Wwn,
    /// Symbolic Node_Name.
    pub symbolic_node_name: SymbolicName,
    /// Initial process associator.
    pub ipa: [u8; 8],
    /// IP address of the node (IPv6, or IPv4-mapped).
    pub node_ip: [u8; 16],
    /// Class of service bits (bit 2 class 2, bit 3 class 3, ...).
    pub class_of_service: u32,
    /// FC-4 TYPEs.
    pub fc4_types: Fc4Types,
    /// IP address of the port.
    pub port_ip: [u8; 16],
    /// Fabric Port_Name (the F_Port's name).
    pub fabric_port_name: Wwn,
    /// Hard address.
    pub hard_address: FcId,
}

impl GaNxtAccept {
    /// Bytes on the wire.
    pub const LEN: usize = ga_nxt::LEN;

    /// Decodes the 620-byte accept body.
    pub fn parse(body: &[u8]) -> Result<GaNxtAccept, CtError> {
        use ga_nxt::*;
        need(body, LEN)?;
        // Indexing below is within the 620 bytes just checked. A symbolic name's length byte
        // can claim at most 255 bytes, which its 255-byte field always holds.
        let mut ipa = [0; 8];
        ipa.copy_from_slice(&body[IPA]);
        let mut node_ip = [0; 16];
        node_ip.copy_from_slice(&body[NODE_IP]);
        let mut port_ip = [0; 16];
        port_ip.copy_from_slice(&body[PORT_IP]);
        Ok(GaNxtAccept {
            port_type: PortType(body[PORT_TYPE]),
            port_id: FcId::from_parts(
                body[PORT_ID.start],
                body[PORT_ID.start + 1],
                body[PORT_ID.start + 2],
            ),
            port_name: wwn_at(body, PORT_NAME),
            symbolic_port_name: SymbolicName::parse_counted(&body[SYM_PORT_NAME])?,
            node_name: wwn_at(body, NODE_NAME),
            symbolic_node_name: SymbolicName::parse_counted(&body[SYM_NODE_NAME])?,
            ipa,
            node_ip,
            class_of_service: be32(body, CLASS_OF_SERVICE),
            fc4_types: Fc4Types::from_slice(&body[FC4_TYPES]),
            port_ip,
            fabric_port_name: wwn_at(body, FABRIC_PORT_NAME),
            hard_address: FcId::from_parts(
                body[HARD_ADDRESS.start],
                body[HARD_ADDRESS.start + 1],
                body[HARD_ADDRESS.start + 2],
            ),
        })
    }

    /// Writes the 620 bytes into `buf`. Panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        use ga_nxt::*;
        let buf = &mut buf[..LEN];
        buf.fill(0);
        buf[PORT_TYPE] = self.port_type.0;
        buf[PORT_ID].copy_from_slice(&self.port_id.to_bytes());
        put_wwn_at(buf, PORT_NAME, self.port_name);
        let spn = self.symbolic_port_name.as_bytes();
        buf[SYM_PORT_NAME.start] = self.symbolic_port_name.len();
        buf[SYM_PORT_NAME.start + 1..][..spn.len()].copy_from_slice(spn);
        put_wwn_at(buf, NODE_NAME, self.node_name);
        let snn = self.symbolic_node_name.as_bytes();
        buf[SYM_NODE_NAME.start] = self.symbolic_node_name.len();
        buf[SYM_NODE_NAME.start + 1..][..snn.len()].copy_from_slice(snn);
        buf[IPA].copy_from_slice(&self.ipa);
        buf[NODE_IP].copy_from_slice(&self.node_ip);
        put_be32(buf, CLASS_OF_SERVICE, self.class_of_service);
        buf[FC4_TYPES].copy_from_slice(&self.fc4_types.0);
        buf[PORT_IP].copy_from_slice(&self.port_ip);
        put_wwn_at(buf, FABRIC_PORT_NAME, self.fabric_port_name);
        buf[HARD_ADDRESS].copy_from_slice(&self.hard_address.to_bytes());
    }
}

/// `port=010100 type=N_Port wwpn=.. wwnn=.. types=0x08`.
impl fmt::Display for GaNxtAccept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "port={} type={} wwpn={} wwnn={} types={}",
            self.port_id, self.port_type, self.port_name, self.node_name, self.fc4_types
        )?;
        if !self.symbolic_port_name.is_empty() {
            write!(f, " name=\"{}\"", self.symbolic_port_name)?;
        }
        Ok(())
    }
}

/// The body of an FS_ACC; which variant depends on the request it answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NsAccept {
    /// GA_NXT: the next port's attributes.
    GaNxt(Box<GaNxtAccept>),
    /// GID_FT: the matching ports. An empty list cannot be sent (the last entry carries the
    /// end flag); the name server answers FS_RJT instead — see [`NsResponse::gid_ft`].
    GidFt(Vec<FcId>),
    /// GPN_ID: the Port_Name.
    GpnId(Wwn),
    /// GNN_ID: the Node_Name.
    GnnId(Wwn),
    /// GFF_ID: the FC-4 features.
    GffId(Fc4FeatureMap),
    /// GID_PN: the port identifier.
    GidPn(FcId),
    /// RFT_ID registered (empty accept).
    RftId,
    /// RFF_ID registered (empty accept).
    RffId,
    /// RNN_ID registered (empty accept).
    RnnId,
    /// RSPN_ID registered (empty accept).
    RspnId,
    /// The accept to a request this crate does not decode, kept as is.
    Other {
        /// The request's command code.
        request: CtCommand,
        /// Everything after the preamble.
        payload: Vec<u8>,
    },
}

impl NsAccept {
    /// The command code of the request this accepts.
    pub fn request(&self) -> CtCommand {
        match self {
            NsAccept::GaNxt(_) => CtCommand::GA_NXT,
            NsAccept::GidFt(_) => CtCommand::GID_FT,
            NsAccept::GpnId(_) => CtCommand::GPN_ID,
            NsAccept::GnnId(_) => CtCommand::GNN_ID,
            NsAccept::GffId(_) => CtCommand::GFF_ID,
            NsAccept::GidPn(_) => CtCommand::GID_PN,
            NsAccept::RftId => CtCommand::RFT_ID,
            NsAccept::RffId => CtCommand::RFF_ID,
            NsAccept::RnnId => CtCommand::RNN_ID,
            NsAccept::RspnId => CtCommand::RSPN_ID,
            NsAccept::Other { request, .. } => *request,
        }
    }

    /// Decodes an FS_ACC body answering `request`. Bytes past what the accept needs (after a
    /// GID_FT's last entry, after a registration's empty accept) are ignored.
    pub fn parse(request: CtCommand, body: &[u8]) -> Result<NsAccept, CtError> {
        Ok(match request {
            CtCommand::GA_NXT => NsAccept::GaNxt(Box::new(GaNxtAccept::parse(body)?)),
            CtCommand::GID_FT => NsAccept::GidFt(parse_port_list(body)?),
            CtCommand::GPN_ID | CtCommand::GNN_ID => {
                need(body, 8)?;
                let w = wwn_at(body, 0);
                if request == CtCommand::GPN_ID {
                    NsAccept::GpnId(w)
                } else {
                    NsAccept::GnnId(w)
                }
            }
            CtCommand::GFF_ID => {
                need(body, Fc4FeatureMap::LEN)?;
                NsAccept::GffId(Fc4FeatureMap::from_slice(body))
            }
            CtCommand::GID_PN => {
                need(body, 4)?;
                NsAccept::GidPn(port_id_at1(body))
            }
            CtCommand::RFT_ID => NsAccept::RftId,
            CtCommand::RFF_ID => NsAccept::RffId,
            CtCommand::RNN_ID => NsAccept::RnnId,
            CtCommand::RSPN_ID => NsAccept::RspnId,
            _ => NsAccept::Other {
                request,
                payload: body.to_vec(),
            },
        })
    }

    /// Bytes the body takes after the preamble.
    pub fn buffer_len(&self) -> usize {
        match self {
            NsAccept::GaNxt(_) => GaNxtAccept::LEN,
            NsAccept::GidFt(ports) => 4 * ports.len(),
            NsAccept::GpnId(_) | NsAccept::GnnId(_) => 8,
            NsAccept::GffId(_) => Fc4FeatureMap::LEN,
            NsAccept::GidPn(_) => 4,
            NsAccept::RftId | NsAccept::RffId | NsAccept::RnnId | NsAccept::RspnId => 0,
            NsAccept::Other { payload, .. } => payload.len(),
        }
    }

    /// Writes the body into `buf`. Panics if `buf` is shorter than [`Self::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        let buf = &mut buf[..self.buffer_len()];
        match self {
            NsAccept::GaNxt(a) => a.emit(buf),
            NsAccept::GidFt(ports) => {
                for (i, (entry, id)) in buf.chunks_exact_mut(4).zip(ports).enumerate() {
                    put_port_id_at1(entry, *id);
                    if i + 1 == ports.len() {
                        entry[0] = LAST_ENTRY;
                    }
                }
            }
            NsAccept::GpnId(w) | NsAccept::GnnId(w) => put_wwn_at(buf, 0, *w),
            NsAccept::GffId(m) => buf.copy_from_slice(&m.0),
            NsAccept::GidPn(id) => put_port_id_at1(buf, *id),
            NsAccept::RftId | NsAccept::RffId | NsAccept::RnnId | NsAccept::RspnId => {}
            NsAccept::Other { payload, .. } => buf.copy_from_slice(payload),
        }
    }
}

/// Control byte bit of a port list entry: this is the last entry.
const LAST_ENTRY: u8 = 0x80;

/// Longest port list shown in a one-line summary.
const SHOWN_PORTS: usize = 16;

/// Reads `| control | port identifier |` entries up to the one flagged last. The list can be no
/// longer than the bytes present; a list that runs out before its last entry is an error.
fn parse_port_list(body: &[u8]) -> Result<Vec<FcId>, CtError> {
    let mut ports = Vec::new();
    for entry in body.chunks_exact(4) {
        if let [control, d, a, p] = *entry {
            ports.push(FcId::from_parts(d, a, p));
            // The entry with bit 7 of its control byte set is the last of the list.
            if control & LAST_ENTRY != 0 {
                return Ok(ports);
            }
        }
    }
    Err(CtError::UnterminatedPortList(ports.len()))
}

/// `GID_FT 3 ports: 010100 010200 020100`, `GPN_ID wwpn=..`, `RFT_ID`.
impl fmt::Display for NsAccept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let req = self.request();
        match self {
            NsAccept::GaNxt(a) => write!(f, "{req} {a}"),
            NsAccept::GidFt(ports) => {
                let noun = if ports.len() == 1 { "port" } else { "ports" };
                write!(f, "{req} {} {noun}", ports.len())?;
                for (i, id) in ports.iter().take(SHOWN_PORTS).enumerate() {
                    f.write_str(if i == 0 { ": " } else { " " })?;
                    write!(f, "{id}")?;
                }
                if ports.len() > SHOWN_PORTS {
                    f.write_str(" ...")?;
                }
                Ok(())
            }
            NsAccept::GpnId(w) => write!(f, "{req} wwpn={w}"),
            NsAccept::GnnId(w) => write!(f, "{req} wwnn={w}"),
            NsAccept::GffId(m) => write!(f, "{req} {m}"),
            NsAccept::GidPn(id) => write!(f, "{req} port={id}"),
            NsAccept::RftId | NsAccept::RffId | NsAccept::RnnId | NsAccept::RspnId => {
                write!(f, "{req}")
            }
            NsAccept::Other { payload, .. } => write!(f, "{req} ({} bytes)", payload.len()),
        }
    }
}

/// What an FS_RJT says, from its preamble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NsReject {
    /// Reason code.
    pub reason: CtReason,
    /// Reason code explanation.
    pub explanation: NsExplanation,
    /// Vendor specific byte.
    pub vendor: u8,
}

/// `RJT reason=unable to perform (0x09) explanation=FC-4 TYPEs not registered (0x07)`.
impl fmt::Display for NsReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RJT reason=")?;
        match self.reason.name() {
            Some(n) => write!(f, "{n} ({:#04x})", self.reason.0)?,
            None => write!(f, "{:#04x}", self.reason.0)?,
        }
        f.write_str(" explanation=")?;
        match self.explanation.name() {
            Some(n) => write!(f, "{n} ({:#04x})", self.explanation.0)?,
            None => write!(f, "{:#04x}", self.explanation.0)?,
        }
        if self.vendor != 0 {
            write!(f, " vendor={:#04x}", self.vendor)?;
        }
        Ok(())
    }
}

/// The body of a name server reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NsResponseBody {
    /// FS_ACC.
    Accept(NsAccept),
    /// FS_RJT.
    Reject(NsReject),
}

/// A whole name server reply CT_IU: the preamble fields a reply uses, and the body. The
/// command code (FS_ACC/FS_RJT) and the reason bytes come from the body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NsResponse {
    /// IN_ID.
    pub in_id: FcId,
    /// Options byte.
    pub options: u8,
    /// Residual size: words of the accept the server left out (0 when complete).
    pub residual_size: u16,
    /// Fragment ID.
    pub fragment_id: u8,
    /// FS_ACC or FS_RJT.
    pub body: NsResponseBody,
}

impl NsResponse {
    /// An FS_ACC with IN_ID 0, residual size 0.
    pub fn accept(accept: NsAccept) -> NsResponse {
        NsResponse {
            in_id: FcId::UNIDENTIFIED,
            options: 0,
            residual_size: 0,
            fragment_id: 0,
            body: NsResponseBody::Accept(accept),
        }
    }

    /// An FS_RJT with IN_ID 0 and vendor byte 0.
    pub fn reject(reason: CtReason, explanation: NsExplanation) -> NsResponse {
        NsResponse {
            in_id: FcId::UNIDENTIFIED,
            options: 0,
            residual_size: 0,
            fragment_id: 0,
            body: NsResponseBody::Reject(NsReject {
                reason,
                explanation,
                vendor: 0,
            }),
        }
    }

    /// The answer to a GID_FT: FS_ACC with the ports, or, when there are none, FS_RJT
    /// "unable to perform" / "FC-4 TYPEs not registered" (an accept cannot carry an empty list).
    pub fn gid_ft(ports: Vec<FcId>) -> NsResponse {
        if ports.is_empty() {
            Self::reject(
                CtReason::UNABLE_TO_PERFORM,
                NsExplanation::FC4_TYPES_NOT_REGISTERED,
            )
        } else {
            Self::accept(NsAccept::GidFt(ports))
        }
    }

    /// FS_ACC or FS_RJT.
    pub fn command(&self) -> CtCommand {
        match self.body {
            NsResponseBody::Accept(_) => CtCommand::FS_ACC,
            NsResponseBody::Reject(_) => CtCommand::FS_RJT,
        }
    }

    /// The preamble this reply is sent with.
    pub fn preamble(&self) -> CtPreambleRepr {
        let mut p = match &self.body {
            NsResponseBody::Accept(_) => CtPreambleRepr::name_server_accept(),
            NsResponseBody::Reject(r) => {
                let mut p = CtPreambleRepr::name_server_reject(r.reason, r.explanation.0);
                p.vendor = r.vendor;
                p
            }
        };
        p.in_id = self.in_id;
        p.options = self.options;
        p.max_size = self.residual_size;
        p.fragment_id = self.fragment_id;
        p
    }

    /// Decodes a whole CT payload answering a request with command code `request`.
    pub fn parse(request: CtCommand, payload: &[u8]) -> Result<NsResponse, CtError> {
        let view = name_server_preamble(payload)?;
        let body = match view.command() {
            CtCommand::FS_ACC => NsResponseBody::Accept(NsAccept::parse(request, view.payload())?),
            CtCommand::FS_RJT => NsResponseBody::Reject(NsReject {
                reason: view.reason(),
                explanation: NsExplanation(view.explanation()),
                vendor: view.vendor(),
            }),
            other => return Err(CtError::NotAResponse(other)),
        };
        Ok(NsResponse {
            in_id: view.in_id(),
            options: view.options(),
            residual_size: view.max_size(),
            fragment_id: view.fragment_id(),
            body,
        })
    }

    /// Bytes of the whole CT_IU.
    pub fn buffer_len(&self) -> usize {
        PREAMBLE_LEN
            + match &self.body {
                NsResponseBody::Accept(a) => a.buffer_len(),
                NsResponseBody::Reject(_) => 0,
            }
    }

    /// Writes the CT_IU into `buf`. Panics if `buf` is shorter than [`Self::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        self.preamble().emit(buf);
        if let NsResponseBody::Accept(a) = &self.body {
            a.emit(&mut buf[PREAMBLE_LEN..]);
        }
    }

    /// The CT_IU bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `ACC GID_FT 3 ports: 010100 010200 020100`, `RJT reason=.. explanation=..`.
impl fmt::Display for NsResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.body {
            NsResponseBody::Accept(a) => write!(f, "ACC {a}"),
            NsResponseBody::Reject(r) => write!(f, "{r}"),
        }
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::ct::strategies::{fc_id, wwn};

    /// Command codes that [`NsRequestBody::parse`] decodes.
    pub(crate) const DECODED: [CtCommand; 10] = [
        CtCommand::GA_NXT,
        CtCommand::GID_FT,
        CtCommand::GPN_ID,
        CtCommand::GNN_ID,
        CtCommand::GFF_ID,
        CtCommand::GID_PN,
        CtCommand::RFT_ID,
        CtCommand::RFF_ID,
        CtCommand::RNN_ID,
        CtCommand::RSPN_ID,
    ];

    pub(crate) fn undecoded_command() -> impl Strategy<Value = CtCommand> {
        any::<u16>()
            .prop_map(CtCommand)
            .prop_filter("decoded command", |c| !DECODED.contains(c))
    }

    pub(crate) fn symbolic_name() -> impl Strategy<Value = SymbolicName> {
        vec(any::<u8>(), 0..=255).prop_map(|v| SymbolicName::new(v).unwrap())
    }

    pub(crate) fn fc4_types() -> impl Strategy<Value = Fc4Types> {
        any::<[u8; 32]>().prop_map(Fc4Types)
    }

    pub(crate) fn feature_map() -> impl Strategy<Value = Fc4FeatureMap> {
        vec(any::<u8>(), 128).prop_map(|v| Fc4FeatureMap::from_slice(&v))
    }

    pub(crate) fn request_body() -> impl Strategy<Value = NsRequestBody> {
        prop_oneof![
            fc_id().prop_map(NsRequestBody::GaNxt),
            any::<[u8; 3]>().prop_map(|[domain_scope, area_scope, fc4_type]| {
                NsRequestBody::GidFt(GidFt {
                    domain_scope,
                    area_scope,
                    fc4_type,
                })
            }),
            fc_id().prop_map(NsRequestBody::GpnId),
            fc_id().prop_map(NsRequestBody::GnnId),
            fc_id().prop_map(NsRequestBody::GffId),
            wwn().prop_map(NsRequestBody::GidPn),
            (fc_id(), fc4_types())
                .prop_map(|(port_id, types)| NsRequestBody::RftId { port_id, types }),
            (fc_id(), any::<u8>(), any::<u8>()).prop_map(|(port_id, f, fc4_type)| {
                NsRequestBody::RffId {
                    port_id,
                    features: Fc4Features::from_bits_retain(f),
                    fc4_type,
                }
            }),
            (fc_id(), wwn())
                .prop_map(|(port_id, node_name)| NsRequestBody::RnnId { port_id, node_name }),
            (fc_id(), symbolic_name())
                .prop_map(|(port_id, name)| NsRequestBody::RspnId { port_id, name }),
            (undecoded_command(), vec(any::<u8>(), 0..64))
                .prop_map(|(command, payload)| NsRequestBody::Unknown { command, payload }),
        ]
    }

    prop_compose! {
        pub(crate) fn request()(
            in_id in fc_id(),
            options in any::<u8>(),
            max_size in any::<u16>(),
            fragment_id in any::<u8>(),
            body in request_body(),
        ) -> NsRequest {
            NsRequest { in_id, options, max_size, fragment_id, body }
        }
    }

    prop_compose! {
        pub(crate) fn ga_nxt_accept()(
            port_type in any::<u8>(),
            port_id in fc_id(),
            port_name in wwn(),
            symbolic_port_name in symbolic_name(),
            node_name in wwn(),
            symbolic_node_name in symbolic_name(),
            ipa in any::<[u8; 8]>(),
            node_ip in any::<[u8; 16]>(),
            class_of_service in any::<u32>(),
            fc4_types in fc4_types(),
            port_ip in any::<[u8; 16]>(),
            fabric_port_name in wwn(),
            hard_address in fc_id(),
        ) -> GaNxtAccept {
            GaNxtAccept {
                port_type: PortType(port_type),
                port_id,
                port_name,
                symbolic_port_name,
                node_name,
                symbolic_node_name,
                ipa,
                node_ip,
                class_of_service,
                fc4_types,
                port_ip,
                fabric_port_name,
                hard_address,
            }
        }
    }

    pub(crate) fn accept() -> impl Strategy<Value = NsAccept> {
        prop_oneof![
            ga_nxt_accept().prop_map(|a| NsAccept::GaNxt(Box::new(a))),
            vec(fc_id(), 1..40).prop_map(NsAccept::GidFt),
            wwn().prop_map(NsAccept::GpnId),
            wwn().prop_map(NsAccept::GnnId),
            feature_map().prop_map(NsAccept::GffId),
            fc_id().prop_map(NsAccept::GidPn),
            Just(NsAccept::RftId),
            Just(NsAccept::RffId),
            Just(NsAccept::RnnId),
            Just(NsAccept::RspnId),
            (undecoded_command(), vec(any::<u8>(), 0..64))
                .prop_map(|(request, payload)| NsAccept::Other { request, payload }),
        ]
    }

    prop_compose! {
        pub(crate) fn response()(
            in_id in fc_id(),
            options in any::<u8>(),
            residual_size in any::<u16>(),
            fragment_id in any::<u8>(),
            body in prop_oneof![
                accept().prop_map(NsResponseBody::Accept),
                any::<[u8; 3]>().prop_map(|[r, e, vendor]| NsResponseBody::Reject(NsReject {
                    reason: CtReason(r),
                    explanation: NsExplanation(e),
                    vendor,
                })),
            ],
        ) -> NsResponse {
            NsResponse { in_id, options, residual_size, fragment_id, body }
        }
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;

    const P1: FcId = FcId::from_parts(0x01, 0x01, 0x00);
    const P2: FcId = FcId::from_parts(0x01, 0x02, 0x00);
    const P3: FcId = FcId::from_parts(0x02, 0x01, 0x00);
    const WWPN: Wwn = Wwn(hex!("2100001b32a0b0c1"));
    const WWNN: Wwn = Wwn(hex!("2000001b32a0b0c1"));

    // Requests: preamble `01 000000 fc 02 00 00 cccc 020c 00000000` (max size 524) + body.
    static GID_FT: [u8; 20] = hex!("01000000fc0200000171020c00000000" "00000008");
    static GA_NXT: [u8; 20] = hex!("01000000fc0200000100020c00000000" "00010100");
    static GPN_ID: [u8; 20] = hex!("01000000fc0200000112020c00000000" "00010200");
    static GNN_ID: [u8; 20] = hex!("01000000fc0200000113020c00000000" "00010200");
    static GFF_ID: [u8; 20] = hex!("01000000fc020000011f020c00000000" "00010200");
    static GID_PN: [u8; 24] = hex!("01000000fc0200000121020c00000000" "2100001b32a0b0c1");
    /// RFT_ID: FCP (0x08) and CT (0x20).
    static RFT_ID: [u8; 52] = hex!(
        "01000000fc0200000217020c00000000" "00010100"
        "00000100 00000001 00000000 00000000 00000000 00000000 00000000 00000000"
    );
    /// RFF_ID: initiator for FCP.
    static RFF_ID: [u8; 24] = hex!("01000000fc020000021f020c00000000" "00010100 0000 02 08");
    static RNN_ID: [u8; 28] = hex!("01000000fc0200000213020c00000000" "00010100 2000001b32a0b0c1");
    /// RSPN_ID "fcsan", padded to a word.
    static RSPN_ID: [u8; 28] =
        hex!("01000000fc0200000218020c00000000" "00010100 05 666373616e 0000");
    /// GPN_FT: not decoded here.
    static GPN_FT: [u8; 20] = hex!("01000000fc0200000172020c00000000" "00000008");

    // Replies: preamble `01 000000 fc 02 00 00 8002 0000 00000000` + body.
    static ACC_GID_FT: [u8; 28] =
        hex!("01000000fc02000080020000 00000000" "00010100 00010200 80020100");
    static ACC_GPN_ID: [u8; 24] = hex!("01000000fc020000800200000000 0000" "2100001b32a0b0c1");
    static ACC_GNN_ID: [u8; 24] = hex!("01000000fc02000080020000 00000000" "2000001b32a0b0c1");
    /// GFF_ID accept: FCP target (byte 7, low nibble = 1).
    static ACC_GFF_ID: [u8; 144] = hex!(
        "01000000fc02000080020000 00000000"
        "00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000"
        "00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000"
        "00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000"
        "00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000"
    );
    static ACC_GID_PN: [u8; 20] = hex!("01000000fc02000080020000 00000000" "00010100");
    static ACC_EMPTY: [u8; 16] = hex!("01000000fc02000080020000 00000000");
    static ACC_GA_NXT: [u8; 636] = hex!(
        "01000000fc02000080020000 00000000"
        "010101002100001b32a0b0c10a666373616e20686f7374000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000002000001b32a0b0c1046e6f646500000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000010203040506070800000000"
        "000000000000ffff0a0000010000000800000100000000010000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "2001000dec000001000000ef"
    );
    /// GPN_FT accept (not decoded here): one entry, flagged last, with its Port_Name.
    static ACC_GPN_FT: [u8; 32] =
        hex!("01000000fc02000080020000 00000000" "80010100 00000000 2100001b32a0b0c1");
    /// FS_RJT: unable to perform (0x09), FC-4 TYPEs not registered (0x07).
    static RJT: [u8; 16] = hex!("01000000fc02000080010000 00090700");

    fn ga_nxt_accept() -> GaNxtAccept {
        GaNxtAccept {
            port_type: PortType::N_PORT,
            port_id: P1,
            port_name: WWPN,
            symbolic_port_name: SymbolicName::try_from("fcsan host").unwrap(),
            node_name: WWNN,
            symbolic_node_name: SymbolicName::try_from("node").unwrap(),
            ipa: hex!("0102030405060708"),
            node_ip: hex!("00000000000000000000ffff0a000001"),
            class_of_service: 0x08,
            fc4_types: Fc4Types::new().with(FC4_TYPE_FCP).with(FC4_TYPE_CT),
            port_ip: [0; 16],
            fabric_port_name: Wwn(hex!("2001000dec000001")),
            hard_address: FcId::from_parts(0, 0, 0xef),
        }
    }

    /// Every request kind: bytes, repr, one-line summary.
    fn requests() -> Vec<(&'static [u8], NsRequest, &'static str)> {
        vec![
            (
                &GID_FT[..],
                NsRequest::gid_ft(FC4_TYPE_FCP),
                "GID_FT type=0x08",
            ),
            (&GA_NXT, NsRequest::ga_nxt(P1), "GA_NXT port=010100"),
            (&GPN_ID, NsRequest::gpn_id(P2), "GPN_ID port=010200"),
            (&GNN_ID, NsRequest::gnn_id(P2), "GNN_ID port=010200"),
            (&GFF_ID, NsRequest::gff_id(P2), "GFF_ID port=010200"),
            (
                &GID_PN,
                NsRequest::gid_pn(WWPN),
                "GID_PN wwpn=21:00:00:1b:32:a0:b0:c1",
            ),
            (
                &RFT_ID,
                NsRequest::rft_id(P1, [FC4_TYPE_FCP, FC4_TYPE_CT].into_iter().collect()),
                "RFT_ID port=010100 types=0x08,0x20",
            ),
            (
                &RFF_ID,
                NsRequest::rff_id(P1, Fc4Features::INITIATOR, FC4_TYPE_FCP),
                "RFF_ID port=010100 type=0x08 features=initiator",
            ),
            (
                &RNN_ID,
                NsRequest::rnn_id(P1, WWNN),
                "RNN_ID port=010100 wwnn=20:00:00:1b:32:a0:b0:c1",
            ),
            (
                &RSPN_ID,
                NsRequest::rspn_id(P1, SymbolicName::try_from("fcsan").unwrap()),
                "RSPN_ID port=010100 name=\"fcsan\"",
            ),
            (
                &GPN_FT,
                NsRequest::new(NsRequestBody::Unknown {
                    command: CtCommand::GPN_FT,
                    payload: vec![0, 0, 0, 8],
                }),
                "GPN_FT (4 bytes)",
            ),
        ]
    }

    /// Every reply kind: bytes, the request it answers, repr, one-line summary.
    fn responses() -> Vec<(&'static [u8], CtCommand, NsResponse, &'static str)> {
        vec![
            (
                &ACC_GID_FT[..],
                CtCommand::GID_FT,
                NsResponse::gid_ft(vec![P1, P2, P3]),
                "ACC GID_FT 3 ports: 010100 010200 020100",
            ),
            (
                &ACC_GPN_ID,
                CtCommand::GPN_ID,
                NsResponse::accept(NsAccept::GpnId(WWPN)),
                "ACC GPN_ID wwpn=21:00:00:1b:32:a0:b0:c1",
            ),
            (
                &ACC_GNN_ID,
                CtCommand::GNN_ID,
                NsResponse::accept(NsAccept::GnnId(WWNN)),
                "ACC GNN_ID wwnn=20:00:00:1b:32:a0:b0:c1",
            ),
            (
                &ACC_GFF_ID,
                CtCommand::GFF_ID,
                NsResponse::accept(NsAccept::GffId(
                    Fc4FeatureMap::new().with(FC4_TYPE_FCP, Fc4Features::TARGET),
                )),
                "ACC GFF_ID 0x08=target",
            ),
            (
                &ACC_GID_PN,
                CtCommand::GID_PN,
                NsResponse::accept(NsAccept::GidPn(P1)),
                "ACC GID_PN port=010100",
            ),
            (
                &ACC_GA_NXT,
                CtCommand::GA_NXT,
                NsResponse::accept(NsAccept::GaNxt(Box::new(ga_nxt_accept()))),
                "ACC GA_NXT port=010100 type=N_Port wwpn=21:00:00:1b:32:a0:b0:c1 \
                 wwnn=20:00:00:1b:32:a0:b0:c1 types=0x08,0x20 name=\"fcsan host\"",
            ),
            (
                &ACC_EMPTY,
                CtCommand::RFT_ID,
                NsResponse::accept(NsAccept::RftId),
                "ACC RFT_ID",
            ),
            (
                &ACC_EMPTY,
                CtCommand::RFF_ID,
                NsResponse::accept(NsAccept::RffId),
                "ACC RFF_ID",
            ),
            (
                &ACC_EMPTY,
                CtCommand::RNN_ID,
                NsResponse::accept(NsAccept::RnnId),
                "ACC RNN_ID",
            ),
            (
                &ACC_EMPTY,
                CtCommand::RSPN_ID,
                NsResponse::accept(NsAccept::RspnId),
                "ACC RSPN_ID",
            ),
            (
                &ACC_GPN_FT,
                CtCommand::GPN_FT,
                NsResponse::accept(NsAccept::Other {
                    request: CtCommand::GPN_FT,
                    payload: hex!("80010100 00000000 2100001b32a0b0c1").to_vec(),
                }),
                "ACC GPN_FT (16 bytes)",
            ),
            (
                &RJT,
                CtCommand::GID_FT,
                NsResponse::gid_ft(vec![]),
                "RJT reason=unable to perform (0x09) explanation=FC-4 TYPEs not registered (0x07)",
            ),
        ]
    }

    #[test]
    fn test_parse() {
        for (bytes, repr, _) in requests() {
            assert_eq!(NsRequest::parse(bytes).as_ref(), Ok(&repr), "{repr}");
        }
        for (bytes, req, repr, _) in responses() {
            assert_eq!(NsResponse::parse(req, bytes).as_ref(), Ok(&repr), "{repr}");
        }
    }

    #[test]
    fn test_emit() {
        for (bytes, repr, _) in requests() {
            assert_eq!(repr.buffer_len(), bytes.len(), "{repr}");
            let out = repr.to_vec();
            assert_eq!(out, bytes, "{repr}");
            assert_eq!(NsRequest::parse(&out).as_ref(), Ok(&repr));
        }
        for (bytes, req, repr, _) in responses() {
            assert_eq!(repr.buffer_len(), bytes.len(), "{repr}");
            let out = repr.to_vec();
            assert_eq!(out, bytes, "{repr}");
            assert_eq!(NsResponse::parse(req, &out).as_ref(), Ok(&repr));
        }
    }

    #[test]
    fn test_display() {
        for (_, repr, text) in requests() {
            assert_eq!(repr.to_string(), text);
        }
        for (_, _, repr, text) in responses() {
            assert_eq!(repr.to_string(), text);
        }
        let scoped = NsRequestBody::GidFt(GidFt {
            domain_scope: 1,
            area_scope: 2,
            fc4_type: 8,
        });
        assert_eq!(scoped.to_string(), "GID_FT type=0x08 domain=01 area=02");
        let odd = NsReject {
            reason: CtReason(0x42),
            explanation: NsExplanation(0x99),
            vendor: 3,
        };
        assert_eq!(
            odd.to_string(),
            "RJT reason=0x42 explanation=0x99 vendor=0x03"
        );
        let many = NsAccept::GidFt((0..20).map(|p| FcId::from_parts(1, 1, p)).collect());
        assert!(many
            .to_string()
            .starts_with("GID_FT 20 ports: 010100 010101 "));
        assert!(many.to_string().ends_with(" 01010f ..."));
        assert_eq!(
            NsAccept::GidFt(vec![P1]).to_string(),
            "GID_FT 1 port: 010100"
        );
        let name = SymbolicName::new(&b"a\"\x00"[..]).unwrap();
        assert_eq!(name.to_string(), "a\\\"\\x00");
    }

    #[test]
    fn test_preamble_fields_kept() {
        let mut b = GPN_ID;
        b[1..4].copy_from_slice(&[0x0a, 0x0b, 0x0c]); // IN_ID
        b[6] = 0x80; // options
        b[10..12].copy_from_slice(&[0x00, 0x02]); // max size 2
        b[12] = 0x05; // fragment ID
        b[13] = 0x09; // reason bytes in a request are ignored
        let r = NsRequest::parse(&b).unwrap();
        assert_eq!(r.in_id, FcId::from_parts(0x0a, 0x0b, 0x0c));
        assert_eq!((r.options, r.max_size, r.fragment_id), (0x80, 2, 5));
        let acc = r.accept(NsAccept::GpnId(WWPN));
        assert_eq!(acc.in_id, r.in_id);
        assert_eq!(acc.preamble().command, CtCommand::FS_ACC);
        let rjt = r.reject(CtReason::COMMAND_NOT_SUPPORTED, NsExplanation::NONE);
        assert_eq!(rjt.to_vec(), hex!("010a0b0c fc020000 80010000 000b0000"));
    }

    #[test]
    fn test_gid_ft_stops_at_last_and_ignores_trailing() {
        // A count-free list: two entries, the second flagged last, then junk and a third
        // entry that must not be read.
        let mut b = ACC_GID_FT[..24].to_vec();
        b[20] = 0x80;
        b.extend_from_slice(&hex!("00030300 ffff"));
        let r = NsResponse::parse(CtCommand::GID_FT, &b).unwrap();
        assert_eq!(
            r.body,
            NsResponseBody::Accept(NsAccept::GidFt(vec![P1, P2]))
        );
    }

    #[test]
    fn test_gid_ft_unterminated() {
        let mut b = ACC_GID_FT;
        b[24] = 0x00; // clear the last flag
        let err = NsResponse::parse(CtCommand::GID_FT, &b).unwrap_err();
        assert_eq!(err, CtError::UnterminatedPortList(3));
        assert_eq!(err.reject_reason(), CtReason::PROTOCOL_ERROR);
        // An accept with no entries at all.
        let err = NsResponse::parse(CtCommand::GID_FT, &ACC_EMPTY).unwrap_err();
        assert_eq!(err, CtError::UnterminatedPortList(0));
        assert_eq!(
            err.to_string(),
            "port list: none of the 0 complete entries is flagged last"
        );
    }

    #[test]
    fn test_rspn_id_length_beyond_bytes() {
        let mut b = RSPN_ID;
        b[20] = 8; // claims 8 name bytes; 7 are present (5 + 2 padding)
        let err = NsRequest::parse(&b).unwrap_err();
        assert_eq!(
            err,
            CtError::SymbolicNameLength {
                declared: 8,
                present: 7
            }
        );
        assert_eq!(err.reject_reason(), CtReason::INVALID_IU_SIZE);
        b[20] = 7; // the padding counts as name bytes when the length says so
        let r = NsRequest::parse(&b).unwrap();
        let NsRequestBody::RspnId { name, .. } = r.body else {
            panic!("{r:?}")
        };
        assert_eq!(name.as_bytes(), b"fcsan\0\0");
    }

    #[test]
    fn test_symbolic_name_too_long() {
        assert_eq!(
            SymbolicName::new(vec![b'x'; 256]),
            Err(CtError::SymbolicNameTooLong(256))
        );
        assert_eq!(SymbolicName::new(vec![b'x'; 255]).map(|n| n.len()), Ok(255));
        assert_eq!(
            CtError::SymbolicNameTooLong(256).reject_reason(),
            CtReason::LOGICAL_ERROR
        );
    }

    #[test]
    fn test_not_name_server() {
        let mut b = GID_FT;
        b[4] = 0xFA; // management service
        let err = NsRequest::parse(&b).unwrap_err();
        assert_eq!(
            err,
            CtError::NotNameServer {
                gs_type: GsType::MANAGEMENT,
                gs_subtype: GsSubtype(0x02)
            }
        );
        assert_eq!(err.reject_reason(), CtReason::SERVER_NOT_AVAILABLE);
        let mut b = ACC_GPN_ID;
        b[5] = 0x03; // IP address server
        assert!(matches!(
            NsResponse::parse(CtCommand::GPN_ID, &b),
            Err(CtError::NotNameServer {
                gs_subtype: GsSubtype(0x03),
                ..
            })
        ));
    }

    #[test]
    fn test_bad_revision() {
        let mut b = GID_FT;
        b[0] = 0x03;
        assert_eq!(NsRequest::parse(&b), Err(CtError::BadRevision(0x03)));
        let mut b = RJT;
        b[0] = 0x00;
        assert_eq!(
            NsResponse::parse(CtCommand::GID_FT, &b),
            Err(CtError::BadRevision(0x00))
        );
    }

    #[test]
    fn test_not_a_response() {
        let err = NsResponse::parse(CtCommand::GID_FT, &GID_FT).unwrap_err();
        assert_eq!(err, CtError::NotAResponse(CtCommand::GID_FT));
        assert_eq!(
            err.to_string(),
            "CT_IU command code GID_FT is neither FS_ACC nor FS_RJT"
        );
    }

    #[test]
    fn test_unknown_command_is_data() {
        let r = NsRequest::parse(&GPN_FT).unwrap();
        assert_eq!(r.command(), CtCommand::GPN_FT);
        // What a server does with it:
        let rjt = r.reject(CtReason::COMMAND_NOT_SUPPORTED, NsExplanation::NONE);
        assert_eq!(
            rjt.to_string(),
            "RJT reason=command not supported (0x0b) explanation=no additional explanation (0x00)"
        );
    }

    #[test]
    fn test_truncated() {
        // Requests: every prefix short of the unpadded body fails.
        for (bytes, repr, _) in requests() {
            let end = match &repr.body {
                NsRequestBody::RspnId { name, .. } => 21 + name.as_bytes().len(),
                NsRequestBody::Unknown { .. } => PREAMBLE_LEN,
                _ => bytes.len(),
            };
            for len in 0..end {
                let err = NsRequest::parse(&bytes[..len]).unwrap_err();
                let want_len = matches!(err, CtError::Len(_));
                let want_name = matches!(err, CtError::SymbolicNameLength { .. });
                assert!(want_len || want_name, "{repr} at {len}: {err}");
            }
        }
        for (bytes, req, repr, _) in responses() {
            // An undecoded accept keeps whatever follows the preamble.
            let undecoded = matches!(repr.body, NsResponseBody::Accept(NsAccept::Other { .. }));
            let end = if undecoded { PREAMBLE_LEN } else { bytes.len() };
            for len in 0..end {
                let err = NsResponse::parse(req, &bytes[..len]).unwrap_err();
                let ok = matches!(err, CtError::Len(_) | CtError::UnterminatedPortList(_));
                assert!(ok, "{repr} at {len}: {err}");
            }
        }
        assert_eq!(
            NsRequest::parse(&RFT_ID[..30]),
            Err(CtError::Len(LenError {
                layer: Layer::NameServer,
                required: 52,
                actual: 30
            }))
        );
    }

    #[test]
    fn test_fc4_types_bit_order() {
        let mut t = Fc4Types::new();
        assert!(t.is_empty());
        assert_eq!(t.to_string(), "none");
        t.insert(FC4_TYPE_FCP);
        assert_eq!(t.0[..4], [0x00, 0x00, 0x01, 0x00]);
        t.insert(0x00);
        t.insert(0x1F);
        assert_eq!(t.0[..4], [0x80, 0x00, 0x01, 0x01]);
        t.insert(FC4_TYPE_CT); // word 1, bit 0
        assert_eq!(t.0[4..8], [0, 0, 0, 0x01]);
        t.insert(0xFF); // word 7, bit 31
        assert_eq!(t.0[28], 0x80);
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            vec![0x00, 0x08, 0x1F, 0x20, 0xFF]
        );
        assert!(t.contains(0x08) && !t.contains(0x09));
        t.remove(0x08);
        assert!(!t.contains(0x08));
        assert_eq!(t.to_string(), "0x00,0x1f,0x20,0xff");
    }

    #[test]
    fn test_fc4_feature_map_nibbles() {
        let mut m = Fc4FeatureMap::new();
        m.set(FC4_TYPE_FCP, Fc4Features::INITIATOR | Fc4Features::TARGET);
        assert_eq!(m.0[7], 0x03); // word 1, nibble 0: low nibble of byte 7 (as lpfc reads it)
        m.set(0x09, Fc4Features::INITIATOR);
        assert_eq!(m.0[7], 0x23); // nibble 1: high nibble of byte 7
        m.set(0x0F, Fc4Features::TARGET);
        assert_eq!(m.0[4], 0x10); // nibble 7: high nibble of byte 4
        m.set(0x00, Fc4Features::from_bits_retain(0xFF)); // only four bits fit
        assert_eq!(m.0[3], 0x0F);
        m.set(0xFF, Fc4Features::TARGET);
        assert_eq!(m.0[124], 0x10);
        assert_eq!(
            m.get(FC4_TYPE_FCP),
            Fc4Features::INITIATOR | Fc4Features::TARGET
        );
        assert_eq!(m.get(0x0A), Fc4Features::empty());
        assert_eq!(
            m.to_string(),
            "0x00=initiator+target+0x0c 0x08=initiator+target 0x09=initiator 0x0f=target 0xff=target"
        );
        assert_eq!(Fc4FeatureMap::default().to_string(), "none");
        assert_eq!(Fc4Features::empty().to_string(), "none");
    }

    #[test]
    fn test_code_names() {
        assert_eq!(
            NsExplanation::FC4_TYPES_NOT_REGISTERED.to_string(),
            "FC-4 TYPEs not registered"
        );
        assert_eq!(NsExplanation(0x77).to_string(), "0x77");
        assert_eq!(PortType::N_PORT.to_string(), "N_Port");
        assert_eq!(PortType(0x10).to_string(), "0x10");
    }

    proptest! {
        #[test]
        fn prop_request_round_trip(r in strategies::request()) {
            let bytes = r.to_vec();
            prop_assert_eq!(bytes.len(), r.buffer_len());
            if !matches!(r.body, NsRequestBody::Unknown { .. }) {
                prop_assert_eq!(bytes.len() % 4, 0);
            }
            prop_assert_eq!(NsRequest::parse(&bytes), Ok(r));
        }

        #[test]
        fn prop_response_round_trip(r in strategies::response()) {
            let bytes = r.to_vec();
            prop_assert_eq!(bytes.len(), r.buffer_len());
            let request = match &r.body {
                NsResponseBody::Accept(a) => a.request(),
                NsResponseBody::Reject(_) => CtCommand::GID_FT,
            };
            prop_assert_eq!(NsResponse::parse(request, &bytes), Ok(r));
        }

        #[test]
        fn prop_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..3000)) {
            if let Ok(r) = NsRequest::parse(&buf) {
                let _ = r.to_string();
                prop_assert_eq!(NsRequest::parse(&r.to_vec()), Ok(r));
            }
            for cmd in strategies::DECODED.into_iter().chain([CtCommand(0x0999)]) {
                if let Ok(r) = NsResponse::parse(cmd, &buf) {
                    let _ = r.to_string();
                    prop_assert_eq!(NsResponse::parse(cmd, &r.to_vec()), Ok(r));
                }
            }
        }

        /// Random bodies behind a valid name server preamble reach the body decoders.
        #[test]
        fn prop_bodies_never_panic(
            cmd_index in 0..strategies::DECODED.len(),
            response in any::<bool>(),
            body in proptest::collection::vec(any::<u8>(), 0..700),
        ) {
            let cmd = strategies::DECODED[cmd_index];
            let preamble = if response {
                CtPreambleRepr::name_server_accept()
            } else {
                CtPreambleRepr::name_server_request(cmd)
            };
            let mut buf = preamble.to_vec();
            buf.extend_from_slice(&body);
            if response {
                if let Ok(r) = NsResponse::parse(cmd, &buf) {
                    let _ = r.to_string();
                    prop_assert_eq!(NsResponse::parse(cmd, &r.to_vec()), Ok(r));
                }
            } else if let Ok(r) = NsRequest::parse(&buf) {
                let _ = r.to_string();
                prop_assert_eq!(NsRequest::parse(&r.to_vec()), Ok(r));
            }
        }
    }
}
