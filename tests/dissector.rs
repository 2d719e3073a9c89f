//! Agreement of `captures/fcsan.lua` with the controllers' codec: one FC frame for every message
//! of `controller::catalogue` (every request kind, the reply to each, a reject), encoded with
//! `controller::wire::encode` and written to a pcap (link type 225), must dissect in tshark to
//! the values encoded, under the named `fcsan.*` fields, with no malformed packet and no
//! error-level expert item.
//!
//! tshark is a real dependency: without it this test fails and says how to install it.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use controller::catalogue;
use controller::model::{RealExtent, Record, VersionVector};
use controller::wire::{encode, Key, Kind, Message, Reply, Request, MAC_LEN};
use fc_frames::{FcFrame, FcType, FrameHeaderRepr, RCtl};
use fc_pcap::capture;

/// The fields asked of tshark.
const FIELDS: &[&str] = &[
    "frame.number",
    "fc.r_ctl",
    "fc.type",
    "fcct.gstype",
    "_ws.col.Protocol",
    "_ws.col.Info",
    "_ws.malformed",
    "_ws.expert.severity",
    "fcsan.message",
    "fcsan.command",
    "fcsan.reason",
    "fcsan.kind",
    "fcsan.sender",
    "fcsan.generation",
    "fcsan.seq",
    "fcsan.body_len",
    "fcsan.mac",
    "fcsan.hb.name",
    "fcsan.hb.site",
    "fcsan.hb.fc_id",
    "fcsan.hb.api",
    "fcsan.vv.owner",
    "fcsan.vv.generation",
    "fcsan.vv.version",
    "fcsan.rec.owner",
    "fcsan.rec.generation",
    "fcsan.rec.version",
    "fcsan.rec.name",
    "fcsan.rec.tombstone",
    "fcsan.rec.ctl.name",
    "fcsan.rec.ctl.site",
    "fcsan.rec.local_name",
    "fcsan.rec.capacity",
    "fcsan.rec.state",
    "fcsan.rec.claimed_at",
    "fcsan.rec.media",
    "fcsan.rec.row.virtual_start",
    "fcsan.rec.row.copy",
    "fcsan.rec.masking",
    "fcsan.extent.array",
    "fcsan.extent.lun",
    "fcsan.extent.start",
    "fcsan.extent.blocks",
    "fcsan.extent.block_size",
    "fcsan.pull.max",
    "fcsan.pull.complete",
    "fcsan.claim.name",
    "fcsan.claim.claimed_at",
    "fcsan.claim.release",
    "fcsan.claim.granted",
    "fcsan.claim.holder",
    "fcsan.claim.since",
    "fcsan.reserve.id",
    "fcsan.reserve.media",
    "fcsan.reserve.bytes",
    "fcsan.reserve.ttl_ms",
    "fcsan.reserve.count",
    "fcsan.release.id",
    "fcsan.commit.id",
    "fcsan.commit.name",
    "fcsan.lease.name",
    "fcsan.lease.release",
    "fcsan.leased.ttl",
    "fcsan.inval.name",
    "fcsan.inval.start",
    "fcsan.inval.sectors",
    "fcsan.inval.revoke",
    "fcsan.route.name",
    "fcsan.route.replica",
];

/// Wireshark's severity value for error-level expert items (PI_ERROR).
const PI_ERROR: u64 = 0x0080_0000;

/// The catalogue as FC frames: each request opens an exchange from A to B (unsolicited
/// control), each reply or reject closes it (solicited control).
fn frames(key: &Key) -> Vec<(FcFrame, Message, Vec<u8>)> {
    let mut out = Vec::new();
    let mut open = None;
    for (i, msg) in catalogue::messages().into_iter().enumerate() {
        let ct_iu = encode(&msg, key);
        let i = u16::try_from(i).expect("a short catalogue");
        let header = match &msg {
            Message::Request(..) => {
                let h = FrameHeaderRepr::request(
                    RCtl::UNSOLICITED_CONTROL,
                    FcType::CT,
                    catalogue::B_ID,
                    catalogue::A_ID,
                    0x0100 + i,
                );
                open = Some(h);
                h
            }
            Message::Reply(..) | Message::Reject(_) => {
                let req = open.take().expect("a reply follows its request");
                FrameHeaderRepr::reply_to(&req, RCtl::SOLICITED_CONTROL, 0x8000 + i)
            }
        };
        let frame = FcFrame::single(header, Bytes::from(ct_iu.clone()));
        out.push((frame, msg, ct_iu));
    }
    out
}

/// Joins what a field shows once per entry, as tshark's `occurrence=a` does.
fn all<T>(items: impl IntoIterator<Item = T>, show: impl Fn(T) -> String) -> String {
    items.into_iter().map(show).collect::<Vec<_>>().join(",")
}

fn hex64(v: u64) -> String {
    format!("{v:#018x}")
}

fn flag(b: bool) -> String {
    u8::from(b).to_string()
}

/// The version vector's fields.
fn vector(want: &mut BTreeMap<&'static str, String>, v: &VersionVector) {
    want.insert("fcsan.vv.owner", all(v.0.keys(), |w| w.to_string()));
    want.insert(
        "fcsan.vv.generation",
        all(v.0.values(), |s| s.generation.to_string()),
    );
    want.insert(
        "fcsan.vv.version",
        all(v.0.values(), |s| s.version.to_string()),
    );
}

/// The records' fields (each field over all records, in order).
fn records(want: &mut BTreeMap<&'static str, String>, recs: &[Record]) {
    want.insert("fcsan.rec.owner", all(recs, |r| r.key.owner.to_string()));
    want.insert(
        "fcsan.rec.generation",
        all(recs, |r| r.stamp.generation.to_string()),
    );
    want.insert(
        "fcsan.rec.version",
        all(recs, |r| r.stamp.version.to_string()),
    );
    want.insert("fcsan.rec.name", all(recs, |r| r.key.name.to_string()));
    want.insert("fcsan.rec.tombstone", all(recs, |r| flag(r.is_tombstone())));
    let live: Vec<_> = recs.iter().filter_map(|r| r.body.as_ref()).collect();
    want.insert("fcsan.rec.ctl.name", all(&live, |b| b.owner.name.clone()));
    want.insert("fcsan.rec.ctl.site", all(&live, |b| b.owner.site.clone()));
    want.insert("fcsan.rec.local_name", all(&live, |b| b.local_name.clone()));
    want.insert("fcsan.rec.capacity", all(&live, |b| b.capacity.to_string()));
    want.insert(
        "fcsan.rec.state",
        all(&live, |b| b.state.code().to_string()),
    );
    want.insert(
        "fcsan.rec.claimed_at",
        all(&live, |b| b.claimed_at.to_string()),
    );
    want.insert(
        "fcsan.rec.media",
        all(&live, |b| b.media.code().to_string()),
    );
    let rows: Vec<_> = live.iter().flat_map(|b| &b.rows).collect();
    want.insert(
        "fcsan.rec.row.virtual_start",
        all(&rows, |r| r.virtual_start.to_string()),
    );
    want.insert("fcsan.rec.row.copy", all(&rows, |r| r.copy.to_string()));
    extents(want, rows.iter().map(|r| &r.real));
    want.insert(
        "fcsan.rec.masking",
        all(live.iter().flat_map(|b| &b.masking), |w| w.to_string()),
    );
}

fn extents<'a>(
    want: &mut BTreeMap<&'static str, String>,
    extents: impl Iterator<Item = &'a RealExtent> + Clone,
) {
    want.insert(
        "fcsan.extent.array",
        all(extents.clone(), |e| e.array.to_string()),
    );
    want.insert("fcsan.extent.lun", all(extents.clone(), |e| hex64(e.lun)));
    want.insert(
        "fcsan.extent.start",
        all(extents.clone(), |e| e.start.to_string()),
    );
    want.insert(
        "fcsan.extent.blocks",
        all(extents.clone(), |e| e.blocks.to_string()),
    );
    want.insert(
        "fcsan.extent.block_size",
        all(extents, |e| e.block_size.to_string()),
    );
}

/// What tshark must show of `msg`, encoded as `ct_iu`, in the fields of [`FIELDS`] that start
/// with `fcsan.`; every other `fcsan.` field must be empty.
fn expected(msg: &Message, ct_iu: &[u8]) -> BTreeMap<&'static str, String> {
    let mut want = BTreeMap::new();
    let (header, kind, command, what) = match msg {
        Message::Reject(reason) => {
            want.insert("fcsan.message", "reject".to_owned());
            want.insert("fcsan.command", "0x8001".to_owned());
            want.insert("fcsan.reason", format!("{:#04x}", reason.0));
            return want;
        }
        Message::Request(h, r) => (h, r.kind(), r.kind().command().0, "request"),
        Message::Reply(h, k, _) => (h, *k, 0x8002, "reply"),
    };
    want.insert("fcsan.message", what.to_owned());
    want.insert("fcsan.command", format!("{command:#06x}"));
    want.insert("fcsan.kind", format!("{:#04x}", kind.0));
    want.insert("fcsan.sender", header.sender.to_string());
    want.insert("fcsan.generation", header.generation.to_string());
    want.insert("fcsan.seq", header.seq.to_string());
    want.insert("fcsan.body_len", (ct_iu.len() - 44 - MAC_LEN).to_string());
    want.insert("fcsan.mac", hex(&ct_iu[ct_iu.len() - MAC_LEN..]));
    match msg {
        Message::Request(_, Request::Heartbeat(hb)) => {
            want.insert("fcsan.hb.name", hb.name.clone());
            want.insert("fcsan.hb.site", hb.site.clone());
            want.insert("fcsan.hb.fc_id", format!("{:#010x}", hb.fc_id.to_u32()));
            want.insert("fcsan.hb.api", hb.api.clone());
            vector(&mut want, &hb.versions);
        }
        Message::Request(_, Request::Update(recs)) => records(&mut want, recs),
        Message::Request(_, Request::Pull(p)) => {
            vector(&mut want, &p.versions);
            want.insert("fcsan.pull.max", p.max.to_string());
        }
        Message::Request(_, Request::Claim(c)) => {
            want.insert("fcsan.claim.name", c.name.to_string());
            want.insert("fcsan.claim.claimed_at", c.claimed_at.to_string());
            want.insert("fcsan.claim.release", flag(c.release));
        }
        Message::Request(_, Request::Reserve(r)) => {
            want.insert("fcsan.reserve.id", hex64(r.id));
            want.insert("fcsan.reserve.media", r.media.code().to_string());
            want.insert("fcsan.reserve.bytes", r.bytes.to_string());
            want.insert("fcsan.reserve.ttl_ms", r.ttl_ms.to_string());
        }
        Message::Request(_, Request::Release { id }) => {
            want.insert("fcsan.release.id", hex64(*id));
        }
        Message::Request(_, Request::Commit { id, name }) => {
            want.insert("fcsan.commit.id", hex64(*id));
            want.insert("fcsan.commit.name", name.to_string());
        }
        Message::Request(_, Request::Lease(l)) => {
            want.insert("fcsan.lease.name", l.name.to_string());
            want.insert("fcsan.lease.release", flag(l.release));
        }
        Message::Request(_, Request::Invalidate(i)) => {
            want.insert("fcsan.inval.name", i.name.to_string());
            want.insert("fcsan.inval.start", i.start.to_string());
            want.insert("fcsan.inval.sectors", i.sectors.to_string());
            want.insert("fcsan.inval.revoke", flag(i.revoke));
        }
        Message::Request(_, Request::Route(r)) => {
            want.insert("fcsan.route.name", r.name.to_string());
            want.insert("fcsan.route.replica", flag(r.replica));
        }
        Message::Reply(_, _, Reply::Ack) => {}
        Message::Reply(_, _, Reply::Updated(v)) => vector(&mut want, v),
        Message::Reply(_, _, Reply::Pulled(p)) => {
            want.insert("fcsan.pull.complete", flag(p.complete));
            vector(&mut want, &p.versions);
            records(&mut want, &p.records);
        }
        Message::Reply(_, _, Reply::Claimed(c)) => {
            want.insert("fcsan.claim.granted", flag(c.granted));
            if let Some((holder, since)) = c.holder {
                want.insert("fcsan.claim.holder", holder.to_string());
                want.insert("fcsan.claim.since", since.to_string());
            }
        }
        Message::Reply(_, _, Reply::Reserved(e)) => {
            want.insert("fcsan.reserve.count", e.len().to_string());
            extents(&mut want, e.iter());
        }
        Message::Reply(_, _, Reply::Leased { ttl_ms }) => {
            want.insert("fcsan.leased.ttl", ttl_ms.to_string());
        }
        _ => unreachable!("rejects returned above"),
    }
    // Empty lists show nothing.
    want.retain(|_, v| !v.is_empty());
    want
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `frames` to a capture and dissects it with the Lua dissector.
fn dissect(frames: &[FcFrame]) -> Vec<BTreeMap<String, String>> {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("fcsan.pcap");
    capture::write_file(&pcap, fc_pcap::catalogue::START, frames).expect("write capture");
    let lua = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/fcsan.lua");
    let script = format!("lua_script:{}", lua.display());
    let rows = support::tshark(&pcap, &["-X", &script], FIELDS);
    assert_eq!(
        rows.len(),
        frames.len(),
        "tshark read a different number of frames"
    );
    rows
}

/// The error-level expert items of a row.
fn errors(row: &BTreeMap<String, String>) -> Vec<u64> {
    row.get("_ws.expert.severity")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(u64::MAX))
        .filter(|&sev| sev >= PI_ERROR)
        .collect()
}

#[test]
fn tshark_decodes_every_controller_message() {
    let key = Key::new(b"fcsan dissector test key");
    let frames = frames(&key);
    let only: Vec<FcFrame> = frames.iter().map(|(f, _, _)| f.clone()).collect();
    let rows = dissect(&only);
    let mut seen = BTreeMap::new();
    for (n, ((frame, msg, ct_iu), got)) in (1..).zip(frames.iter().zip(&rows)) {
        let field = |name: &str| got.get(name).map(String::as_str).unwrap_or("");
        let ctx = format!("frame {n} ({msg:?})");
        assert_eq!(field("frame.number"), n.to_string(), "{ctx}");
        assert_eq!(field("_ws.malformed"), "", "{ctx}: malformed");
        assert_eq!(
            errors(got),
            Vec::<u64>::new(),
            "{ctx}: error-level expert items"
        );
        assert_eq!(
            field("fc.r_ctl"),
            format!("{:#04x}", frame.header.r_ctl.0),
            "{ctx}: R_CTL"
        );
        assert_eq!(field("fc.type"), "0x20", "{ctx}: TYPE");
        assert_eq!(field("fcct.gstype"), "0xe0", "{ctx}: GS_TYPE");
        assert_eq!(field("_ws.col.Protocol"), "fcsan", "{ctx}: protocol column");
        let want = expected(msg, ct_iu);
        for name in FIELDS.iter().filter(|f| f.starts_with("fcsan.")) {
            let w = want.get(name).map(String::as_str).unwrap_or("");
            assert_eq!(field(name), w, "{ctx}: {name}");
        }
        let what = match msg {
            Message::Request(_, r) => format!("{} request", r.kind().name()),
            Message::Reply(_, k, _) => format!("{} reply", k.name()),
            Message::Reject(_) => "reject".to_owned(),
        };
        assert!(
            field("_ws.col.Info").starts_with(&format!("fcsan {what}")),
            "{ctx}: Info {:?}",
            field("_ws.col.Info")
        );
        *seen.entry(what).or_insert(0) += 1;
    }
    // Every request kind, the reply to each and a reject were compared.
    assert_eq!(seen.len(), 2 * Kind::ALL.len() + 1, "{seen:?}");
    for kind in Kind::ALL {
        assert!(
            seen.contains_key(&format!("{} request", kind.name())),
            "no {} request: {seen:?}",
            kind.name()
        );
        assert!(
            seen.contains_key(&format!("{} reply", kind.name())),
            "no {} reply: {seen:?}",
            kind.name()
        );
    }
}

#[test]
fn tshark_flags_a_damaged_message_and_leaves_other_vendors_alone() {
    let key = Key::new(b"fcsan dissector test key");
    let (frame, _, ct_iu) = frames(&key).swap_remove(6);
    assert_eq!(&ct_iu[8..10], &[0x0e, 0x04], "the catalogue's CLAIM");
    // The CLAIM with its body cut short by two bytes, the body length to match.
    let mut cut = ct_iu.clone();
    cut.drain(cut.len() - MAC_LEN - 2..cut.len() - MAC_LEN);
    let body_len = u32::from_be_bytes([cut[40], cut[41], cut[42], cut[43]]) - 2;
    cut[40..44].copy_from_slice(&body_len.to_be_bytes());
    // Another vendor's service under GS_TYPE 0xE0.
    let mut other = ct_iu;
    other[5] = 0x02;
    let with = |payload: Vec<u8>| FcFrame::single(frame.header, Bytes::from(payload));
    let rows = dissect(&[with(cut), with(other)]);
    assert_eq!(errors(&rows[0]).len(), 1, "{:?}", rows[0]);
    assert!(
        rows[0]["_ws.col.Info"].contains("[malformed: "),
        "{:?}",
        rows[0]
    );
    assert_eq!(rows[1]["fcsan.command"], "", "{:?}", rows[1]);
    assert_eq!(errors(&rows[1]), Vec::<u64>::new(), "{:?}", rows[1]);
}

/// `ct_iu` with its body one byte shorter, the body length to match (re-signing is not needed:
/// the dissector does not check the MAC).
fn cut_one(ct_iu: &[u8]) -> Vec<u8> {
    let mut cut = ct_iu.to_vec();
    cut.remove(cut.len() - MAC_LEN - 1);
    let body_len = u32::from_be_bytes([cut[40], cut[41], cut[42], cut[43]]) - 1;
    cut[40..44].copy_from_slice(&body_len.to_be_bytes());
    cut
}

#[test]
fn tshark_flags_cut_lease_invalidate_route_and_leased() {
    let key = Key::new(b"fcsan dissector test key");
    let cut: Vec<(String, FcFrame)> = frames(&key)
        .into_iter()
        .filter(|(_, msg, _)| match msg {
            Message::Request(_, r) => {
                matches!(r.kind(), Kind::LEASE | Kind::INVALIDATE | Kind::ROUTE)
            }
            Message::Reply(_, k, _) => *k == Kind::LEASE,
            Message::Reject(_) => false,
        })
        .map(|(frame, msg, ct_iu)| {
            let payload = Bytes::from(cut_one(&ct_iu));
            (format!("{msg:?}"), FcFrame::single(frame.header, payload))
        })
        .collect();
    assert_eq!(
        cut.len(),
        4,
        "LEASE, INVALIDATE, ROUTE and the Leased reply"
    );
    let only: Vec<FcFrame> = cut.iter().map(|(_, f)| f.clone()).collect();
    let rows = dissect(&only);
    for ((what, _), row) in cut.iter().zip(&rows) {
        assert_eq!(errors(row).len(), 1, "{what} cut short: {row:?}");
        assert!(
            row["_ws.col.Info"].contains("[malformed: "),
            "{what} cut short: {row:?}"
        );
    }
}
