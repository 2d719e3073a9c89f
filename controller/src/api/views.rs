//! What the management API sends and receives, as JSON: the server ([`super`]) and the `fcsan
//! volume` client share these types, so the two cannot drift apart.
//!
//! Every view serializes to the JSON the README documents; addresses are text in the notation of
//! switch consoles and of PATENT.md's tables (WWPN `20:00:00:25:b5:00:00:01`, FC_ID `010200`),
//! media types and states are their lower-case names (`ssd`, `online`), capacities are bytes and
//! times are milliseconds. Views read from a server ignore fields they do not know, so a newer
//! server does not break an older client; the build request ([`BuildSpec::from_json`]) refuses
//! them, so a typo in a request is not silently dropped.
//!
//! | View | Route | PATENT.md |
//! |------|-------|-----------|
//! | [`VolumeView`], [`MapRowView`] | `GET /v1/volumes`, `GET /v1/volumes/{name}`, `POST /v1/volumes` | figure 4 (a), (b) |
//! | [`RealVolumesView`], [`RealVolumeView`], [`UseView`], [`FreeView`] | `GET /v1/real-volumes` | figure 3 (a), (b) |
//! | [`PeerView`], [`VersionView`] | `GET /v1/peers` | the peers of figure 5's exchange |
//! | [`CountersView`] | `GET /v1/counters` | |
//! | [`ReplicaSpec`], [`ReplicaState`] | `POST`, `GET /v1/volumes/{name}/replicas` | \[0098\]-\[0100\] |
//! | [`VolumeIoView`] | `GET /v1/volumes/{name}/io` | figure 6, \[0074\]-\[0078\] |
//! | [`MaskingSpec`] | `PUT /v1/volumes/{name}/masking` | |
//! | [`ErrorBody`], [`FoundView`] | every error | figure 7, S712 |

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use fc_frames::{FcId, Wwn};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{MapRow, MediaType, Record, Stamp, VolumeBody, VolumeName, VolumeState, SECTOR};

/// One common virtual volume: its row of figure 4 (a) with the rows of its sector map, figure
/// 4 (b).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeView {
    /// The common volume name, unique system-wide.
    #[serde(with = "text")]
    pub name: VolumeName,
    /// The owning controller's name (figure 4 (a): the manager).
    pub owner: String,
    /// The owning controller's N_Port_Name (figure 4 (a): the manager's address), e.g.
    /// `"20:00:00:25:b5:0a:00:01"`.
    #[serde(with = "text")]
    pub owner_wwpn: Wwn,
    /// The owning controller's N_Port_ID when the record was written, e.g. `"010200"`.
    #[serde(with = "text")]
    pub owner_fc_id: FcId,
    /// The site (SAN) the owner manages.
    pub site: String,
    /// The owner's local name of the volume (figure 4 (a): manager-local volume name).
    pub local_name: String,
    /// Capacity in bytes.
    pub capacity: u64,
    /// The media type asked for: `"ssd"`, `"fast-hdd"`, `"slow-hdd"` or `"tape"`.
    #[serde(with = "text")]
    pub media: MediaType,
    /// `"online"`, `"degraded"` (an extent is on a real volume that vanished) or `"conflict"`
    /// (built under a name another owner won, kept under a new name for an operator).
    #[serde(with = "state_text")]
    pub state: VolumeState,
    /// The owner's generation when it wrote the record.
    pub generation: u32,
    /// The owner's version of the change that wrote the record.
    pub version: u64,
    /// When the builder claimed the name, in milliseconds since the Unix epoch.
    pub claimed_at: u64,
    /// The sector map (figure 4 (b)), primary rows and replica rows, in the owner's order.
    pub rows: Vec<MapRowView>,
    /// The host WWPNs that may see the volume; empty: every host.
    #[serde(with = "text_vec")]
    pub masking: Vec<Wwn>,
}

impl VolumeView {
    /// The view of a live volume `name` whose owner wrote `body` with `stamp`.
    pub fn new(name: &VolumeName, stamp: Stamp, body: &VolumeBody) -> VolumeView {
        VolumeView {
            name: name.clone(),
            owner: body.owner.name.clone(),
            owner_wwpn: body.owner.wwpn,
            owner_fc_id: body.owner.fc_id,
            site: body.owner.site.clone(),
            local_name: body.local_name.clone(),
            capacity: body.capacity,
            media: body.media,
            state: body.state,
            generation: stamp.generation,
            version: stamp.version,
            claimed_at: body.claimed_at,
            rows: body.rows.iter().map(MapRowView::from).collect(),
            masking: body.masking.clone(),
        }
    }

    /// The view of a record; `None` for a tombstone, which the API never shows.
    pub fn from_record(record: &Record) -> Option<VolumeView> {
        let body = record.body.as_ref()?;
        Some(VolumeView::new(&record.key.name, record.stamp, body))
    }
}

/// One row of figure 4 (b): a range of virtual sectors on a range of a real volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapRowView {
    /// First virtual sector of the range, counted from 0 in 512-byte sectors.
    pub virtual_start: u64,
    /// Length of the range in 512-byte virtual sectors.
    pub sectors: u64,
    /// The array's N_Port_Name.
    #[serde(with = "text")]
    pub array: Wwn,
    /// The array's N_Port_ID when the row was written (figure 4 (b): storage FC address).
    #[serde(with = "text")]
    pub array_fc_id: FcId,
    /// The LUN on the array.
    pub lun: u64,
    /// First logical block on the LUN, counted from 0.
    pub real_start: u64,
    /// Length on the LUN in its logical blocks.
    pub blocks: u64,
    /// The LUN's logical block size in bytes.
    pub block_size: u32,
    /// 0 for the primary copy, 1 and up for replicas of the same virtual range.
    pub copy: u8,
}

/// The LUN number operators know (`3` for LUN 3) of a LUN's 8-byte code as REPORT LUNS gives
/// it; a LUN beyond the single-level form keeps its code.
pub fn lun_number(code: u64) -> u64 {
    crate::real::scsi_lun(code).index().map_or(code, u64::from)
}

impl From<&MapRow> for MapRowView {
    fn from(row: &MapRow) -> MapRowView {
        MapRowView {
            virtual_start: row.virtual_start,
            sectors: row.real.bytes() / SECTOR,
            array: row.real.array,
            array_fc_id: row.real.array_id,
            lun: lun_number(row.real.lun),
            real_start: row.real.start,
            blocks: row.real.blocks,
            block_size: row.real.block_size,
            copy: row.copy,
        }
    }
}

/// The answering controller's own SAN: its real volumes (figure 3 (a)) and their free space
/// by type (figure 3 (b)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealVolumesView {
    /// The answering controller's name.
    pub controller: String,
    /// Its site.
    pub site: String,
    /// Every real volume (LUN) it found on its site's arrays.
    pub volumes: Vec<RealVolumeView>,
    /// Free space per array and media type.
    pub free: Vec<FreeView>,
}

/// One real volume: a LUN of an array on the controller's site (figure 3 (a)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealVolumeView {
    /// The array's N_Port_Name.
    #[serde(with = "text")]
    pub array: Wwn,
    /// The array's N_Port_ID (figure 3: storage device FC address).
    #[serde(with = "text")]
    pub array_fc_id: FcId,
    /// The LUN.
    pub lun: u64,
    /// Its media type.
    #[serde(with = "text")]
    pub media: MediaType,
    /// Its capacity in bytes.
    pub capacity: u64,
    /// Its logical block size in bytes.
    pub block_size: u32,
    /// INQUIRY vendor identification.
    pub vendor: String,
    /// INQUIRY product identification.
    pub product: String,
    /// Whether the array answers for it now; `false`: it vanished and the volumes on it are
    /// degraded.
    pub present: bool,
    /// The volumes with extents on it.
    pub used_by: Vec<UseView>,
}

/// A volume's extent on a real volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UseView {
    /// The common volume name.
    #[serde(with = "text")]
    pub volume: VolumeName,
    /// First logical block of the extent.
    pub start: u64,
    /// Length in logical blocks.
    pub blocks: u64,
}

/// Free space of one media type on one array (figure 3 (b)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeView {
    /// The array's N_Port_Name.
    #[serde(with = "text")]
    pub array: Wwn,
    /// The array's N_Port_ID.
    #[serde(with = "text")]
    pub array_fc_id: FcId,
    /// The media type.
    #[serde(with = "text")]
    pub media: MediaType,
    /// Free bytes of that type on that array.
    pub free_bytes: u64,
    /// How many free extents those bytes are in.
    pub extents: u64,
}

/// A controller the answering one knows, itself included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    /// The controller's name.
    pub name: String,
    /// Its N_Port_Name.
    #[serde(with = "text")]
    pub wwpn: Wwn,
    /// Its N_Port_ID as last seen.
    #[serde(with = "text")]
    pub fc_id: FcId,
    /// The site it manages.
    pub site: String,
    /// `"self"` for the answering controller, `"up"` or `"down"` for a peer.
    pub state: PeerState,
    /// The base URL of its management API; empty when it did not say.
    pub api: String,
    /// Milliseconds since it was last heard from; `null` for itself and for a peer never heard.
    pub last_heard_ms: Option<u64>,
    /// Its version vector, as it last told it: per owner, the highest change it applied.
    pub versions: Vec<VersionView>,
}

/// Whether a controller is heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// The answering controller itself.
    #[serde(rename = "self")]
    Myself,
    /// Heard within the time-out.
    Up,
    /// Not heard within the time-out.
    Down,
}

impl PeerState {
    /// The name the API shows.
    pub const fn name(self) -> &'static str {
        match self {
            PeerState::Myself => "self",
            PeerState::Up => "up",
            PeerState::Down => "down",
        }
    }
}

impl fmt::Display for PeerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry of a version vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionView {
    /// The owner's N_Port_Name.
    #[serde(with = "text")]
    pub owner: Wwn,
    /// The owner's name, when the answering controller knows it.
    pub owner_name: Option<String>,
    /// The owner's generation.
    pub generation: u32,
    /// The highest version of that generation applied.
    pub version: u64,
}

/// The controller's counters, by flat dotted name (`messages_sent.heartbeat`,
/// `rejected.bad-mac`), in name order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CountersView {
    /// Name → count.
    pub counters: BTreeMap<String, u64>,
}

/// Free space of the type asked for that a builder found on one site (the body of a 507: the
/// build did not find enough, figure 7 S712).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundView {
    /// The site.
    pub site: String,
    /// The controller that offered it.
    pub controller: String,
    /// The media type.
    #[serde(with = "text")]
    pub media: MediaType,
    /// Bytes found.
    pub bytes: u64,
}

/// The JSON body of every error answer: `{"error": "...", ...}`, with the fields that say more
/// for some errors.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// What part of the request was wrong: for a 400 the field (`name`, `type`, `capacity`,
    /// `keep`, `site`, `hosts`, `body`, `path`, `query`); `name` for a 409 about a volume
    /// (owned elsewhere, or busy); `body` for a 413, `path` for the 404 of an unknown route,
    /// `method` for a 405.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For a 409: the controller that holds the name, or owns the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// For a 507: what was found where.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub found: Vec<FoundView>,
}

/// A request to build a volume (PATENT.md figure 7, S702): the body of `POST /v1/volumes`.
///
/// ```text
/// {"name": "vol1", "type": "ssd", "capacity": 16777216}
/// {"type": "fast-hdd", "capacity": "16MiB"}
/// ```
///
/// `name` may be left out (the controller picks one); `capacity` is a number of bytes or a
/// string that [`parse_capacity`] reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildSpec {
    /// The common name asked for; `None`: the controller picks one.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "text::serialize_opt"
    )]
    pub name: Option<VolumeName>,
    /// The media type.
    #[serde(rename = "type", serialize_with = "text::serialize")]
    pub media: MediaType,
    /// Capacity in bytes.
    pub capacity: u64,
}

/// A request field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// The field (`body` for the request as a whole).
    pub field: &'static str,
    /// Why, for a person.
    pub reason: String,
}

impl FieldError {
    fn new(field: &'static str, reason: impl fmt::Display) -> FieldError {
        FieldError {
            field,
            reason: reason.to_string(),
        }
    }
}

impl BuildSpec {
    /// The fields a request may hold.
    pub const FIELDS: [&'static str; 3] = ["name", "type", "capacity"];

    /// Reads a request body, naming the field that is wrong: not JSON or not an object
    /// (`body`), a field it does not know (`body`), a name that [`VolumeName::new`] refuses,
    /// a type that is not a [`MediaType`], a capacity that is not a positive number of bytes
    /// or a size [`parse_capacity`] reads.
    pub fn from_json(body: &[u8]) -> Result<BuildSpec, FieldError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| FieldError::new("body", format_args!("not valid JSON: {e}")))?;
        let Value::Object(fields) = value else {
            return Err(FieldError::new(
                "body",
                "expected a JSON object such as {\"type\": \"ssd\", \"capacity\": \"16MiB\"}",
            ));
        };
        if let Some(unknown) = fields.keys().find(|k| !Self::FIELDS.contains(&k.as_str())) {
            return Err(FieldError::new(
                "body",
                format_args!("unknown field {unknown:?} (the fields are name, type and capacity)"),
            ));
        }
        let name = match fields.get("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                Some(VolumeName::new(s.as_str()).map_err(|e| FieldError::new("name", e))?)
            }
            Some(other) => {
                return Err(FieldError::new(
                    "name",
                    format_args!("expected a string, not {}", kind(other)),
                ))
            }
        };
        let media = match fields.get("type") {
            None | Some(Value::Null) => {
                return Err(FieldError::new(
                    "type",
                    "missing (ssd, fast-hdd, slow-hdd or tape)",
                ))
            }
            Some(Value::String(s)) => {
                MediaType::from_str(s).map_err(|e| FieldError::new("type", e))?
            }
            Some(other) => {
                return Err(FieldError::new(
                    "type",
                    format_args!("expected a string, not {}", kind(other)),
                ))
            }
        };
        let capacity = match fields.get("capacity") {
            None | Some(Value::Null) => {
                return Err(FieldError::new(
                    "capacity",
                    "missing (a number of bytes, or a size such as \"16MiB\")",
                ))
            }
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
                FieldError::new(
                    "capacity",
                    format_args!("{n} is not a whole number of bytes"),
                )
            })?,
            Some(Value::String(s)) => {
                parse_capacity(s).map_err(|e| FieldError::new("capacity", e))?
            }
            Some(other) => {
                return Err(FieldError::new(
                    "capacity",
                    format_args!(
                        "expected a number of bytes or a size such as \"16MiB\", not {}",
                        kind(other)
                    ),
                ))
            }
        };
        if capacity == 0 {
            return Err(FieldError::new("capacity", "must be more than 0 bytes"));
        }
        Ok(BuildSpec {
            name,
            media,
            capacity,
        })
    }
}

/// A request to add a replica to a volume (PATENT.md \[0098\]-\[0100\]): the body of
/// `POST /v1/volumes/{name}/replicas`. Both fields may be left out (and the body too).
///
/// ```text
/// {}
/// {"type": "fast-hdd", "site": "B"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ReplicaSpec {
    /// The media type of the replica's extents; `None`: the volume's.
    #[serde(
        rename = "type",
        skip_serializing_if = "Option::is_none",
        serialize_with = "text::serialize_opt"
    )]
    pub media: Option<MediaType>,
    /// The site (SAN) to put it on; `None`: the builder's order (this SAN first, then the
    /// others by priority), keeping off the arrays that hold the volume's copies when it can.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

/// Longest site name a request may give.
pub const MAX_SITE_LEN: usize = 64;

impl ReplicaSpec {
    /// The fields a request may hold.
    pub const FIELDS: [&'static str; 2] = ["type", "site"];

    /// Reads a request body (empty: every field left out), naming the field that is wrong:
    /// not JSON or not an object, or a field it does not know (`body`); a type that is not a
    /// [`MediaType`] (`type`); a site that is not a name of 1 to 64 bytes (`site`).
    pub fn from_json(body: &[u8]) -> Result<ReplicaSpec, FieldError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(ReplicaSpec::default());
        }
        let fields = object(body, "{\"type\": \"ssd\", \"site\": \"B\"}")?;
        if let Some(unknown) = fields.keys().find(|k| !Self::FIELDS.contains(&k.as_str())) {
            return Err(FieldError::new(
                "body",
                format_args!("unknown field {unknown:?} (the fields are type and site)"),
            ));
        }
        let media = match fields.get("type") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                Some(MediaType::from_str(s).map_err(|e| FieldError::new("type", e))?)
            }
            Some(other) => {
                return Err(FieldError::new(
                    "type",
                    format_args!("expected a string, not {}", kind(other)),
                ))
            }
        };
        let site = match fields.get("site") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() || s.len() > MAX_SITE_LEN => {
                return Err(FieldError::new(
                    "site",
                    format_args!("a site name has 1 to {MAX_SITE_LEN} bytes, not {}", s.len()),
                ))
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(FieldError::new(
                    "site",
                    format_args!("expected a string, not {}", kind(other)),
                ))
            }
        };
        Ok(ReplicaSpec { media, site })
    }
}

/// Most hosts a volume's masking lists.
pub const MAX_MASKED_HOSTS: usize = 1024;

/// The hosts that may see a volume: the body of `PUT /v1/volumes/{name}/masking`. An empty
/// list lets every host see it.
///
/// ```text
/// {"hosts": ["21:00:00:24:ff:00:00:01", "21000024ff000002"]}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MaskingSpec {
    /// The hosts' port names (WWPNs), without duplicates, in the order given.
    #[serde(serialize_with = "text_vec::serialize")]
    pub hosts: Vec<Wwn>,
}

impl MaskingSpec {
    /// Reads a request body, naming the field that is wrong: not JSON, not an object, a field
    /// it does not know (`body`); `hosts` missing, not a list, more than
    /// [`MAX_MASKED_HOSTS`], or holding something that is not a WWPN (`hosts`).
    pub fn from_json(body: &[u8]) -> Result<MaskingSpec, FieldError> {
        let fields = object(body, "{\"hosts\": [\"21:00:00:24:ff:00:00:01\"]}")?;
        if let Some(unknown) = fields.keys().find(|k| k.as_str() != "hosts") {
            return Err(FieldError::new(
                "body",
                format_args!("unknown field {unknown:?} (the only field is hosts)"),
            ));
        }
        let list = match fields.get("hosts") {
            None | Some(Value::Null) => {
                return Err(FieldError::new(
                    "hosts",
                    "missing (a list of host WWPNs; [] lets every host see the volume)",
                ))
            }
            Some(Value::Array(list)) => list,
            Some(other) => {
                return Err(FieldError::new(
                    "hosts",
                    format_args!("expected a list of WWPNs, not {}", kind(other)),
                ))
            }
        };
        if list.len() > MAX_MASKED_HOSTS {
            return Err(FieldError::new(
                "hosts",
                format_args!("at most {MAX_MASKED_HOSTS} hosts, not {}", list.len()),
            ));
        }
        let mut hosts = Vec::with_capacity(list.len());
        for (i, v) in list.iter().enumerate() {
            let Value::String(s) = v else {
                return Err(FieldError::new(
                    "hosts",
                    format_args!("entry {i}: expected a WWPN string, not {}", kind(v)),
                ));
            };
            let w: Wwn = s
                .parse()
                .map_err(|e| FieldError::new("hosts", format_args!("entry {i}: {e}")))?;
            if !hosts.contains(&w) {
                hosts.push(w);
            }
        }
        Ok(MaskingSpec { hosts })
    }
}

/// Where a replica stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaPhase {
    /// The volume has no replica, and none is being made.
    None,
    /// A replica is being copied in the background; it is not in the mapping yet.
    Syncing,
    /// The mapping lists a replica: every write goes to it before it is acknowledged.
    InSync,
    /// The last replica asked for was not made (its extents are free again).
    Failed,
}

impl ReplicaPhase {
    /// The name the API shows.
    pub const fn name(self) -> &'static str {
        match self {
            ReplicaPhase::None => "none",
            ReplicaPhase::Syncing => "syncing",
            ReplicaPhase::InSync => "in-sync",
            ReplicaPhase::Failed => "failed",
        }
    }
}

impl fmt::Display for ReplicaPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A volume's replica as its owner sees it: the answer of `POST` and `GET
/// /v1/volumes/{name}/replicas`. Another controller knows only what the mapping says
/// (`none` or `in-sync`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    /// The common volume name.
    #[serde(with = "text")]
    pub volume: VolumeName,
    /// `"none"`, `"syncing"`, `"in-sync"` or `"failed"`.
    pub state: ReplicaPhase,
    /// Copies in the mapping now, the primary included (1: no replica).
    pub copies: u8,
    /// The copy number of the replica being made, or last made.
    pub copy: Option<u8>,
    /// Bytes copied so far (all of them once in sync).
    pub copied: u64,
    /// Bytes to copy: the volume's capacity in whole blocks.
    pub total: u64,
    /// The copy's average speed so far, bytes per second.
    pub rate: u64,
    /// The copier's limit, bytes per second (0: none).
    pub rate_limit: u64,
    /// Why it failed.
    pub reason: Option<String>,
    /// The replica's rows (figure 4 (b)): those being filled while syncing, those of every
    /// replica copy in the mapping once in sync.
    pub rows: Vec<MapRowView>,
}

/// A volume's I/O at the answering controller: the answer of `GET /v1/volumes/{name}/io`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeIoView {
    /// The LUN it is served at here (`null`: not served).
    pub lun: Option<u16>,
    /// Its counters here.
    pub counters: crate::io::IoCounters,
    /// Its replica, as this controller knows it.
    pub replica: Option<ReplicaState>,
}

/// A request body that must be a JSON object: its fields, or a `body` error whose message
/// shows `example`.
fn object(body: &[u8], example: &str) -> Result<serde_json::Map<String, Value>, FieldError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| FieldError::new("body", format_args!("not valid JSON: {e}")))?;
    match value {
        Value::Object(fields) => Ok(fields),
        _ => Err(FieldError::new(
            "body",
            format_args!("expected a JSON object such as {example}"),
        )),
    }
}

/// The JSON kind of a value, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Why [`parse_capacity`] refused a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapacityError {
    /// Nothing but blanks.
    #[error("a size may not be empty")]
    Empty,
    /// Does not start with a whole number.
    #[error("{0:?} is not a size (a whole number, then B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)")]
    NotANumber(String),
    /// A unit outside the list.
    #[error("unknown unit {0:?} (B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)")]
    UnknownUnit(String),
    /// More than `u64::MAX` bytes.
    #[error("{0:?} is more bytes than fit in 64 bits")]
    TooLarge(String),
}

/// Reads a size: a whole number, optionally followed (blanks allowed between) by a unit — `B`;
/// binary `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024); decimal `KB`, `MB`, `GB`, `TB` (powers
/// of 1000). Units are read without regard to case (`16mib`, `1kB`). No unit: bytes.
///
/// ```
/// use controller::api::views::parse_capacity;
/// assert_eq!(parse_capacity("16MiB"), Ok(16 << 20));
/// assert_eq!(parse_capacity("2 GB"), Ok(2_000_000_000));
/// assert_eq!(parse_capacity("4096"), Ok(4096));
/// assert!(parse_capacity("16 furlongs").is_err());
/// ```
pub fn parse_capacity(s: &str) -> Result<u64, CapacityError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(CapacityError::Empty);
    }
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    if number.is_empty() || unit.starts_with(['.', ',']) {
        return Err(CapacityError::NotANumber(s.to_owned()));
    }
    let unit = unit.trim_start();
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(CapacityError::UnknownUnit(unit.to_owned())),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| CapacityError::TooLarge(s.to_owned()))
}

/// Shows a number of bytes in the largest binary unit that leaves at least 1, with up to two
/// decimals where it is not whole: `16 MiB`, `1.5 GiB`, `512 B`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >= 1u64 << (10 * (unit + 1)) {
        unit += 1;
    }
    let scale = 1u64 << (10 * unit);
    if bytes % scale == 0 {
        format!("{} {}", bytes / scale, UNITS[unit])
    } else {
        let v = bytes as f64 / scale as f64;
        let s = format!("{v:.2}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        format!("{s} {}", UNITS[unit])
    }
}

/// Serde through `Display` and `FromStr`: addresses, names and media types as text.
mod text {
    use super::*;

    pub fn serialize<T: fmt::Display, S: serde::Serializer>(
        v: &T,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn serialize_opt<T: fmt::Display, S: serde::Serializer>(
        v: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: fmt::Display,
        D: serde::Deserializer<'de>,
    {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde of a list through `Display` and `FromStr`.
mod text_vec {
    use super::*;

    pub fn serialize<T: fmt::Display, S: serde::Serializer>(
        v: &[T],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Vec<T>, D::Error>
    where
        T: FromStr,
        T::Err: fmt::Display,
        D: serde::Deserializer<'de>,
    {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Serde of a [`VolumeState`] as its name.
mod state_text {
    use super::*;

    pub fn serialize<S: serde::Serializer>(v: &VolumeState, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.name())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<VolumeState, D::Error> {
        let s = String::deserialize(d)?;
        [
            VolumeState::Online,
            VolumeState::Degraded,
            VolumeState::Conflict,
        ]
        .into_iter()
        .find(|v| v.name() == s)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown volume state {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ControllerRef, RealExtent, RecordKey};

    fn record() -> Record {
        let array = Wwn::from_u64(0x5000_0000_0000_0a01);
        let array_id = FcId::try_new(0x01_13_00).unwrap();
        Record {
            key: RecordKey {
                owner: Wwn::from_u64(0x2000_0025_b50a_0001),
                name: VolumeName::new("vol1").unwrap(),
            },
            stamp: Stamp::new(1, 7),
            body: Some(VolumeBody {
                owner: ControllerRef {
                    name: "ctl-a".into(),
                    wwpn: Wwn::from_u64(0x2000_0025_b50a_0001),
                    fc_id: FcId::try_new(0x01_02_00).unwrap(),
                    site: "a".into(),
                },
                local_name: "A-0001".into(),
                capacity: 8 << 20,
                state: VolumeState::Online,
                claimed_at: 1_700_000_000_000,
                media: MediaType::FastHdd,
                rows: vec![MapRow {
                    virtual_start: 0,
                    real: RealExtent {
                        array,
                        array_id,
                        lun: 3,
                        start: 2048,
                        blocks: 2048,
                        block_size: 4096,
                    },
                    copy: 0,
                }],
                masking: vec![Wwn::from_u64(0x2100_0024_ff00_0001)],
            }),
        }
    }

    #[test]
    fn test_volume_view_json() {
        let view = VolumeView::from_record(&record()).unwrap();
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "vol1", "owner": "ctl-a", "owner_wwpn": "20:00:00:25:b5:0a:00:01",
                "owner_fc_id": "010200", "site": "a", "local_name": "A-0001",
                "capacity": 8388608, "media": "fast-hdd", "state": "online",
                "generation": 1, "version": 7, "claimed_at": 1700000000000u64,
                "rows": [{"virtual_start": 0, "sectors": 16384, "array": "50:00:00:00:00:00:0a:01",
                          "array_fc_id": "011300", "lun": 3, "real_start": 2048, "blocks": 2048,
                          "block_size": 4096, "copy": 0}],
                "masking": ["21:00:00:24:ff:00:00:01"],
            })
        );
        let back: VolumeView = serde_json::from_value(json).unwrap();
        assert_eq!(back, view);
    }

    #[test]
    fn test_tombstone_has_no_view() {
        let mut r = record();
        r.body = None;
        assert_eq!(VolumeView::from_record(&r), None);
    }

    #[test]
    fn test_view_refuses_bad_text() {
        let mut json = serde_json::to_value(VolumeView::from_record(&record()).unwrap()).unwrap();
        json["state"] = "sleepy".into();
        assert!(serde_json::from_value::<VolumeView>(json.clone()).is_err());
        json["state"] = "degraded".into();
        json["owner_wwpn"] = "20:00".into();
        assert!(serde_json::from_value::<VolumeView>(json).is_err());
    }

    #[test]
    fn test_peer_state_names() {
        for (s, name) in [
            (PeerState::Myself, "\"self\""),
            (PeerState::Up, "\"up\""),
            (PeerState::Down, "\"down\""),
        ] {
            assert_eq!(serde_json::to_string(&s).unwrap(), name);
            assert_eq!(serde_json::from_str::<PeerState>(name).unwrap(), s);
        }
    }

    #[test]
    fn test_parse_capacity() {
        assert_eq!(parse_capacity("16MiB"), Ok(16 << 20));
        assert_eq!(parse_capacity(" 16 mib "), Ok(16 << 20));
        assert_eq!(parse_capacity("1TiB"), Ok(1 << 40));
        assert_eq!(parse_capacity("3KB"), Ok(3000));
        assert_eq!(parse_capacity("1tb"), Ok(1_000_000_000_000));
        assert_eq!(parse_capacity("512B"), Ok(512));
        assert_eq!(parse_capacity("512"), Ok(512));
        assert_eq!(parse_capacity(""), Err(CapacityError::Empty));
        assert_eq!(
            parse_capacity("MiB"),
            Err(CapacityError::NotANumber("MiB".into()))
        );
        assert_eq!(
            parse_capacity("-1"),
            Err(CapacityError::NotANumber("-1".into()))
        );
        assert_eq!(
            parse_capacity("1.5GiB"),
            Err(CapacityError::NotANumber("1.5GiB".into()))
        );
        assert_eq!(
            parse_capacity("16 furlongs"),
            Err(CapacityError::UnknownUnit("furlongs".into()))
        );
        assert_eq!(
            parse_capacity("20000000TiB"),
            Err(CapacityError::TooLarge("20000000TiB".into()))
        );
        assert_eq!(
            parse_capacity("99999999999999999999"),
            Err(CapacityError::TooLarge("99999999999999999999".into()))
        );
    }

    #[test]
    fn test_format_bytes() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(16 << 20), "16 MiB");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
        assert_eq!(format_bytes(1_000_000_000), "953.67 MiB");
        assert_eq!(format_bytes(u64::MAX), "16384 PiB");
    }

    #[test]
    fn test_build_spec_from_json() {
        let spec = BuildSpec::from_json(br#"{"name":"v1","type":"ssd","capacity":"16MiB"}"#);
        assert_eq!(
            spec,
            Ok(BuildSpec {
                name: Some(VolumeName::new("v1").unwrap()),
                media: MediaType::Ssd,
                capacity: 16 << 20
            })
        );
        let spec = BuildSpec::from_json(br#"{"type":"tape","capacity":4096}"#).unwrap();
        assert_eq!(spec.name, None);
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"type":"tape","capacity":4096}"#
        );
        for (body, field) in [
            (&b"{"[..], "body"),
            (b"[1]", "body"),
            (br#"{"type":"ssd","capacity":1,"size":2}"#, "body"),
            (br#"{"name":"a b","type":"ssd","capacity":1}"#, "name"),
            (br#"{"name":7,"type":"ssd","capacity":1}"#, "name"),
            (br#"{"capacity":1}"#, "type"),
            (br#"{"type":"floppy","capacity":1}"#, "type"),
            (br#"{"type":true,"capacity":1}"#, "type"),
            (br#"{"type":"ssd"}"#, "capacity"),
            (br#"{"type":"ssd","capacity":0}"#, "capacity"),
            (br#"{"type":"ssd","capacity":-4}"#, "capacity"),
            (br#"{"type":"ssd","capacity":1.5}"#, "capacity"),
            (br#"{"type":"ssd","capacity":"lots"}"#, "capacity"),
            (br#"{"type":"ssd","capacity":[1]}"#, "capacity"),
        ] {
            let e = BuildSpec::from_json(body).unwrap_err();
            assert_eq!(e.field, field, "{}: {e}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn test_error_body_leaves_out_empty_fields() {
        let body = ErrorBody {
            error: "no".into(),
            ..ErrorBody::default()
        };
        assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"error":"no"}"#);
    }
}
