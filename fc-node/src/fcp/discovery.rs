//! LUN discovery, as any FCP initiator does it once logged in: for every target it has an FCP
//! image pair with, REPORT LUNS (SPC-4 §6.33), then INQUIRY (SPC-4 §6.6) for each logical unit,
//! and for a disk READ CAPACITY(16) (SBC-3 §5) and its tier from the MEDIUM ROTATION RATE of
//! the Block Device Characteristics VPD page 0xB1 (SBC-3 §6.6).

use std::fmt;

use fc_frames::scsi::data::{Capacity, DeviceType};
use fc_frames::scsi::Lun;
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
    /// Vendor and product from INQUIRY, trimmed, one space between.
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
        let error = |step, lun| {
            move |source| DiscoveryError {
                step,
                target: target.port_name,
                lun,
                source,
            }
        };
        let luns = init
            .report_luns(target.port_id)
            .await
            .map_err(error(DiscoveryStep::ReportLuns, None))?;
        for lun in luns {
            let inq = init
                .inquiry(target.port_id, lun)
                .await
                .map_err(error(DiscoveryStep::Inquiry, Some(lun)))?;
            let device_type = inq.peripheral.device_type();
            let product = format!(
                "{} {}",
                String::from_utf8_lossy(&inq.vendor).trim(),
                String::from_utf8_lossy(&inq.product).trim()
            );
            let (capacity, tier) = if device_type == DeviceType::DIRECT_ACCESS {
                let capacity = init
                    .read_capacity(target.port_id, lun)
                    .await
                    .map_err(error(DiscoveryStep::ReadCapacity, Some(lun)))?;
                let tier = init
                    .tier(target.port_id, lun)
                    .await
                    .map_err(error(DiscoveryStep::Tier, Some(lun)))?;
                (Some(capacity), tier)
            } else {
                (None, None)
            };
            out.push(LunInfo {
                target,
                lun,
                device_type,
                product,
                capacity,
                tier,
            });
        }
    }
    Ok(out)
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
