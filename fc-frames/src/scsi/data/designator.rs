//! Designation descriptors (SPC-4 §7.8.6.1): the identifiers of the device identification VPD
//! page 0x83, also used as the provisioning group descriptor of page 0xB2.
//!
//! ```text
//!  byte  7   6   5   4   3   2   1   0
//!   0   | PROTOCOL IDENTIFIER |   CODE SET    |
//!   1   |PIV|res| ASSOC |  DESIGNATOR TYPE    |
//!   2   |            reserved               |
//!   3   |       DESIGNATOR LENGTH (n-3)     |
//!  4-n  |            DESIGNATOR             |
//! ```
//!
//! Designators an FCP target reports (after LIO and SPC-4 §7.8.6): an NAA logical unit name
//! (association 0), and for the target port that received the INQUIRY (association 1, PIV set,
//! protocol FCP): its N_Port_Name as NAA, its relative target port identifier and, with ALUA, its
//! target port group.

use core::fmt;

use crate::addr::Wwn;
use crate::error::{Layer, LenError};
use crate::scsi::data::{ascii_field, ascii_text, DataError};

/// Bytes of a designation descriptor header.
pub const DESIGNATOR_HEADER_LEN: usize = 4;

/// PROTOCOL IDENTIFIER (SPC-4 Table 362): four bits. Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProtocolId(pub u8);

impl ProtocolId {
    /// Fibre Channel (FCP-4).
    pub const FCP: ProtocolId = ProtocolId(0x0);
    /// Parallel SCSI (SPI-5).
    pub const SPI: ProtocolId = ProtocolId(0x1);
    /// SSA.
    pub const SSA: ProtocolId = ProtocolId(0x2);
    /// IEEE 1394 (SBP-3).
    pub const SBP: ProtocolId = ProtocolId(0x3);
    /// RDMA (SRP).
    pub const SRP: ProtocolId = ProtocolId(0x4);
    /// iSCSI.
    pub const ISCSI: ProtocolId = ProtocolId(0x5);
    /// SAS serial SCSI protocol.
    pub const SAS: ProtocolId = ProtocolId(0x6);
    /// Automation/drive interface (ADT-2).
    pub const ADT: ProtocolId = ProtocolId(0x7);
    /// ATA/ATAPI.
    pub const ATA: ProtocolId = ProtocolId(0x8);
    /// USB attached SCSI.
    pub const UAS: ProtocolId = ProtocolId(0x9);
    /// SCSI over PCI Express (SOP).
    pub const SOP: ProtocolId = ProtocolId(0xA);
    /// No specific protocol.
    pub const NONE: ProtocolId = ProtocolId(0xF);
}

/// CODE SET of a designation descriptor: four bits. Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CodeSet(pub u8);

impl CodeSet {
    /// Binary values.
    pub const BINARY: CodeSet = CodeSet(0x1);
    /// ASCII printable characters.
    pub const ASCII: CodeSet = CodeSet(0x2);
    /// UTF-8.
    pub const UTF8: CodeSet = CodeSet(0x3);
}

/// ASSOCIATION of a designation descriptor: two bits. Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Association(pub u8);

impl Association {
    /// The addressed logical unit.
    pub const LOGICAL_UNIT: Association = Association(0);
    /// The target port that received the request.
    pub const TARGET_PORT: Association = Association(1);
    /// The SCSI target device that contains the logical unit.
    pub const TARGET_DEVICE: Association = Association(2);
}

/// DESIGNATOR TYPE (SPC-4 Table 592): four bits. Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DesignatorType(pub u8);

impl DesignatorType {
    /// Vendor specific.
    pub const VENDOR_SPECIFIC: DesignatorType = DesignatorType(0x0);
    /// T10 vendor ID based: 8-byte T10 vendor identification, then vendor-specific data.
    pub const T10_VENDOR_ID: DesignatorType = DesignatorType(0x1);
    /// EUI-64 based.
    pub const EUI64: DesignatorType = DesignatorType(0x2);
    /// NAA (a WWN: 8 bytes, or 16 for NAA 6).
    pub const NAA: DesignatorType = DesignatorType(0x3);
    /// Relative target port identifier.
    pub const RELATIVE_TARGET_PORT: DesignatorType = DesignatorType(0x4);
    /// Target port group.
    pub const TARGET_PORT_GROUP: DesignatorType = DesignatorType(0x5);
    /// Logical unit group.
    pub const LOGICAL_UNIT_GROUP: DesignatorType = DesignatorType(0x6);
    /// MD5 logical unit identifier.
    pub const MD5_LU: DesignatorType = DesignatorType(0x7);
    /// SCSI name string.
    pub const SCSI_NAME_STRING: DesignatorType = DesignatorType(0x8);
    /// Protocol specific port identifier.
    pub const PROTOCOL_SPECIFIC_PORT: DesignatorType = DesignatorType(0x9);
}

/// A designation descriptor (SPC-4 §7.8.6.1).
///
/// ```text
///  byte  7   6   5   4   3   2   1   0
///   0   | PROTOCOL IDENTIFIER |   CODE SET    |
///   1   |PIV|res| ASSOC |  DESIGNATOR TYPE    |
///   2   |            reserved               |
///   3   |       DESIGNATOR LENGTH (n-3)     |
///  4-n  |            DESIGNATOR             |
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Designator {
    /// PROTOCOL IDENTIFIER (low four bits emitted); meaningful only with `piv`.
    pub protocol: ProtocolId,
    /// CODE SET (low four bits emitted).
    pub code_set: CodeSet,
    /// PIV: the protocol identifier is valid (only for target port / target device designators).
    pub piv: bool,
    /// ASSOCIATION (low two bits emitted).
    pub association: Association,
    /// DESIGNATOR TYPE (low four bits emitted).
    pub designator_type: DesignatorType,
    /// DESIGNATOR; at most 255 bytes are emitted.
    pub value: Vec<u8>,
}

impl Designator {
    /// A designator with protocol 0 and PIV clear.
    pub fn new(
        association: Association,
        designator_type: DesignatorType,
        code_set: CodeSet,
        value: Vec<u8>,
    ) -> Designator {
        Designator {
            protocol: ProtocolId::FCP,
            code_set,
            piv: false,
            association,
            designator_type,
            value,
        }
    }

    /// The same designator marked as valid for Fibre Channel (PIV set, protocol FCP).
    pub fn for_fcp(self) -> Designator {
        Designator {
            protocol: ProtocolId::FCP,
            piv: true,
            ..self
        }
    }

    /// A logical unit NAA designator from an 8-byte NAA name (NAA 2, 3 or 5, WWN-like).
    pub fn lu_naa(name: Wwn) -> Designator {
        Designator::new(
            Association::LOGICAL_UNIT,
            DesignatorType::NAA,
            CodeSet::BINARY,
            name.0.to_vec(),
        )
    }

    /// A logical unit NAA designator from a 16-byte NAA 6 (IEEE registered extended) name.
    pub fn lu_naa_extended(name: [u8; 16]) -> Designator {
        Designator::new(
            Association::LOGICAL_UNIT,
            DesignatorType::NAA,
            CodeSet::BINARY,
            name.to_vec(),
        )
    }

    /// The target port's N_Port_Name, as an FCP target port NAA designator.
    pub fn target_port_name(wwpn: Wwn) -> Designator {
        Designator::new(
            Association::TARGET_PORT,
            DesignatorType::NAA,
            CodeSet::BINARY,
            wwpn.0.to_vec(),
        )
        .for_fcp()
    }

    /// The target device's Node_Name, as an FCP target device NAA designator.
    pub fn target_device_name(wwnn: Wwn) -> Designator {
        Designator::new(
            Association::TARGET_DEVICE,
            DesignatorType::NAA,
            CodeSet::BINARY,
            wwnn.0.to_vec(),
        )
        .for_fcp()
    }

    /// The relative target port identifier (1 = port A) of the port that received the request.
    pub fn relative_target_port(id: u16) -> Designator {
        let [hi, lo] = id.to_be_bytes();
        Designator::new(
            Association::TARGET_PORT,
            DesignatorType::RELATIVE_TARGET_PORT,
            CodeSet::BINARY,
            vec![0, 0, hi, lo],
        )
        .for_fcp()
    }

    /// The target port group of the port that received the request (ALUA).
    pub fn target_port_group(group: u16) -> Designator {
        let [hi, lo] = group.to_be_bytes();
        Designator::new(
            Association::TARGET_PORT,
            DesignatorType::TARGET_PORT_GROUP,
            CodeSet::BINARY,
            vec![0, 0, hi, lo],
        )
        .for_fcp()
    }

    /// A T10 vendor ID based logical unit designator: 8-byte vendor field, then `id` (ASCII;
    /// non-graphic bytes become `?`; cut to fit 255 bytes).
    pub fn t10_vendor_id(vendor: &str, id: &str) -> Designator {
        let mut value = ascii_field::<8>(vendor).to_vec();
        value.extend(id.bytes().take(255 - 8).map(|b| {
            if (0x20..=0x7E).contains(&b) {
                b
            } else {
                b'?'
            }
        }));
        Designator::new(
            Association::LOGICAL_UNIT,
            DesignatorType::T10_VENDOR_ID,
            CodeSet::ASCII,
            value,
        )
    }

    /// An EUI-64 designator.
    pub fn eui64(association: Association, eui: [u8; 8]) -> Designator {
        Designator::new(
            association,
            DesignatorType::EUI64,
            CodeSet::BINARY,
            eui.to_vec(),
        )
    }

    /// A SCSI name string designator (UTF-8): SPC-4 requires it null terminated and padded with
    /// zeros to a multiple of four bytes; `name` is cut to fit 252 bytes.
    pub fn scsi_name_string(association: Association, name: &str) -> Designator {
        let mut end = name.len().min(251);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let mut value = name.as_bytes()[..end].to_vec();
        value.push(0);
        while value.len() % 4 != 0 {
            value.push(0);
        }
        Designator::new(
            association,
            DesignatorType::SCSI_NAME_STRING,
            CodeSet::UTF8,
            value,
        )
    }

    /// The name of an 8-byte NAA designator.
    pub fn naa_wwn(&self) -> Option<Wwn> {
        if self.designator_type != DesignatorType::NAA {
            return None;
        }
        let b: [u8; 8] = self.value.as_slice().try_into().ok()?;
        Some(Wwn(b))
    }

    /// The identifier of a relative target port designator.
    pub fn relative_port(&self) -> Option<u16> {
        self.four_byte_id(DesignatorType::RELATIVE_TARGET_PORT)
    }

    /// The group of a target port group designator.
    pub fn port_group(&self) -> Option<u16> {
        self.four_byte_id(DesignatorType::TARGET_PORT_GROUP)
    }

    fn four_byte_id(&self, t: DesignatorType) -> Option<u16> {
        match (self.designator_type == t, self.value.as_slice()) {
            (true, &[_, _, hi, lo]) => Some(u16::from_be_bytes([hi, lo])),
            _ => None,
        }
    }

    /// The text of a SCSI name string designator, without its terminating zeros.
    pub fn name_string(&self) -> Option<String> {
        if self.designator_type != DesignatorType::SCSI_NAME_STRING {
            return None;
        }
        let end = self
            .value
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.value.len());
        Some(String::from_utf8_lossy(&self.value[..end]).into_owned())
    }

    /// Bytes this descriptor takes: header plus designator (at most 255).
    pub fn buffer_len(&self) -> usize {
        DESIGNATOR_HEADER_LEN + self.value.len().min(255)
    }

    /// Parses one descriptor from the start of `buf`; returns it and the bytes it took.
    pub fn parse(buf: &[u8]) -> Result<(Designator, usize), DataError> {
        LenError::check(Layer::ScsiData, DESIGNATOR_HEADER_LEN, buf.len())?;
        let len = usize::from(buf[3]);
        let total = DESIGNATOR_HEADER_LEN + len;
        LenError::check(Layer::ScsiData, total, buf.len())?;
        let d = Designator {
            protocol: ProtocolId(buf[0] >> 4),
            code_set: CodeSet(buf[0] & 0x0F),
            piv: buf[1] & 0x80 != 0,
            association: Association((buf[1] >> 4) & 0x03),
            designator_type: DesignatorType(buf[1] & 0x0F),
            value: buf[DESIGNATOR_HEADER_LEN..total].to_vec(),
        };
        Ok((d, total))
    }

    /// The emitted bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// Writes the descriptor. Panics if `buf` is shorter than [`Designator::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.value.len().min(255);
        buf[0] = (self.protocol.0 & 0x0F) << 4 | (self.code_set.0 & 0x0F);
        buf[1] = u8::from(self.piv) << 7
            | (self.association.0 & 0x03) << 4
            | (self.designator_type.0 & 0x0F);
        buf[2] = 0;
        // len <= 255.
        buf[3] = len as u8;
        buf[DESIGNATOR_HEADER_LEN..DESIGNATOR_HEADER_LEN + len].copy_from_slice(&self.value[..len]);
    }
}

/// `naa.21000024ff000001@port`, `rtp=1@port`, `t10.FCSAN vdisk-1`, `name=...`, `type6=0001`.
impl fmt::Display for Designator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = |f: &mut fmt::Formatter<'_>| -> fmt::Result {
            for b in &self.value {
                write!(f, "{b:02x}")?;
            }
            Ok(())
        };
        match self.designator_type {
            DesignatorType::NAA => {
                f.write_str("naa.")?;
                hex(f)?;
            }
            DesignatorType::EUI64 => {
                f.write_str("eui.")?;
                hex(f)?;
            }
            DesignatorType::T10_VENDOR_ID => {
                let (v, id) = self.value.split_at(self.value.len().min(8));
                write!(f, "t10.{} {}", ascii_text(v), ascii_text(id))?;
            }
            DesignatorType::SCSI_NAME_STRING => {
                write!(f, "name={}", self.name_string().unwrap_or_default())?;
            }
            t => match self.four_byte_id(t) {
                Some(id) if t == DesignatorType::RELATIVE_TARGET_PORT => write!(f, "rtp={id}")?,
                Some(id) if t == DesignatorType::TARGET_PORT_GROUP => write!(f, "tpg={id}")?,
                _ => {
                    write!(f, "type{}=", t.0)?;
                    hex(f)?;
                }
            },
        }
        match self.association {
            Association::LOGICAL_UNIT => Ok(()),
            Association::TARGET_PORT => f.write_str("@port"),
            Association::TARGET_DEVICE => f.write_str("@device"),
            Association(a) => write!(f, "@assoc{a}"),
        }
    }
}

/// Walks the designation descriptors in `bytes`, which start at page offset `offset`.
/// `complete` says whether all PAGE LENGTH bytes are present: if so a descriptor that runs past
/// the end is an error; if not (allocation length truncation) it is dropped.
pub(crate) fn parse_designators(
    bytes: &[u8],
    offset: usize,
    complete: bool,
    page_length: u16,
) -> Result<Vec<Designator>, DataError> {
    let mut out = Vec::new();
    let mut at = 0;
    // Each step consumes at least DESIGNATOR_HEADER_LEN bytes, so the loop ends.
    while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
        match Designator::parse(rest) {
            Ok((d, used)) => {
                out.push(d);
                at += used;
            }
            Err(_) if !complete => break,
            Err(_) => {
                return Err(DataError::BadDesignatorLength {
                    offset: offset + at,
                    length: rest.get(3).copied().unwrap_or(0),
                    page_length,
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    use super::*;

    prop_compose! {
        pub(crate) fn designator()(
            protocol in 0u8..16,
            code_set in 0u8..16,
            piv in any::<bool>(),
            association in 0u8..4,
            designator_type in 0u8..16,
            value in proptest::collection::vec(any::<u8>(), 0..=255),
        ) -> Designator {
            Designator {
                protocol: ProtocolId(protocol),
                code_set: CodeSet(code_set),
                piv,
                association: Association(association),
                designator_type: DesignatorType(designator_type),
                value,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;

    /// A target port name: FCP, binary, PIV, target port, NAA, 8 bytes.
    static PORT_NAME: [u8; 12] = hex!("01 93 00 08 21 00 00 24 ff 00 00 01");

    #[test]
    fn test_parse() {
        let (d, used) = Designator::parse(&PORT_NAME).unwrap();
        assert_eq!(used, 12);
        assert_eq!(d.protocol, ProtocolId::FCP);
        assert_eq!(d.code_set, CodeSet::BINARY);
        assert!(d.piv);
        assert_eq!(d.association, Association::TARGET_PORT);
        assert_eq!(d.designator_type, DesignatorType::NAA);
        assert_eq!(d.naa_wwn(), Some(Wwn(hex!("21000024ff000001"))));
        assert_eq!(d.to_string(), "naa.21000024ff000001@port");
        // Bytes after the descriptor are not its own.
        let mut longer = PORT_NAME.to_vec();
        longer.extend([0xEE; 5]);
        assert_eq!(Designator::parse(&longer).unwrap(), (d, 12));
    }

    #[test]
    fn test_emit() {
        let d = Designator::target_port_name(Wwn(hex!("21000024ff000001")));
        assert_eq!(d.to_vec(), PORT_NAME);
        assert_eq!(Designator::parse(&d.to_vec()).unwrap(), (d, 12));
        let r = Designator::relative_target_port(0x0102);
        assert_eq!(r.to_vec(), hex!("01 94 00 04 00 00 01 02"));
        assert_eq!(r.relative_port(), Some(0x0102));
        assert_eq!(r.port_group(), None);
        let g = Designator::target_port_group(7);
        assert_eq!(g.to_vec(), hex!("01 95 00 04 00 00 00 07"));
        assert_eq!(g.port_group(), Some(7));
    }

    #[test]
    fn test_truncation() {
        for len in 0..PORT_NAME.len() {
            assert!(matches!(
                Designator::parse(&PORT_NAME[..len]),
                Err(DataError::Len(_))
            ));
        }
    }

    #[test]
    fn test_walk() {
        let two = [PORT_NAME, PORT_NAME].concat();
        assert_eq!(parse_designators(&two, 4, true, 24).unwrap().len(), 2);
        // Cut by an allocation length: the whole one kept.
        assert_eq!(
            parse_designators(&two[..20], 4, false, 24).unwrap().len(),
            1
        );
        // Cut within a complete page: an error naming the offset in the page.
        assert_eq!(
            parse_designators(&two[..20], 4, true, 20),
            Err(DataError::BadDesignatorLength {
                offset: 16,
                length: 8,
                page_length: 20
            })
        );
    }

    #[test]
    fn test_designator_constructors() {
        let t = Designator::t10_vendor_id("FCSAN", "vdisk-1");
        assert_eq!(t.code_set, CodeSet::ASCII);
        assert_eq!(&t.value, b"FCSAN   vdisk-1");
        assert_eq!(t.to_string(), "t10.FCSAN vdisk-1");
        let n = Designator::scsi_name_string(Association::TARGET_DEVICE, "fcsan:a");
        assert_eq!(&n.value, b"fcsan:a\0");
        assert_eq!(n.name_string().as_deref(), Some("fcsan:a"));
        assert_eq!(n.to_string(), "name=fcsan:a@device");
        let n = Designator::scsi_name_string(Association::TARGET_DEVICE, "abcd");
        assert_eq!(n.value.len(), 8);
        let e = Designator::eui64(Association::LOGICAL_UNIT, hex!("0011223344556677"));
        assert_eq!(e.to_string(), "eui.0011223344556677");
        let w = Designator::target_device_name(Wwn(hex!("20000024ff000001")));
        assert_eq!(w.to_vec(), hex!("01 a3 00 08 20000024ff000001"));
        let lu = Designator::lu_naa(Wwn(hex!("5000000000000001")));
        assert_eq!(lu.to_vec(), hex!("01 03 00 08 5000000000000001"));
        let other = Designator::new(
            Association(3),
            DesignatorType::LOGICAL_UNIT_GROUP,
            CodeSet::BINARY,
            vec![0, 1],
        );
        assert_eq!(other.to_string(), "type6=0001@assoc3");
    }

    proptest! {
        #[test]
        fn prop_round_trip(d in strategies::designator()) {
            let bytes = d.to_vec();
            prop_assert_eq!(Designator::parse(&bytes).unwrap(), (d, bytes.len()));
        }
    }
}
