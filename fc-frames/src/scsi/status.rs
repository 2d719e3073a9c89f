//! SCSI status codes (SAM-5 §5.3, SPC-4 §4.5 for the sense data CHECK CONDITION carries).
//!
//! The status byte ends every SCSI command; FCP carries it in byte 11 of FCP_RSP.
//!
//! ```text
//!  bit  7 6 5 4 3 2 1 0
//!      +---------------+
//!      |  STATUS CODE  |   GOOD 00, CHECK CONDITION 02, BUSY 08, ...
//!      +---------------+
//! ```

use core::fmt;

code_point! {
    /// A SCSI status code. Open: any byte is data (obsolete and reserved codes included).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct ScsiStatus(pub u8) {
        /// The command completed successfully.
        GOOD = 0x00 => "GOOD",
        /// Sense data describes why the command did not complete.
        CHECK_CONDITION = 0x02 => "CHECK CONDITION",
        /// The condition a PRE-FETCH asked about is met.
        CONDITION_MET = 0x04 => "CONDITION MET",
        /// The logical unit is busy: retry later.
        BUSY = 0x08 => "BUSY",
        /// Intermediate (obsolete since SAM-4).
        INTERMEDIATE = 0x10 => "INTERMEDIATE",
        /// Intermediate-condition met (obsolete since SAM-4).
        INTERMEDIATE_CONDITION_MET = 0x14 => "INTERMEDIATE-CONDITION MET",
        /// Another I_T nexus holds a conflicting reservation.
        RESERVATION_CONFLICT = 0x18 => "RESERVATION CONFLICT",
        /// Command terminated (obsolete since SAM-2).
        COMMAND_TERMINATED = 0x22 => "COMMAND TERMINATED",
        /// The task set is full: retry after a command completes.
        TASK_SET_FULL = 0x28 => "TASK SET FULL",
        /// An auto contingent allegiance condition is active.
        ACA_ACTIVE = 0x30 => "ACA ACTIVE",
        /// The command was aborted by another I_T nexus.
        TASK_ABORTED = 0x40 => "TASK ABORTED",
    }

    /// The name SAM-5 gives the code, in capitals as the standard writes it.
    pub const fn name;
}

impl ScsiStatus {
    /// True for GOOD and CONDITION MET, the codes that mean the command succeeded.
    pub const fn is_success(self) -> bool {
        matches!(self.0, 0x00 | 0x04)
    }
}

/// The name, or `status 0x..` for a code without one.
impl fmt::Display for ScsiStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "status {:#04x}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names() {
        assert_eq!(ScsiStatus::GOOD.to_string(), "GOOD");
        assert_eq!(ScsiStatus::CHECK_CONDITION.to_string(), "CHECK CONDITION");
        assert_eq!(ScsiStatus(0x18).to_string(), "RESERVATION CONFLICT");
        assert_eq!(ScsiStatus::TASK_SET_FULL.0, 0x28);
        assert_eq!(ScsiStatus::ACA_ACTIVE.0, 0x30);
        assert_eq!(ScsiStatus::TASK_ABORTED.0, 0x40);
        assert_eq!(ScsiStatus::BUSY.name(), Some("BUSY"));
        assert_eq!(ScsiStatus(0x03).name(), None);
        assert_eq!(ScsiStatus(0x03).to_string(), "status 0x03");
    }

    #[test]
    fn test_is_success() {
        assert!(ScsiStatus::GOOD.is_success());
        assert!(ScsiStatus::CONDITION_MET.is_success());
        assert!(!ScsiStatus::CHECK_CONDITION.is_success());
        assert!(!ScsiStatus::BUSY.is_success());
    }
}
