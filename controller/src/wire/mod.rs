//! The controllers' messages: a vendor-specific CT service (FC-GS-7 §4.3: GS_TYPE 0xE0, which
//! Wireshark names "Vendor-Specific"), carried in CT_IUs of FC-4 TYPE 0x20 between controllers'
//! N_Ports, through the FCIP gateways.
//!
//! ```text
//!  0        4        8       12       16        the CT preamble (FC-GS-7 §4.3.1)
//! +--------+--------+--------+--------+
//! | rev=1, IN_ID=0  |E0|01|00|00| command (request kind, or 8002 FS_ACC / 8001 FS_RJT)
//! | max size        | frag | reason | explanation | vendor |
//! +--------+--------+--------+--------+        the fcsan header (FS_RJT has none)
//! | fmt=1 | kind | flags(2) | sender WWPN (8)                    |
//! | sender generation (4) | sequence (8) | body length (4)       |
//! | body ...                                                     |
//! | HMAC-SHA256 (32) over preamble + header + body               |
//! ```
//!
//! A reply (FS_ACC) carries the kind and the sequence number of its request, so it can't be
//! replayed as the reply to another. A reject (FS_RJT) carries reason code 0xFF (vendor unique)
//! with the [`Reason`] in the vendor byte and no header; it changes nothing, so it is not signed.
//! The byte layout of every body is in [`codec`] and README ("The controllers' messages").

use fc_frames::ct::{CtCommand, GsSubtype, GsType};
use fc_frames::{FcId, Wwn};

use crate::model::{MediaType, RealExtent, Record, VersionVector, VolumeName};

pub mod codec;

pub use codec::{decode, encode, Key, WireError};

/// GS_TYPE of the controllers' CT service (vendor specific).
pub const GS_TYPE: GsType = GsType(0xE0);
/// GS_Subtype of the controllers' CT service.
pub const GS_SUBTYPE: GsSubtype = GsSubtype(0x01);
/// The vendor FC-4 TYPE a controller registers (RFT_ID), so peers find it with GID_FT.
pub const FC4_TYPE: u8 = 0xE0;
/// The symbolic port name a controller registers starts with this.
pub const SYMBOLIC_PREFIX: &str = "fcsan controller ";
/// Format version in every header.
pub const FORMAT: u8 = 1;
/// Length of the fcsan header after the CT preamble.
pub const HEADER_LEN: usize = 28;
/// Length of the HMAC that ends a signed CT_IU.
pub const MAC_LEN: usize = 32;
/// Longest text field (names, site, URL): its length travels in one byte.
pub const MAX_TEXT_LEN: usize = 255;
/// Most entries of a list (records, vector entries, rows, masking, extents): its count travels
/// in two bytes.
pub const MAX_LIST_LEN: usize = 0xFFFF;

/// What a message is about; the low byte of the request's command code (0x0E00 + kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kind(pub u8);

impl Kind {
    /// "I am alive, and this is what I have": name, site, version vector.
    pub const HEARTBEAT: Kind = Kind(0x01);
    /// Changed records, in owner stamp order.
    pub const UPDATE: Kind = Kind(0x02);
    /// "Send me what you have past my version vector."
    pub const PULL: Kind = Kind(0x03);
    /// A builder claims a volume name.
    pub const CLAIM: Kind = Kind(0x04);
    /// A builder asks for free extents of a type, held for it until commit or time-out.
    pub const RESERVE: Kind = Kind(0x05);
    /// A builder gives a reservation back.
    pub const RELEASE: Kind = Kind(0x06);
    /// A builder made a reservation part of a volume.
    pub const COMMIT: Kind = Kind(0x07);
    /// Ask the owner of a volume for the right to cache its data (a lease).
    pub const LEASE: Kind = Kind(0x08);
    /// From a volume's owner: drop cached data of a range (or everything, and the lease).
    pub const INVALIDATE: Kind = Kind(0x09);
    /// From a volume's owner: read the replica directly, or go back to the owner (load
    /// switching, PATENT.md [0078]).
    pub const ROUTE: Kind = Kind(0x0A);

    /// Every kind, in code order.
    pub const ALL: [Kind; 10] = [
        Kind::HEARTBEAT,
        Kind::UPDATE,
        Kind::PULL,
        Kind::CLAIM,
        Kind::RESERVE,
        Kind::RELEASE,
        Kind::COMMIT,
        Kind::LEASE,
        Kind::INVALIDATE,
        Kind::ROUTE,
    ];

    /// Whether this is one of the kinds above.
    pub const fn is_known(self) -> bool {
        self.0 >= 0x01 && self.0 <= 0x0A
    }

    /// The CT command code of a request of this kind.
    pub const fn command(self) -> CtCommand {
        CtCommand(0x0E00 | self.0 as u16)
    }

    /// The kind of a request's command code.
    pub const fn from_command(c: CtCommand) -> Option<Kind> {
        if c.0 & 0xFF00 == 0x0E00 && (c.0 & 0xFF) >= 1 && (c.0 & 0xFF) <= 0x0A {
            Some(Kind(c.0 as u8))
        } else {
            None
        }
    }

    /// The name in logs, README and the dissector.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0x01 => "HEARTBEAT",
            0x02 => "UPDATE",
            0x03 => "PULL",
            0x04 => "CLAIM",
            0x05 => "RESERVE",
            0x06 => "RELEASE",
            0x07 => "COMMIT",
            0x08 => "LEASE",
            0x09 => "INVALIDATE",
            0x0A => "ROUTE",
            _ => "unknown",
        }
    }
}

/// Why a controller rejected a message: the vendor byte of its FS_RJT (reason code 0xFF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reason(pub u8);

impl Reason {
    /// The CT_IU could not be decoded (too short, bad lengths, bad field values).
    pub const MALFORMED: Reason = Reason(0x01);
    /// The HMAC does not match: not from a controller of this installation, or altered.
    pub const BAD_MAC: Reason = Reason(0x02);
    /// A sequence number seen before from this sender generation.
    pub const REPLAYED: Reason = Reason(0x03);
    /// From a sender generation older than one already seen.
    pub const STALE: Reason = Reason(0x04);
    /// A command code this controller does not know.
    pub const UNKNOWN_KIND: Reason = Reason(0x05);
    /// The header names a sender other than the port that sent it.
    pub const FOREIGN: Reason = Reason(0x06);
    /// The controller is recovering its records and takes no changes yet.
    pub const NOT_READY: Reason = Reason(0x07);
    /// No such reservation (expired, released or never made).
    pub const NO_RESERVATION: Reason = Reason(0x08);
    /// A record names this controller as owner with a stamp it never issued.
    pub const FORGED_OWNER: Reason = Reason(0x09);

    /// The name in logs, counters and the dissector.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0x01 => "malformed",
            0x02 => "bad-mac",
            0x03 => "replayed",
            0x04 => "stale",
            0x05 => "unknown-kind",
            0x06 => "foreign",
            0x07 => "not-ready",
            0x08 => "no-reservation",
            0x09 => "forged-owner",
            _ => "unknown",
        }
    }

    /// Every reason, for counters.
    pub const ALL: [Reason; 9] = [
        Reason::MALFORMED,
        Reason::BAD_MAC,
        Reason::REPLAYED,
        Reason::STALE,
        Reason::UNKNOWN_KIND,
        Reason::FOREIGN,
        Reason::NOT_READY,
        Reason::NO_RESERVATION,
        Reason::FORGED_OWNER,
    ];
}

/// Who sent a message, and which of its messages this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// The sender's N_Port_Name.
    pub sender: Wwn,
    /// The sender's generation.
    pub generation: u32,
    /// The sender's sequence number (a reply: its request's).
    pub seq: u64,
}

/// A request between controllers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Alive, with what it has.
    Heartbeat(Heartbeat),
    /// Records changed by their owners.
    Update(Vec<Record>),
    /// Send what is past this vector.
    Pull(Pull),
    /// Claim (or give back) a volume name.
    Claim(Claim),
    /// Hold free extents for a builder.
    Reserve(Reserve),
    /// Give a reservation back.
    Release {
        /// The reservation.
        id: u64,
    },
    /// A reservation is now part of a volume.
    Commit {
        /// The reservation.
        id: u64,
        /// The volume it became part of.
        name: VolumeName,
    },
    /// To a volume's owner: grant (or, with `release`, give back) the right to cache the
    /// volume's data.
    Lease(Lease),
    /// From a volume's owner to a controller holding a lease: drop cached data.
    Invalidate(Invalidate),
    /// From a volume's owner to a forwarding controller: where to read from.
    Route(Route),
}

impl Request {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Request::Heartbeat(_) => Kind::HEARTBEAT,
            Request::Update(_) => Kind::UPDATE,
            Request::Pull(_) => Kind::PULL,
            Request::Claim(_) => Kind::CLAIM,
            Request::Reserve(_) => Kind::RESERVE,
            Request::Release { .. } => Kind::RELEASE,
            Request::Commit { .. } => Kind::COMMIT,
            Request::Lease(_) => Kind::LEASE,
            Request::Invalidate(_) => Kind::INVALIDATE,
            Request::Route(_) => Kind::ROUTE,
        }
    }
}

/// HEARTBEAT: who the sender is and what it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The controller's name.
    pub name: String,
    /// Its site.
    pub site: String,
    /// Its N_Port_ID.
    pub fc_id: FcId,
    /// Its management API's URL, empty when it has none.
    pub api: String,
    /// Its version vector.
    pub versions: VersionVector,
}

/// PULL: the requester's vector; the answer holds every record past it, at most `max` a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    /// What the requester has.
    pub versions: VersionVector,
    /// Most records in the reply.
    pub max: u16,
}

/// CLAIM: a builder claims `name` at `claimed_at` (ms since the Unix epoch), or gives it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The name.
    pub name: VolumeName,
    /// When the builder claimed it.
    pub claimed_at: u64,
    /// Gives a claim back instead of making one.
    pub release: bool,
}

/// RESERVE: hold up to `bytes` of free `media` for reservation `id` for `ttl_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserve {
    /// Chosen by the builder, unique among its reservations.
    pub id: u64,
    /// The type wanted.
    pub media: MediaType,
    /// How much.
    pub bytes: u64,
    /// How long the extents are held without a commit.
    pub ttl_ms: u32,
}

/// LEASE: the sender asks the owner (the receiver) for the right to cache volume `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The volume (owned by the receiver).
    pub name: VolumeName,
    /// True: the sender gives the lease back (it caches nothing of the volume any more).
    pub release: bool,
}

/// INVALIDATE: the owner (the sender) tells a lease holder to drop what it caches of
/// `sectors` sectors from `start` of volume `name`; with `revoke`, everything of the volume,
/// its lease and any direct route to a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidate {
    /// The volume (owned by the sender).
    pub name: VolumeName,
    /// First virtual sector (512 bytes).
    pub start: u64,
    /// Number of sectors.
    pub sectors: u64,
    /// Drop everything and the lease.
    pub revoke: bool,
}

/// ROUTE: the owner (the sender) tells a forwarding controller holding a lease to read volume
/// `name` from its replica's real volumes directly (`replica`), or through the owner again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The volume (owned by the sender).
    pub name: VolumeName,
    /// True: read the in-sync replica (copy 1) directly; false: forward to the owner.
    pub replica: bool,
}

/// A reply to a request (FS_ACC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Done (HEARTBEAT, RELEASE, COMMIT, INVALIDATE, ROUTE).
    Ack,
    /// UPDATE applied: the receiver's vector for the owners the update named.
    Updated(VersionVector),
    /// PULL answered.
    Pulled(Pulled),
    /// CLAIM answered.
    Claimed(Claimed),
    /// RESERVE answered: the extents now held (may be less than asked, or none).
    Reserved(Vec<RealExtent>),
    /// LEASE granted for `ttl_ms` milliseconds from when the owner received the request
    /// (0: refused, or released).
    Leased {
        /// The lease's length.
        ttl_ms: u32,
    },
}

impl Reply {
    /// Whether this is the reply a request of `kind` gets: [`Reply::Ack`] for HEARTBEAT, RELEASE,
    /// COMMIT, INVALIDATE and ROUTE, [`Reply::Updated`] for UPDATE, [`Reply::Pulled`] for PULL,
    /// [`Reply::Claimed`] for CLAIM, [`Reply::Reserved`] for RESERVE, [`Reply::Leased`] for
    /// LEASE.
    pub fn answers(&self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (
                Reply::Ack,
                Kind::HEARTBEAT | Kind::RELEASE | Kind::COMMIT | Kind::INVALIDATE | Kind::ROUTE
            ) | (Reply::Updated(_), Kind::UPDATE)
                | (Reply::Pulled(_), Kind::PULL)
                | (Reply::Claimed(_), Kind::CLAIM)
                | (Reply::Reserved(_), Kind::RESERVE)
                | (Reply::Leased { .. }, Kind::LEASE)
        )
    }
}

/// The answer to PULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// Records past the requester's vector, in (owner, stamp) order.
    pub records: Vec<Record>,
    /// Whether this is all of them; if so the requester may raise its vector to `versions`.
    pub complete: bool,
    /// The responder's vector.
    pub versions: VersionVector,
}

/// The answer to CLAIM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Whether the claim stands here.
    pub granted: bool,
    /// When not granted: who holds the name, and since when.
    pub holder: Option<(Wwn, u64)>,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Header, Request),
    /// A reply to the request of kind `Kind` and the header's sequence number.
    Reply(Header, Kind, Reply),
    /// A reject of the request of this command code.
    Reject(Reason),
}
