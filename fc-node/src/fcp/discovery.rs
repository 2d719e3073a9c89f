//! LUN discovery, as any FCP initiator does it once logged in: for every target it has an FCP
//! image pair with, REPORT LUNS (SPC-4 §6.33), then INQUIRY (SPC-4 §6.6) for each logical unit,
//! and for a disk READ CAPACITY(16) (SBC-3 §5) and its tier from the MEDIUM ROTATION RATE of
//! the Block Device Characteristics VPD page 0xB1 (SBC-3 §6.6). [`target_luns`] walks one
//! target, so that a caller can go on past a target that does not answer.

use std::fmt;

use fc_frames::scsi::data::{Capacity, DeviceType};
use fc_frames::scsi::{AdditionalSense, Lun, SenseKey};
use fc_frames::Wwn;

use super::initiator::{Initiator, ScsiError};
use crate::node::RemotePort;
use crate::scsi::Tier;

/// One logical unit a host sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunInfo {
    /// The target port.
    pub target: RemotePort,
    /// The LUN.
    pub lun: Lun,
    /// Peripheral device type (disk, tape).
    pub device_type: DeviceType,
    /// T10 vendor identification from INQUIRY, trimmed.
    pub vendor: String,
    /// Product identification from INQUIRY, trimmed.
    pub product: String,
    /// Capacity, for disks.
    pub capacity: Option<Capacity>,
    /// Tier from VPD page 0xB1, for disks that report one.
    pub tier: Option<Tier>,
}

/// The command of discovery that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryStep {
    /// REPORT LUNS to the target.
    ReportLuns,
    /// INQUIRY to a LUN.
    Inquiry,
    /// READ CAPACITY(16) to a disk.
    ReadCapacity,
    /// INQUIRY for VPD page 0xB1 to a disk.
    Tier,
}

impl fmt::Display for DiscoveryStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DiscoveryStep::ReportLuns => "REPORT LUNS",
            DiscoveryStep::Inquiry => "INQUIRY",
            DiscoveryStep::ReadCapacity => "READ CAPACITY",
            DiscoveryStep::Tier => "INQUIRY for VPD page 0xB1",
        })
    }
}

/// A discovery command that failed, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step} to {target}{}", lun.map_or_else(String::new, |l| format!(" {l}")))]
pub struct DiscoveryError {
    /// What was asked.
    pub step: DiscoveryStep,
    /// Of which target port.
    pub target: Wwn,
    /// Of which LUN (`None` for REPORT LUNS).
    pub lun: Option<Lun>,
    /// Why it failed.
    #[source]
    pub source: ScsiError,
}

/// Every LUN of every FCP target the initiator's node is logged in with, in target order.
pub async fn list_luns(init: &Initiator) -> Result<Vec<LunInfo>, DiscoveryError> {
    let mut out = Vec::new();
    for target in init.node().targets() {
        out.extend(target_luns(init, target).await?);
    }
    Ok(out)
}

/// Walks of one target begun again after REPORTED LUNS DATA HAS CHANGED, at most.
const WALKS: usize = 3;

/// Every LUN of one FCP target, in REPORT LUNS order.
///
/// Unit attentions (SAM-5 §5.14) are taken as what they say: REPORTED LUNS DATA HAS CHANGED
/// on a command after REPORT LUNS means the list may be stale, so the walk starts again (at
/// most three times); any other (CAPACITY DATA HAS CHANGED, a reset) is cleared by being
/// reported, so the command is sent once more. A disk that rejects the INQUIRY for VPD page
/// 0xB1 (ILLEGAL REQUEST: page not supported) reports no tier.
pub async fn target_luns(
    init: &Initiator,
    target: RemotePort,
) -> Result<Vec<LunInfo>, DiscoveryError> {
    let mut walk = 1;
    loop {
        match walk_target(init, target).await {
            Err(Walk::LunsChanged(e)) if walk < WALKS => {
                tracing::debug!(target = %target.port_name, error = %e, "LUN inventory changed: walking again");
                walk += 1;
            }
            Err(Walk::LunsChanged(e) | Walk::Failed(e)) => return Err(e),
            Ok(luns) => return Ok(luns),
        }
    }
}

/// How one walk of a target ended, when it did not finish.
enum Walk {
    /// REPORTED LUNS DATA HAS CHANGED came back: the walk is worth doing again.
    LunsChanged(DiscoveryError),
    /// Anything else.
    Failed(DiscoveryError),
}

async fn walk_target(init: &Initiator, target: RemotePort) -> Result<Vec<LunInfo>, Walk> {
    let error = |step, lun| {
        move |source: ScsiError| {
            let changed = source.sense().is_some_and(|s| {
                s.key == SenseKey::UNIT_ATTENTION
                    && s.additional == AdditionalSense::REPORTED_LUNS_DATA_HAS_CHANGED
            });
            let e = DiscoveryError {
                step,
                target: target.port_name,
                lun,
                source,
            };
            if changed {
                Walk::LunsChanged(e)
            } else {
                Walk::Failed(e)
            }
        }
    };
    let luns = init
        .report_luns(target.port_id)
        .await
        .map_err(error(DiscoveryStep::ReportLuns, None))?;
    let mut out = Vec::with_capacity(luns.len());
    for lun in luns {
        let inq = init
            .inquiry(target.port_id, lun)
            .await
            .map_err(error(DiscoveryStep::Inquiry, Some(lun)))?;
        let device_type = inq.peripheral.device_type();
        let (capacity, tier) = if device_type == DeviceType::DIRECT_ACCESS {
            let capacity = match init.read_capacity(target.port_id, lun).await {
                Err(e) if is_other_attention(&e) => init.read_capacity(target.port_id, lun).await,
                r => r,
            }
            .map_err(error(DiscoveryStep::ReadCapacity, Some(lun)))?;
            let tier = match init.tier(target.port_id, lun).await {
                Err(e)
                    if e.sense()
                        .is_some_and(|s| s.key == SenseKey::ILLEGAL_REQUEST) =>
                {
                    Ok(None)
                }
                r => r,
            }
            .map_err(error(DiscoveryStep::Tier, Some(lun)))?;
            (Some(capacity), tier)
        } else {
            (None, None)
        };
        out.push(LunInfo {
            target,
            lun,
            device_type,
            vendor: String::from_utf8_lossy(&inq.vendor).trim().to_string(),
            product: String::from_utf8_lossy(&inq.product).trim().to_string(),
            capacity,
            tier,
        });
    }
    Ok(out)
}

/// A unit attention other than REPORTED LUNS DATA HAS CHANGED: reporting it cleared it.
fn is_other_attention(e: &ScsiError) -> bool {
    e.sense().is_some_and(|s| {
        s.key == SenseKey::UNIT_ATTENTION
            && s.additional != AdditionalSense::REPORTED_LUNS_DATA_HAS_CHANGED
    })
}

/// Why [`find_target`] found no single target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FindTargetError {
    /// No target of that port name is logged in.
    #[error("no target {0} is logged in")]
    NotLoggedIn(Wwn),
    /// No target at all is logged in.
    #[error("no target is logged in")]
    None,
    /// Several targets are logged in and none was named.
    #[error("{0} targets are logged in: name one")]
    Several(usize),
}

/// The logged-in FCP target named `wwpn`, or the only one when `wwpn` is `None`.
pub fn find_target(init: &Initiator, wwpn: Option<Wwn>) -> Result<RemotePort, FindTargetError> {
    let targets = init.node().targets();
    match wwpn {
        Some(w) => targets
            .into_iter()
            .find(|t| t.port_name == w)
            .ok_or(FindTargetError::NotLoggedIn(w)),
        None => match targets.as_slice() {
            [one] => Ok(*one),
            [] => Err(FindTargetError::None),
            _ => Err(FindTargetError::Several(targets.len())),
        },
    }
}
