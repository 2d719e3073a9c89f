//! Switch configuration: domain, names, time-out values and zoning.
//!
//! Zoning is by port name (WWPN, FC-GS-7 zone server "N_Port_Name" members). Two N_Ports see
//! each other when some zone of the active zone set holds both. When no zone set is active the
//! [`DefaultZone`] policy decides, and the default policy is [`DefaultZone::AllAccess`]: every
//! N_Port sees every other, as on a switch fresh out of the box. A port always sees itself.

use std::collections::{BTreeMap, BTreeSet};

use fc_frames::Wwn;

use crate::port::PortId;

/// Errors in a [`Config`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// FC-SW-6 assigns domain IDs 01-EF; 00 and F0-FF are reserved.
    #[error("domain ID {0:#04x} is outside 01..=ef")]
    BadDomain(u8),
    /// R_A_TOV must exceed E_D_TOV, and both must be non-zero.
    #[error(
        "time-out values R_A_TOV {r_a_tov} ms and E_D_TOV {e_d_tov} ms: need 0 < E_D_TOV < R_A_TOV"
    )]
    BadTimeouts {
        /// R_A_TOV in milliseconds.
        r_a_tov: u32,
        /// E_D_TOV in milliseconds.
        e_d_tov: u32,
    },
}

/// What two N_Ports see of each other when no zone set is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultZone {
    /// Every N_Port sees every other (the default).
    #[default]
    AllAccess,
    /// No N_Port sees another.
    NoAccess,
}

/// One zone: a name and the port names of its members.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Zone {
    /// The zone's name, for display.
    pub name: String,
    /// Member port names.
    pub members: BTreeSet<Wwn>,
}

impl Zone {
    /// A zone of the given members.
    pub fn new(name: impl Into<String>, members: impl IntoIterator<Item = Wwn>) -> Zone {
        Zone {
            name: name.into(),
            members: members.into_iter().collect(),
        }
    }
}

/// A zone set: the zones that are enforced together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZoneSet {
    /// The zone set's name, for display.
    pub name: String,
    /// Its zones.
    pub zones: Vec<Zone>,
}

/// Zoning: an optional active zone set and the policy without one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Zoning {
    /// The active zone set, if any.
    pub active: Option<ZoneSet>,
    /// What applies when no zone set is active.
    pub default_zone: DefaultZone,
}

impl Zoning {
    /// True when the ports named `a` and `b` may see each other: they are the same port, or
    /// some zone of the active zone set holds both, or no zone set is active and the default
    /// policy is all access.
    pub fn zoned(&self, a: Wwn, b: Wwn) -> bool {
        if a == b {
            return true;
        }
        match &self.active {
            Some(set) => set
                .zones
                .iter()
                .any(|z| z.members.contains(&a) && z.members.contains(&b)),
            None => self.default_zone == DefaultZone::AllAccess,
        }
    }

    /// True when the port named `w` may see some other port at all: a zone of the active zone
    /// set holds it and another member, or no zone set is active and the default policy is all
    /// access. This is what can be checked when only one end's name is known (a frame between
    /// domains, whose remote end this switch has no name for).
    pub fn sees_anyone(&self, w: Wwn) -> bool {
        match &self.active {
            Some(set) => set
                .zones
                .iter()
                .any(|z| z.members.contains(&w) && z.members.len() > 1),
            None => self.default_zone == DefaultZone::AllAccess,
        }
    }
}

/// The switch's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The domain ID, 01-EF: every N_Port ID this switch assigns starts with it.
    pub domain: u8,
    /// The switch's name (its WWN); F_Port names are derived from it unless given.
    pub switch_name: Wwn,
    /// The fabric name, sent in every FLOGI/FDISC LS_ACC.
    pub fabric_name: Wwn,
    /// The F_Ports, each with its port name (`None`: derived by [`Config::f_port_name`]). A
    /// node on F_Port `p` gets N_Port IDs `DD pp 00` (FLOGI) and `DD pp nn` (FDISC).
    pub f_ports: BTreeMap<PortId, Option<Wwn>>,
    /// R_A_TOV in milliseconds (sent in the FLOGI LS_ACC).
    pub r_a_tov: u32,
    /// E_D_TOV in milliseconds (sent in the FLOGI LS_ACC).
    pub e_d_tov: u32,
    /// Zoning.
    pub zoning: Zoning,
}

impl Config {
    /// A configuration with F_Ports `f_ports`, FC-FS defaults R_A_TOV 10 s and E_D_TOV 2 s,
    /// the fabric named after the switch, and no active zone set (all access).
    pub fn new(domain: u8, switch_name: Wwn, f_ports: impl IntoIterator<Item = PortId>) -> Config {
        Config {
            domain,
            switch_name,
            fabric_name: switch_name,
            f_ports: f_ports.into_iter().map(|p| (p, None)).collect(),
            r_a_tov: 10_000,
            e_d_tov: 2_000,
            zoning: Zoning::default(),
        }
    }

    /// Checks the domain ID and time-out values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0x01..=0xEF).contains(&self.domain) {
            return Err(ConfigError::BadDomain(self.domain));
        }
        if self.e_d_tov == 0 || self.r_a_tov <= self.e_d_tov {
            return Err(ConfigError::BadTimeouts {
                r_a_tov: self.r_a_tov,
                e_d_tov: self.e_d_tov,
            });
        }
        Ok(())
    }

    /// True when `port` is an F_Port (a node link); every other port is inter-switch.
    pub fn is_f_port(&self, port: PortId) -> bool {
        self.f_ports.contains_key(&port)
    }

    /// The F_Port's name: the configured one, or the switch name with its NAA set to 2 and
    /// the 12 vendor-specific bits replaced by the port number plus one (so it never equals
    /// the switch name of an NAA 2 switch whose vendor bits are zero).
    pub fn f_port_name(&self, port: PortId) -> Wwn {
        if let Some(Some(w)) = self.f_ports.get(&port) {
            return *w;
        }
        let base = self.switch_name.to_u64() & 0x0000_FFFF_FFFF_FFFF;
        let vendor = (u64::from(port.0) + 1) & 0xFFF;
        Wwn::from_u64((0x2 << 60) | (vendor << 48) | base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Wwn = Wwn::from_u64(0x2100_0000_0000_0001);
    const B: Wwn = Wwn::from_u64(0x2100_0000_0000_0002);
    const C: Wwn = Wwn::from_u64(0x2100_0000_0000_0003);

    #[test]
    fn default_zoning_is_all_access() {
        let z = Zoning::default();
        assert!(z.zoned(A, B));
        let none = Zoning {
            active: None,
            default_zone: DefaultZone::NoAccess,
        };
        assert!(!none.zoned(A, B));
        assert!(none.zoned(A, A));
    }

    #[test]
    fn active_zone_set_decides() {
        let z = Zoning {
            active: Some(ZoneSet {
                name: "cfg".into(),
                zones: vec![Zone::new("ab", [A, B]), Zone::new("bc", [B, C])],
            }),
            default_zone: DefaultZone::AllAccess,
        };
        assert!(z.zoned(A, B));
        assert!(z.zoned(C, B));
        assert!(!z.zoned(A, C));
        assert!(z.sees_anyone(A));
        let d = Wwn::from_u64(9);
        assert!(!z.sees_anyone(d));
    }

    #[test]
    fn validate_rejects_bad_domain_and_timeouts() {
        let mut c = Config::new(0x01, A, [PortId(1)]);
        assert_eq!(c.validate(), Ok(()));
        c.domain = 0xF0;
        assert_eq!(c.validate(), Err(ConfigError::BadDomain(0xF0)));
        c.domain = 0;
        assert_eq!(c.validate(), Err(ConfigError::BadDomain(0)));
        c.domain = 1;
        c.e_d_tov = 20_000;
        assert!(matches!(c.validate(), Err(ConfigError::BadTimeouts { .. })));
    }

    #[test]
    fn f_port_names_differ_per_port() {
        let mut c = Config::new(
            1,
            Wwn::from_u64(0x1000_0005_1e00_0001),
            [PortId(1), PortId(2)],
        );
        assert_eq!(
            c.f_port_name(PortId(1)),
            Wwn::from_u64(0x2002_0005_1e00_0001)
        );
        assert_ne!(c.f_port_name(PortId(1)), c.f_port_name(PortId(2)));
        c.f_ports.insert(PortId(2), Some(C));
        assert_eq!(c.f_port_name(PortId(2)), C);
        assert!(c.is_f_port(PortId(1)));
        assert!(!c.is_f_port(PortId(9)));
    }
}
