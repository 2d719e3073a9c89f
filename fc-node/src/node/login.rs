//! The manager: logs the port in whenever its link comes up, and keeps the initiator's
//! sessions with targets current (FC-LS-3 §4.2, FC-GS-7 §5.2).
//!
//! ```text
//!  link up ─► FLOGI (FFFFFE) ─► RFT_ID, RFF_ID, RNN_ID, RSPN_ID (FFFFFC) ─► SCR (FFFFFD) ─► online
//!  online, initiator ─► GID_FT(FCP) ─► for each new port: GFF_ID ─► PLOGI ─► PRLI
//!  RSCN ─► PLOGI again to the affected sessions, then GID_FT again
//!  LOGO from a target ─► PLOGI ─► PRLI to it again
//!  link down ─► sessions dropped; wait for the next link
//! ```
//!
//! Failed steps are retried after a pause while the link stays up; registrations that the
//! name server rejects are logged and the login goes on (the fabric still routes frames).

use std::collections::BTreeSet;
use std::time::Duration;

use fc_frames::ct::ns::{
    Fc4Features, Fc4Types, NsAccept, NsRequest, NsResponse, NsResponseBody, SymbolicName,
};
use fc_frames::els::prli::{PrliPage, PrliRepr, PrliResponseCode, TYPE_FCP};
use fc_frames::els::{ElsCode, ElsReply, ElsRequest, RscnPage, Scr, ScrFunction};
use fc_frames::{FcId, FcType, RCtl};
use tokio::sync::mpsc;

use super::els::{fcp_params, login_params};
use super::{CoreHandle, NodeError, NodeState, Notice, RemotePort};
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
        let Some(port_id) = port_id else {
            continue;
        };
        register(&core, port_id).await;
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

/// FLOGI: our N_Port ID and the fabric's frame size go to the core.
async fn fabric_login(core: &CoreHandle, generation: u64) -> Result<FcId, NodeError> {
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
    core.logged_in(generation, port_id, acc.node_name, max_payload)?;
    tracing::info!(port_name = %config.port_name, %port_id, fabric = %acc.node_name, "fabric login");
    Ok(port_id)
}

/// Name server registrations and SCR; failures are logged, not fatal.
async fn register(core: &CoreHandle, port_id: FcId) {
    let config = core.config();
    let mut features = Fc4Features::empty();
    if config.initiator {
        features |= Fc4Features::INITIATOR;
    }
    if config.target {
        features |= Fc4Features::TARGET;
    }
    let mut requests = vec![
        NsRequest::rft_id(port_id, Fc4Types::default().with(TYPE_FCP)),
        NsRequest::rff_id(port_id, features, TYPE_FCP),
        NsRequest::rnn_id(port_id, config.node_name),
    ];
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
        Err(e) => {
            tracing::warn!(error = %e, "GID_FT failed");
            return;
        }
    };
    let visible: BTreeSet<FcId> = ports.into_iter().filter(|p| *p != port_id).collect();
    core.sessions().retain(|id, _| visible.contains(id));
    for id in visible {
        if core.state().generation() != Some(generation) {
            return;
        }
        if core
            .sessions()
            .get(&id)
            .is_some_and(RemotePort::is_fcp_target)
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
/// PRLI will tell).
async fn is_target(core: &CoreHandle, id: FcId) -> bool {
    match ns_request(core, &NsRequest::gff_id(id)).await {
        Ok(NsResponse {
            body: NsResponseBody::Accept(NsAccept::GffId(map)),
            ..
        }) => map
            .iter()
            .any(|(t, f)| t == TYPE_FCP && f.contains(Fc4Features::TARGET)),
        _ => true,
    }
}

/// Logs in again to sessions an RSCN names: the port may have restarted and forgotten us.
async fn relogin_affected(core: &CoreHandle, pages: &[RscnPage], generation: u64) {
    let ids: Vec<FcId> = core
        .sessions()
        .keys()
        .copied()
        .filter(|id| pages.iter().any(|p| affects(p, *id)))
        .collect();
    for id in ids {
        if core.state().generation() != Some(generation) {
            return;
        }
        core.sessions().remove(&id);
        if let Err(e) = port_login(core, id).await {
            tracing::info!(target_id = %id, error = %e, "relogin after RSCN failed");
        }
    }
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
    let reply = core
        .els(id, &ElsRequest::Plogi(login_params(config, ElsCode::PLOGI)))
        .await?;
    let ElsReply::Login(acc) = reply else {
        return Err(NodeError::Protocol(format!(
            "PLOGI answered with {reply:?}"
        )));
    };
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
    let remote = RemotePort {
        port_id: id,
        port_name: acc.port_name,
        node_name: acc.node_name,
        rx_size: acc.common.rx_data_field_size,
        fcp: Some(page.service_params),
    };
    tracing::info!(target_id = %id, port_name = %acc.port_name, "port login");
    core.sessions().insert(id, remote);
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
}
