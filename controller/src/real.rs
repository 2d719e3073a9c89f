//! The real volumes of this controller's SAN (PATENT.md figure 3; the real volume manager 241,
//! [0089]): which arrays, LUNs, media types and capacities there are, found as any FCP
//! initiator finds them, and watched for change. A driver module: it owns a tokio task.
//!
//! A scan ([`discover`]):
//!
//! ```text
//!  GID_FT(0xE0) ─► controller ports (left out)
//!  every FCP target the node is logged in with, not itself, not a controller
//!    ├─ GA_NXT: symbolic name "fcsan controller ..." ─► left out
//!    └─ fc_node::fcp::discovery::target_luns: REPORT LUNS, INQUIRY, READ CAPACITY(16), VPD 0xB1
//!        peripheral type 1 ─► tape; type 0 ─► ssd / fast-hdd / slow-hdd by rotation rate
//!        (no page 0xB1 or no rate: slow-hdd); other types are not storage for volumes
//! ```
//!
//! Targets are walked concurrently; one that fails is left out of that scan with a warning,
//! so its LUNs look vanished until it answers again (the volumes on them degrade, they are
//! never deleted). [`watch`] scans at start, after every RSCN, state change and session change
//! of the node, and every `period`. FCP has no asynchronous event notification here, so a
//! unit attention (REPORTED LUNS DATA HAS CHANGED, CAPACITY DATA HAS CHANGED) reaches the
//! controller on the next command it sends: a scan's own commands, which take it as what it
//! says (`target_luns` walks the target again, or asks again). The `period` is therefore how
//! late a LUN added to an array without an RSCN may be seen.

use std::collections::BTreeSet;
use std::time::Duration;

use fc_frames::ct::ns::{NsAccept, NsRequest, NsResponse, NsResponseBody};
use fc_frames::scsi::data::DeviceType;
use fc_frames::scsi::Lun;
use fc_frames::{FcId, Wwn};
use fc_node::fcp::discovery::{self, LunInfo};
use fc_node::fcp::initiator::Initiator;
use fc_node::node::{NodeError, NodeEvent, NodeState, RemotePort};
use fc_node::scsi::Tier;
use tokio::sync::{broadcast, watch as watch_channel};
use tokio::task::{JoinHandle, JoinSet};

use crate::model::MediaType;
use crate::wire::{FC4_TYPE, SYMBOLIC_PREFIX};

/// One logical unit of an array on this controller's SAN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RealVolume {
    /// The array's N_Port_Name.
    pub array: Wwn,
    /// The array's N_Port_ID (figure 3's "storage device FC address").
    pub array_id: FcId,
    /// The LUN, its eight bytes as REPORT LUNS gives them, big-endian ([`lun_code`]).
    pub lun: u64,
    /// Media type.
    pub media: MediaType,
    /// Logical block size in bytes; 0 for a tape (SCSI discovery learns no capacity of one).
    pub block_size: u32,
    /// Logical blocks; 0 for a tape.
    pub blocks: u64,
    /// T10 vendor identification, trimmed.
    pub vendor: String,
    /// Product identification, trimmed.
    pub product: String,
}

impl RealVolume {
    /// Capacity in bytes (0 for a tape).
    pub const fn bytes(&self) -> u64 {
        self.blocks.saturating_mul(self.block_size as u64)
    }

    /// The LUN as FCP_CMND carries it.
    pub const fn scsi_lun(&self) -> Lun {
        scsi_lun(self.lun)
    }

    /// The volume of one LUN discovery found; `None` for what is neither disk nor tape, and
    /// for a disk without capacity.
    fn from_info(info: LunInfo) -> Option<RealVolume> {
        let (media, blocks, block_size) = match info.device_type {
            DeviceType::SEQUENTIAL_ACCESS => (MediaType::Tape, 0, 0),
            DeviceType::DIRECT_ACCESS => {
                let cap = info.capacity?;
                (media_of(info.tier), cap.blocks(), cap.block_size())
            }
            _ => return None,
        };
        Some(RealVolume {
            array: info.target.port_name,
            array_id: info.target.port_id,
            lun: lun_code(info.lun),
            media,
            block_size,
            blocks,
            vendor: info.vendor,
            product: info.product,
        })
    }
}

/// The media type of a disk of this tier; a disk that reports none is a slow disk.
pub const fn media_of(tier: Option<Tier>) -> MediaType {
    match tier {
        Some(Tier::Ssd) => MediaType::Ssd,
        Some(Tier::FastHdd) => MediaType::FastHdd,
        Some(Tier::SlowHdd) | None => MediaType::SlowHdd,
    }
}

/// A LUN's eight bytes as one number (what [`RealVolume::lun`] and
/// [`RealExtent::lun`](crate::model::RealExtent) hold): LUN 3 in peripheral device addressing
/// is `0x0003_0000_0000_0000`. Lossless for every addressing method.
pub const fn lun_code(lun: Lun) -> u64 {
    u64::from_be_bytes(lun.to_bytes())
}

/// The LUN of a [`lun_code`].
pub const fn scsi_lun(code: u64) -> Lun {
    Lun(code.to_be_bytes())
}

/// Why a whole scan failed (a single array that fails is left out instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The node is not logged in with the fabric.
    #[error("the node is not logged in with the fabric")]
    Offline,
    /// The name server did not answer GID_FT for the controllers' FC-4 TYPE, so controllers
    /// could not be told from arrays.
    #[error("GID_FT for controllers (FC-4 TYPE {FC4_TYPE:#04x}): {0}")]
    NameServer(#[source] NodeError),
}

/// Every LUN of every array the initiator's node is logged in with, sorted by array and LUN.
/// Controllers (FC-4 TYPE [`FC4_TYPE`] or a symbolic name starting with [`SYMBOLIC_PREFIX`])
/// and the node itself are left out; so is, with a warning, an array that does not answer.
pub async fn discover(initiator: &Initiator) -> Result<Vec<RealVolume>, DiscoveryError> {
    let node = initiator.node();
    let own_id = node.port_id().ok_or(DiscoveryError::Offline)?;
    let own_name = node.config().port_name;
    let controllers = controller_ports(initiator).await?;
    let mut walks = JoinSet::new();
    for target in node.targets() {
        if target.port_id == own_id
            || target.port_name == own_name
            || controllers.contains(&target.port_id)
        {
            continue;
        }
        let init = initiator.clone();
        walks.spawn(async move { walk(&init, target).await });
    }
    let mut out = Vec::new();
    while let Some(joined) = walks.join_next().await {
        match joined {
            Ok(vols) => out.extend(vols),
            // A walk only panics on a bug; the scan goes on without that array.
            Err(e) => tracing::error!(error = %e, "array walk failed"),
        }
    }
    out.sort();
    Ok(out)
}

/// The N_Port IDs registered for the controllers' FC-4 TYPE.
async fn controller_ports(initiator: &Initiator) -> Result<BTreeSet<FcId>, DiscoveryError> {
    match initiator
        .node()
        .name_server(&NsRequest::gid_ft(FC4_TYPE))
        .await
    {
        Ok(NsResponse {
            body: NsResponseBody::Accept(NsAccept::GidFt(ports)),
            ..
        }) => Ok(ports.into_iter().collect()),
        // FS_RJT: no port of that TYPE is registered.
        Ok(_) => Ok(BTreeSet::new()),
        Err(e) => Err(DiscoveryError::NameServer(e)),
    }
}

/// One array's volumes; none when it is a controller or does not answer.
async fn walk(init: &Initiator, target: RemotePort) -> Vec<RealVolume> {
    if has_controller_name(init, target).await {
        tracing::debug!(port = %target.port_name, "a controller: not an array");
        return Vec::new();
    }
    match discovery::target_luns(init, target).await {
        Ok(luns) => luns.into_iter().filter_map(RealVolume::from_info).collect(),
        Err(e) => {
            tracing::warn!(
                array = %target.port_name,
                array_id = %target.port_id,
                error = %e,
                "array left out of this scan"
            );
            Vec::new()
        }
    }
}

/// Whether the name server gives `target` a controller's symbolic port name. GA_NXT asks for
/// the port after an ID, so it is asked for the one before `target`'s. Unknown counts as no:
/// GID_FT already left out every controller that registered its TYPE.
async fn has_controller_name(init: &Initiator, target: RemotePort) -> bool {
    let Some(before) = target
        .port_id
        .to_u32()
        .checked_sub(1)
        .and_then(|id| FcId::try_new(id).ok())
    else {
        return false;
    };
    match init.node().name_server(&NsRequest::ga_nxt(before)).await {
        Ok(NsResponse {
            body: NsResponseBody::Accept(NsAccept::GaNxt(a)),
            ..
        }) if a.port_id == target.port_id => a
            .symbolic_port_name
            .as_bytes()
            .starts_with(SYMBOLIC_PREFIX.as_bytes()),
        Ok(_) => false,
        Err(e) => {
            tracing::debug!(port = %target.port_name, error = %e, "GA_NXT failed");
            false
        }
    }
}

/// How long a burst of node events is let settle before the scan they call for.
const SETTLE: Duration = Duration::from_millis(50);

/// Keeps the list of real volumes current: scans at start, again after every RSCN, state
/// change or session change of the node, and every `period` after the last scan; publishes
/// a new list (sorted as [`discover`] sorts) only when it differs. The receiver holds an
/// empty list until the first scan finds something. A scan that fails as a whole
/// ([`DiscoveryError`]) leaves the last list standing.
///
/// The task holds the initiator (and so keeps its node running) until every receiver is
/// dropped or the node stops.
pub fn watch(
    initiator: Initiator,
    period: Duration,
) -> (watch_channel::Receiver<Vec<RealVolume>>, JoinHandle<()>) {
    let (tx, rx) = watch_channel::channel(Vec::new());
    let events = initiator.node().events();
    let task = tokio::spawn(run(initiator, period, tx, events));
    (rx, task)
}

async fn run(
    initiator: Initiator,
    period: Duration,
    tx: watch_channel::Sender<Vec<RealVolume>>,
    mut events: broadcast::Receiver<NodeEvent>,
) {
    loop {
        match discover(&initiator).await {
            Ok(list) => {
                tx.send_if_modified(|current| {
                    let changed = *current != list;
                    if changed {
                        tracing::info!(volumes = list.len(), "real volumes changed");
                        *current = list;
                    }
                    changed
                });
            }
            // Not logged in yet, or the link is down: the next state change scans again.
            Err(DiscoveryError::Offline) => tracing::debug!("offline; the last list stands"),
            Err(e) => tracing::warn!(error = %e, "scan failed; the last list stands"),
        }
        tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep(period) => {}
            event = events.recv() => match event {
                Ok(NodeEvent::State(NodeState::Stopped)) | Err(broadcast::error::RecvError::Closed) => {
                    return
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    tokio::time::sleep(SETTLE).await;
                    while matches!(
                        events.try_recv(),
                        Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_))
                    ) {}
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_lun_code_round_trip() {
        for n in [0, 3, 255, 256, 0x3FFF] {
            let lun = Lun::from_index(n).unwrap();
            assert_eq!(scsi_lun(lun_code(lun)), lun);
        }
        assert_eq!(lun_code(Lun::from_index(3).unwrap()), 0x0003_0000_0000_0000);
    }

    #[test]
    fn test_media_of_tier() {
        assert_eq!(media_of(Some(Tier::Ssd)), MediaType::Ssd);
        assert_eq!(media_of(Some(Tier::FastHdd)), MediaType::FastHdd);
        assert_eq!(media_of(Some(Tier::SlowHdd)), MediaType::SlowHdd);
        assert_eq!(media_of(None), MediaType::SlowHdd);
    }
}
