//! The controller's CT server (GS_TYPE 0xE0): every request is decoded and its HMAC checked,
//! its sender must be the port that sent it, and its answer leaves only after what it changed
//! is committed. Anything bad is answered FS_RJT with the reason and counted; nothing changes.

use std::sync::Arc;

use fc_frames::RCtl;
use fc_node::exchange::Outbound;
use fc_node::node::{Request as CtRequest, Requests};

use crate::core::reason_counter;
use crate::extents::ReservationId;
use crate::wire::{self, Header, Message, Reason, Reply, Request};

use super::Shared;

pub(super) async fn serve(shared: Arc<Shared>, mut requests: Requests) {
    while let Some(req) = requests.next().await {
        tokio::spawn(answer(shared.clone(), req));
    }
}

async fn answer(shared: Arc<Shared>, mut req: CtRequest) {
    let Some(first) = req.take() else {
        return;
    };
    let peer = req.peer();
    let port_name = shared
        .node
        .sessions()
        .into_iter()
        .find(|s| s.port_id == peer)
        .map(|s| s.port_name);
    let key = &shared.config.key;
    let count = |reason: Reason| {
        shared.with(|inner, _| inner.core.count(reason_counter(reason)));
        reason
    };
    let answer = match wire::decode(&first.payload, key) {
        // A controller whose database failed a write acknowledges nothing more.
        _ if shared.usable().is_err() => Err(count(Reason::NOT_READY)),
        Err(e) => Err(count(e.reason())),
        Ok(Message::Request(h, _)) if Some(h.sender) != port_name => Err(count(Reason::FOREIGN)),
        Ok(Message::Request(h, r)) => {
            let kind = r.kind();
            shared
                .with(|inner, now| match r {
                    Request::Reserve(res) => {
                        inner.core.admit(now, &h, kind)?;
                        let id = ReservationId {
                            builder: h.sender,
                            id: res.id,
                        };
                        let got = inner.extents.reserve(
                            now,
                            id,
                            res.media,
                            res.bytes,
                            u64::from(res.ttl_ms),
                        );
                        Ok(Reply::Reserved(got))
                    }
                    Request::Release { id } => {
                        inner.core.admit(now, &h, kind)?;
                        let id = ReservationId {
                            builder: h.sender,
                            id,
                        };
                        if inner.extents.release(id) {
                            Ok(Reply::Ack)
                        } else {
                            inner.core.count(reason_counter(Reason::NO_RESERVATION));
                            Err(Reason::NO_RESERVATION)
                        }
                    }
                    Request::Commit { id, name } => {
                        inner.core.admit(now, &h, kind)?;
                        let id = ReservationId {
                            builder: h.sender,
                            id,
                        };
                        if inner.extents.commit(id, &name) {
                            Ok(Reply::Ack)
                        } else {
                            inner.core.count(reason_counter(Reason::NO_RESERVATION));
                            Err(Reason::NO_RESERVATION)
                        }
                    }
                    Request::Lease(lease) => {
                        inner.core.admit(now, &h, kind)?;
                        let me = inner.core.identity().wwpn;
                        let owned = inner
                            .core
                            .volume(&lease.name)
                            .is_some_and(|r| r.key.owner == me && r.body.is_some());
                        let ttl_ms = if owned {
                            shared.io.coherence.grant(h.sender, &lease)
                        } else {
                            0
                        };
                        Ok(Reply::Leased { ttl_ms })
                    }
                    Request::Invalidate(inv) => {
                        inner.core.admit(now, &h, kind)?;
                        // Only the volume's owner invalidates it.
                        let key = crate::model::RecordKey {
                            owner: h.sender,
                            name: inv.name.clone(),
                        };
                        crate::io::coherence::on_invalidate(&shared, &key, &inv);
                        Ok(Reply::Ack)
                    }
                    Request::Route(route) => {
                        inner.core.admit(now, &h, kind)?;
                        let owner = inner.core.volume(&route.name).map(|r| r.key.owner);
                        if owner != Some(h.sender) {
                            inner.core.count(reason_counter(Reason::FORGED_OWNER));
                            return Err(Reason::FORGED_OWNER);
                        }
                        let key = crate::model::RecordKey {
                            owner: h.sender,
                            name: route.name.clone(),
                        };
                        crate::io::coherence::on_route(&shared, &key, &route);
                        Ok(Reply::Ack)
                    }
                    other => inner.core.handle_request(now, h, other),
                })
                // What was just applied must be durable before it is acknowledged.
                .and_then(|reply| match shared.usable() {
                    Ok(()) => Ok((h, kind, reply)),
                    Err(_) => Err(Reason::NOT_READY),
                })
        }
        // A reply or a reject where a request belongs.
        Ok(_) => Err(count(Reason::MALFORMED)),
    };
    let msg = match answer {
        Ok((h, kind, reply)) => {
            let header = shared.with(|inner, _| Header {
                sender: shared.config.port_name,
                generation: inner.core.durable().generation,
                seq: h.seq,
            });
            Message::Reply(header, kind, reply)
        }
        Err(reason) => {
            tracing::debug!(from = %peer, reason = reason.name(), "controller message rejected");
            Message::Reject(reason)
        }
    };
    req.reply(Outbound::new(
        RCtl::SOLICITED_CONTROL,
        wire::encode(&msg, key),
    ));
}
