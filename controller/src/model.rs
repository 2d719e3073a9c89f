//! What controllers keep and exchange (PATENT.md figures 3 and 4): common volume names, the
//! records of the common mapping with their owner's version, version vectors, real extents and
//! their media types.
//!
//! A record is keyed by its owner and its name ([`RecordKey`]): only the owner writes it, so two
//! owners never write one key and replication needs no merge beyond "the higher (generation,
//! version) wins". Two owners that built one name during a partition hold two records of that
//! name until the loser renames its own ([`winner`] says which one the name means meanwhile).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use fc_frames::{FcId, Wwn};

/// Longest common volume name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// A common virtual volume name: unique system-wide, 1 to 64 bytes of ASCII letters, digits,
/// `.`, `_`, `-` and `~` (the last marks a name a conflict gave).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VolumeName(String);

/// Why a volume name is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty.
    #[error("a volume name may not be empty")]
    Empty,
    /// Longer than [`MAX_NAME_LEN`].
    #[error("a volume name has at most {MAX_NAME_LEN} bytes, not {0}")]
    TooLong(usize),
    /// A character outside the allowed set.
    #[error("a volume name holds only letters, digits, '.', '_', '-' and '~', not {0:?}")]
    BadChar(char),
}

impl VolumeName {
    /// Checks `name`.
    pub fn new(name: impl Into<String>) -> Result<VolumeName, NameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(name.len()));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '~')))
        {
            return Err(NameError::BadChar(c));
        }
        Ok(VolumeName(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VolumeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for VolumeName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VolumeName::new(s)
    }
}

/// The kind of real volume (PATENT.md figure 3 (b)): what a builder asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MediaType {
    /// Solid state (VPD 0xB1 rotation rate 1).
    Ssd,
    /// Fast disk (10000 rpm and up).
    FastHdd,
    /// Slow disk.
    SlowHdd,
    /// Tape drive (peripheral device type 1).
    Tape,
}

impl MediaType {
    /// Every type, in code order.
    pub const ALL: [MediaType; 4] = [
        MediaType::Ssd,
        MediaType::FastHdd,
        MediaType::SlowHdd,
        MediaType::Tape,
    ];

    /// The name operators type and the API shows.
    pub const fn name(self) -> &'static str {
        match self {
            MediaType::Ssd => "ssd",
            MediaType::FastHdd => "fast-hdd",
            MediaType::SlowHdd => "slow-hdd",
            MediaType::Tape => "tape",
        }
    }

    /// The code on the wire.
    pub const fn code(self) -> u8 {
        match self {
            MediaType::Ssd => 1,
            MediaType::FastHdd => 2,
            MediaType::SlowHdd => 3,
            MediaType::Tape => 4,
        }
    }

    /// The type of a wire code.
    pub const fn from_code(code: u8) -> Option<MediaType> {
        match code {
            1 => Some(MediaType::Ssd),
            2 => Some(MediaType::FastHdd),
            3 => Some(MediaType::SlowHdd),
            4 => Some(MediaType::Tape),
            _ => None,
        }
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for MediaType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ssd" => Ok(MediaType::Ssd),
            "fast-hdd" | "fast_hdd" | "fasthdd" | "fast" => Ok(MediaType::FastHdd),
            "slow-hdd" | "slow_hdd" | "slowhdd" | "slow" | "hdd" => Ok(MediaType::SlowHdd),
            "tape" => Ok(MediaType::Tape),
            other => Err(format!(
                "unknown media type {other:?} (ssd, fast-hdd, slow-hdd or tape)"
            )),
        }
    }
}

/// The owner's stamp on a record: its generation (taken anew when it lost its database) and
/// its version within the generation. Ordered generation first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stamp {
    /// The owner's generation.
    pub generation: u32,
    /// The owner's version in that generation; versions are dense from 1.
    pub version: u64,
}

impl Stamp {
    /// Nothing seen yet.
    pub const ZERO: Stamp = Stamp {
        generation: 0,
        version: 0,
    };

    /// A stamp.
    pub const fn new(generation: u32, version: u64) -> Stamp {
        Stamp {
            generation,
            version,
        }
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.generation, self.version)
    }
}

/// Per owner, the highest stamp applied: what a controller has of each owner's log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VersionVector(pub BTreeMap<Wwn, Stamp>);

impl VersionVector {
    /// The stamp of `owner` (zero when none).
    pub fn get(&self, owner: Wwn) -> Stamp {
        self.0.get(&owner).copied().unwrap_or(Stamp::ZERO)
    }

    /// Raises `owner`'s stamp to `stamp` if it is higher.
    pub fn raise(&mut self, owner: Wwn, stamp: Stamp) {
        let e = self.0.entry(owner).or_insert(Stamp::ZERO);
        if stamp > *e {
            *e = stamp;
        }
    }

    /// Whether every entry of `other` is at most this vector's.
    pub fn covers(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(o, s)| self.get(*o) >= *s)
    }
}

/// A controller as the mapping names it (figure 4 (a): manager name and address).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ControllerRef {
    /// Its name (unique in the installation).
    pub name: String,
    /// Its N_Port_Name: the owner key.
    pub wwpn: Wwn,
    /// Its N_Port_ID when the record was written.
    pub fc_id: FcId,
    /// The site (SAN) it manages.
    pub site: String,
}

/// A volume's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VolumeState {
    /// Every extent is on a real volume that is present.
    Online,
    /// Some extent is on a real volume that vanished; the volume stays mapped.
    Degraded,
    /// Built under a name another owner won; kept under a new name for an operator to resolve.
    Conflict,
}

impl VolumeState {
    /// The name the API shows.
    pub const fn name(self) -> &'static str {
        match self {
            VolumeState::Online => "online",
            VolumeState::Degraded => "degraded",
            VolumeState::Conflict => "conflict",
        }
    }

    /// The code on the wire.
    pub const fn code(self) -> u8 {
        match self {
            VolumeState::Online => 1,
            VolumeState::Degraded => 2,
            VolumeState::Conflict => 3,
        }
    }

    /// The state of a wire code.
    pub const fn from_code(code: u8) -> Option<VolumeState> {
        match code {
            1 => Some(VolumeState::Online),
            2 => Some(VolumeState::Degraded),
            3 => Some(VolumeState::Conflict),
            _ => None,
        }
    }
}

impl fmt::Display for VolumeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A piece of a real volume: `blocks` blocks from `start` of LUN `lun` of the array port
/// `array`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RealExtent {
    /// The array's N_Port_Name.
    pub array: Wwn,
    /// The array's N_Port_ID when the extent was recorded (figure 3's "FC address").
    pub array_id: FcId,
    /// The LUN (SAM-5 single level, as REPORT LUNS gives it).
    pub lun: u64,
    /// First logical block.
    pub start: u64,
    /// Length in logical blocks.
    pub blocks: u64,
    /// The LUN's logical block size in bytes.
    pub block_size: u32,
}

impl RealExtent {
    /// Length in bytes.
    pub const fn bytes(&self) -> u64 {
        self.blocks.saturating_mul(self.block_size as u64)
    }
}

/// One row of figure 4 (b): a virtual range of the volume on a real extent. Copy 0 is the
/// primary; copies 1.. are replicas of the same virtual range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapRow {
    /// First virtual sector ([`SECTOR`] bytes each) of the range.
    pub virtual_start: u64,
    /// The real extent (its `blocks` × `block_size` bytes of virtual space).
    pub real: RealExtent,
    /// 0 for the primary, 1.. for replicas.
    pub copy: u8,
}

/// The size of a virtual sector: virtual ranges count in these.
pub const SECTOR: u64 = 512;

/// What the mapping says of a live volume (figure 4 (a) and (b)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VolumeBody {
    /// The owning controller.
    pub owner: ControllerRef,
    /// The owner's local name of the volume.
    pub local_name: String,
    /// Capacity in bytes.
    pub capacity: u64,
    /// State.
    pub state: VolumeState,
    /// When the builder claimed the name (milliseconds since the Unix epoch): with the owner's
    /// WWPN it settles who won a name ([`winner`]).
    pub claimed_at: u64,
    /// The media type asked for.
    pub media: MediaType,
    /// The sector map.
    pub rows: Vec<MapRow>,
    /// Host WWPNs that may see the volume; empty: every host.
    pub masking: Vec<Wwn>,
}

/// A record's identity: owner and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey {
    /// The owner's WWPN.
    pub owner: Wwn,
    /// The common volume name.
    pub name: VolumeName,
}

/// One record of the common mapping: a live volume, or the tombstone a delete leaves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// Owner and name.
    pub key: RecordKey,
    /// The owner's stamp of the change that wrote this record.
    pub stamp: Stamp,
    /// The volume; `None` for a tombstone.
    pub body: Option<VolumeBody>,
}

impl Record {
    /// Whether this is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.body.is_none()
    }
}

/// Of two live records of one name, the one the name means: the lower (claim time, owner
/// WWPN). Deterministic, so every controller picks the same.
pub fn winner<'a>(a: &'a Record, b: &'a Record) -> &'a Record {
    let ka = (
        a.body.as_ref().map_or(u64::MAX, |b| b.claimed_at),
        a.key.owner,
    );
    let kb = (
        b.body.as_ref().map_or(u64::MAX, |b| b.claimed_at),
        b.key.owner,
    );
    if ka <= kb {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_volume_name_rules() {
        assert!(VolumeName::new("vol-1.a_b~c").is_ok());
        assert_eq!(VolumeName::new(""), Err(NameError::Empty));
        assert_eq!(VolumeName::new("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(VolumeName::new("x".repeat(65)), Err(NameError::TooLong(65)));
        assert!(VolumeName::new("x".repeat(64)).is_ok());
    }

    #[test]
    fn test_stamp_order() {
        assert!(Stamp::new(2, 1) > Stamp::new(1, 99));
        assert!(Stamp::new(1, 2) > Stamp::new(1, 1));
    }

    #[test]
    fn test_media_type_parse() {
        for m in MediaType::ALL {
            assert_eq!(m.name().parse::<MediaType>(), Ok(m));
            assert_eq!(MediaType::from_code(m.code()), Some(m));
        }
        assert!("floppy".parse::<MediaType>().is_err());
    }
}
