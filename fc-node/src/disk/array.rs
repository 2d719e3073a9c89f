//! A disk array: logical units backed by files, each with a tier, served by an FCP target
//! node. The tier reaches initiators through standard identification only (VPD page 0xB1
//! MEDIUM ROTATION RATE), and a tape LUN is a sequential-access device that identifies itself
//! and rejects block commands.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use fc_frames::scsi::data::ReadBlockLimitsData;
use fc_frames::scsi::Lun;
use fc_frames::Wwn;

use super::FileLun;
use crate::fcp::target::Target;
use crate::node::{Connector, Node, NodeConfig, Services};
use crate::scsi::{DiskConfig, ScsiEngine, TapeConfig, TargetPort, Tier};

/// One disk LUN of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunSpec {
    /// Its LUN.
    pub lun: Lun,
    /// The backing file: created sparse at `bytes` when missing, grown when shorter.
    pub path: PathBuf,
    /// Size in bytes, a multiple of `block_size`.
    pub bytes: u64,
    /// Logical block size.
    pub block_size: u32,
    /// The tier it reports.
    pub tier: Tier,
    /// Unit serial number (VPD page 0x80).
    pub serial: String,
}

/// One tape LUN of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeSpec {
    /// Its LUN.
    pub lun: Lun,
    /// Unit serial number.
    pub serial: String,
}

/// A logical unit's NAA 5 name, from the array's port name and the LUN: unique per array.
pub fn lun_name(port_name: Wwn, lun: Lun) -> Wwn {
    let index = u64::from(lun.index().unwrap_or(0xFFF) & 0xFFF);
    Wwn::from_u64((0x5 << 60) | ((port_name.to_u64() & 0x0000_FFFF_FFFF_FFFF) << 12) | index)
}

/// Builds the SCSI engine of an array: opens (or creates) every LUN's file.
pub fn build_engine(
    port_name: Wwn,
    node_name: Wwn,
    luns: &[LunSpec],
    tapes: &[TapeSpec],
) -> io::Result<ScsiEngine> {
    let engine = ScsiEngine::new(TargetPort {
        port_name,
        node_name,
        relative_port: 1,
    });
    for spec in luns {
        let blocks = spec.bytes / u64::from(spec.block_size.max(1));
        let file = FileLun::open_or_create(&spec.path, blocks, spec.block_size, spec.tier)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", spec.path.display())))?;
        let config = DiskConfig {
            product: match spec.tier {
                Tier::Ssd => "FILE DISK SSD".into(),
                Tier::FastHdd => "FILE DISK 15K".into(),
                Tier::SlowHdd => "FILE DISK 7200".into(),
            },
            ..DiskConfig::new(&spec.serial, lun_name(port_name, spec.lun))
        };
        engine
            .add_disk(spec.lun, Arc::new(file), config)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: {e}", spec.path.display()),
                )
            })?;
    }
    for spec in tapes {
        let tape = engine.add_tape(
            spec.lun,
            TapeConfig {
                vendor: "FCSAN".into(),
                product: "FILE TAPE".into(),
                revision: "0001".into(),
                serial: spec.serial.clone(),
                naa: lun_name(port_name, spec.lun),
                block_limits: ReadBlockLimitsData {
                    granularity: 0,
                    max_block_length: 1 << 20,
                    min_block_length: 1,
                },
            },
        );
        tape.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("tape: {e}")))?;
    }
    Ok(engine)
}

/// A running disk array: its node and the target it serves.
#[derive(Debug, Clone)]
pub struct DiskArray {
    /// The array's N_Port.
    pub node: Node,
    /// Its FCP target: the engine (to add or remove LUNs while it runs) and the counters.
    pub target: Target,
}

impl DiskArray {
    /// Opens the LUNs and starts the array's node as an FCP target. `config.target` is set.
    pub fn start(
        mut config: NodeConfig,
        connector: impl Connector,
        luns: &[LunSpec],
        tapes: &[TapeSpec],
    ) -> io::Result<DiskArray> {
        config.target = true;
        let engine = build_engine(config.port_name, config.node_name, luns, tapes)?;
        let target = Target::new(Arc::new(engine));
        let mut services = Services::new();
        target.install(&mut services);
        let node = Node::spawn(config, connector, services);
        Ok(DiskArray { node, target })
    }
}
