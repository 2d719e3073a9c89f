//! The manager: logs the port in whenever its link comes up, and keeps the initiator's
//! sessions with targets current (FC-LS-3 §4.2, FC-GS-7 §5.2).
//!
//! ```text
//!  link up ─► FLOGI (FFFFFE) ─► RFT_ID, RFF_ID per TYPE, RNN_ID, RSPN_ID (FFFFFC) ─► SCR (FFFFFD) ─► online
//!  online, initiator ─► GID_FT(FCP) ─► for each new port: GFF_ID ─► PLOGI ─► PRLI
//!  RSCN ─► PDISC to the affected sessions we opened; PLOGI ─► PRLI again where it is refused; GID_FT again
//!  LOGO from a target ─► PLOGI ─► PRLI to it again
//!  link down ─► sessions dropped; wait for the next link
//! ```
//!
//! RFT_ID carries one bitmap of every FC-4 TYPE the node serves (FCP when it is an initiator
//! or a target, and the TYPEs its services register), and RFF_ID goes once per TYPE with that
//! TYPE's features: RFT_ID replaces the whole map at the name server, so one merged request
//! is the only correct one. The port reports itself online only after these registrations,
//! so a peer that finds it by GID_FT finds it whole.
//!
//! An RSCN affecting a session this port opened is checked with PDISC (FC-LS-3 §4.2.30) rather
//! than answered with a new PLOGI: a PLOGI would end the peer's own image pair with us, which
//! for a dual-role peer (a host's controller) is the peer's to end, not ours. Sessions peers
//! opened with us are left to them.
//!
//! Failed steps are retried after a pause while the link stays up; registrations that the
//! name server rejects are logged and the login goes on (the fabric still routes frames).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fc_frames::ct::ns::{
    Fc4Features, Fc4Types, NsAccept, NsExplanation, NsRequest, NsResponse, NsResponseBody,
    SymbolicName,
};
use fc_frames::els::prli::{PrliPage, PrliRepr, PrliResponseCode, TYPE_FCP};
use fc_frames::els::{ElsCode, ElsReply, ElsRequest, RscnPage, Scr, ScrFunction};
use fc_frames::{FcId, FcType, RCtl, Wwn};
use tokio::sync::mpsc;

use super::els::{fcp_params, login_params};
use super::{
    CoreHandle, NodeError, NodeState, Notice, Registration, RemotePort, SessionEnd, SessionEvent,
};
use crate::exchange::Outbound;

/// Pause before retrying a failed fabric login or discovery.
const RETRY: Duration = Duration::from_millis(200);

/// Sends a name server request to FFFFFC and parses the reply.
pub(crate) async fn ns_request(
    core: &CoreHandle,
    req: &NsRequest,
) -> Result<NsResponse, NodeError> {
    let seq = Outbound::new(RCtl::UNSOLICITED_CONTROL, req.to_vec());
    let mut x = core.exchange(
        FcId::DIRECTORY_SERVER,
        FcType::CT,
        seq,
        core.config().els_timeout,
    );
    let reply = x.next().await?;
    NsResponse::parse(req.command(), &reply.payload).map_err(|e| NodeError::Protocol(e.to_string()))
}

/// Runs for the life of the node.
pub(crate) async fn manage(core: CoreHandle, mut notices: mpsc::UnboundedReceiver<Notice>) {
    let mut state = core.watch_state();
    loop {
        // Wait for a link.
        let generation = match state
            .wait_for(|s| matches!(s, NodeState::LinkUp { .. } | NodeState::Stopped))
            .await
        {
            Ok(s) => match *s {
                NodeState::LinkUp { generation } => generation,
                _ => return,
            },
            Err(_) => return,
        };
        let port_id = loop {
            match fabric_login(&core, generation).await {
                Ok(id) => break Some(id),
                Err(e) => {
                    tracing::warn!(port_name = %core.config().port_name, error = %e, "fabric login failed");
                    if core.state().generation() != Some(generation) {
                        break None;
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        };
        let Some((port_id, fabric_name)) = port_id else {
            continue;
        };
        register(&core, port_id).await;
        if core.online(generation, port_id, fabric_name).is_err() {
            return;
        }
        // Anything noticed before this login is stale.
        while notices.try_recv().is_ok() {}
        if core.config().initiator {
            discover(&core, port_id, generation).await;
        }
        core.discovered();
        loop {
            tokio::select! {
                changed = state.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if core.state().generation() != Some(generation) {
                        break;
                    }
                }
                notice = notices.recv() => match notice {
                    None => return,
                    Some(_) if !core.config().initiator => {}
                    Some(Notice::Rscn(pages)) => {
                        relogin_affected(&core, &pages, generation).await;
                        discover(&core, port_id, generation).await;
                    }
                    Some(Notice::LoggedOut(id)) => {
                        if let Err(e) = port_login(&core, id).await {
                            tracing::info!(target_id = %id, error = %e, "relogin after LOGO failed");
                        }
                    }
                },
            }
        }
    }
}

/// FLOGI: our N_Port ID and the fabric's frame size go to the core; our N_Port ID and the
/// fabric's name.
async fn fabric_login(core: &CoreHandle, generation: u64) -> Result<(FcId, Wwn), NodeError> {
    let config = core.config();
    let req = ElsRequest::Flogi(login_params(config, ElsCode::FLOGI));
    let (header, reply) = core.els_with_header(FcId::F_PORT_CONTROLLER, &req).await?;
    let ElsReply::Login(acc) = reply else {
        return Err(NodeError::Protocol(format!(
            "FLOGI answered with {reply:?}"
        )));
    };
    // The fabric's LS_ACC goes to the N_Port ID it assigned.
    let port_id = header.d_id;
    if port_id == FcId::UNIDENTIFIED || port_id.is_well_known() {
        return Err(NodeError::Protocol(format!(
            "FLOGI LS_ACC to {port_id}, not an N_Port ID"
        )));
    }
    let max_payload = usize::from(acc.common.rx_data_field_size).clamp(256, 2112);
    core.logged_in(generation, port_id, max_payload)?;
    tracing::info!(port_name = %config.port_name, %port_id, fabric = %acc.node_name, "fabric login");
    Ok((port_id, acc.node_name))
}

/// Every FC-4 TYPE the node serves with its features, merged: FCP from the node's FCP roles,
/// the rest from its services (features of one TYPE registered twice are joined).
pub(crate) fn fc4_registrations(
    initiator: bool,
    target: bool,
    services: &[Registration],
) -> BTreeMap<u8, Fc4Features> {
    let mut map: BTreeMap<u8, Fc4Features> = BTreeMap::new();
    let mut fcp = Fc4Features::empty();
    if initiator {
        fcp |= Fc4Features::INITIATOR;
    }
    if target {
        fcp |= Fc4Features::TARGET;
    }
    if !fcp.is_empty() {
        map.insert(TYPE_FCP, fcp);
    }
    for r in services {
        *map.entry(r.fc4_type).or_insert(Fc4Features::empty()) |= r.features;
    }
    map
}

/// Name server registrations and SCR; failures are logged, not fatal.
async fn register(core: &CoreHandle, port_id: FcId) {
    let config = core.config();
    let types = fc4_registrations(config.initiator, config.target, core.registrations());
    let bitmap = types
        .keys()
        .fold(Fc4Types::default(), |map, &t| map.with(t));
    let mut requests = vec![NsRequest::rft_id(port_id, bitmap)];
    requests.extend(
        types
            .iter()
            .map(|(&t, &features)| NsRequest::rff_id(port_id, features, t)),
    );
    requests.push(NsRequest::rnn_id(port_id, config.node_name));
    if let Ok(name) = SymbolicName::new(config.symbolic_name.as_bytes().to_vec()) {
        requests.push(NsRequest::rspn_id(port_id, name));
    }
    for req in requests {
        match ns_request(core, &req).await {
            Ok(NsResponse {
                body: NsResponseBody::Accept(_),
                ..
            }) => {}
            Ok(r) => {
                tracing::warn!(command = %req.command(), reply = ?r.body, "name server registration rejected")
            }
            Err(e) => {
                tracing::warn!(command = %req.command(), error = %e, "name server registration failed")
            }
        }
    }
    let scr = ElsRequest::Scr(Scr {
        function: ScrFunction::FULL,
    });
    if let Err(e) = core.els(FcId::FABRIC_CONTROLLER, &scr).await {
        tracing::warn!(error = %e, "SCR failed");
    }
}

/// GID_FT for FCP; logs in to every new port that is (or may be) a target, and drops
/// sessions with ports the name server no longer shows.
async fn discover(core: &CoreHandle, port_id: FcId, generation: u64) {
    let ports = match ns_request(core, &NsRequest::gid_ft(TYPE_FCP)).await {
        Ok(NsResponse {
            body: NsResponseBody::Accept(NsAccept::GidFt(ports)),
            ..
        }) => ports,
        // FS_RJT: no FCP port is visible to us (zoning, or nobody registered).
        Ok(_) => Vec::new(),
        // A node shutting down has nothing to discover.
        Err(NodeError::Stopped) => return,
        Err(e) => {
            tracing::warn!(error = %e, "GID_FT failed");
            return;
        }
    };
    let visible: BTreeSet<FcId> = ports.into_iter().filter(|p| *p != port_id).collect();
    // Only sessions this port opened: a host that logged in with us is the host's business.
    let gone: Vec<RemotePort> = {
        let mut sessions = core.sessions();
        let gone: Vec<RemotePort> = sessions
            .values()
            .filter(|p| p.originated && !visible.contains(&p.port_id))
            .copied()
            .collect();
        for p in &gone {
            sessions.remove(&p.port_id);
        }
        gone
    };
    for port in gone {
        core.session_event(SessionEvent::Closed {
            port,
            reason: SessionEnd::Dropped,
        });
    }
    for id in visible {
        if core.state().generation() != Some(generation) {
            return;
        }
        // An image pair already made, either way: with a target we logged in to, or with a
        // port that logged in with us and told us in its PRLI that it is no target (a host).
        // A PLOGI now would replace that login and end its image pair, aborting its tasks.
        if core
            .sessions()
            .get(&id)
            .is_some_and(|p| p.is_fcp_target() || p.fcp.is_some())
        {
            continue;
        }
        if !is_target(core, id).await {
            continue;
        }
        if let Err(e) = port_login(core, id).await {
            tracing::info!(target_id = %id, error = %e, "login to target failed");
        }
    }
}

/// Whether the name server says `id` offers the FCP target function (unknown counts as yes:
/// PRLI will tell; a port the name server no longer knows is none). A port that has registered its FC-4 TYPEs but not yet their features
/// (GFF_ID between its RFT_ID and its RFF_ID) is no target yet: its RFF_ID brings an RSCN,
/// and with it another look. Logging in with it now would race its own login with us (a
/// host's), and a PLOGI that lands after the host's replaces its login and ends its image
/// pair.
async fn is_target(core: &CoreHandle, id: FcId) -> bool {
    match ns_request(core, &NsRequest::gff_id(id)).await {
        Ok(NsResponse {
            body: NsResponseBody::Accept(NsAccept::GffId(map)),
            ..
        }) => map
            .iter()
            .any(|(t, f)| t == TYPE_FCP && f.contains(Fc4Features::TARGET)),
        Ok(NsResponse {
            body: NsResponseBody::Reject(r),
            ..
        }) if r.explanation == NsExplanation::FC4_FEATURES_NOT_REGISTERED => false,
        // Gone since GID_FT listed it (it logged out): a PLOGI would go nowhere and hold the
        // whole discovery round for the ELS time-out.
        Ok(NsResponse {
            body: NsResponseBody::Reject(r),
            ..
        }) if r.explanation == NsExplanation::PORT_ID_NOT_REGISTERED => false,
        _ => true,
    }
}

/// Checks with PDISC the sessions this port opened that an RSCN names, and logs in again to
/// those that refuse it (the port restarted and forgot us) or went away.
async fn relogin_affected(core: &CoreHandle, pages: &[RscnPage], generation: u64) {
    let affected: Vec<RemotePort> = core
        .sessions()
        .values()
        .filter(|p| p.originated && pages.iter().any(|page| affects(page, p.port_id)))
        .copied()
        .collect();
    for port in affected {
        if core.state().generation() != Some(generation) {
            return;
        }
        let pdisc = ElsRequest::Pdisc(login_params(core.config(), ElsCode::PDISC));
        match core.els(port.port_id, &pdisc).await {
            Ok(ElsReply::Login(acc)) if acc.port_name == port.port_name => continue,
            Ok(_) | Err(_) => {}
        }
        // The PDISC may have taken a while (no answer from a port that left): the port at
        // that address may have logged in with us meanwhile (a new process on the same switch
        // port), replacing the session this checked. That login stands: dropping it, or a
        // PLOGI over it, would end its image pair and abort its tasks.
        let dropped = {
            let mut sessions = core.sessions();
            match sessions.get(&port.port_id) {
                Some(now) if !now.originated => continue,
                Some(_) => sessions.remove(&port.port_id),
                None => None,
            }
        };
        if let Some(port) = dropped {
            core.session_event(SessionEvent::Closed {
                port,
                reason: SessionEnd::Dropped,
            });
        }
        if let Err(e) = port_login(core, port.port_id).await {
            tracing::info!(target_id = %port.port_id, error = %e, "relogin after RSCN failed");
        }
    }
}

/// PLOGI to `id`; the session is recorded as one this port opened.
pub(crate) async fn plogi(core: &CoreHandle, id: FcId) -> Result<RemotePort, NodeError> {
    let config = core.config();
    let reply = core
        .els(id, &ElsRequest::Plogi(login_params(config, ElsCode::PLOGI)))
        .await?;
    let ElsReply::Login(acc) = reply else {
        return Err(NodeError::Protocol(format!(
            "PLOGI answered with {reply:?}"
        )));
    };
    let remote = RemotePort {
        port_id: id,
        port_name: acc.port_name,
        node_name: acc.node_name,
        rx_size: acc.common.rx_data_field_size,
        fcp: None,
        originated: true,
    };
    core.sessions().insert(id, remote);
    core.session_event(SessionEvent::Opened(remote));
    Ok(remote)
}

/// True when the RSCN page covers `id` (FC-LS-3 §4.2.27: port, area, domain or fabric).
fn affects(page: &RscnPage, id: FcId) -> bool {
    let (a, b) = (page.affected.to_u32(), id.to_u32());
    match page.format.0 {
        0 => a == b,
        1 => a >> 8 == b >> 8,
        2 => a >> 16 == b >> 16,
        _ => true,
    }
}

/// PLOGI then PRLI to `id`; the session is recorded once PRLI is accepted.
async fn port_login(core: &CoreHandle, id: FcId) -> Result<(), NodeError> {
    let config = core.config();
    let mut remote = plogi(core, id).await?;
    let prli = ElsRequest::Prli(PrliRepr::single(
        ElsCode::PRLI,
        PrliPage::fcp_request(fcp_params(config)),
    ));
    let reply = core.els(id, &prli).await?;
    let ElsReply::Prli(acc_prli) = reply else {
        return Err(NodeError::Protocol(format!("PRLI answered with {reply:?}")));
    };
    let page = acc_prli
        .pages
        .iter()
        .find(|p| p.type_code == TYPE_FCP)
        .ok_or_else(|| NodeError::Protocol("PRLI LS_ACC without an FCP page".into()))?;
    if page.response_code != PrliResponseCode::REQUEST_EXECUTED {
        return Err(NodeError::Protocol(format!(
            "PRLI not executed: {}",
            page.response_code
        )));
    }
    remote.fcp = Some(page.service_params);
    tracing::info!(target_id = %id, port_name = %remote.port_name, "port login");
    core.sessions().insert(id, remote);
    core.session_event(SessionEvent::Opened(remote));
    Ok(())
}

#[cfg(test)]
mod tests {
    use fc_frames::els::RscnAddressFormat;

    use super::*;

    #[test]
    fn test_rscn_page_scope() {
        let id = FcId::from_parts(1, 2, 0);
        let page = |format, affected| RscnPage {
            format: RscnAddressFormat(format),
            affected,
            ..RscnPage::default()
        };
        assert!(affects(&page(0, id), id));
        assert!(!affects(&page(0, FcId::from_parts(1, 3, 0)), id));
        assert!(affects(&page(1, FcId::from_parts(1, 2, 7)), id));
        assert!(!affects(&page(1, FcId::from_parts(1, 3, 0)), id));
        assert!(affects(&page(2, FcId::from_parts(1, 9, 9)), id));
        assert!(!affects(&page(2, FcId::from_parts(2, 2, 0)), id));
        assert!(affects(&page(3, FcId::from_parts(9, 9, 9)), id));
    }

    #[test]
    fn test_registrations_merge_by_type() {
        let vendor = Registration {
            fc4_type: 0xE0,
            features: Fc4Features::from_bits_retain(0x10),
        };
        let fcp_target = Registration {
            fc4_type: TYPE_FCP,
            features: Fc4Features::TARGET,
        };
        let m = fc4_registrations(true, false, &[vendor, fcp_target]);
        assert_eq!(m.len(), 2);
        assert_eq!(m[&TYPE_FCP], Fc4Features::INITIATOR | Fc4Features::TARGET);
        assert_eq!(m[&0xE0], Fc4Features::from_bits_retain(0x10));
        assert!(fc4_registrations(false, false, &[]).is_empty());
    }
}
