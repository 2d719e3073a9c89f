//! One message of every kind the controllers exchange — each request, the reply to each, and a
//! reject — between two controllers, A (site paris) and B (site lyon). The fuzz seeds
//! (`cargo run --example fuzz_seeds`), the corpus test and the Wireshark dissector test all
//! use it. Deterministic: the same bytes every run.

use std::collections::BTreeMap;

use fc_frames::{FcId, Wwn};

use crate::model::{
    ControllerRef, MapRow, MediaType, RealExtent, Record, RecordKey, Stamp, VersionVector,
    VolumeBody, VolumeName, VolumeState,
};
use crate::wire::{
    Claim, Claimed, Header, Heartbeat, Invalidate, Kind, Lease, Message, Pull, Pulled, Reason,
    Reply, Request, Reserve, Route,
};

/// Controller A's N_Port_Name.
pub const A_WWPN: Wwn = Wwn([0x20, 0x00, 0x00, 0x25, 0xb5, 0x00, 0x00, 0x01]);
/// Controller A's N_Port_ID.
pub const A_ID: FcId = FcId::from_parts(0x01, 0x02, 0x00);
/// Controller B's N_Port_Name.
pub const B_WWPN: Wwn = Wwn([0x20, 0x00, 0x00, 0x25, 0xb5, 0x00, 0x00, 0x02]);
/// Controller B's N_Port_ID.
pub const B_ID: FcId = FcId::from_parts(0x02, 0x02, 0x00);
/// A disk array port at site paris.
pub const ARRAY_WWPN: Wwn = Wwn([0x50, 0x06, 0x01, 0x60, 0x3e, 0xa0, 0x00, 0x01]);
/// Its N_Port_ID.
pub const ARRAY_ID: FcId = FcId::from_parts(0x01, 0x03, 0x00);
/// A host allowed to see the volume.
pub const HOST_WWPN: Wwn = Wwn([0x21, 0x00, 0x00, 0x24, 0xff, 0x4a, 0x00, 0x01]);

/// A's header on its requests (generation 3, sequence `seq`).
pub const fn a(seq: u64) -> Header {
    Header {
        sender: A_WWPN,
        generation: 3,
        seq,
    }
}

/// B's header on its replies to A's request `seq` (generation 1).
pub const fn b(seq: u64) -> Header {
    Header {
        sender: B_WWPN,
        generation: 1,
        seq,
    }
}

/// A vector holding A at 3.42 and B at 1.7.
pub fn versions() -> VersionVector {
    VersionVector(BTreeMap::from([
        (A_WWPN, Stamp::new(3, 42)),
        (B_WWPN, Stamp::new(1, 7)),
    ]))
}

/// A name of the catalogue (valid by construction).
fn name(s: &str) -> VolumeName {
    VolumeName::new(s).expect("catalogue names are valid")
}

/// An extent of the array: `blocks` blocks of 512 bytes from `start` of `lun`.
pub fn extent(lun: u64, start: u64, blocks: u64) -> RealExtent {
    RealExtent {
        array: ARRAY_WWPN,
        array_id: ARRAY_ID,
        lun,
        start,
        blocks,
        block_size: 512,
    }
}

/// A's live volume `db-01`: 2 MiB of SSD, mirrored, visible to one host.
pub fn live_record() -> Record {
    Record {
        key: RecordKey {
            owner: A_WWPN,
            name: name("db-01"),
        },
        stamp: Stamp::new(3, 42),
        body: Some(VolumeBody {
            owner: ControllerRef {
                name: "ctl-a".into(),
                wwpn: A_WWPN,
                fc_id: A_ID,
                site: "paris".into(),
            },
            local_name: "lv0".into(),
            capacity: 2 * 1024 * 1024,
            state: VolumeState::Online,
            claimed_at: 1_795_478_400_000,
            media: MediaType::Ssd,
            rows: vec![
                MapRow {
                    virtual_start: 0,
                    real: extent(1, 2048, 4096),
                    copy: 0,
                },
                MapRow {
                    virtual_start: 0,
                    real: extent(2, 0, 4096),
                    copy: 1,
                },
            ],
            masking: vec![HOST_WWPN],
        }),
    }
}

/// A's tombstone of `old-7`.
pub fn tombstone() -> Record {
    Record {
        key: RecordKey {
            owner: A_WWPN,
            name: name("old-7"),
        },
        stamp: Stamp::new(3, 41),
        body: None,
    }
}

/// The conversation: every request from A, each followed by B's reply; then a HEARTBEAT of an
/// older generation of A, which B rejects as stale.
pub fn messages() -> Vec<Message> {
    let claimed_at = 1_795_478_400_500;
    let requests = [
        heartbeat(),
        Request::Update(vec![tombstone(), live_record()]),
        Request::Pull(Pull {
            versions: versions(),
            max: 100,
        }),
        Request::Claim(Claim {
            name: name("web-02"),
            claimed_at,
            release: false,
        }),
        Request::Reserve(Reserve {
            id: 0x5eed_0001,
            media: MediaType::FastHdd,
            bytes: 1 << 30,
            ttl_ms: 30_000,
        }),
        Request::Release { id: 0x5eed_0001 },
        Request::Commit {
            id: 0x5eed_0002,
            name: name("web-02"),
        },
        // B owns `logs-03`; A asks to cache it.
        Request::Lease(Lease {
            name: name("logs-03"),
            release: false,
        }),
        // A owns `db-01`: B, holding a lease, drops 4 KiB of it before A acknowledges a write.
        Request::Invalidate(Invalidate {
            name: name("db-01"),
            start: 2048,
            sectors: 8,
            revoke: false,
        }),
        // ... and reads its in-sync replica (copy 1) directly from now on.
        Request::Route(Route {
            name: name("db-01"),
            replica: true,
        }),
    ];
    let mut out = Vec::new();
    for (seq, request) in (1..).zip(requests) {
        let kind = request.kind();
        out.push(Message::Request(a(seq), request));
        out.push(Message::Reply(b(seq), kind, reply(kind)));
    }
    // A HEARTBEAT from A's generation before, which B has seen past: rejected.
    let stale = Header {
        generation: 2,
        ..a(8)
    };
    out.push(Message::Request(stale, heartbeat()));
    out.push(Message::Reject(Reason::STALE));
    out
}

/// A's HEARTBEAT.
fn heartbeat() -> Request {
    Request::Heartbeat(Heartbeat {
        name: "ctl-a".into(),
        site: "paris".into(),
        fc_id: A_ID,
        api: "http://10.0.0.1:8080".into(),
        versions: versions(),
    })
}

/// B's reply to a request of `kind`.
fn reply(kind: Kind) -> Reply {
    match kind {
        Kind::UPDATE => Reply::Updated(versions()),
        Kind::PULL => Reply::Pulled(Pulled {
            records: vec![live_record()],
            complete: true,
            versions: versions(),
        }),
        Kind::CLAIM => Reply::Claimed(Claimed {
            granted: false,
            holder: Some((B_WWPN, 1_795_478_400_100)),
        }),
        Kind::RESERVE => Reply::Reserved(vec![extent(3, 0, 1 << 20), extent(4, 0, 1 << 20)]),
        Kind::LEASE => Reply::Leased { ttl_ms: 10_000 },
        _ => Reply::Ack,
    }
}
