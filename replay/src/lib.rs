//! `fcsan pcap replay`: a fresh instance of the role that wrote a capture (`--capture`, pcapng
//! with fcsan's metadata) is fed what the captured one received, at the times it received it,
//! with the capture's seed and configuration; what it sends is compared with what the capture
//! holds, frame by frame and field by field (see [`compare`]).
//!
//! - [`switch`]: a fresh sans-IO [`fabric::Switch`], inbound frames fed with their port and
//!   time, the frames the switch itself originated compared (forwarded frames are the other
//!   nodes' words, not the switch's).
//! - [`array`]: a fresh disk array node (same names and LUNs, zeroed LUN files in a temporary
//!   folder) on an in-process link whose other end is the replayer, on tokio's paused clock
//!   that follows the capture's time stamps.
//! - [`gateway`]: a fresh FCIP gateway on loopback; the replayer plays its peers' side of the
//!   TCP connections, the Special Frames and FCIP frames compared.
//!
//! This is what the sans-IO cores with injected time and randomness are for: the same inputs
//! give the same answers, byte for byte.

#![forbid(unsafe_code)]

use std::path::Path;

use fc_pcap::capture::{self, CaptureError, Metadata, RoleCapture};

pub mod array;
pub mod compare;
pub mod controller;
pub mod gateway;
pub mod inspect;
pub mod record;
pub mod switch;

pub use compare::Difference;

/// The roles a capture can be replayed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A fabric switch.
    Switch,
    /// A disk array.
    Array,
    /// A virtualization controller.
    Controller,
    /// An FCIP gateway.
    Gateway,
}

impl Role {
    /// The role's name as the metadata and `--as` write it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Switch => "switch",
            Role::Array => "array",
            Role::Controller => "controller",
            Role::Gateway => "gateway",
        }
    }

    /// The role named `s`.
    pub fn from_name(s: &str) -> Option<Role> {
        [Role::Switch, Role::Array, Role::Controller, Role::Gateway]
            .into_iter()
            .find(|r| r.name() == s)
    }
}

/// Why a capture could not be replayed (not: that the replay differed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The file is not a capture, or not one that can be read.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The capture is pcap, not pcapng: it has no metadata to start a fresh instance from.
    #[error(
        "{0} is a pcap file, not a role's pcapng capture: only captures written with --capture \
         (or by fcsan pcap record) carry the metadata a replay needs"
    )]
    NotPcapng(String),
    /// The capture has no fcsan metadata (another tool wrote it).
    #[error(
        "{0} has no fcsan metadata (written by {1}): only captures written with --capture \
         (or by fcsan pcap record) can be replayed"
    )]
    NoMetadata(String, String),
    /// The metadata is fcsan's but does not read.
    #[error("{0}: bad fcsan metadata: {1}")]
    BadMetadata(String, String),
    /// The capture was written by another role than the one asked for.
    #[error("{file} is a capture of the {captured} role, not of the {asked} role")]
    WrongRole {
        /// The file.
        file: String,
        /// The role that wrote it.
        captured: String,
        /// The role asked for.
        asked: &'static str,
    },
    /// This role cannot be replayed (yet).
    #[error("replay as {0} is not supported")]
    Unsupported(&'static str),
    /// A frame of the capture does not decode, or is not where a replay can feed it.
    #[error("frame {number}: {why}")]
    BadFrame {
        /// The capture's frame number.
        number: usize,
        /// Why.
        why: String,
    },
    /// The fresh instance could not be set up (LUN files, runtime).
    #[error("cannot start the fresh {role}: {why}")]
    Setup {
        /// The role.
        role: &'static str,
        /// Why.
        why: String,
    },
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The role replayed.
    pub role: Role,
    /// Frames fed to the fresh instance.
    pub fed: usize,
    /// Frames the capture holds that the role sent (what was compared).
    pub expected: usize,
    /// Frames the fresh instance sent.
    pub sent: usize,
    /// The first difference, if any.
    pub difference: Option<Difference>,
    /// Things worth knowing about the replay (a LUN that was not zeroed at the start).
    pub notes: Vec<String>,
}

/// A capture read for replay: the packets and the metadata.
pub struct Loaded {
    /// The capture.
    pub capture: RoleCapture,
    /// Its metadata.
    pub metadata: Metadata,
}

/// Reads `path` as a role's capture; `asked`, when given, must be the role that wrote it.
pub fn load(path: &Path, asked: Option<Role>) -> Result<Loaded, ReplayError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| CaptureError::File {
        path: path.to_path_buf(),
        source,
    })?;
    if !bytes.starts_with(&capture::PCAPNG_MAGIC) {
        // Tell a pcap file from garbage.
        capture::read(&bytes[..]).map_err(|e| CaptureError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        return Err(ReplayError::NotPcapng(name));
    }
    let capture = capture::read_pcapng(&bytes[..]).map_err(|e| CaptureError::InFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    let metadata = match capture.metadata() {
        None => {
            let app = capture
                .application
                .clone()
                .unwrap_or_else(|| "an unnamed application".into());
            return Err(ReplayError::NoMetadata(name, app));
        }
        Some(Err(e)) => return Err(ReplayError::BadMetadata(name, e)),
        Some(Ok(m)) => m,
    };
    if let Some(asked) = asked {
        if metadata.role != asked.name() {
            return Err(ReplayError::WrongRole {
                file: name,
                captured: metadata.role,
                asked: asked.name(),
            });
        }
    }
    Ok(Loaded { capture, metadata })
}

/// Replays the capture at `path` as `role` (as the role that wrote it when `None`).
pub fn replay_file(path: &Path, role: Option<Role>) -> Result<Outcome, ReplayError> {
    let loaded = load(path, role)?;
    let role = match role {
        Some(r) => r,
        None => Role::from_name(&loaded.metadata.role).ok_or_else(|| {
            ReplayError::BadMetadata(
                path.display().to_string(),
                format!("a {} capture cannot be replayed", loaded.metadata.role),
            )
        })?,
    };
    replay(&loaded, role)
}

/// Replays a loaded capture as `role`.
pub fn replay(loaded: &Loaded, role: Role) -> Result<Outcome, ReplayError> {
    match role {
        Role::Switch => switch::replay(loaded),
        Role::Array => array::replay(loaded),
        Role::Controller => controller::replay(loaded),
        Role::Gateway => gateway::replay(loaded),
    }
}

/// A frame of a capture: its number, direction, interface name, time stamp and the frame.
pub(crate) type Captured = (
    usize,
    capture::Direction,
    String,
    std::time::Duration,
    fc_frames::FcFrame,
);

/// The capture's FC frames, decoded, with their numbers, directions and interface names.
pub(crate) fn frames(loaded: &Loaded) -> Result<Vec<Captured>, ReplayError> {
    let mut out = Vec::new();
    for p in &loaded.capture.packets {
        let iface = &loaded.capture.interfaces[p.interface];
        if iface.linktype != pcap_file::DataLink::FC_2_WITH_FRAME_DELIMS {
            return Err(ReplayError::BadFrame {
                number: p.number,
                why: format!(
                    "link type {} is not FC-2 with delimiters",
                    u32::from(iface.linktype)
                ),
            });
        }
        let Some(dir) = p.direction else {
            return Err(ReplayError::BadFrame {
                number: p.number,
                why: "no direction (epb_flags)".into(),
            });
        };
        let frame = fc_frames::FcFrame::parse_delimited(bytes::Bytes::from(p.data.clone()))
            .map_err(|e| ReplayError::BadFrame {
                number: p.number,
                why: e.to_string(),
            })?;
        out.push((p.number, dir, iface.name.clone(), p.ts, frame));
    }
    Ok(out)
}
