//! SCSI edge cases of a disk LUN, seen through FCP as an initiator sees them: ranges at and past
//! the end, zero-length transfers, an unknown opcode, a bad CDB field, FCP_DL residuals both
//! ways, a LUN that does not exist. [`edge_cases`] runs them against any LUN and says what
//! each one got, so that two LUNs (an array's and a virtual volume's) can be compared case by
//! case; it writes block 0 (twice) and nothing else.

use bytes::Bytes;
use fc_frames::fcp::Residual;
use fc_frames::scsi::cdb::{Read, Write};
use fc_frames::scsi::{Lun, ScsiStatus};
use fc_frames::FcId;

use super::initiator::{Completion, DataPhase, Initiator, ScsiError};

/// One edge case and what the LUN answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// What was sent.
    pub case: String,
    /// What came back: status, sense key and additional sense, residual.
    pub outcome: String,
}

fn outcome_of(r: &Result<Completion, ScsiError>) -> String {
    match r {
        Ok(c) => {
            let residual = match c.residual {
                Residual::None => String::new(),
                Residual::Under(n) => format!(", underrun {n}"),
                Residual::Over(n) => format!(", overrun {n}"),
            };
            match (&c.status, &c.sense) {
                (s, Some(sense)) if *s == ScsiStatus::CHECK_CONDITION => format!(
                    "CHECK CONDITION {} / {}{residual}",
                    sense.key, sense.additional
                ),
                (s, _) => format!("{s}, {} bytes{residual}", c.data.len()),
            }
        }
        Err(e) => format!("error: {e}"),
    }
}

/// Runs the edge cases against `lun` of `target`; `absent` is a LUN the target does not have.
/// Fails only when the LUN's capacity cannot be read.
pub async fn edge_cases(
    init: &Initiator,
    target: FcId,
    lun: Lun,
    absent: Lun,
) -> Result<Vec<Case>, ScsiError> {
    let cap = init.read_capacity(target, lun).await?;
    let blocks = cap.blocks();
    let bs = cap.block_size();
    let block = |seed: u8, n: usize| -> Bytes {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>()
            .into()
    };
    let mut out = Vec::new();
    let mut run = async |case: String, cdb: Vec<u8>, phase: DataPhase, at: Lun| {
        let r = init.command(target, at, &cdb, phase).await;
        out.push(Case {
            case,
            outcome: outcome_of(&r),
        });
    };
    let b = bs as usize;
    for (name, lba) in [("end", blocks), ("2^31", 1 << 31), ("u64::MAX", u64::MAX)] {
        run(
            format!("READ 1 block at {name}"),
            Read::new(lba, 1).to_vec(),
            DataPhase::In(bs),
            lun,
        )
        .await;
        run(
            format!("WRITE 1 block at {name}"),
            Write::new(lba, 1).to_vec(),
            DataPhase::Out(block(1, b)),
            lun,
        )
        .await;
    }
    run(
        "READ 2 blocks from the last".into(),
        Read::new(blocks - 1, 2).to_vec(),
        DataPhase::In(2 * bs),
        lun,
    )
    .await;
    for (name, lba) in [("the last block", blocks - 1), ("end", blocks)] {
        run(
            format!("READ 0 blocks at {name}"),
            Read::new(lba, 0).to_vec(),
            DataPhase::None,
            lun,
        )
        .await;
        run(
            format!("WRITE 0 blocks at {name}"),
            Write::new(lba, 0).to_vec(),
            DataPhase::None,
            lun,
        )
        .await;
    }
    run(
        "opcode C7h".into(),
        vec![0xC7, 0, 0, 0, 0, 0],
        DataPhase::None,
        lun,
    )
    .await;
    let mut cdb = Read::new(0, 1).to_vec();
    cdb[1] |= 0xE0; // RDPROTECT without protection information
    run("READ with RDPROTECT".into(), cdb, DataPhase::In(bs), lun).await;
    run(
        "READ 1 block, FCP_DL 2 blocks".into(),
        Read::new(0, 1).to_vec(),
        DataPhase::In(2 * bs),
        lun,
    )
    .await;
    run(
        "READ 2 blocks, FCP_DL 1 block".into(),
        Read::new(0, 2).to_vec(),
        DataPhase::In(bs),
        lun,
    )
    .await;
    run(
        "WRITE 1 block, FCP_DL 2 blocks".into(),
        Write::new(0, 1).to_vec(),
        DataPhase::Out(block(3, 2 * b)),
        lun,
    )
    .await;
    run(
        "WRITE 2 blocks, FCP_DL 1 block".into(),
        Write::new(0, 2).to_vec(),
        DataPhase::Out(block(3, b)),
        lun,
    )
    .await;
    run(
        "READ of a LUN that does not exist".into(),
        Read::new(0, 1).to_vec(),
        DataPhase::In(bs),
        absent,
    )
    .await;
    Ok(out)
}
