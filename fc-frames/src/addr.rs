//! Fibre Channel addresses: the 24-bit N_Port identifier (FC_ID) and the 64-bit Name_Identifier
//! (World Wide Name).
//!
//! FC-FS-4 §10 (address identifiers): an FC_ID is Domain (bits 23-16), Area (15-8) and Port (7-0).
//! Domains F0-FF are reserved; the well-known addresses FFFFF0-FFFFFF sit there.
//! FC-FS-4 §19 (Name_Identifier formats): the top four bits of a WWN are its NAA type.

use core::fmt;
use core::str::FromStr;

/// Errors for address values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// An FC_ID does not fit in 24 bits.
    #[error("FC_ID {0:#x} does not fit in 24 bits")]
    FcIdTooWide(u32),
    /// Text that is not an FC_ID (`0x011300`, `011300` or `01.13.00`).
    #[error("not an FC_ID: {0:?} (expected six hex digits such as 011300 or 01.13.00)")]
    BadFcIdText(String),
    /// Text that is not a WWN (`20:00:00:25:b5:00:00:01` or `20000025b5000001`).
    #[error("not a WWN: {0:?} (expected eight hex bytes such as 20:00:00:25:b5:00:00:01)")]
    BadWwnText(String),
}

/// A 24-bit Fibre Channel address identifier (N_Port ID, S_ID/D_ID of a frame header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FcId(u32);

impl FcId {
    /// Unidentified: the S_ID of an N_Port before fabric login.
    pub const UNIDENTIFIED: FcId = FcId(0x00_0000);
    /// Multicast server (FC-FS-4 Table 36).
    pub const MULTICAST_SERVER: FcId = FcId(0xFF_FFF5);
    /// Clock synchronization server.
    pub const CLOCK_SYNC_SERVER: FcId = FcId(0xFF_FFF6);
    /// Security key distribution server.
    pub const KEY_DISTRIBUTION_SERVER: FcId = FcId(0xFF_FFF7);
    /// Alias server.
    pub const ALIAS_SERVER: FcId = FcId(0xFF_FFF8);
    /// Quality of service facilitator.
    pub const QOS_FACILITATOR: FcId = FcId(0xFF_FFF9);
    /// Management server.
    pub const MANAGEMENT_SERVER: FcId = FcId(0xFF_FFFA);
    /// Time server.
    pub const TIME_SERVER: FcId = FcId(0xFF_FFFB);
    /// Directory server (name server).
    pub const DIRECTORY_SERVER: FcId = FcId(0xFF_FFFC);
    /// Fabric controller (RSCN, SCR).
    pub const FABRIC_CONTROLLER: FcId = FcId(0xFF_FFFD);
    /// F_Port controller (FLOGI/FDISC destination).
    pub const F_PORT_CONTROLLER: FcId = FcId(0xFF_FFFE);
    /// Broadcast alias.
    pub const BROADCAST: FcId = FcId(0xFF_FFFF);
    /// Domain controller of domain `d` is FFFC`dd`.
    pub const fn domain_controller(domain: u8) -> FcId {
        FcId(0xFF_FC00 | domain as u32)
    }

    /// An FC_ID from a value that must fit in 24 bits.
    pub const fn try_new(value: u32) -> Result<FcId, AddrError> {
        if value > 0xFF_FFFF {
            Err(AddrError::FcIdTooWide(value))
        } else {
            Ok(FcId(value))
        }
    }

    /// An FC_ID from its domain, area and port bytes.
    pub const fn from_parts(domain: u8, area: u8, port: u8) -> FcId {
        FcId((domain as u32) << 16 | (area as u32) << 8 | port as u32)
    }

    /// An FC_ID from the three bytes it occupies on the wire.
    pub const fn from_bytes(b: [u8; 3]) -> FcId {
        Self::from_parts(b[0], b[1], b[2])
    }

    /// The three wire bytes, most significant first.
    pub const fn to_bytes(self) -> [u8; 3] {
        [self.domain(), self.area(), self.port()]
    }

    /// The 24-bit value.
    pub const fn to_u32(self) -> u32 {
        self.0
    }

    /// Domain (bits 23-16): the switch.
    pub const fn domain(self) -> u8 {
        (self.0 >> 16) as u8
    }

    /// Area (bits 15-8).
    pub const fn area(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// Port (bits 7-0).
    pub const fn port(self) -> u8 {
        self.0 as u8
    }

    /// True for the well-known addresses FFFFF0-FFFFFF.
    pub const fn is_well_known(self) -> bool {
        self.0 >= 0xFF_FFF0
    }

    /// True for domain controller addresses FFFC01-FFFCFE.
    pub const fn is_domain_controller(self) -> bool {
        self.0 & 0xFF_FF00 == 0xFF_FC00 && self.port() != 0 && self.port() != 0xFF
    }
}

/// Shown as six hex digits, the notation of switch consoles and of the patent's tables (`011300`).
impl fmt::Display for FcId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06x}", self.0)
    }
}

impl FromStr for FcId {
    type Err = AddrError;

    /// Accepts `011300`, `0x011300` and Wireshark's `01.13.00`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AddrError::BadFcIdText(s.to_owned());
        let t = s.trim();
        let t = t.strip_prefix("0x").unwrap_or(t);
        let digits: String = t.chars().filter(|c| *c != '.').collect();
        if digits.len() != 6 || t.len() != 6 && t.len() != 8 {
            return Err(bad());
        }
        let v = u32::from_str_radix(&digits, 16).map_err(|_| bad())?;
        Ok(FcId(v))
    }
}

impl From<FcId> for u32 {
    fn from(id: FcId) -> u32 {
        id.0
    }
}

impl TryFrom<u32> for FcId {
    type Error = AddrError;
    fn try_from(v: u32) -> Result<Self, Self::Error> {
        FcId::try_new(v)
    }
}

/// Network Address Authority: the top four bits of a WWN (FC-FS-4 §19.2). Open: any 4-bit value
/// is data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Naa(pub u8);

impl Naa {
    /// IEEE 48-bit address (`10:00:...`).
    pub const IEEE: Naa = Naa(0x1);
    /// IEEE extended (`20:00:...`, `2x:xx:...`).
    pub const IEEE_EXTENDED: Naa = Naa(0x2);
    /// Locally assigned.
    pub const LOCALLY_ASSIGNED: Naa = Naa(0x3);
    /// IEEE registered (`5x:...`).
    pub const IEEE_REGISTERED: Naa = Naa(0x5);
    /// IEEE registered extended (`6x:...`).
    pub const IEEE_REGISTERED_EXTENDED: Naa = Naa(0x6);
}

/// A 64-bit World Wide Name (Port_Name, Node_Name, Fabric_Name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Wwn(pub [u8; 8]);

impl Wwn {
    /// The all-zero name, which FC-LS uses for "not present".
    pub const ZERO: Wwn = Wwn([0; 8]);

    /// A WWN from its 64-bit value.
    pub const fn from_u64(v: u64) -> Wwn {
        Wwn(v.to_be_bytes())
    }

    /// The 64-bit value.
    pub const fn to_u64(self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    /// The NAA type, the top four bits.
    pub const fn naa(self) -> Naa {
        Naa(self.0[0] >> 4)
    }

    /// An NAA 2 (IEEE extended) name: `2v:vv:oo:oo:oo:ss:ss:ss` with vendor-specific `v`
    /// (12 bits), IEEE OUI `o` and serial `s` (24 bits each).
    pub const fn ieee_extended(vendor: u16, oui: u32, serial: u32) -> Wwn {
        let v = (0x2u64 << 60)
            | ((vendor as u64 & 0xFFF) << 48)
            | ((oui as u64 & 0xFF_FFFF) << 24)
            | (serial as u64 & 0xFF_FFFF);
        Wwn::from_u64(v)
    }
}

/// Shown as eight colon-separated hex bytes: `20:00:00:25:b5:00:00:01`.
impl fmt::Display for Wwn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
        )
    }
}

impl FromStr for Wwn {
    type Err = AddrError;

    /// Accepts `20:00:00:25:b5:00:00:01`, `20-00-...`, `20000025b5000001` and `0x20000025b5000001`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AddrError::BadWwnText(s.to_owned());
        let t = s.trim();
        let t = t.strip_prefix("0x").unwrap_or(t);
        let digits: String = if t.contains([':', '-']) {
            let parts: Vec<&str> = t.split([':', '-']).collect();
            if parts.len() != 8 || parts.iter().any(|p| p.len() != 2) {
                return Err(bad());
            }
            parts.concat()
        } else {
            t.to_owned()
        };
        if digits.len() != 16 || !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let v = u64::from_str_radix(&digits, 16).map_err(|_| bad())?;
        Ok(Wwn::from_u64(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_fcid_parts() {
        let id = FcId::from_parts(0x01, 0x13, 0x00);
        assert_eq!(id.to_u32(), 0x011300);
        assert_eq!(id.domain(), 0x01);
        assert_eq!(id.area(), 0x13);
        assert_eq!(id.port(), 0x00);
        assert_eq!(id.to_bytes(), [0x01, 0x13, 0x00]);
        assert_eq!(FcId::from_bytes([0x01, 0x13, 0x00]), id);
        assert_eq!(id.to_string(), "011300");
    }

    #[test]
    fn test_fcid_try_new_rejects_wide() {
        assert_eq!(
            FcId::try_new(0x0100_0000),
            Err(AddrError::FcIdTooWide(0x0100_0000))
        );
        assert_eq!(FcId::try_new(0xFF_FFFC), Ok(FcId::DIRECTORY_SERVER));
    }

    #[test]
    fn test_fcid_well_known() {
        assert!(FcId::DIRECTORY_SERVER.is_well_known());
        assert!(FcId::F_PORT_CONTROLLER.is_well_known());
        assert!(!FcId::from_parts(1, 2, 3).is_well_known());
        assert!(FcId::domain_controller(5).is_domain_controller());
        assert_eq!(FcId::domain_controller(5).to_u32(), 0xFFFC05);
        assert!(!FcId::from_parts(0xFF, 0xFC, 0).is_domain_controller());
    }

    #[test]
    fn test_fcid_from_str() {
        let id = FcId::from_parts(0x02, 0x1a, 0x00);
        assert_eq!("021a00".parse(), Ok(id));
        assert_eq!("0x021a00".parse(), Ok(id));
        assert_eq!("02.1a.00".parse(), Ok(id));
        for bad in ["", "21a00", "0021a00", "02.1a.0", "zz1a00", "02:1a:00"] {
            assert!(bad.parse::<FcId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn test_wwn_display_parse() {
        let w = Wwn([0x20, 0x00, 0x00, 0x25, 0xb5, 0x00, 0x00, 0x01]);
        assert_eq!(w.to_string(), "20:00:00:25:b5:00:00:01");
        assert_eq!("20:00:00:25:b5:00:00:01".parse(), Ok(w));
        assert_eq!("20-00-00-25-B5-00-00-01".parse(), Ok(w));
        assert_eq!("20000025b5000001".parse(), Ok(w));
        assert_eq!("0x20000025b5000001".parse(), Ok(w));
        assert_eq!(w.naa(), Naa::IEEE_EXTENDED);
        assert_eq!(Wwn::from_u64(w.to_u64()), w);
        for bad in [
            "",
            "20:00",
            "20:00:00:25:b5:00:00:0",
            "20000025b500000g",
            "+0000025b5000001",
        ] {
            assert!(bad.parse::<Wwn>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn test_wwn_ieee_extended() {
        let w = Wwn::ieee_extended(0x000, 0x0025b5, 0x000001);
        assert_eq!(w.to_string(), "20:00:00:25:b5:00:00:01");
    }
}
