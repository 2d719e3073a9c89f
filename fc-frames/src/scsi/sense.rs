//! SCSI sense data (SPC-4 §4.5): why a command ended in CHECK CONDITION.
//!
//! Two formats exist; byte 0 (RESPONSE CODE, bits 6-0) says which: 0x70/0x71 fixed format
//! (current/deferred error), 0x72/0x73 descriptor format (current/deferred error).
//!
//! Fixed format (SPC-4 §4.5.3), 18 bytes as this crate writes it:
//!
//! ```text
//!  byte | 7       | 6   | 5   | 4         | 3 2 1 0
//! ------+---------+-----+-----+-----------+-----------
//!    0  | VALID   | RESPONSE CODE (70h or 71h)
//!    1  | obsolete
//!    2  | FILEMARK| EOM | ILI | SDAT_OVFL | SENSE KEY
//!  3-6  | INFORMATION (32 bits; meaningful when VALID = 1)
//!    7  | ADDITIONAL SENSE LENGTH (n - 7)
//! 8-11  | COMMAND-SPECIFIC INFORMATION
//!   12  | ADDITIONAL SENSE CODE (ASC)
//!   13  | ADDITIONAL SENSE CODE QUALIFIER (ASCQ)
//!   14  | FIELD REPLACEABLE UNIT CODE
//!   15  | SKSV    | SENSE KEY SPECIFIC (bits 6-0 of byte 15, bytes 16-17)
//! 18-n  | additional sense bytes
//! ```
//!
//! Descriptor format (SPC-4 §4.5.2):
//!
//! ```text
//!  byte | 7         | 6 5 4 | 3 2 1 0
//! ------+-----------+-------+-----------
//!    0  | reserved  | RESPONSE CODE (72h or 73h)
//!    1  | SDAT_OVFL | rsvd  | SENSE KEY
//!    2  | ADDITIONAL SENSE CODE
//!    3  | ADDITIONAL SENSE CODE QUALIFIER
//!  4-6  | reserved
//!    7  | ADDITIONAL SENSE LENGTH (n - 7)
//!  8-n  | sense data descriptors: TYPE, ADDITIONAL LENGTH, then that many bytes
//! ```
//!
//! Descriptors this module reads and writes: information (type 0x00, length 0x0A: VALID 0x80
//! in byte 2, 64-bit INFORMATION in bytes 4-11), command-specific information (0x01, 0x0A),
//! sense key specific (0x02, 0x06: the three SKS bytes at 4-6), field replaceable unit (0x03,
//! 0x02), stream commands (0x04, 0x02: FILEMARK/EOM/ILI in byte 3) and block commands (0x05,
//! 0x02: ILI in byte 3). Other descriptor types are skipped.
//!
//! The sense-key-specific bytes for ILLEGAL REQUEST are a field pointer (SPC-4 §4.5.2.4.2):
//!
//! ```text
//!  byte | 7    | 6   | 5 4  | 3   | 2 1 0
//! ------+------+-----+------+-----+-------------
//!    0  | SKSV | C/D | rsvd | BPV | BIT POINTER
//!  1-2  | FIELD POINTER (byte of the CDB or parameter list)
//! ```
//!
//! Truncation: sense data is routinely cut short by an allocation length (REQUEST SENSE, the
//! sense buffer of an HBA), so the parser accepts any sense data of at least 8 bytes. In the
//! fixed format a field that lies beyond the bytes present, or beyond what the ADDITIONAL SENSE
//! LENGTH covers, reads as zero (so a missing SKSV byte means "no sense key specific data").
//! In the descriptor format the walk stops at the end of the bytes present or of the additional
//! sense length, whichever comes first, and a descriptor cut off there is ignored.

use core::fmt;

use crate::error::{Layer, LenError};
use crate::wire::{be32, be64, put_be16, put_be32, put_be64};

/// Length of the fixed format sense data this crate emits (additional sense length 10).
pub const FIXED_LEN: usize = 18;

/// Length of the header common to both formats; the shortest sense data accepted.
pub const MIN_LEN: usize = 8;

/// Sense data descriptor types (SPC-4 Table 29).
mod desc {
    pub const INFORMATION: u8 = 0x00;
    pub const COMMAND_SPECIFIC: u8 = 0x01;
    pub const SENSE_KEY_SPECIFIC: u8 = 0x02;
    pub const FRU: u8 = 0x03;
    pub const STREAM_COMMANDS: u8 = 0x04;
    pub const BLOCK_COMMANDS: u8 = 0x05;
}

/// Bits of byte 2 (fixed) or of the stream commands descriptor's byte 3.
const FILEMARK: u8 = 0x80;
const EOM: u8 = 0x40;
const ILI: u8 = 0x20;
/// SDAT_OVFL: bit 4 of byte 2 in the fixed format, bit 7 of byte 1 in the descriptor format.
const SDAT_OVFL_FIXED: u8 = 0x10;
const SDAT_OVFL_DESC: u8 = 0x80;
/// VALID bit of fixed byte 0 and of the information descriptor's byte 2.
const VALID: u8 = 0x80;
/// SKSV bit of the first sense-key-specific byte.
const SKSV: u8 = 0x80;

/// Errors decoding sense data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SenseError {
    /// Fewer than [`MIN_LEN`] bytes.
    #[error(transparent)]
    Len(#[from] LenError),
    /// RESPONSE CODE is not one of 0x70-0x73 (0x7F is vendor specific; others are reserved).
    #[error("sense RESPONSE CODE {0:#04x} is not 0x70-0x73 (fixed or descriptor format)")]
    BadResponseCode(u8),
    /// A known sense data descriptor with an ADDITIONAL LENGTH other than the standard's.
    #[error("sense descriptor type {descriptor:#04x} has ADDITIONAL LENGTH {len:#04x}, expected {expected:#04x}")]
    BadDescriptorLength {
        /// Descriptor type.
        descriptor: u8,
        /// Its ADDITIONAL LENGTH byte.
        len: u8,
        /// What SPC-4 gives for that type.
        expected: u8,
    },
}

code_point! {
    /// The sense key (SPC-4 Table 27): the general category of the error. Open: the four-bit
    /// value is data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct SenseKey(pub u8) {
        /// No specific sense key information (e.g. a filemark or end of data on tape).
        NO_SENSE = 0x0 => "NO SENSE",
        /// The command completed after recovery action.
        RECOVERED_ERROR = 0x1 => "RECOVERED ERROR",
        /// The logical unit is not accessible.
        NOT_READY = 0x2 => "NOT READY",
        /// Unrecovered error in the medium or recorded data.
        MEDIUM_ERROR = 0x3 => "MEDIUM ERROR",
        /// Non-recoverable hardware failure.
        HARDWARE_ERROR = 0x4 => "HARDWARE ERROR",
        /// Illegal parameter in the CDB or in the parameter data.
        ILLEGAL_REQUEST = 0x5 => "ILLEGAL REQUEST",
        /// Something changed (reset, mode parameters, LUN inventory): the initiator should look.
        UNIT_ATTENTION = 0x6 => "UNIT ATTENTION",
        /// The medium is write- or read-protected.
        DATA_PROTECT = 0x7 => "DATA PROTECT",
        /// Blank medium or end-of-data on a write-once/sequential device.
        BLANK_CHECK = 0x8 => "BLANK CHECK",
        /// Vendor specific.
        VENDOR_SPECIFIC = 0x9 => "VENDOR SPECIFIC",
        /// EXTENDED COPY aborted.
        COPY_ABORTED = 0xA => "COPY ABORTED",
        /// The device server aborted the command.
        ABORTED_COMMAND = 0xB => "ABORTED COMMAND",
        /// The end of the partition was reached with data still to write.
        VOLUME_OVERFLOW = 0xD => "VOLUME OVERFLOW",
        /// Source data did not match the medium (VERIFY, COMPARE AND WRITE).
        MISCOMPARE = 0xE => "MISCOMPARE",
        /// Completed, with sense data (SPC-5).
        COMPLETED = 0xF => "COMPLETED",
    }

    /// The name SPC-4 gives the key.
    pub const fn name;
}

/// The name, or `SENSE KEY 0x0c` for a reserved value.
impl fmt::Display for SenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "SENSE KEY {:#04x}", self.0),
        }
    }
}

/// An additional sense code and its qualifier (ASC, ASCQ), SPC-4 Annex D. Open: any pair is
/// data; the constants name the ones this project reports or meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AdditionalSense(pub u8, pub u8);

macro_rules! additional_sense {
    ($($name:ident = ($asc:literal, $ascq:literal, $text:literal);)*) => {
        impl AdditionalSense {
            $(
                #[doc = $text]
                pub const $name: AdditionalSense = AdditionalSense($asc, $ascq);
            )*

            /// The description SPC-4 Annex D gives the pair.
            pub const fn name(self) -> Option<&'static str> {
                match (self.0, self.1) {
                    $(($asc, $ascq) => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

additional_sense! {
    NO_ADDITIONAL_SENSE = (0x00, 0x00, "NO ADDITIONAL SENSE INFORMATION");
    FILEMARK_DETECTED = (0x00, 0x01, "FILEMARK DETECTED");
    END_OF_PARTITION_MEDIUM_DETECTED = (0x00, 0x02, "END-OF-PARTITION/MEDIUM DETECTED");
    BEGINNING_OF_PARTITION_MEDIUM_DETECTED = (0x00, 0x04, "BEGINNING-OF-PARTITION/MEDIUM DETECTED");
    END_OF_DATA_DETECTED = (0x00, 0x05, "END-OF-DATA DETECTED");
    OPERATION_IN_PROGRESS = (0x00, 0x16, "OPERATION IN PROGRESS");
    LOGICAL_UNIT_NOT_READY = (0x04, 0x00, "LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE");
    BECOMING_READY = (0x04, 0x01, "LOGICAL UNIT IS IN PROCESS OF BECOMING READY");
    INITIALIZING_COMMAND_REQUIRED = (0x04, 0x02, "LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED");
    MANUAL_INTERVENTION_REQUIRED = (0x04, 0x03, "LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED");
    ASYMMETRIC_ACCESS_STATE_TRANSITION = (0x04, 0x0A, "LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION");
    TARGET_PORT_IN_STANDBY_STATE = (0x04, 0x0B, "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE");
    TARGET_PORT_IN_UNAVAILABLE_STATE = (0x04, 0x0C, "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE");
    LOGICAL_UNIT_COMMUNICATION_FAILURE = (0x08, 0x00, "LOGICAL UNIT COMMUNICATION FAILURE");
    LOGICAL_UNIT_COMMUNICATION_TIME_OUT = (0x08, 0x01, "LOGICAL UNIT COMMUNICATION TIME-OUT");
    WRITE_ERROR = (0x0C, 0x00, "WRITE ERROR");
    INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT = (0x0E, 0x03, "INVALID FIELD IN COMMAND INFORMATION UNIT");
    GUARD_CHECK_FAILED = (0x10, 0x01, "LOGICAL BLOCK GUARD CHECK FAILED");
    APPLICATION_TAG_CHECK_FAILED = (0x10, 0x02, "LOGICAL BLOCK APPLICATION TAG CHECK FAILED");
    REFERENCE_TAG_CHECK_FAILED = (0x10, 0x03, "LOGICAL BLOCK REFERENCE TAG CHECK FAILED");
    UNRECOVERED_READ_ERROR = (0x11, 0x00, "UNRECOVERED READ ERROR");
    RECORDED_ENTITY_NOT_FOUND = (0x14, 0x00, "RECORDED ENTITY NOT FOUND");
    PARAMETER_LIST_LENGTH_ERROR = (0x1A, 0x00, "PARAMETER LIST LENGTH ERROR");
    MISCOMPARE_DURING_VERIFY = (0x1D, 0x00, "MISCOMPARE DURING VERIFY OPERATION");
    INVALID_COMMAND_OPERATION_CODE = (0x20, 0x00, "INVALID COMMAND OPERATION CODE");
    LBA_OUT_OF_RANGE = (0x21, 0x00, "LOGICAL BLOCK ADDRESS OUT OF RANGE");
    INVALID_FIELD_IN_CDB = (0x24, 0x00, "INVALID FIELD IN CDB");
    LOGICAL_UNIT_NOT_SUPPORTED = (0x25, 0x00, "LOGICAL UNIT NOT SUPPORTED");
    INVALID_FIELD_IN_PARAMETER_LIST = (0x26, 0x00, "INVALID FIELD IN PARAMETER LIST");
    PARAMETER_NOT_SUPPORTED = (0x26, 0x01, "PARAMETER NOT SUPPORTED");
    PARAMETER_VALUE_INVALID = (0x26, 0x02, "PARAMETER VALUE INVALID");
    WRITE_PROTECTED = (0x27, 0x00, "WRITE PROTECTED");
    SPACE_ALLOCATION_FAILED_WRITE_PROTECT = (0x27, 0x07, "SPACE ALLOCATION FAILED WRITE PROTECT");
    NOT_READY_TO_READY_CHANGE = (0x28, 0x00, "NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED");
    POWER_ON_RESET = (0x29, 0x00, "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED");
    POWER_ON_OCCURRED = (0x29, 0x01, "POWER ON OCCURRED");
    BUS_DEVICE_RESET_FUNCTION_OCCURRED = (0x29, 0x03, "BUS DEVICE RESET FUNCTION OCCURRED");
    DEVICE_INTERNAL_RESET = (0x29, 0x04, "DEVICE INTERNAL RESET");
    I_T_NEXUS_LOSS_OCCURRED = (0x29, 0x07, "I_T NEXUS LOSS OCCURRED");
    PARAMETERS_CHANGED = (0x2A, 0x00, "PARAMETERS CHANGED");
    MODE_PARAMETERS_CHANGED = (0x2A, 0x01, "MODE PARAMETERS CHANGED");
    RESERVATIONS_PREEMPTED = (0x2A, 0x03, "RESERVATIONS PREEMPTED");
    RESERVATIONS_RELEASED = (0x2A, 0x04, "RESERVATIONS RELEASED");
    REGISTRATIONS_PREEMPTED = (0x2A, 0x05, "REGISTRATIONS PREEMPTED");
    ASYMMETRIC_ACCESS_STATE_CHANGED = (0x2A, 0x06, "ASYMMETRIC ACCESS STATE CHANGED");
    CAPACITY_DATA_HAS_CHANGED = (0x2A, 0x09, "CAPACITY DATA HAS CHANGED");
    COMMAND_SEQUENCE_ERROR = (0x2C, 0x00, "COMMAND SEQUENCE ERROR");
    COMMANDS_CLEARED_BY_ANOTHER_INITIATOR = (0x2F, 0x00, "COMMANDS CLEARED BY ANOTHER INITIATOR");
    INCOMPATIBLE_MEDIUM_INSTALLED = (0x30, 0x00, "INCOMPATIBLE MEDIUM INSTALLED");
    THIN_PROVISIONING_SOFT_THRESHOLD_REACHED = (0x38, 0x07, "THIN PROVISIONING SOFT THRESHOLD REACHED");
    MEDIUM_NOT_PRESENT = (0x3A, 0x00, "MEDIUM NOT PRESENT");
    SEQUENTIAL_POSITIONING_ERROR = (0x3B, 0x00, "SEQUENTIAL POSITIONING ERROR");
    LOGICAL_UNIT_FAILURE = (0x3E, 0x01, "LOGICAL UNIT FAILURE");
    MICROCODE_HAS_BEEN_CHANGED = (0x3F, 0x01, "MICROCODE HAS BEEN CHANGED");
    INQUIRY_DATA_HAS_CHANGED = (0x3F, 0x03, "INQUIRY DATA HAS CHANGED");
    REPORTED_LUNS_DATA_HAS_CHANGED = (0x3F, 0x0E, "REPORTED LUNS DATA HAS CHANGED");
    INTERNAL_TARGET_FAILURE = (0x44, 0x00, "INTERNAL TARGET FAILURE");
    DATA_PHASE_ERROR = (0x4B, 0x00, "DATA PHASE ERROR");
    OVERLAPPED_COMMANDS_ATTEMPTED = (0x4E, 0x00, "OVERLAPPED COMMANDS ATTEMPTED");
    MEDIUM_REMOVAL_PREVENTED = (0x53, 0x02, "MEDIUM REMOVAL PREVENTED");
    INSUFFICIENT_RESOURCES = (0x55, 0x03, "INSUFFICIENT RESOURCES");
    FAILURE_PREDICTION_THRESHOLD_EXCEEDED = (0x5D, 0x00, "FAILURE PREDICTION THRESHOLD EXCEEDED");
}

impl AdditionalSense {
    /// The ADDITIONAL SENSE CODE.
    pub const fn asc(self) -> u8 {
        self.0
    }

    /// The ADDITIONAL SENSE CODE QUALIFIER.
    pub const fn ascq(self) -> u8 {
        self.1
    }

    /// ASC in the high byte, ASCQ in the low byte (Wireshark's `scsi.sns.ascascq`).
    pub const fn to_u16(self) -> u16 {
        (self.0 as u16) << 8 | self.1 as u16
    }
}

/// `LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00)`; `ASC/ASCQ 80/01` for a pair without a name.
impl fmt::Display for AdditionalSense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({:02X}/{:02X})", self.0, self.1),
            None => write!(f, "ASC/ASCQ {:02X}/{:02X}", self.0, self.1),
        }
    }
}

/// Which of the two sense data formats (SPC-4 §4.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SenseFormat {
    /// Fixed format, response codes 0x70/0x71: 32-bit INFORMATION and COMMAND-SPECIFIC
    /// INFORMATION.
    #[default]
    Fixed,
    /// Descriptor format, response codes 0x72/0x73: 64-bit fields in descriptors.
    Descriptor,
}

/// The CDB or parameter-list field an ILLEGAL REQUEST complains about (SPC-4 §4.5.2.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldPointer {
    /// C/D: true if the field is in the CDB, false if in the parameter list.
    pub in_cdb: bool,
    /// The bit (0-7, bit 7 the most significant) where the field's leftmost bit is, when BPV
    /// is set. Values above 7 are masked to three bits when emitted.
    pub bit: Option<u8>,
    /// The byte of the CDB or parameter list (the first byte of a multi-byte field).
    pub byte: u16,
}

/// The three SENSE KEY SPECIFIC bytes (fixed bytes 15-17; bytes 4-6 of descriptor type 0x02),
/// kept without the SKSV bit: their presence is the `Option` that holds them. What they mean
/// depends on the sense key: a [`FieldPointer`] for ILLEGAL REQUEST, a progress indication
/// for NOT READY and NO SENSE, a retry count for the error keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SenseKeySpecific([u8; 3]);

impl SenseKeySpecific {
    /// The bytes as they are on the wire; the SKSV bit (0x80 of the first) is dropped.
    pub const fn from_bytes(b: [u8; 3]) -> SenseKeySpecific {
        SenseKeySpecific([b[0] & !SKSV, b[1], b[2]])
    }

    /// The bytes, with SKSV clear.
    pub const fn to_bytes(self) -> [u8; 3] {
        self.0
    }

    /// A field pointer (C/D 0x40, BPV 0x08, BIT POINTER 0x07, FIELD POINTER in bytes 1-2).
    pub const fn from_field_pointer(fp: FieldPointer) -> SenseKeySpecific {
        let mut b0 = if fp.in_cdb { 0x40 } else { 0x00 };
        if let Some(bit) = fp.bit {
            b0 |= 0x08 | (bit & 0x07);
        }
        let [hi, lo] = fp.byte.to_be_bytes();
        SenseKeySpecific([b0, hi, lo])
    }

    /// The bytes read as a field pointer.
    pub const fn field_pointer(self) -> FieldPointer {
        let b = self.0;
        FieldPointer {
            in_cdb: b[0] & 0x40 != 0,
            bit: if b[0] & 0x08 != 0 {
                Some(b[0] & 0x07)
            } else {
                None
            },
            byte: u16::from_be_bytes([b[1], b[2]]),
        }
    }

    /// A progress indication: the fraction done is `progress / 65536`.
    pub const fn from_progress(progress: u16) -> SenseKeySpecific {
        let [hi, lo] = progress.to_be_bytes();
        SenseKeySpecific([0, hi, lo])
    }

    /// The bytes read as a progress indication.
    pub const fn progress(self) -> u16 {
        u16::from_be_bytes([self.0[1], self.0[2]])
    }
}

/// Sense data, either format.
///
/// Fields a format cannot carry are lost when emitting it: the fixed format holds only 32 bits
/// of INFORMATION (a larger value is sent with VALID = 0, as SBC-3 prescribes for an LBA that
/// does not fit) and of COMMAND-SPECIFIC INFORMATION (higher bits dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sense {
    /// Fixed or descriptor format.
    pub format: SenseFormat,
    /// A deferred error (0x71/0x73): it belongs to an earlier command.
    pub deferred: bool,
    /// The sense key (four bits; higher bits are dropped when emitted).
    pub key: SenseKey,
    /// ASC and ASCQ.
    pub additional: AdditionalSense,
    /// The INFORMATION field, when VALID (e.g. the LBA of a medium error, the offset of a
    /// miscompare, the residue of a tape read).
    pub information: Option<u64>,
    /// COMMAND-SPECIFIC INFORMATION (zero when not used).
    pub command_specific: u64,
    /// FIELD REPLACEABLE UNIT CODE (zero when not used).
    pub fru: u8,
    /// FILEMARK (sequential-access devices).
    pub filemark: bool,
    /// EOM: end of medium (sequential-access devices).
    pub eom: bool,
    /// ILI: incorrect length indicator.
    pub ili: bool,
    /// SDAT_OVFL: the sense data did not fit and was truncated by the device server.
    pub sdat_ovfl: bool,
    /// SENSE KEY SPECIFIC bytes, when SKSV is set.
    pub sense_key_specific: Option<SenseKeySpecific>,
}

impl Sense {
    /// Current-error, fixed-format sense data with a key and ASC/ASCQ and nothing else.
    pub const fn new(key: SenseKey, additional: AdditionalSense) -> Sense {
        Sense {
            format: SenseFormat::Fixed,
            deferred: false,
            key,
            additional,
            information: None,
            command_specific: 0,
            fru: 0,
            filemark: false,
            eom: false,
            ili: false,
            sdat_ovfl: false,
            sense_key_specific: None,
        }
    }

    /// ILLEGAL REQUEST with the given ASC/ASCQ.
    pub const fn illegal_request(additional: AdditionalSense) -> Sense {
        Sense::new(SenseKey::ILLEGAL_REQUEST, additional)
    }

    /// ILLEGAL REQUEST / INVALID FIELD IN CDB, pointing at `byte` (and `bit`) of the CDB.
    pub const fn invalid_field_in_cdb(byte: u16, bit: Option<u8>) -> Sense {
        Sense::illegal_request(AdditionalSense::INVALID_FIELD_IN_CDB).with_field_pointer(
            FieldPointer {
                in_cdb: true,
                bit,
                byte,
            },
        )
    }

    /// ILLEGAL REQUEST / INVALID FIELD IN PARAMETER LIST, pointing at `byte` (and `bit`) of
    /// the parameter data.
    pub const fn invalid_field_in_parameter_list(byte: u16, bit: Option<u8>) -> Sense {
        Sense::illegal_request(AdditionalSense::INVALID_FIELD_IN_PARAMETER_LIST).with_field_pointer(
            FieldPointer {
                in_cdb: false,
                bit,
                byte,
            },
        )
    }

    /// ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE, for an opcode the device server does
    /// not implement.
    pub const fn invalid_opcode() -> Sense {
        Sense::illegal_request(AdditionalSense::INVALID_COMMAND_OPERATION_CODE)
    }

    /// ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE.
    pub const fn lba_out_of_range() -> Sense {
        Sense::illegal_request(AdditionalSense::LBA_OUT_OF_RANGE)
    }

    /// ILLEGAL REQUEST / LOGICAL UNIT NOT SUPPORTED, for a command to a LUN that does not exist.
    pub const fn lun_not_supported() -> Sense {
        Sense::illegal_request(AdditionalSense::LOGICAL_UNIT_NOT_SUPPORTED)
    }

    /// ILLEGAL REQUEST / PARAMETER LIST LENGTH ERROR.
    pub const fn parameter_list_length_error() -> Sense {
        Sense::illegal_request(AdditionalSense::PARAMETER_LIST_LENGTH_ERROR)
    }

    /// UNIT ATTENTION with the given ASC/ASCQ.
    pub const fn unit_attention(additional: AdditionalSense) -> Sense {
        Sense::new(SenseKey::UNIT_ATTENTION, additional)
    }

    /// UNIT ATTENTION / POWER ON, RESET, OR BUS DEVICE RESET OCCURRED.
    pub const fn power_on_reset() -> Sense {
        Sense::unit_attention(AdditionalSense::POWER_ON_RESET)
    }

    /// NOT READY with the given ASC/ASCQ.
    pub const fn not_ready(additional: AdditionalSense) -> Sense {
        Sense::new(SenseKey::NOT_READY, additional)
    }

    /// MEDIUM ERROR with the given ASC/ASCQ at `lba` (in INFORMATION).
    pub const fn medium_error(additional: AdditionalSense, lba: u64) -> Sense {
        Sense::new(SenseKey::MEDIUM_ERROR, additional).with_information(lba)
    }

    /// HARDWARE ERROR / INTERNAL TARGET FAILURE.
    pub const fn internal_target_failure() -> Sense {
        Sense::new(
            SenseKey::HARDWARE_ERROR,
            AdditionalSense::INTERNAL_TARGET_FAILURE,
        )
    }

    /// DATA PROTECT / WRITE PROTECTED.
    pub const fn write_protected() -> Sense {
        Sense::new(SenseKey::DATA_PROTECT, AdditionalSense::WRITE_PROTECTED)
    }

    /// ABORTED COMMAND with the given ASC/ASCQ.
    pub const fn aborted_command(additional: AdditionalSense) -> Sense {
        Sense::new(SenseKey::ABORTED_COMMAND, additional)
    }

    /// MISCOMPARE / MISCOMPARE DURING VERIFY OPERATION, with the offset of the first byte
    /// that differs in INFORMATION.
    pub const fn miscompare(offset: u64) -> Sense {
        Sense::new(
            SenseKey::MISCOMPARE,
            AdditionalSense::MISCOMPARE_DURING_VERIFY,
        )
        .with_information(offset)
    }

    /// This sense data with INFORMATION set (VALID = 1).
    pub const fn with_information(mut self, information: u64) -> Sense {
        self.information = Some(information);
        self
    }

    /// This sense data with a field pointer in the sense key specific bytes (SKSV = 1).
    pub const fn with_field_pointer(mut self, fp: FieldPointer) -> Sense {
        self.sense_key_specific = Some(SenseKeySpecific::from_field_pointer(fp));
        self
    }

    /// This sense data in the given format.
    pub const fn with_format(mut self, format: SenseFormat) -> Sense {
        self.format = format;
        self
    }

    /// This sense data marked as a deferred error.
    pub const fn deferred(mut self) -> Sense {
        self.deferred = true;
        self
    }

    /// The RESPONSE CODE this sense data is sent with (0x70-0x73).
    pub const fn response_code(&self) -> u8 {
        let base = match self.format {
            SenseFormat::Fixed => 0x70,
            SenseFormat::Descriptor => 0x72,
        };
        if self.deferred {
            base + 1
        } else {
            base
        }
    }

    /// The field pointer, for ILLEGAL REQUEST sense data with SKSV set.
    pub fn field_pointer(&self) -> Option<FieldPointer> {
        match self.sense_key_specific {
            Some(sks) if self.key == SenseKey::ILLEGAL_REQUEST => Some(sks.field_pointer()),
            _ => None,
        }
    }

    /// Parses sense data of either format. See the module documentation for how truncated
    /// sense data is read.
    pub fn parse(buf: &[u8]) -> Result<Sense, SenseError> {
        LenError::check(Layer::Sense, MIN_LEN, buf.len())?;
        // From here on bytes 0-7 exist.
        let code = buf[0] & 0x7F;
        match code {
            0x70 | 0x71 => Ok(Self::parse_fixed(buf, code == 0x71)),
            0x72 | 0x73 => Self::parse_descriptor(buf, code == 0x73),
            _ => Err(SenseError::BadResponseCode(code)),
        }
    }

    /// Fixed format; `buf` holds at least [`MIN_LEN`] bytes.
    fn parse_fixed(buf: &[u8], deferred: bool) -> Sense {
        // The additional sense length says how much of the buffer is sense data; fields past
        // that point or past the bytes present read as zero.
        let end = buf.len().min(MIN_LEN + buf[7] as usize);
        let mut b = [0u8; FIXED_LEN];
        let n = end.min(FIXED_LEN);
        b[..n].copy_from_slice(&buf[..n]);
        Sense {
            format: SenseFormat::Fixed,
            deferred,
            key: SenseKey(b[2] & 0x0F),
            additional: AdditionalSense(b[12], b[13]),
            information: if b[0] & VALID != 0 {
                Some(u64::from(be32(&b, 3)))
            } else {
                None
            },
            command_specific: u64::from(be32(&b, 8)),
            fru: b[14],
            filemark: b[2] & FILEMARK != 0,
            eom: b[2] & EOM != 0,
            ili: b[2] & ILI != 0,
            sdat_ovfl: b[2] & SDAT_OVFL_FIXED != 0,
            sense_key_specific: if b[15] & SKSV != 0 {
                Some(SenseKeySpecific::from_bytes([b[15], b[16], b[17]]))
            } else {
                None
            },
        }
    }

    /// Descriptor format; `buf` holds at least [`MIN_LEN`] bytes.
    fn parse_descriptor(buf: &[u8], deferred: bool) -> Result<Sense, SenseError> {
        let mut s = Sense {
            format: SenseFormat::Descriptor,
            deferred,
            key: SenseKey(buf[1] & 0x0F),
            additional: AdditionalSense(buf[2], buf[3]),
            sdat_ovfl: buf[1] & SDAT_OVFL_DESC != 0,
            ..Sense::default()
        };
        let end = buf.len().min(MIN_LEN + buf[7] as usize);
        let mut at = MIN_LEN;
        // Each step advances by at least 2, and `end` is at most 8 + 255: the walk is bounded.
        while at + 2 <= end {
            let kind = buf[at];
            let len = buf[at + 1];
            let next = at + 2 + len as usize;
            if next > end {
                break; // cut off by truncation: ignored, as the module documentation says
            }
            let d = &buf[at..next];
            let expect = |expected: u8| {
                if len == expected {
                    Ok(())
                } else {
                    Err(SenseError::BadDescriptorLength {
                        descriptor: kind,
                        len,
                        expected,
                    })
                }
            };
            // Each arm checks the length SPC-4 gives the type, so `d` is 2 + that long.
            match kind {
                desc::INFORMATION => {
                    expect(0x0A)?;
                    s.information = if d[2] & VALID != 0 {
                        Some(be64(d, 4))
                    } else {
                        None
                    };
                }
                desc::COMMAND_SPECIFIC => {
                    expect(0x0A)?;
                    s.command_specific = be64(d, 4);
                }
                desc::SENSE_KEY_SPECIFIC => {
                    expect(0x06)?;
                    s.sense_key_specific = if d[4] & SKSV != 0 {
                        Some(SenseKeySpecific::from_bytes([d[4], d[5], d[6]]))
                    } else {
                        None
                    };
                }
                desc::FRU => {
                    expect(0x02)?;
                    s.fru = d[3];
                }
                desc::STREAM_COMMANDS => {
                    expect(0x02)?;
                    s.filemark = d[3] & FILEMARK != 0;
                    s.eom = d[3] & EOM != 0;
                    s.ili = d[3] & ILI != 0;
                }
                desc::BLOCK_COMMANDS => {
                    expect(0x02)?;
                    s.ili = d[3] & ILI != 0;
                }
                _ => {} // SPC-4: descriptors of a type the receiver doesn't know are skipped
            }
            at = next;
        }
        Ok(s)
    }

    /// Bytes [`emit`](Self::emit) writes: [`FIXED_LEN`] for the fixed format; the header plus
    /// the descriptors needed for the descriptor format.
    pub fn buffer_len(&self) -> usize {
        match self.format {
            SenseFormat::Fixed => FIXED_LEN,
            SenseFormat::Descriptor => {
                let mut n = MIN_LEN;
                if self.information.is_some() {
                    n += 12;
                }
                if self.command_specific != 0 {
                    n += 12;
                }
                if self.sense_key_specific.is_some() {
                    n += 8;
                }
                if self.fru != 0 {
                    n += 4;
                }
                if self.filemark || self.eom || self.ili {
                    n += 4;
                }
                n
            }
        }
    }

    /// Writes the sense data into the first [`buffer_len`](Self::buffer_len) bytes of `buf`.
    /// Panics if `buf` is shorter (a bug in the caller, which sizes the buffer).
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        let b = &mut buf[..len];
        b.fill(0);
        b[0] = self.response_code();
        let key = self.key.0 & 0x0F;
        match self.format {
            SenseFormat::Fixed => {
                // SBC-3: an INFORMATION value that does not fit in 32 bits is reported with
                // VALID = 0 in the fixed format.
                if let Some(info) = self.information.and_then(|i| u32::try_from(i).ok()) {
                    b[0] |= VALID;
                    put_be32(b, 3, info);
                }
                b[2] = key
                    | flag(self.filemark, FILEMARK)
                    | flag(self.eom, EOM)
                    | flag(self.ili, ILI)
                    | flag(self.sdat_ovfl, SDAT_OVFL_FIXED);
                b[7] = (FIXED_LEN - MIN_LEN) as u8;
                put_be32(b, 8, self.command_specific as u32);
                b[12] = self.additional.0;
                b[13] = self.additional.1;
                b[14] = self.fru;
                if let Some(sks) = self.sense_key_specific {
                    let [s0, s1, s2] = sks.to_bytes();
                    b[15] = SKSV | s0;
                    b[16] = s1;
                    b[17] = s2;
                }
            }
            SenseFormat::Descriptor => {
                b[1] = key | flag(self.sdat_ovfl, SDAT_OVFL_DESC);
                b[2] = self.additional.0;
                b[3] = self.additional.1;
                // At most 8 + 12 + 12 + 8 + 4 + 4 bytes: fits the one-byte length.
                b[7] = (len - MIN_LEN) as u8;
                let mut at = MIN_LEN;
                if let Some(info) = self.information {
                    b[at] = desc::INFORMATION;
                    b[at + 1] = 0x0A;
                    b[at + 2] = VALID;
                    put_be64(b, at + 4, info);
                    at += 12;
                }
                if self.command_specific != 0 {
                    b[at] = desc::COMMAND_SPECIFIC;
                    b[at + 1] = 0x0A;
                    put_be64(b, at + 4, self.command_specific);
                    at += 12;
                }
                if let Some(sks) = self.sense_key_specific {
                    let [s0, s1, s2] = sks.to_bytes();
                    b[at] = desc::SENSE_KEY_SPECIFIC;
                    b[at + 1] = 0x06;
                    b[at + 4] = SKSV | s0;
                    put_be16(b, at + 5, u16::from_be_bytes([s1, s2]));
                    at += 8;
                }
                if self.fru != 0 {
                    b[at] = desc::FRU;
                    b[at + 1] = 0x02;
                    b[at + 3] = self.fru;
                    at += 4;
                }
                if self.filemark || self.eom {
                    b[at] = desc::STREAM_COMMANDS;
                    b[at + 1] = 0x02;
                    b[at + 3] =
                        flag(self.filemark, FILEMARK) | flag(self.eom, EOM) | flag(self.ili, ILI);
                } else if self.ili {
                    b[at] = desc::BLOCK_COMMANDS;
                    b[at + 1] = 0x02;
                    b[at + 3] = ILI;
                }
            }
        }
    }

    /// The sense data as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `bit` if `on`, else zero.
const fn flag(on: bool, bit: u8) -> u8 {
    if on {
        bit
    } else {
        0
    }
}

/// One line: `ILLEGAL REQUEST: INVALID FIELD IN CDB (24/00) field=CDB byte 2 bit 1`, with
/// `deferred`, `info=`, `filemark`, `eom`, `ili` where they apply.
impl fmt::Display for Sense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.deferred {
            f.write_str("deferred ")?;
        }
        write!(f, "{}: {}", self.key, self.additional)?;
        if let Some(info) = self.information {
            write!(f, " info={info}")?;
        }
        if let Some(fp) = self.field_pointer() {
            let place = if fp.in_cdb { "CDB" } else { "parameter list" };
            write!(f, " field={place} byte {}", fp.byte)?;
            if let Some(bit) = fp.bit {
                write!(f, " bit {bit}")?;
            }
        }
        for (on, name) in [
            (self.filemark, "filemark"),
            (self.eom, "eom"),
            (self.ili, "ili"),
        ] {
            if on {
                write!(f, " {name}")?;
            }
        }
        Ok(())
    }
}

/// Generators for property tests of this module and of the modules that carry sense data.
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    use super::*;

    prop_compose! {
        /// Sense data whose every field survives an emit/parse round trip in its format.
        pub(crate) fn arb_sense()(
            descriptor: bool, deferred: bool, key in 0u8..16, asc: u8, ascq: u8,
            information in proptest::option::of(any::<u64>()), command_specific: u64, fru: u8,
            filemark: bool, eom: bool, ili: bool, sdat_ovfl: bool,
            sks in proptest::option::of(any::<[u8; 3]>()),
        ) -> Sense {
            let (format, information, command_specific) = if descriptor {
                (SenseFormat::Descriptor, information, command_specific)
            } else {
                (
                    SenseFormat::Fixed,
                    information.map(|i| i & 0xFFFF_FFFF),
                    command_specific & 0xFFFF_FFFF,
                )
            };
            Sense {
                format,
                deferred,
                key: SenseKey(key),
                additional: AdditionalSense(asc, ascq),
                information,
                command_specific,
                fru,
                filemark,
                eom,
                ili,
                sdat_ovfl,
                sense_key_specific: sks.map(SenseKeySpecific::from_bytes),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::strategies::arb_sense;
    use super::*;

    /// ILLEGAL REQUEST / INVALID FIELD IN CDB, field pointer CDB byte 2 bit 1 (fixed format).
    static FIXED_INVALID_FIELD: [u8; 18] = hex!("70 00 05 00000000 0a 00000000 24 00 00 c9 0002");

    /// MEDIUM ERROR / UNRECOVERED READ ERROR at LBA 0x1234 (fixed, VALID, deferred).
    static FIXED_MEDIUM_ERROR: [u8; 18] = hex!("f1 00 03 00001234 0a 00000000 11 00 00 00 0000");

    /// ILLEGAL REQUEST / LBA OUT OF RANGE, descriptor format, information 0x1_0000_0000
    /// (does not fit the fixed format) and a field pointer to CDB byte 2.
    static DESC_LBA: [u8; 28] = hex!(
        "72 05 21 00 000000 14"
        "00 0a 80 00 0000000100000000"
        "02 06 0000 c0 0002 00"
    );

    /// Tape: NO SENSE / FILEMARK DETECTED, ILI, information (residue) 512, descriptor format
    /// with command-specific, FRU and stream commands descriptors.
    static DESC_TAPE: [u8; 40] = hex!(
        "72 00 00 01 000000 20"
        "00 0a 80 00 0000000000000200"
        "01 0a 0000 00000000deadbeef"
        "03 02 00 07"
        "04 02 00 a0"
    );

    fn tape_sense() -> Sense {
        Sense {
            information: Some(512),
            command_specific: 0xdead_beef,
            fru: 7,
            filemark: true,
            ili: true,
            ..Sense::new(SenseKey::NO_SENSE, AdditionalSense::FILEMARK_DETECTED)
                .with_format(SenseFormat::Descriptor)
        }
    }

    #[test]
    fn test_parse_fixed() {
        let s = Sense::parse(&FIXED_INVALID_FIELD).unwrap();
        assert_eq!(s, Sense::invalid_field_in_cdb(2, Some(1)));
        assert_eq!(s.format, SenseFormat::Fixed);
        assert_eq!(s.key, SenseKey::ILLEGAL_REQUEST);
        assert_eq!(s.additional, AdditionalSense::INVALID_FIELD_IN_CDB);
        assert_eq!(
            s.field_pointer(),
            Some(FieldPointer {
                in_cdb: true,
                bit: Some(1),
                byte: 2
            })
        );
        assert_eq!(s.information, None);

        let m = Sense::parse(&FIXED_MEDIUM_ERROR).unwrap();
        assert_eq!(
            m,
            Sense::medium_error(AdditionalSense::UNRECOVERED_READ_ERROR, 0x1234).deferred()
        );
        assert_eq!(m.response_code(), 0x71);
        assert_eq!(m.field_pointer(), None);
    }

    #[test]
    fn test_emit_fixed() {
        assert_eq!(
            Sense::invalid_field_in_cdb(2, Some(1)).to_vec(),
            FIXED_INVALID_FIELD
        );
        let m = Sense::medium_error(AdditionalSense::UNRECOVERED_READ_ERROR, 0x1234).deferred();
        assert_eq!(m.buffer_len(), FIXED_LEN);
        assert_eq!(m.to_vec(), FIXED_MEDIUM_ERROR);
        assert_eq!(Sense::parse(&m.to_vec()), Ok(m));
    }

    #[test]
    fn test_fixed_lba_out_of_range_bytes() {
        // The sense LIO sends for a read past the end of a LUN.
        let v = Sense::lba_out_of_range().to_vec();
        assert_eq!(v, hex!("70 00 05 00000000 0a 00000000 21 00 00 00 0000"));
    }

    #[test]
    fn test_parse_descriptor() {
        let s = Sense::parse(&DESC_LBA).unwrap();
        let want = Sense::lba_out_of_range()
            .with_information(0x1_0000_0000)
            .with_field_pointer(FieldPointer {
                in_cdb: true,
                bit: None,
                byte: 2,
            })
            .with_format(SenseFormat::Descriptor);
        assert_eq!(s, want);

        let t = Sense::parse(&DESC_TAPE).unwrap();
        assert_eq!(t.key, SenseKey::NO_SENSE);
        assert_eq!(t.additional, AdditionalSense::FILEMARK_DETECTED);
        assert_eq!(t.information, Some(512));
        assert_eq!(t.command_specific, 0xdead_beef);
        assert_eq!(t.fru, 7);
        assert!(t.filemark && t.ili && !t.eom);
        assert_eq!(t.sense_key_specific, None);
        assert_eq!(t, tape_sense());
    }

    #[test]
    fn test_descriptor_unknown_type_is_skipped() {
        let mut b = DESC_TAPE.to_vec();
        b.extend_from_slice(&hex!("7f 04 01020304"));
        b[7] += 6;
        assert_eq!(Sense::parse(&b), Ok(tape_sense()));
        // An unknown type first, then a known one.
        let b = hex!("72 05 24 00 000000 08 80 02 ffff 03 02 00 09");
        let s = Sense::parse(&b).unwrap();
        assert_eq!(s.fru, 9);
    }

    #[test]
    fn test_emit_descriptor() {
        let want = Sense::lba_out_of_range()
            .with_information(0x1_0000_0000)
            .with_field_pointer(FieldPointer {
                in_cdb: true,
                bit: None,
                byte: 2,
            })
            .with_format(SenseFormat::Descriptor);
        assert_eq!(want.to_vec(), DESC_LBA);

        assert_eq!(tape_sense().to_vec(), DESC_TAPE);
        assert_eq!(tape_sense().buffer_len(), DESC_TAPE.len());
    }

    #[test]
    fn test_descriptor_ili_only_uses_block_commands_descriptor() {
        let s = Sense {
            ili: true,
            ..Sense::new(
                SenseKey::ILLEGAL_REQUEST,
                AdditionalSense::INVALID_FIELD_IN_CDB,
            )
            .with_format(SenseFormat::Descriptor)
        };
        assert_eq!(s.to_vec(), hex!("72 05 24 00 000000 04 05 02 00 20"));
        assert_eq!(Sense::parse(&s.to_vec()), Ok(s));
    }

    #[test]
    fn test_fixed_information_too_wide_is_not_valid() {
        let s = Sense::lba_out_of_range().with_information(0x1_0000_0000);
        let b = s.to_vec();
        assert_eq!(b[0], 0x70);
        assert_eq!(Sense::parse(&b).unwrap().information, None);
    }

    #[test]
    fn test_fixed_short_reads_missing_as_zero() {
        // Additional sense length 4: ASC/ASCQ (bytes 12-13) are outside the sense data.
        let b = hex!("70 00 06 00000000 04 00000000 24 00 00 c9 0002");
        let s = Sense::parse(&b).unwrap();
        assert_eq!(s.key, SenseKey::UNIT_ATTENTION);
        assert_eq!(s.additional, AdditionalSense(0, 0));
        assert_eq!(s.sense_key_specific, None);
        // Cut at 14 bytes: key and ASC present, no SKS.
        let s = Sense::parse(&FIXED_INVALID_FIELD[..14]).unwrap();
        assert_eq!(
            s,
            Sense::illegal_request(AdditionalSense::INVALID_FIELD_IN_CDB)
        );
        // Just the 8-byte header.
        let s = Sense::parse(&FIXED_INVALID_FIELD[..8]).unwrap();
        assert_eq!(s, Sense::illegal_request(AdditionalSense(0, 0)));
    }

    #[test]
    fn test_descriptor_truncated_descriptor_is_ignored() {
        let s = Sense::parse(&DESC_LBA[..26]).unwrap();
        assert_eq!(s.information, Some(0x1_0000_0000));
        assert_eq!(s.sense_key_specific, None);
        // The additional sense length also bounds the walk.
        let mut b = DESC_LBA;
        b[7] = 12;
        assert_eq!(Sense::parse(&b).unwrap().sense_key_specific, None);
    }

    #[test]
    fn test_bad_response_code() {
        let mut b = FIXED_INVALID_FIELD;
        b[0] = 0x7F;
        assert_eq!(Sense::parse(&b), Err(SenseError::BadResponseCode(0x7F)));
        b[0] = 0x00;
        assert_eq!(Sense::parse(&b), Err(SenseError::BadResponseCode(0x00)));
        assert_eq!(
            SenseError::BadResponseCode(0x7F).to_string(),
            "sense RESPONSE CODE 0x7f is not 0x70-0x73 (fixed or descriptor format)"
        );
    }

    #[test]
    fn test_bad_descriptor_length() {
        for (kind, expected) in [(0u8, 0x0Au8), (1, 0x0A), (2, 0x06), (3, 2), (4, 2), (5, 2)] {
            let mut b = vec![0x72, 0x05, 0x24, 0x00, 0, 0, 0, 14, kind, 0x0C];
            b.extend_from_slice(&[0; 12]);
            assert_eq!(
                Sense::parse(&b),
                Err(SenseError::BadDescriptorLength {
                    descriptor: kind,
                    len: 0x0C,
                    expected
                })
            );
        }
    }

    #[test]
    fn test_truncated() {
        for len in 0..MIN_LEN {
            assert_eq!(
                Sense::parse(&FIXED_INVALID_FIELD[..len]),
                Err(SenseError::Len(LenError {
                    layer: Layer::Sense,
                    required: MIN_LEN,
                    actual: len
                }))
            );
            assert!(Sense::parse(&DESC_LBA[..len]).is_err());
        }
    }

    #[test]
    fn test_display() {
        assert_eq!(
            Sense::lba_out_of_range().to_string(),
            "ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00)"
        );
        assert_eq!(
            Sense::invalid_field_in_cdb(2, Some(1)).to_string(),
            "ILLEGAL REQUEST: INVALID FIELD IN CDB (24/00) field=CDB byte 2 bit 1"
        );
        assert_eq!(
            Sense::invalid_field_in_parameter_list(4, None).to_string(),
            "ILLEGAL REQUEST: INVALID FIELD IN PARAMETER LIST (26/00) field=parameter list byte 4"
        );
        assert_eq!(
            Sense::medium_error(AdditionalSense::UNRECOVERED_READ_ERROR, 77)
                .deferred()
                .to_string(),
            "deferred MEDIUM ERROR: UNRECOVERED READ ERROR (11/00) info=77"
        );
        assert_eq!(
            Sense::new(SenseKey(0xC), AdditionalSense(0x80, 0x01)).to_string(),
            "SENSE KEY 0x0c: ASC/ASCQ 80/01"
        );
    }

    #[test]
    fn test_names() {
        assert_eq!(SenseKey::UNIT_ATTENTION.to_string(), "UNIT ATTENTION");
        assert_eq!(SenseKey(0xB).name(), Some("ABORTED COMMAND"));
        assert_eq!(SenseKey::VOLUME_OVERFLOW.0, 0xD);
        assert_eq!(SenseKey::MISCOMPARE.0, 0xE);
        let pairs = [
            (AdditionalSense::NO_ADDITIONAL_SENSE, 0x0000),
            (AdditionalSense::LOGICAL_UNIT_NOT_READY, 0x0400),
            (AdditionalSense::WRITE_ERROR, 0x0C00),
            (AdditionalSense::UNRECOVERED_READ_ERROR, 0x1100),
            (AdditionalSense::PARAMETER_LIST_LENGTH_ERROR, 0x1A00),
            (AdditionalSense::INVALID_COMMAND_OPERATION_CODE, 0x2000),
            (AdditionalSense::LBA_OUT_OF_RANGE, 0x2100),
            (AdditionalSense::INVALID_FIELD_IN_CDB, 0x2400),
            (AdditionalSense::LOGICAL_UNIT_NOT_SUPPORTED, 0x2500),
            (AdditionalSense::INVALID_FIELD_IN_PARAMETER_LIST, 0x2600),
            (AdditionalSense::WRITE_PROTECTED, 0x2700),
            (AdditionalSense::POWER_ON_RESET, 0x2900),
            (AdditionalSense::PARAMETERS_CHANGED, 0x2A00),
            (AdditionalSense::MEDIUM_NOT_PRESENT, 0x3A00),
            (AdditionalSense::INTERNAL_TARGET_FAILURE, 0x4400),
            (AdditionalSense::REPORTED_LUNS_DATA_HAS_CHANGED, 0x3F0E),
            (AdditionalSense::COMMAND_SEQUENCE_ERROR, 0x2C00),
            (AdditionalSense::MISCOMPARE_DURING_VERIFY, 0x1D00),
            (AdditionalSense::END_OF_DATA_DETECTED, 0x0005),
        ];
        for (a, v) in pairs {
            assert_eq!(a.to_u16(), v);
            assert!(a.name().is_some(), "{a:?}");
        }
        assert_eq!(
            AdditionalSense::REPORTED_LUNS_DATA_HAS_CHANGED.to_string(),
            "REPORTED LUNS DATA HAS CHANGED (3F/0E)"
        );
        assert_eq!(AdditionalSense(0x21, 0x00).asc(), 0x21);
        assert_eq!(AdditionalSense(0x3F, 0x0E).ascq(), 0x0E);
    }

    #[test]
    fn test_sense_key_specific() {
        let fp = FieldPointer {
            in_cdb: false,
            bit: Some(7),
            byte: 0x1234,
        };
        let sks = SenseKeySpecific::from_field_pointer(fp);
        assert_eq!(sks.to_bytes(), [0x0F, 0x12, 0x34]);
        assert_eq!(sks.field_pointer(), fp);
        assert_eq!(
            SenseKeySpecific::from_bytes([0xFF, 1, 2]).to_bytes(),
            [0x7F, 1, 2]
        );
        assert_eq!(SenseKeySpecific::from_progress(0x8000).progress(), 0x8000);
        // Progress indication on NOT READY is not read as a field pointer.
        let s = Sense {
            sense_key_specific: Some(SenseKeySpecific::from_progress(0x4000)),
            ..Sense::not_ready(AdditionalSense::OPERATION_IN_PROGRESS)
        };
        assert_eq!(s.field_pointer(), None);
        let b = s.to_vec();
        assert_eq!(&b[15..18], &[0x80, 0x40, 0x00]);
    }

    proptest! {
        #[test]
        fn prop_round_trip(s in arb_sense()) {
            let b = s.to_vec();
            prop_assert_eq!(b.len(), s.buffer_len());
            prop_assert_eq!(Sense::parse(&b), Ok(s));
        }

        #[test]
        fn prop_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            if let Ok(s) = Sense::parse(&bytes) {
                // Whatever parses re-emits and parses to itself once normalized to its format.
                let again = Sense::parse(&s.to_vec());
                prop_assert!(again.is_ok());
            }
        }

        #[test]
        fn prop_any_descriptors(
            key in 0u8..16,
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut b = vec![0x72, key, 0x24, 0x00, 0, 0, 0, body.len().min(255) as u8];
            b.extend_from_slice(&body);
            let _ = Sense::parse(&b);
        }
    }
}
