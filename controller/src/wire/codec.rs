//! Encoding and decoding of the controllers' CT_IUs (FC-GS-7 §4.3, GS_TYPE 0xE0), with their
//! HMAC-SHA256 (RFC 2104, FIPS 180-4).
//!
//! Every integer is big-endian. A *text* is one length byte and that many bytes of UTF-8; a
//! *name* is a text that is also a valid [`VolumeName`]. A *list* is a two-byte count and that
//! many entries. A *flag* is one byte, 0 or 1.
//!
//! # The CT_IU
//!
//! ```text
//!  offset  len  field
//!       0   16  CT preamble: 01 000000 | E0 01 00 00 | command(2) 0000 | 00 00 00 00
//!                 command: request 0E00 + kind, reply 8002 (FS_ACC), reject 8001 (FS_RJT)
//!      16    1  format (1)
//!      17    1  kind (the request's, also in a reply)
//!      18    2  flags (zero)
//!      20    8  sender WWPN
//!      28    4  sender generation
//!      32    8  sequence (a reply: its request's)
//!      40    4  body length (n)
//!      44    n  body: of the request's kind; in a reply, of the reply to that kind
//!    44+n   32  HMAC-SHA256 over bytes 0 .. 44+n with the installation's key
//! ```
//!
//! A reject is the preamble alone: command 8001, reason code FF (vendor unique), explanation 00,
//! vendor byte = [`Reason`]. It changes nothing at its receiver, so it is not signed.
//!
//! # Request bodies
//!
//! ```text
//! HEARTBEAT  name: text | site: text | fc_id: u32 | api: text | versions: vector
//! UPDATE     records: list of record
//! PULL       versions: vector | max: u16
//! CLAIM      name: name | claimed_at: u64 | release: flag
//! RESERVE    id: u64 | media: u8 | bytes: u64 | ttl_ms: u32
//! RELEASE    id: u64
//! COMMIT     id: u64 | name: name
//! LEASE      name: name | release: flag
//! INVALIDATE name: name | start: u64 | sectors: u64 | revoke: flag
//! ROUTE      name: name | replica: flag
//! ```
//!
//! # Reply bodies (chosen by the kind in the header)
//!
//! ```text
//! HEARTBEAT, RELEASE, COMMIT,  Ack: empty
//! INVALIDATE, ROUTE
//! UPDATE                       Updated: vector
//! PULL                         Pulled: complete: flag | versions: vector | records: list of record
//! CLAIM                        Claimed: granted: flag | has holder: flag
//!                                       [ holder: wwpn(8) | since: u64 ]   (when has holder = 1)
//! RESERVE                      Reserved: list of extent
//! LEASE                        Leased: ttl_ms: u32   (0: refused, or released)
//! ```
//!
//! # Shared pieces
//!
//! ```text
//! vector     count: u16, then per owner, in ascending WWPN order, each owner once (20 bytes):
//!              owner wwpn(8) | generation: u32 | version: u64
//! record     owner wwpn(8) | generation: u32 | version: u64 | name: name | tombstone: flag
//!            then, for a live record (tombstone = 0), the volume:
//!              controller: name: text | wwpn(8) | fc_id: u32 | site: text
//!              local_name: text | capacity: u64 | state: u8 | claimed_at: u64 | media: u8
//!              rows: list of (49 bytes)
//!                virtual_start: u64 | array wwpn(8) | array_id: u32 | lun: u64 | start: u64
//!                | blocks: u64 | block_size: u32 | copy: u8
//!              masking: list of host wwpn(8)
//! extent     array wwpn(8) | array_id: u32 | lun: u64 | start: u64 | blocks: u64
//!            | block_size: u32                                          (40 bytes)
//! state      1 online, 2 degraded, 3 conflict          media  1 ssd, 2 fast-hdd, 3 slow-hdd, 4 tape
//! fc_id      a 24-bit N_Port_ID in a u32 (top byte zero)
//! ```
//!
//! # What a receiver checks, in order
//!
//! 1. The preamble: revision 1, GS_TYPE E0, GS_Subtype 01, IN_ID, options, the reserved byte,
//!    maximum size and fragment ID zero; a command it knows (else `unknown-kind`).
//! 2. A reject: reason code FF, explanation 0, nothing after the preamble. Otherwise reason,
//!    explanation and vendor byte are zero.
//! 3. The header: format 1, a known kind (that of the command, in a request), flags zero, and a
//!    body length that leaves exactly 32 bytes of MAC after the body.
//! 4. The MAC, in constant time, before a byte of the body is read (else `bad-mac`).
//! 5. The body: every field as above, every byte used. Anything else is `malformed`.
//!
//! A decoder that accepts only this one encoding of every message lets `encode(decode(b)) == b`
//! hold for every `b` it accepts; the fuzz target `controller_msg` checks exactly that.

use core::fmt;

use fc_frames::ct::{CtCommand, CtError, CtPreambleRepr, CtReason, GsSubtype, GsType};
use fc_frames::{FcId, Wwn};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::{
    ControllerRef, MapRow, MediaType, NameError, RealExtent, Record, RecordKey, Stamp,
    VersionVector, VolumeBody, VolumeName, VolumeState,
};
use crate::wire::{
    Claim, Claimed, Header, Heartbeat, Invalidate, Kind, Lease, Message, Pull, Pulled, Reason,
    Reply, Request, Reserve, Route, FORMAT, GS_SUBTYPE, GS_TYPE, HEADER_LEN, MAC_LEN, MAX_LIST_LEN,
    MAX_TEXT_LEN,
};

/// Length of the CT preamble.
const PREAMBLE_LEN: usize = fc_frames::ct::PREAMBLE_LEN;
/// Where the body starts.
const BODY: usize = PREAMBLE_LEN + HEADER_LEN;
/// The shortest signed CT_IU: preamble, header, empty body, MAC.
const MIN_SIGNED_LEN: usize = BODY + MAC_LEN;
/// A version vector entry.
const VECTOR_ENTRY_LEN: usize = 8 + 4 + 8;
/// A sector map row.
const ROW_LEN: usize = 8 + EXTENT_LEN + 1;
/// A real extent.
const EXTENT_LEN: usize = 8 + 4 + 8 + 8 + 8 + 4;
/// The shortest record: a tombstone with a one-byte name.
const MIN_RECORD_LEN: usize = 8 + 4 + 8 + 2 + 1;

/// The fcsan header's fields, as offsets into the CT_IU (read in this order).
mod field {
    use core::ops::Range;

    pub const FORMAT: usize = 16;
    pub const KIND: usize = 17;
    pub const FLAGS: Range<usize> = 18..20;
    pub const SENDER: Range<usize> = 20..28;
    pub const GENERATION: Range<usize> = 28..32;
    pub const SEQ: Range<usize> = 32..40;
    pub const BODY_LEN: Range<usize> = 40..44;
}

/// Shortest secret [`Key::from_hex`] takes, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// The installation's shared secret: every controller signs and checks with it.
#[derive(Clone)]
pub struct Key(Hmac<Sha256>);

/// Why text is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A character that is not a hex digit.
    #[error("key: {found:?} at character {offset} is not a hex digit")]
    NotHex {
        /// Where, counting characters from 0.
        offset: usize,
        /// What was there.
        found: char,
    },
    /// An odd number of hex digits.
    #[error("key: {0} hex digits is not a whole number of bytes")]
    OddLength(usize),
    /// Fewer than [`MIN_KEY_LEN`] bytes.
    #[error("key: {0} bytes is too short a secret (at least {MIN_KEY_LEN})")]
    TooShort(usize),
}

impl Key {
    /// A key from the secret's bytes.
    pub fn new(secret: &[u8]) -> Key {
        // HMAC takes a key of any length (RFC 2104 §2: longer keys are hashed first), so this
        // cannot fail.
        Key(Hmac::new_from_slice(secret).expect("HMAC accepts keys of any length"))
    }

    /// A key from hex digits (as a configuration file holds it), at least [`MIN_KEY_LEN`] bytes.
    pub fn from_hex(text: &str) -> Result<Key, KeyError> {
        let text = text.trim();
        let digits: Vec<u8> = text
            .chars()
            .enumerate()
            .map(|(offset, found)| match found.to_digit(16) {
                // A hex digit is below 16, so it fits a byte.
                Some(d) => Ok(d as u8),
                None => Err(KeyError::NotHex { offset, found }),
            })
            .collect::<Result<_, _>>()?;
        if digits.len() % 2 != 0 {
            return Err(KeyError::OddLength(digits.len()));
        }
        let secret: Vec<u8> = digits.chunks_exact(2).map(|d| (d[0] << 4) | d[1]).collect();
        if secret.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort(secret.len()));
        }
        Ok(Key::new(&secret))
    }

    /// The MAC of `bytes`.
    pub(crate) fn tag(&self, bytes: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.0.clone();
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the MAC of `bytes`, compared in constant time.
    fn verify(&self, bytes: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.0.clone();
        mac.update(bytes);
        mac.verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Why a CT_IU is not a valid controller message. Offsets count bytes from the start of the
/// CT_IU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// No CT preamble, or one of another revision.
    #[error("CT preamble: {0}")]
    Preamble(#[from] CtError),
    /// A CT_IU for another generic service.
    #[error(
        "GS_TYPE {gs_type} GS_Subtype {gs_subtype} is not the controllers' service (0xe0/0x01)"
    )]
    NotThisService {
        /// GS_TYPE found.
        gs_type: GsType,
        /// GS_Subtype found.
        gs_subtype: GsSubtype,
    },
    /// A preamble field that this service keeps at one value holds another.
    #[error("CT preamble {field} is {value:#x}, not {want:#x}")]
    PreambleField {
        /// Which field.
        field: &'static str,
        /// What it holds.
        value: u32,
        /// What it must hold.
        want: u32,
    },
    /// A command code that is neither a known request kind nor FS_ACC/FS_RJT.
    #[error("unknown command code {0}")]
    UnknownCommand(CtCommand),
    /// A reject with more than the preamble.
    #[error("FS_RJT of {0} bytes: a reject is the 16-byte preamble alone")]
    RejectLength(usize),
    /// Too short for a field.
    #[error("the {what} at byte {offset} needs {needed} bytes, {present} are left")]
    Truncated {
        /// The field.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// Bytes it takes.
        needed: usize,
        /// Bytes there are.
        present: usize,
    },
    /// A header format this controller does not speak.
    #[error("header format {0} is not {FORMAT}")]
    Format(u8),
    /// A header kind this controller does not know.
    #[error("unknown kind {:#04x}", .0 .0)]
    UnknownKind(Kind),
    /// A request whose header kind is not its command code's.
    #[error("command code says kind {:#04x}, header says {:#04x}", .command.0, .header.0)]
    KindMismatch {
        /// The kind of the command code.
        command: Kind,
        /// The kind in the header.
        header: Kind,
    },
    /// Header flags that are not zero.
    #[error("header flags {0:#06x} are not zero")]
    Flags(u16),
    /// The body length does not leave exactly the MAC after the body.
    #[error("header body length {declared} but {present} bytes lie between header and MAC")]
    BodyLength {
        /// The header's body length.
        declared: u32,
        /// Bytes between the header and the MAC.
        present: usize,
    },
    /// The HMAC does not match.
    #[error("HMAC does not match")]
    BadMac,
    /// A flag byte other than 0 or 1.
    #[error("the {what} flag at byte {offset} is {value}, not 0 or 1")]
    Flag {
        /// Which flag.
        what: &'static str,
        /// Where.
        offset: usize,
        /// What it holds.
        value: u8,
    },
    /// A text that is not UTF-8.
    #[error("the {what} at byte {offset} is not UTF-8")]
    Utf8 {
        /// Which text.
        what: &'static str,
        /// Where its length byte is.
        offset: usize,
    },
    /// A text that is not a volume name.
    #[error("the volume name at byte {offset}: {source}")]
    Name {
        /// Where its length byte is.
        offset: usize,
        /// What is wrong with it.
        source: NameError,
    },
    /// An N_Port_ID wider than 24 bits.
    #[error("the {what} at byte {offset} is {value:#x}, wider than 24 bits")]
    FcId {
        /// Which address.
        what: &'static str,
        /// Where.
        offset: usize,
        /// What it holds.
        value: u32,
    },
    /// An unknown media type code.
    #[error("media type code {code} at byte {offset} is unknown")]
    Media {
        /// Where.
        offset: usize,
        /// The code.
        code: u8,
    },
    /// An unknown volume state code.
    #[error("volume state code {code} at byte {offset} is unknown")]
    State {
        /// Where.
        offset: usize,
        /// The code.
        code: u8,
    },
    /// A version vector entry whose owner is not above the one before it.
    #[error("version vector owner {owner} at byte {offset} is not above the one before it")]
    VectorOrder {
        /// Where the entry starts.
        offset: usize,
        /// Its owner.
        owner: Wwn,
    },
    /// Bytes left over after the body.
    #[error("{count} bytes after the body's end at byte {offset}")]
    TrailingBytes {
        /// Where the body's last field ended.
        offset: usize,
        /// How many bytes follow.
        count: usize,
    },
}

impl WireError {
    /// The reject reason a receiver answers with.
    pub fn reason(&self) -> Reason {
        match self {
            WireError::UnknownCommand(_) | WireError::UnknownKind(_) => Reason::UNKNOWN_KIND,
            WireError::BadMac => Reason::BAD_MAC,
            _ => Reason::MALFORMED,
        }
    }
}

/// The CT_IU of `msg`, signed with `key` (a reject is not signed).
///
/// # Panics
///
/// On a message no decoder would give, which is the caller's bug: a reply whose variant does
/// not [answer](Reply::answers) its kind, a text longer than [`MAX_TEXT_LEN`] bytes, a list
/// longer than [`MAX_LIST_LEN`] entries.
pub fn encode(msg: &Message, key: &Key) -> Vec<u8> {
    match msg {
        Message::Reject(reason) => preamble(CtCommand::FS_RJT, Some(*reason)).to_vec(),
        Message::Request(header, request) => {
            let kind = request.kind();
            signed(key, kind.command(), kind, header, |w| {
                request_body(w, request)
            })
        }
        Message::Reply(header, kind, reply) => {
            assert!(
                reply.answers(*kind),
                "{reply:?} is not the reply to a {} request",
                kind.name()
            );
            signed(key, CtCommand::FS_ACC, *kind, header, |w| {
                reply_body(w, reply)
            })
        }
    }
}

/// The message of a CT_IU, its HMAC checked with `key`.
pub fn decode(ct_iu: &[u8], key: &Key) -> Result<Message, WireError> {
    decode_with(ct_iu, Some(key))
}

/// The message of a CT_IU with every check [`decode`] makes except the HMAC's: for an analyzer
/// that reads a capture without the installation's key. Nothing decoded so may be trusted.
pub fn decode_unverified(ct_iu: &[u8]) -> Result<Message, WireError> {
    decode_with(ct_iu, None)
}

/// [`decode`], the HMAC checked when `key` is given.
fn decode_with(ct_iu: &[u8], key: Option<&Key>) -> Result<Message, WireError> {
    let pre = CtPreambleRepr::parse(ct_iu)?;
    if pre.gs_type != GS_TYPE || pre.gs_subtype != GS_SUBTYPE {
        return Err(WireError::NotThisService {
            gs_type: pre.gs_type,
            gs_subtype: pre.gs_subtype,
        });
    }
    // One encoding of every message: the fields this service does not use are zero.
    zero("IN_ID", pre.in_id.to_u32())?;
    zero("options", pre.options.into())?;
    // The preamble parsed, so its 16 bytes are there; its parser skips the reserved byte 7.
    zero("reserved byte", ct_iu[7].into())?;
    zero("maximum size", pre.max_size.into())?;
    zero("fragment ID", pre.fragment_id.into())?;
    let request = match pre.command {
        CtCommand::FS_RJT => return reject(&pre, ct_iu.len()),
        CtCommand::FS_ACC => None,
        c => Some(Kind::from_command(c).ok_or(WireError::UnknownCommand(c))?),
    };
    zero("reason code", pre.reason.0.into())?;
    zero("reason code explanation", pre.explanation.into())?;
    zero("vendor specific byte", pre.vendor.into())?;
    signed_message(ct_iu, key, request)
}

/// The preamble of every CT_IU of this service; `reject` gives an FS_RJT's reason.
fn preamble(command: CtCommand, reject: Option<Reason>) -> CtPreambleRepr {
    CtPreambleRepr {
        in_id: FcId::UNIDENTIFIED,
        gs_type: GS_TYPE,
        gs_subtype: GS_SUBTYPE,
        options: 0,
        command,
        max_size: 0,
        fragment_id: 0,
        reason: if reject.is_some() {
            CtReason::VENDOR_SPECIFIC
        } else {
            CtReason(0)
        },
        explanation: 0,
        vendor: reject.map_or(0, |r| r.0),
    }
}

/// Preamble, header, the body `body` writes, MAC.
fn signed(
    key: &Key,
    command: CtCommand,
    kind: Kind,
    header: &Header,
    body: impl FnOnce(&mut Writer),
) -> Vec<u8> {
    assert!(kind.is_known(), "kind {:#04x} is not known", kind.0);
    let mut w = Writer(Vec::with_capacity(MIN_SIGNED_LEN + 64));
    w.0.extend_from_slice(&preamble(command, None).to_vec());
    w.u8(FORMAT);
    w.u8(kind.0);
    w.u16(0);
    w.wwn(header.sender);
    w.u32(header.generation);
    w.u64(header.seq);
    w.u32(0); // the body length, written below
    body(&mut w);
    let body_len = u32::try_from(w.0.len() - BODY).expect("a body under 4 GiB");
    w.0[field::BODY_LEN].copy_from_slice(&body_len.to_be_bytes());
    let tag = key.tag(&w.0);
    w.0.extend_from_slice(&tag);
    w.0
}

/// A field that must be zero.
fn zero(field: &'static str, value: u32) -> Result<(), WireError> {
    if value == 0 {
        Ok(())
    } else {
        Err(WireError::PreambleField {
            field,
            value,
            want: 0,
        })
    }
}

/// An FS_RJT: reason code 0xFF, explanation 0, the [`Reason`] in the vendor byte, no payload.
fn reject(pre: &CtPreambleRepr, len: usize) -> Result<Message, WireError> {
    if pre.reason != CtReason::VENDOR_SPECIFIC {
        return Err(WireError::PreambleField {
            field: "reason code",
            value: pre.reason.0.into(),
            want: CtReason::VENDOR_SPECIFIC.0.into(),
        });
    }
    zero("reason code explanation", pre.explanation.into())?;
    if len != PREAMBLE_LEN {
        return Err(WireError::RejectLength(len));
    }
    Ok(Message::Reject(Reason(pre.vendor)))
}

/// A request (`request` is its command's kind) or a reply (`None`): header, MAC, body.
fn signed_message(
    ct_iu: &[u8],
    key: Option<&Key>,
    request: Option<Kind>,
) -> Result<Message, WireError> {
    if ct_iu.len() < MIN_SIGNED_LEN {
        return Err(WireError::Truncated {
            what: "header and MAC",
            offset: PREAMBLE_LEN,
            needed: HEADER_LEN + MAC_LEN,
            present: ct_iu.len() - PREAMBLE_LEN,
        });
    }
    // The header is all there (checked above); read it field by field with the body's reader.
    let mut h = Reader::new(&ct_iu[..BODY], 0);
    h.pos = field::FORMAT;
    let format = h.u8("format")?;
    if format != FORMAT {
        return Err(WireError::Format(format));
    }
    debug_assert_eq!(h.pos, field::KIND);
    let kind = Kind(h.u8("kind")?);
    if !kind.is_known() {
        return Err(WireError::UnknownKind(kind));
    }
    if let Some(command) = request {
        if command != kind {
            return Err(WireError::KindMismatch {
                command,
                header: kind,
            });
        }
    }
    debug_assert_eq!(h.pos, field::FLAGS.start);
    let flags = h.u16("flags")?;
    if flags != 0 {
        return Err(WireError::Flags(flags));
    }
    debug_assert_eq!(h.pos, field::SENDER.start);
    let sender = h.wwn("sender")?;
    debug_assert_eq!(h.pos, field::GENERATION.start);
    let generation = h.u32("generation")?;
    debug_assert_eq!(h.pos, field::SEQ.start);
    let seq = h.u64("sequence")?;
    debug_assert_eq!(h.pos, field::BODY_LEN.start);
    let declared = h.u32("body length")?;
    let present = ct_iu.len() - MIN_SIGNED_LEN;
    if usize::try_from(declared).ok() != Some(present) {
        return Err(WireError::BodyLength { declared, present });
    }
    let (signed, tag) = ct_iu.split_at(ct_iu.len() - MAC_LEN);
    // The MAC is checked before a byte of the body is interpreted: what an attacker sends
    // reaches the body decoders only if it knows the key.
    if key.is_some_and(|key| !key.verify(signed, tag)) {
        return Err(WireError::BadMac);
    }
    let header = Header {
        sender,
        generation,
        seq,
    };
    let mut r = Reader::new(&signed[BODY..], BODY);
    let msg = match request {
        Some(_) => Message::Request(header, request_of(&mut r, kind)?),
        None => Message::Reply(header, kind, reply_of(&mut r, kind)?),
    };
    r.finish()?;
    Ok(msg)
}

fn request_body(w: &mut Writer, request: &Request) {
    match request {
        Request::Heartbeat(hb) => {
            w.text(&hb.name);
            w.text(&hb.site);
            w.u32(hb.fc_id.to_u32());
            w.text(&hb.api);
            w.vector(&hb.versions);
        }
        Request::Update(records) => {
            w.count(records.len());
            for rec in records {
                w.record(rec);
            }
        }
        Request::Pull(pull) => {
            w.vector(&pull.versions);
            w.u16(pull.max);
        }
        Request::Claim(claim) => {
            w.text(claim.name.as_str());
            w.u64(claim.claimed_at);
            w.flag(claim.release);
        }
        Request::Reserve(res) => {
            w.u64(res.id);
            w.u8(res.media.code());
            w.u64(res.bytes);
            w.u32(res.ttl_ms);
        }
        Request::Release { id } => w.u64(*id),
        Request::Commit { id, name } => {
            w.u64(*id);
            w.text(name.as_str());
        }
        Request::Lease(lease) => {
            w.text(lease.name.as_str());
            w.flag(lease.release);
        }
        Request::Invalidate(inv) => {
            w.text(inv.name.as_str());
            w.u64(inv.start);
            w.u64(inv.sectors);
            w.flag(inv.revoke);
        }
        Request::Route(route) => {
            w.text(route.name.as_str());
            w.flag(route.replica);
        }
    }
}

fn request_of(r: &mut Reader<'_>, kind: Kind) -> Result<Request, WireError> {
    Ok(match kind {
        Kind::HEARTBEAT => Request::Heartbeat(Heartbeat {
            name: r.text("controller name")?.to_owned(),
            site: r.text("site")?.to_owned(),
            fc_id: r.fc_id("controller N_Port_ID")?,
            api: r.text("API URL")?.to_owned(),
            versions: r.vector()?,
        }),
        Kind::UPDATE => Request::Update(r.records()?),
        Kind::PULL => Request::Pull(Pull {
            versions: r.vector()?,
            max: r.u16("max")?,
        }),
        Kind::CLAIM => Request::Claim(Claim {
            name: r.name()?,
            claimed_at: r.u64("claimed_at")?,
            release: r.flag("release")?,
        }),
        Kind::RESERVE => Request::Reserve(Reserve {
            id: r.u64("reservation id")?,
            media: r.media()?,
            bytes: r.u64("bytes")?,
            ttl_ms: r.u32("ttl_ms")?,
        }),
        Kind::RELEASE => Request::Release {
            id: r.u64("reservation id")?,
        },
        Kind::COMMIT => Request::Commit {
            id: r.u64("reservation id")?,
            name: r.name()?,
        },
        Kind::LEASE => Request::Lease(Lease {
            name: r.name()?,
            release: r.flag("release")?,
        }),
        Kind::INVALIDATE => Request::Invalidate(Invalidate {
            name: r.name()?,
            start: r.u64("start sector")?,
            sectors: r.u64("sectors")?,
            revoke: r.flag("revoke")?,
        }),
        Kind::ROUTE => Request::Route(Route {
            name: r.name()?,
            replica: r.flag("replica")?,
        }),
        // The caller checked the kind.
        other => return Err(WireError::UnknownKind(other)),
    })
}

fn reply_body(w: &mut Writer, reply: &Reply) {
    match reply {
        Reply::Ack => {}
        Reply::Updated(versions) => w.vector(versions),
        Reply::Pulled(p) => {
            w.flag(p.complete);
            w.vector(&p.versions);
            w.count(p.records.len());
            for rec in &p.records {
                w.record(rec);
            }
        }
        Reply::Claimed(c) => {
            w.flag(c.granted);
            w.flag(c.holder.is_some());
            if let Some((holder, since)) = c.holder {
                w.wwn(holder);
                w.u64(since);
            }
        }
        Reply::Reserved(extents) => {
            w.count(extents.len());
            for e in extents {
                w.extent(e);
            }
        }
        Reply::Leased { ttl_ms } => w.u32(*ttl_ms),
    }
}

fn reply_of(r: &mut Reader<'_>, kind: Kind) -> Result<Reply, WireError> {
    Ok(match kind {
        Kind::HEARTBEAT | Kind::RELEASE | Kind::COMMIT | Kind::INVALIDATE | Kind::ROUTE => {
            Reply::Ack
        }
        Kind::UPDATE => Reply::Updated(r.vector()?),
        Kind::PULL => Reply::Pulled(Pulled {
            complete: r.flag("complete")?,
            versions: r.vector()?,
            records: r.records()?,
        }),
        Kind::CLAIM => {
            let granted = r.flag("granted")?;
            let holder = if r.flag("has holder")? {
                Some((r.wwn("holder")?, r.u64("held since")?))
            } else {
                None
            };
            Reply::Claimed(Claimed { granted, holder })
        }
        Kind::RESERVE => {
            let n = r.count(EXTENT_LEN)?;
            let mut extents = Vec::with_capacity(n.capacity);
            for _ in 0..n.count {
                extents.push(r.extent()?);
            }
            Reply::Reserved(extents)
        }
        Kind::LEASE => Reply::Leased {
            ttl_ms: r.u32("ttl_ms")?,
        },
        // The caller checked the kind.
        other => return Err(WireError::UnknownKind(other)),
    })
}

/// Appends big-endian fields to a CT_IU being built.
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn wwn(&mut self, v: Wwn) {
        self.0.extend_from_slice(&v.0);
    }

    fn flag(&mut self, v: bool) {
        self.u8(v.into());
    }

    fn text(&mut self, s: &str) {
        let len = u8::try_from(s.len())
            .unwrap_or_else(|_| panic!("text of {} bytes is over {MAX_TEXT_LEN}", s.len()));
        self.u8(len);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn count(&mut self, n: usize) {
        let n = u16::try_from(n)
            .unwrap_or_else(|_| panic!("list of {n} entries is over {MAX_LIST_LEN}"));
        self.u16(n);
    }

    fn vector(&mut self, v: &VersionVector) {
        self.count(v.0.len());
        // A BTreeMap iterates in ascending owner order, the order decode requires.
        for (owner, stamp) in &v.0 {
            self.wwn(*owner);
            self.u32(stamp.generation);
            self.u64(stamp.version);
        }
    }

    fn extent(&mut self, e: &RealExtent) {
        self.wwn(e.array);
        self.u32(e.array_id.to_u32());
        self.u64(e.lun);
        self.u64(e.start);
        self.u64(e.blocks);
        self.u32(e.block_size);
    }

    fn record(&mut self, rec: &Record) {
        self.wwn(rec.key.owner);
        self.u32(rec.stamp.generation);
        self.u64(rec.stamp.version);
        self.text(rec.key.name.as_str());
        self.flag(rec.body.is_none());
        let Some(body) = &rec.body else { return };
        self.text(&body.owner.name);
        self.wwn(body.owner.wwpn);
        self.u32(body.owner.fc_id.to_u32());
        self.text(&body.owner.site);
        self.text(&body.local_name);
        self.u64(body.capacity);
        self.u8(body.state.code());
        self.u64(body.claimed_at);
        self.u8(body.media.code());
        self.count(body.rows.len());
        for row in &body.rows {
            self.u64(row.virtual_start);
            self.extent(&row.real);
            self.u8(row.copy);
        }
        self.count(body.masking.len());
        for host in &body.masking {
            self.wwn(*host);
        }
    }
}

/// A list's count, and the capacity to reserve for it: no more entries than the bytes left
/// could hold, whatever the count claims.
struct Count {
    count: usize,
    capacity: usize,
}

/// Reads big-endian fields of untrusted bytes; every error names the field and its offset.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The offset of `buf` in the CT_IU, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Reader<'a> {
        Reader { buf, pos: 0, base }
    }

    /// Where the next field starts, in the CT_IU.
    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let bytes = self.slice(N, what)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn slice(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let bytes = self
            .buf
            .get(self.pos..)
            .and_then(|rest| rest.get(..n))
            .ok_or(WireError::Truncated {
                what,
                offset: self.offset(),
                needed: n,
                present: self.remaining(),
            })?;
        self.pos += n;
        Ok(bytes)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.take(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.take(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.take(what)?))
    }

    fn wwn(&mut self, what: &'static str) -> Result<Wwn, WireError> {
        Ok(Wwn(self.take(what)?))
    }

    fn fc_id(&mut self, what: &'static str) -> Result<FcId, WireError> {
        let offset = self.offset();
        let value = self.u32(what)?;
        FcId::try_new(value).map_err(|_| WireError::FcId {
            what,
            offset,
            value,
        })
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, WireError> {
        let offset = self.offset();
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(WireError::Flag {
                what,
                offset,
                value,
            }),
        }
    }

    fn text(&mut self, what: &'static str) -> Result<&'a str, WireError> {
        let offset = self.offset();
        let len = self.u8(what)?;
        let bytes = self.slice(len.into(), what)?;
        core::str::from_utf8(bytes).map_err(|_| WireError::Utf8 { what, offset })
    }

    fn name(&mut self) -> Result<VolumeName, WireError> {
        let offset = self.offset();
        let text = self.text("volume name")?;
        VolumeName::new(text).map_err(|source| WireError::Name { offset, source })
    }

    fn media(&mut self) -> Result<MediaType, WireError> {
        let offset = self.offset();
        let code = self.u8("media type")?;
        MediaType::from_code(code).ok_or(WireError::Media { offset, code })
    }

    fn state(&mut self) -> Result<VolumeState, WireError> {
        let offset = self.offset();
        let code = self.u8("volume state")?;
        VolumeState::from_code(code).ok_or(WireError::State { offset, code })
    }

    /// A list count, for entries of at least `min_len` bytes.
    fn count(&mut self, min_len: usize) -> Result<Count, WireError> {
        let count = self.u16("list count")?.into();
        Ok(Count {
            count,
            capacity: count.min(self.remaining() / min_len),
        })
    }

    /// A version vector: owners each once, ascending.
    fn vector(&mut self) -> Result<VersionVector, WireError> {
        let n = self.count(VECTOR_ENTRY_LEN)?;
        let mut v = VersionVector::default();
        let mut last = None;
        for _ in 0..n.count {
            let offset = self.offset();
            let owner = self.wwn("vector owner")?;
            let generation = self.u32("vector generation")?;
            let version = self.u64("vector version")?;
            if last.is_some_and(|l| owner <= l) {
                return Err(WireError::VectorOrder { offset, owner });
            }
            last = Some(owner);
            v.0.insert(owner, Stamp::new(generation, version));
        }
        Ok(v)
    }

    fn extent(&mut self) -> Result<RealExtent, WireError> {
        Ok(RealExtent {
            array: self.wwn("array WWPN")?,
            array_id: self.fc_id("array N_Port_ID")?,
            lun: self.u64("LUN")?,
            start: self.u64("extent start")?,
            blocks: self.u64("extent blocks")?,
            block_size: self.u32("block size")?,
        })
    }

    fn records(&mut self) -> Result<Vec<Record>, WireError> {
        let n = self.count(MIN_RECORD_LEN)?;
        let mut records = Vec::with_capacity(n.capacity);
        for _ in 0..n.count {
            records.push(self.record()?);
        }
        Ok(records)
    }

    fn record(&mut self) -> Result<Record, WireError> {
        let owner = self.wwn("record owner")?;
        let stamp = Stamp::new(self.u32("record generation")?, self.u64("record version")?);
        let name = self.name()?;
        let body = if self.flag("tombstone")? {
            None
        } else {
            Some(self.volume()?)
        };
        Ok(Record {
            key: RecordKey { owner, name },
            stamp,
            body,
        })
    }

    fn volume(&mut self) -> Result<VolumeBody, WireError> {
        let owner = ControllerRef {
            name: self.text("owner name")?.to_owned(),
            wwpn: self.wwn("owner WWPN")?,
            fc_id: self.fc_id("owner N_Port_ID")?,
            site: self.text("owner site")?.to_owned(),
        };
        let local_name = self.text("local name")?.to_owned();
        let capacity = self.u64("capacity")?;
        let state = self.state()?;
        let claimed_at = self.u64("claimed_at")?;
        let media = self.media()?;
        let n = self.count(ROW_LEN)?;
        let mut rows = Vec::with_capacity(n.capacity);
        for _ in 0..n.count {
            rows.push(MapRow {
                virtual_start: self.u64("virtual start")?,
                real: self.extent()?,
                copy: self.u8("copy")?,
            });
        }
        let n = self.count(8)?;
        let mut masking = Vec::with_capacity(n.capacity);
        for _ in 0..n.count {
            masking.push(self.wwn("masking WWPN")?);
        }
        Ok(VolumeBody {
            owner,
            local_name,
            capacity,
            state,
            claimed_at,
            media,
            rows,
            masking,
        })
    }

    /// Every byte was used.
    fn finish(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(WireError::TrailingBytes {
                offset: self.offset(),
                count,
            }),
        }
    }
}

/// A record alone, as UPDATE carries it: the store keeps records in this form.
pub fn encode_record(rec: &Record) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.record(rec);
    w.0
}

/// A record encoded by [`encode_record`].
pub fn decode_record(bytes: &[u8]) -> Result<Record, WireError> {
    let mut r = Reader::new(bytes, 0);
    let rec = r.record()?;
    r.finish()?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hex_literal::hex;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;

    use super::*;
    use crate::catalogue;

    const KEY: &[u8] = b"fcsan test key";

    /// A HEARTBEAT from 20:00:00:25:b5:00:00:01 (generation 3, sequence 7): name "ctl-a", site
    /// "paris", N_Port_ID 01.02.00, no API, its vector {itself: 3.42}. The README shows it too.
    static HEARTBEAT: [u8; 115] = hex!(
        "01 000000 e0 01 00 00 0e01 0000 00 00 00 00"
        "01 01 0000 20000025b5000001 00000003 0000000000000007 00000027"
        "05 63746c2d61 05 7061726973 00010200 00"
        "0001 20000025b5000001 00000003 000000000000002a"
        "1253cc7620e314c70670ffaaa1573f47b101c68b32dce8905327ff1e6d21db15"
    );

    fn heartbeat() -> Message {
        Message::Request(
            Header {
                sender: catalogue::A_WWPN,
                generation: 3,
                seq: 7,
            },
            Request::Heartbeat(Heartbeat {
                name: "ctl-a".into(),
                site: "paris".into(),
                fc_id: FcId::from_parts(0x01, 0x02, 0x00),
                api: String::new(),
                versions: VersionVector(BTreeMap::from([(catalogue::A_WWPN, Stamp::new(3, 42))])),
            }),
        )
    }

    fn key() -> Key {
        Key::new(KEY)
    }

    /// `bytes` with its MAC recomputed (after a test changed a signed field).
    fn resign(mut bytes: Vec<u8>) -> Vec<u8> {
        let n = bytes.len() - MAC_LEN;
        let tag = key().tag(&bytes[..n]);
        bytes[n..].copy_from_slice(&tag);
        bytes
    }

    /// A signed CT_IU of `command` and header `kind` around an arbitrary `body`.
    fn raw(command: u16, kind: u8, body: &[u8]) -> Vec<u8> {
        let mut b = preamble(CtCommand(command), None).to_vec();
        b.extend_from_slice(&[FORMAT, kind, 0, 0]);
        b.extend_from_slice(&catalogue::A_WWPN.0);
        b.extend_from_slice(&3u32.to_be_bytes());
        b.extend_from_slice(&7u64.to_be_bytes());
        b.extend_from_slice(&(body.len() as u32).to_be_bytes());
        b.extend_from_slice(body);
        b.extend_from_slice(&[0; MAC_LEN]);
        resign(b)
    }

    fn request(kind: Kind, body: &[u8]) -> Vec<u8> {
        raw(kind.command().0, kind.0, body)
    }

    fn reply(kind: Kind, body: &[u8]) -> Vec<u8> {
        raw(CtCommand::FS_ACC.0, kind.0, body)
    }

    fn err(bytes: &[u8]) -> WireError {
        decode(bytes, &key()).expect_err("must not decode")
    }

    #[test]
    fn test_parse() {
        assert_eq!(decode(&HEARTBEAT, &key()), Ok(heartbeat()));
    }

    #[test]
    fn test_emit() {
        assert_eq!(encode(&heartbeat(), &key()), HEARTBEAT);
    }

    #[test]
    fn test_reject() {
        let bytes = hex!("01 000000 e0 01 00 00 8001 0000 00 ff 00 04");
        assert_eq!(encode(&Message::Reject(Reason::STALE), &key()), bytes);
        assert_eq!(decode(&bytes, &key()), Ok(Message::Reject(Reason::STALE)));
        // Unsigned: any key reads it.
        assert_eq!(
            decode(&bytes, &Key::new(b"other")),
            Ok(Message::Reject(Reason::STALE))
        );
    }

    #[test]
    fn test_decode_unverified_reads_without_the_key() {
        assert_eq!(decode_unverified(&HEARTBEAT), Ok(heartbeat()));
        assert_eq!(
            decode(&HEARTBEAT, &Key::new(b"another key")),
            Err(WireError::BadMac)
        );
        // Every other check still holds.
        let mut bytes = HEARTBEAT.to_vec();
        bytes[16] = 2;
        assert_eq!(decode_unverified(&bytes), Err(WireError::Format(2)));
    }

    #[test]
    fn test_catalogue_round_trips() {
        for msg in catalogue::messages() {
            let bytes = encode(&msg, &key());
            assert_eq!(decode(&bytes, &key()).as_ref(), Ok(&msg));
        }
    }

    #[test]
    fn test_truncated_prefixes_fail() {
        for msg in catalogue::messages() {
            let bytes = encode(&msg, &key());
            for len in 0..bytes.len() {
                assert!(
                    decode(&bytes[..len], &key()).is_err(),
                    "{len}-byte prefix of {msg:?} decodes"
                );
            }
        }
    }

    #[test]
    fn test_wrong_key_is_bad_mac() {
        let e = decode(&HEARTBEAT, &Key::new(b"fcsan other key")).unwrap_err();
        assert_eq!(e, WireError::BadMac);
        assert_eq!(e.reason(), Reason::BAD_MAC);
    }

    #[test]
    fn test_flipped_byte_is_bad_mac() {
        // Every byte the MAC covers that no earlier check reads, and every MAC byte.
        for i in field::SENDER.start..HEARTBEAT.len() {
            let mut b = HEARTBEAT;
            b[i] ^= 0x01;
            if field::BODY_LEN.contains(&i) {
                assert!(matches!(err(&b), WireError::BodyLength { .. }), "byte {i}");
            } else {
                assert_eq!(err(&b), WireError::BadMac, "byte {i}");
            }
        }
    }

    #[test]
    fn test_short_preamble() {
        let e = err(&HEARTBEAT[..15]);
        assert!(matches!(e, WireError::Preamble(CtError::Len(_))), "{e}");
        assert_eq!(e.reason(), Reason::MALFORMED);
    }

    #[test]
    fn test_bad_revision() {
        let mut b = HEARTBEAT;
        b[0] = 2;
        assert_eq!(err(&b), WireError::Preamble(CtError::BadRevision(2)));
    }

    #[test]
    fn test_other_service() {
        let mut b = HEARTBEAT;
        b[4] = 0xFC;
        b[5] = 0x02;
        assert_eq!(
            err(&b),
            WireError::NotThisService {
                gs_type: GsType(0xFC),
                gs_subtype: GsSubtype(0x02)
            }
        );
    }

    #[test]
    fn test_preamble_fields_zero() {
        for (i, field) in [
            (1, "IN_ID"),
            (6, "options"),
            (7, "reserved byte"),
            (10, "maximum size"),
            (12, "fragment ID"),
            (13, "reason code"),
            (14, "reason code explanation"),
            (15, "vendor specific byte"),
        ] {
            let mut b = HEARTBEAT;
            b[i] = 0x01;
            assert!(
                matches!(err(&b), WireError::PreambleField { field: f, .. } if f == field),
                "byte {i}"
            );
        }
    }

    #[test]
    fn test_reject_fields() {
        let good = encode(&Message::Reject(Reason::BAD_MAC), &key());
        let mut b = good.clone();
        b[13] = CtReason::LOGICAL_BUSY.0;
        assert_eq!(
            err(&b),
            WireError::PreambleField {
                field: "reason code",
                value: 0x05,
                want: 0xFF
            }
        );
        let mut b = good.clone();
        b[14] = 0x01;
        assert!(matches!(err(&b), WireError::PreambleField { .. }));
        let mut b = good;
        b.extend_from_slice(&[0; 4]);
        assert_eq!(err(&b), WireError::RejectLength(20));
    }

    #[test]
    fn test_unknown_command() {
        for command in [0x0E0B, 0x0E00, 0x0EFF, 0x0112] {
            let e = err(&raw(command, 1, &[]));
            assert_eq!(e, WireError::UnknownCommand(CtCommand(command)));
            assert_eq!(e.reason(), Reason::UNKNOWN_KIND);
        }
    }

    #[test]
    fn test_unknown_kind_in_reply() {
        let e = err(&reply(Kind(0x0B), &[]));
        assert_eq!(e, WireError::UnknownKind(Kind(0x0B)));
        assert_eq!(e.reason(), Reason::UNKNOWN_KIND);
    }

    #[test]
    fn test_kind_mismatch() {
        let e = err(&raw(Kind::HEARTBEAT.command().0, Kind::UPDATE.0, &[0, 0]));
        assert_eq!(
            e,
            WireError::KindMismatch {
                command: Kind::HEARTBEAT,
                header: Kind::UPDATE
            }
        );
    }

    #[test]
    fn test_header_truncated() {
        let e = err(&HEARTBEAT[..MIN_SIGNED_LEN - 1]);
        assert!(
            matches!(
                e,
                WireError::Truncated {
                    what: "header and MAC",
                    offset: 16,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn test_unknown_format() {
        let mut b = HEARTBEAT.to_vec();
        b[field::FORMAT] = 2;
        assert_eq!(err(&resign(b)), WireError::Format(2));
    }

    #[test]
    fn test_flags_not_zero() {
        let mut b = HEARTBEAT.to_vec();
        b[field::FLAGS.start] = 0x80;
        assert_eq!(err(&resign(b)), WireError::Flags(0x8000));
    }

    #[test]
    fn test_body_length_disagrees() {
        let mut b = HEARTBEAT.to_vec();
        b[field::BODY_LEN.end - 1] = 0x28;
        assert_eq!(
            err(&resign(b)),
            WireError::BodyLength {
                declared: 0x28,
                present: 0x27
            }
        );
        // Bytes after the MAC are a body length that disagrees, too.
        let mut b = HEARTBEAT.to_vec();
        b.push(0);
        assert!(matches!(err(&b), WireError::BodyLength { .. }));
    }

    #[test]
    fn test_truncated_body() {
        // A CLAIM whose name says 5 bytes and has 2.
        let e = err(&request(Kind::CLAIM, &[5, b'a', b'b']));
        assert_eq!(
            e,
            WireError::Truncated {
                what: "volume name",
                offset: BODY + 1,
                needed: 5,
                present: 2
            }
        );
        assert_eq!(e.reason(), Reason::MALFORMED);
    }

    #[test]
    fn test_huge_count_is_truncated_not_allocated() {
        // 65535 records announced, none present.
        let e = err(&request(Kind::UPDATE, &[0xFF, 0xFF]));
        assert!(
            matches!(
                e,
                WireError::Truncated {
                    what: "record owner",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn test_trailing_bytes() {
        let e = err(&request(Kind::RELEASE, &[0, 0, 0, 0, 0, 0, 0, 1, 0xAA]));
        assert_eq!(
            e,
            WireError::TrailingBytes {
                offset: BODY + 8,
                count: 1
            }
        );
        assert!(matches!(
            err(&reply(Kind::HEARTBEAT, &[0])),
            WireError::TrailingBytes { .. }
        ));
    }

    #[test]
    fn test_bad_flag() {
        let mut body = vec![1, b'a'];
        body.extend_from_slice(&5u64.to_be_bytes());
        body.push(2);
        assert_eq!(
            err(&request(Kind::CLAIM, &body)),
            WireError::Flag {
                what: "release",
                offset: BODY + 10,
                value: 2
            }
        );
    }

    #[test]
    fn test_bad_utf8() {
        let mut b = HEARTBEAT.to_vec();
        b[BODY + 1] = 0xFF;
        assert_eq!(
            err(&resign(b)),
            WireError::Utf8 {
                what: "controller name",
                offset: BODY
            }
        );
    }

    #[test]
    fn test_bad_volume_name() {
        let body = [0, 0, 0, 0, 0, 0, 0, 9, 3, b'a', b' ', b'b'];
        assert_eq!(
            err(&request(Kind::COMMIT, &body)),
            WireError::Name {
                offset: BODY + 8,
                source: NameError::BadChar(' ')
            }
        );
        assert!(matches!(
            err(&request(Kind::CLAIM, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
            WireError::Name {
                source: NameError::Empty,
                ..
            }
        ));
    }

    #[test]
    fn test_fc_id_too_wide() {
        let mut b = HEARTBEAT.to_vec();
        b[BODY + 12] = 0x01;
        assert_eq!(
            err(&resign(b)),
            WireError::FcId {
                what: "controller N_Port_ID",
                offset: BODY + 12,
                value: 0x0101_0200
            }
        );
    }

    #[test]
    fn test_bad_media() {
        let mut body = 1u64.to_be_bytes().to_vec();
        body.push(9);
        body.extend_from_slice(&[0; 12]);
        assert_eq!(
            err(&request(Kind::RESERVE, &body)),
            WireError::Media {
                offset: BODY + 8,
                code: 9
            }
        );
    }

    #[test]
    fn test_bad_state() {
        let msg = Message::Request(
            catalogue::a(1),
            Request::Update(vec![catalogue::live_record()]),
        );
        let mut b = encode(&msg, &key());
        // count(2) owner(8) generation(4) version(8) name(1+5) tombstone(1) controller name
        // (1+5) wwpn(8) fc_id(4) site(1+5) local name(1+3) capacity(8), then the state.
        let at = BODY + 2 + 8 + 4 + 8 + 6 + 1 + 6 + 8 + 4 + 6 + 4 + 8;
        assert_eq!(b[at], VolumeState::Online.code());
        b[at] = 0;
        assert_eq!(
            err(&resign(b)),
            WireError::State {
                offset: at,
                code: 0
            }
        );
    }

    #[test]
    fn test_vector_order() {
        let entry = |owner: u8| {
            let mut e = vec![0x20, 0, 0, 0, 0, 0, 0, owner];
            e.extend_from_slice(&[0; 12]);
            e
        };
        for (first, second) in [(2, 1), (1, 1)] {
            let body = [vec![0, 2], entry(first), entry(second)].concat();
            assert_eq!(
                err(&reply(Kind::UPDATE, &body)),
                WireError::VectorOrder {
                    offset: BODY + 2 + VECTOR_ENTRY_LEN,
                    owner: Wwn([0x20, 0, 0, 0, 0, 0, 0, second])
                }
            );
        }
    }

    #[test]
    fn test_reply_kind_selects_body() {
        // An empty body is an Ack for COMMIT and too short for an UPDATE's vector.
        assert_eq!(
            decode(&reply(Kind::COMMIT, &[]), &key()),
            Ok(Message::Reply(catalogue::a(7), Kind::COMMIT, Reply::Ack))
        );
        assert!(matches!(
            err(&reply(Kind::UPDATE, &[])),
            WireError::Truncated { .. }
        ));
    }

    /// A volume name of the tests (valid by construction).
    fn vol(s: &str) -> VolumeName {
        VolumeName::new(s).expect("a valid name")
    }

    /// `body` of a request or reply (`bytes` makes its CT_IU) is exactly `msg`'s: it decodes to
    /// `msg`, `msg` encodes to it; every shorter body is `malformed`, the last field cut short
    /// is `Truncated { what: last, .. }`, and one byte more is trailing.
    fn check_layout(bytes: fn(&[u8]) -> Vec<u8>, body: &[u8], msg: &Message, last: &str) {
        let full = bytes(body);
        assert_eq!(decode(&full, &key()).as_ref(), Ok(msg));
        assert_eq!(encode(msg, &key()), full);
        for len in 0..body.len() {
            let e = err(&bytes(&body[..len]));
            assert_eq!(e.reason(), Reason::MALFORMED, "{len}-byte body: {e}");
            assert!(
                matches!(e, WireError::Truncated { .. }),
                "{len}-byte body: {e}"
            );
        }
        match err(&bytes(&body[..body.len() - 1])) {
            WireError::Truncated {
                what,
                needed,
                present,
                ..
            } => assert_eq!((what, present + 1), (last, needed)),
            e => panic!("the last field cut short: {e}"),
        }
        let overlong = [body, &[0]].concat();
        assert_eq!(
            err(&bytes(&overlong)),
            WireError::TrailingBytes {
                offset: BODY + body.len(),
                count: 1
            }
        );
    }

    #[test]
    fn test_lease_layout() {
        // name "db-01" | release 1
        let body = hex!("05 64622d3031 01");
        let msg = Message::Request(
            catalogue::a(7),
            Request::Lease(Lease {
                name: vol("db-01"),
                release: true,
            }),
        );
        check_layout(|b| request(Kind::LEASE, b), &body, &msg, "release");
        let mut bad = body;
        bad[6] = 2;
        assert_eq!(
            err(&request(Kind::LEASE, &bad)),
            WireError::Flag {
                what: "release",
                offset: BODY + 6,
                value: 2
            }
        );
        let mut bad = body;
        bad[3] = b' ';
        assert_eq!(
            err(&request(Kind::LEASE, &bad)),
            WireError::Name {
                offset: BODY,
                source: NameError::BadChar(' ')
            }
        );
    }

    #[test]
    fn test_invalidate_layout() {
        // name "db-01" | start 0x800 | sectors 16 | revoke 0
        let body = hex!("05 64622d3031 0000000000000800 0000000000000010 00");
        let msg = Message::Request(
            catalogue::a(7),
            Request::Invalidate(Invalidate {
                name: vol("db-01"),
                start: 0x800,
                sectors: 16,
                revoke: false,
            }),
        );
        check_layout(|b| request(Kind::INVALIDATE, b), &body, &msg, "revoke");
        assert_eq!(
            err(&request(Kind::INVALIDATE, &body[..10])),
            WireError::Truncated {
                what: "start sector",
                offset: BODY + 6,
                needed: 8,
                present: 4
            }
        );
        assert_eq!(
            err(&request(Kind::INVALIDATE, &body[..20])),
            WireError::Truncated {
                what: "sectors",
                offset: BODY + 14,
                needed: 8,
                present: 6
            }
        );
        let mut bad = body;
        bad[22] = 0xFF;
        assert_eq!(
            err(&request(Kind::INVALIDATE, &bad)),
            WireError::Flag {
                what: "revoke",
                offset: BODY + 22,
                value: 0xFF
            }
        );
    }

    #[test]
    fn test_route_layout() {
        // name "db-01" | replica 1
        let body = hex!("05 64622d3031 01");
        let msg = Message::Request(
            catalogue::a(7),
            Request::Route(Route {
                name: vol("db-01"),
                replica: true,
            }),
        );
        check_layout(|b| request(Kind::ROUTE, b), &body, &msg, "replica");
        let mut bad = body;
        bad[6] = 2;
        assert_eq!(
            err(&request(Kind::ROUTE, &bad)),
            WireError::Flag {
                what: "replica",
                offset: BODY + 6,
                value: 2
            }
        );
        // An empty name is no volume name.
        assert!(matches!(
            err(&request(Kind::ROUTE, &[0, 0])),
            WireError::Name {
                offset: BODY,
                source: NameError::Empty
            }
        ));
    }

    #[test]
    fn test_leased_layout() {
        // ttl_ms 30000
        let body = hex!("00007530");
        let msg = Message::Reply(
            catalogue::a(7),
            Kind::LEASE,
            Reply::Leased { ttl_ms: 30_000 },
        );
        check_layout(|b| reply(Kind::LEASE, b), &body, &msg, "ttl_ms");
        // A refusal is a lease of 0 ms.
        assert_eq!(
            decode(&reply(Kind::LEASE, &[0; 4]), &key()),
            Ok(Message::Reply(
                catalogue::a(7),
                Kind::LEASE,
                Reply::Leased { ttl_ms: 0 }
            ))
        );
    }

    #[test]
    fn test_invalidate_and_route_replies_are_acks() {
        for kind in [Kind::INVALIDATE, Kind::ROUTE] {
            let msg = Message::Reply(catalogue::a(7), kind, Reply::Ack);
            assert_eq!(decode(&reply(kind, &[]), &key()).as_ref(), Ok(&msg));
            assert_eq!(encode(&msg, &key()), reply(kind, &[]));
            assert_eq!(
                err(&reply(kind, &[0])),
                WireError::TrailingBytes {
                    offset: BODY,
                    count: 1
                }
            );
        }
        // Leased answers LEASE only; Ack does not answer LEASE.
        assert!(Reply::Leased { ttl_ms: 1 }.answers(Kind::LEASE));
        assert!(!Reply::Ack.answers(Kind::LEASE));
        assert!(!Reply::Leased { ttl_ms: 1 }.answers(Kind::ROUTE));
    }

    #[test]
    #[should_panic(expected = "is not the reply to a PULL request")]
    fn test_encode_refuses_a_reply_that_does_not_fit() {
        encode(
            &Message::Reply(catalogue::b(1), Kind::PULL, Reply::Ack),
            &key(),
        );
    }

    #[test]
    fn test_key_from_hex() {
        let k = Key::from_hex(" 00112233445566778899aabbccddeeff\n").unwrap();
        assert_eq!(
            k.tag(b"x"),
            Key::new(&hex!("00112233445566778899aabbccddeeff")).tag(b"x")
        );
        assert_eq!(
            Key::from_hex("0011x2").unwrap_err(),
            KeyError::NotHex {
                offset: 4,
                found: 'x'
            }
        );
        assert_eq!(Key::from_hex("001").unwrap_err(), KeyError::OddLength(3));
        assert_eq!(Key::from_hex("0011").unwrap_err(), KeyError::TooShort(2));
        assert_eq!(format!("{k:?}"), "Key(..)");
    }

    fn wwn() -> impl Strategy<Value = Wwn> {
        any::<[u8; 8]>().prop_map(Wwn)
    }

    fn fc_id() -> impl Strategy<Value = FcId> {
        any::<[u8; 3]>().prop_map(FcId::from_bytes)
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z0-9:/. -]{0,40}", "\\PC{0,20}"]
            .prop_filter("fits a length byte", |s| s.len() <= MAX_TEXT_LEN)
    }

    fn volume_name() -> impl Strategy<Value = VolumeName> {
        "[A-Za-z0-9._~-]{1,64}".prop_map(|s| VolumeName::new(s).expect("valid by the regex"))
    }

    fn vector() -> impl Strategy<Value = VersionVector> {
        btree_map(wwn(), (any::<u32>(), any::<u64>()), 0..5).prop_map(|m| {
            VersionVector(
                m.into_iter()
                    .map(|(w, (g, v))| (w, Stamp::new(g, v)))
                    .collect(),
            )
        })
    }

    fn media() -> impl Strategy<Value = MediaType> {
        prop::sample::select(MediaType::ALL.to_vec())
    }

    fn real_extent() -> impl Strategy<Value = RealExtent> {
        (
            wwn(),
            fc_id(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
        )
            .prop_map(
                |(array, array_id, lun, start, blocks, block_size)| RealExtent {
                    array,
                    array_id,
                    lun,
                    start,
                    blocks,
                    block_size,
                },
            )
    }

    fn volume_body() -> impl Strategy<Value = VolumeBody> {
        let owner =
            (text(), wwn(), fc_id(), text()).prop_map(|(name, wwpn, fc_id, site)| ControllerRef {
                name,
                wwpn,
                fc_id,
                site,
            });
        let state = prop::sample::select(vec![
            VolumeState::Online,
            VolumeState::Degraded,
            VolumeState::Conflict,
        ]);
        let row =
            (any::<u64>(), real_extent(), any::<u8>()).prop_map(|(virtual_start, real, copy)| {
                MapRow {
                    virtual_start,
                    real,
                    copy,
                }
            });
        (
            owner,
            text(),
            any::<u64>(),
            state,
            any::<u64>(),
            media(),
            vec(row, 0..4),
            vec(wwn(), 0..4),
        )
            .prop_map(
                |(owner, local_name, capacity, state, claimed_at, media, rows, masking)| {
                    VolumeBody {
                        owner,
                        local_name,
                        capacity,
                        state,
                        claimed_at,
                        media,
                        rows,
                        masking,
                    }
                },
            )
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            wwn(),
            volume_name(),
            any::<u32>(),
            any::<u64>(),
            prop::option::of(volume_body()),
        )
            .prop_map(|(owner, name, g, v, body)| Record {
                key: RecordKey { owner, name },
                stamp: Stamp::new(g, v),
                body,
            })
    }

    fn header() -> impl Strategy<Value = Header> {
        (wwn(), any::<u32>(), any::<u64>()).prop_map(|(sender, generation, seq)| Header {
            sender,
            generation,
            seq,
        })
    }

    fn request_strategy() -> impl Strategy<Value = Request> {
        prop_oneof![
            (text(), text(), fc_id(), text(), vector()).prop_map(
                |(name, site, fc_id, api, versions)| Request::Heartbeat(Heartbeat {
                    name,
                    site,
                    fc_id,
                    api,
                    versions
                })
            ),
            vec(record(), 0..4).prop_map(Request::Update),
            (vector(), any::<u16>())
                .prop_map(|(versions, max)| Request::Pull(Pull { versions, max })),
            (volume_name(), any::<u64>(), any::<bool>()).prop_map(|(name, claimed_at, release)| {
                Request::Claim(Claim {
                    name,
                    claimed_at,
                    release,
                })
            }),
            (any::<u64>(), media(), any::<u64>(), any::<u32>()).prop_map(
                |(id, media, bytes, ttl_ms)| Request::Reserve(Reserve {
                    id,
                    media,
                    bytes,
                    ttl_ms
                })
            ),
            any::<u64>().prop_map(|id| Request::Release { id }),
            (any::<u64>(), volume_name()).prop_map(|(id, name)| Request::Commit { id, name }),
            (volume_name(), any::<bool>())
                .prop_map(|(name, release)| Request::Lease(Lease { name, release })),
            (volume_name(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
                |(name, start, sectors, revoke)| Request::Invalidate(Invalidate {
                    name,
                    start,
                    sectors,
                    revoke
                })
            ),
            (volume_name(), any::<bool>())
                .prop_map(|(name, replica)| Request::Route(Route { name, replica })),
        ]
    }

    fn reply_strategy() -> impl Strategy<Value = (Kind, Reply)> {
        prop_oneof![
            prop::sample::select(vec![
                Kind::HEARTBEAT,
                Kind::RELEASE,
                Kind::COMMIT,
                Kind::INVALIDATE,
                Kind::ROUTE
            ])
            .prop_map(|k| (k, Reply::Ack)),
            vector().prop_map(|v| (Kind::UPDATE, Reply::Updated(v))),
            (vec(record(), 0..4), any::<bool>(), vector()).prop_map(
                |(records, complete, versions)| (
                    Kind::PULL,
                    Reply::Pulled(Pulled {
                        records,
                        complete,
                        versions
                    })
                )
            ),
            (any::<bool>(), prop::option::of((wwn(), any::<u64>()))).prop_map(
                |(granted, holder)| (Kind::CLAIM, Reply::Claimed(Claimed { granted, holder }))
            ),
            vec(real_extent(), 0..5).prop_map(|e| (Kind::RESERVE, Reply::Reserved(e))),
            any::<u32>().prop_map(|ttl_ms| (Kind::LEASE, Reply::Leased { ttl_ms })),
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (header(), request_strategy()).prop_map(|(h, r)| Message::Request(h, r)),
            (header(), reply_strategy()).prop_map(|(h, (k, r))| Message::Reply(h, k, r)),
            any::<u8>().prop_map(|r| Message::Reject(Reason(r))),
        ]
    }

    proptest! {
        #[test]
        fn prop_round_trip(msg in message()) {
            let bytes = encode(&msg, &key());
            prop_assert_eq!(decode(&bytes, &key()), Ok(msg));
        }

        #[test]
        fn prop_decode_never_panics(bytes in vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, &key());
            crate::fuzzing::message(&bytes);
        }

        #[test]
        fn prop_mutations_fail_or_reencode(msg in message(), at in any::<prop::sample::Index>(), x in 1..=255u8) {
            // A changed byte, re-signed: either rejected, or a message that encodes back to
            // exactly these bytes.
            let mut bytes = encode(&msg, &key());
            let i = at.index(bytes.len());
            bytes[i] ^= x;
            if !matches!(msg, Message::Reject(_)) {
                bytes = resign(bytes);
            }
            if let Ok(again) = decode(&bytes, &key()) {
                prop_assert_eq!(encode(&again, &key()), bytes);
            }
        }
    }
}
