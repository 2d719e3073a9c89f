//! Login service parameters: FLOGI, FDISC, PLOGI, PDISC and their LS_ACC (FC-LS-3 §4.2,
//! the parameters themselves FC-LS-3 §6).
//!
//! All of them share one 116-byte layout; in the LS_ACC to a FLOGI or FDISC the "node name"
//! is the fabric name and word 2 of the common service parameters is R_A_TOV.
//!
//! ```text
//! offset
//!    0 +--------+--------+--------+--------+
//!      |  code  |  0x00  |  0x00  |  0x00  |  command word
//!    4 +--------+--------+--------+--------+
//!      | FC-PH hi| FC-PH lo|   BB_Credit     |  common service parameters (16)
//!    8 +--------+--------+--------+--------+
//!      | common features | SC_N|rx data size |  (BB_SC_N bits 15-12, size bits 11-0)
//!   12 +--------+--------+--------+--------+
//!      | total conc. seq | RO by info cat.  |  PLOGI; R_A_TOV (32 bits) in a FLOGI LS_ACC
//!   16 +--------+--------+--------+--------+
//!      |              E_D_TOV              |
//!   20 +--------+--------+--------+--------+
//!      |      N_Port / F_Port name (8)     |
//!   28 +--------+--------+--------+--------+
//!      |     node name / fabric name (8)   |
//!   36 +--------+--------+--------+--------+
//!      | class 1, 2, 3, 4 service parameters, 16 bytes each:
//!      |   0 service options | 2 initiator control | 4 recipient control | 6 rx data size
//!      |   8 concurrent seq. | 10 end-to-end credit | 12 reserved | 13 open seq./exchange
//!      |  14 reserved (2)
//!  100 +--------+--------+--------+--------+
//!      |     vendor version level (16)     |
//!  116 +--------+--------+--------+--------+
//!      | extension: the rest of the 256-byte form (common feature PAYLOAD_256), kept raw
//! ```
//!
//! [`LoginRepr::parse`] checks only the length; [`LoginRepr::validate`] makes the content checks
//! a responder answers with an LS_RJT (receive data field sizes), so that a switch can still
//! read the names of a login it rejects.

use core::fmt;

use bitflags::bitflags;

use super::{check_len, ElsCode, ElsError};
use crate::addr::Wwn;
use crate::error::{Layer, LenError};
use crate::wire::{be16, be32, be64, put_be16, put_be32, put_be64};

/// Offsets of the login payload.
mod field {
    use crate::wire::Field;

    pub const CODE: usize = 0;
    pub const RESERVED: Field = 1..4;
    pub const BB_CREDIT: usize = 6;
    pub const FEATURES: usize = 8;
    pub const SC_N_RX_SIZE: usize = 10;
    pub const R_A_TOV: usize = 12;
    pub const E_D_TOV: usize = 16;
    pub const COMMON: Field = 4..20;
    pub const PORT_NAME: usize = 20;
    pub const NODE_NAME: usize = 28;
    pub const CLASSES: usize = 36;
    pub const CLASS_LEN: usize = 16;
    pub const VENDOR_VERSION: Field = 100..116;
    pub const END: usize = 116;

    /// Offsets inside the 16-byte common service parameters.
    pub const CSP_FC_PH_HIGH: usize = 0;
    pub const CSP_FC_PH_LOW: usize = 1;
    pub const CSP_BB_CREDIT: usize = 2;
    pub const CSP_FEATURES: usize = 4;
    pub const CSP_SC_N_RX_SIZE: usize = 6;
    pub const CSP_TOTAL_CONCURRENT_SEQ: usize = 8;
    pub const CSP_RO_BY_INFO_CATEGORY: usize = 10;
    pub const CSP_E_D_TOV: usize = 12;

    /// Offsets inside one 16-byte class service parameter block.
    pub const CLASS_OPTIONS: usize = 0;
    pub const CLASS_INITIATOR: usize = 2;
    pub const CLASS_RECIPIENT: usize = 4;
    pub const CLASS_RX_SIZE: usize = 6;
    pub const CLASS_CONCURRENT_SEQ: usize = 8;
    pub const CLASS_EE_CREDIT: usize = 10;
    pub const CLASS_OPEN_SEQ: usize = 13;
}

/// Smallest receive data field size a valid class or the common parameters may give
/// (FC-LS-3 §6).
pub const MIN_RX_SIZE: u16 = 256;
/// Largest receive data field size (the FC-FS-4 maximum data field size).
pub const MAX_RX_SIZE: u16 = 2112;

bitflags! {
    /// Common features, word 1 bits 31-16 of the common service parameters (FC-LS-3).
    /// Some bits mean something else in FLOGI/FDISC and their LS_ACC; see the aliases below.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct CommonFeatures: u16 {
        /// Continuously increasing relative offset (PLOGI).
        const CONTINUOUSLY_INCREASING_RO = 0x8000;
        /// Random relative offset (PLOGI).
        const RANDOM_RO = 0x4000;
        /// The vendor version level field is valid.
        const VENDOR_VERSION_VALID = 0x2000;
        /// Sent by an F_Port (0: by an N_Port).
        const F_PORT = 0x1000;
        /// Alternate BB_Credit management.
        const ALTERNATE_BB_CREDIT = 0x0800;
        /// E_D_TOV is in nanoseconds (0: milliseconds).
        const E_D_TOV_RESOLUTION = 0x0400;
        /// Multicast supported (obsolete).
        const MULTICAST = 0x0200;
        /// Broadcast supported (obsolete).
        const BROADCAST = 0x0100;
        /// Hunt group (obsolete).
        const HUNT_GROUP = 0x0080;
        /// Dedicated simplex (obsolete).
        const DEDICATED_SIMPLEX = 0x0040;
        /// Reserved for security.
        const SECURITY = 0x0020;
        /// Clock synchronization primitive capable.
        const CLOCK_SYNC = 0x0010;
        /// R_T_TOV is 100 µs (0: 100 ms).
        const R_T_TOV = 0x0008;
        /// Dynamic half duplex supported.
        const DYNAMIC_HALF_DUPLEX = 0x0004;
        /// Continuously increasing SEQ_CNT.
        const SEQ_CNT = 0x0002;
        /// The payload is the 256-byte form (0: 116 bytes).
        const PAYLOAD_256 = 0x0001;
    }
}

impl CommonFeatures {
    /// In a FLOGI/FDISC: multiple N_Port_ID support (NPIV); same bit as
    /// [`CONTINUOUSLY_INCREASING_RO`](Self::CONTINUOUSLY_INCREASING_RO).
    pub const MULTIPLE_N_PORT_ID: CommonFeatures = CommonFeatures::CONTINUOUSLY_INCREASING_RO;
    /// In a FLOGI LS_ACC: clean address (the N_Port_ID has not been in use recently).
    pub const CLEAN_ADDRESS: CommonFeatures = CommonFeatures::CONTINUOUSLY_INCREASING_RO;
    /// In a FLOGI and its LS_ACC: virtual fabrics (FC-LS-2 on); same bit as
    /// [`RANDOM_RO`](Self::RANDOM_RO).
    pub const VIRTUAL_FABRICS: CommonFeatures = CommonFeatures::RANDOM_RO;
    /// In a FLOGI LS_ACC: multiple N_Port_ID assignment (NPIV) supported; same bit as
    /// [`VENDOR_VERSION_VALID`](Self::VENDOR_VERSION_VALID).
    pub const NPIV_SUPPORTED: CommonFeatures = CommonFeatures::VENDOR_VERSION_VALID;
}

bitflags! {
    /// Class service options, word 0 bits 31-16 of a class block (FC-LS-3).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct ServiceOptions: u16 {
        /// The class is supported; without it the rest of the block is meaningless.
        const CLASS_VALID = 0x8000;
        /// Intermix mode (class 1).
        const INTERMIX = 0x4000;
        /// Sequential delivery (FLOGI, FDISC and their LS_ACC).
        const SEQUENTIAL_DELIVERY = 0x0800;
        /// Dedicated simplex (class 1).
        const DEDICATED_SIMPLEX = 0x0400;
        /// Camp-on (class 1).
        const CAMP_ON = 0x0200;
        /// Buffered class 1.
        const BUFFERED_CLASS_1 = 0x0100;
        /// Priority / preemption.
        const PRIORITY = 0x0080;
        /// Non-zero CS_CTL tolerated (as Wireshark names the bit).
        const NONZERO_CS_CTL = 0x0040;
    }
}

bitflags! {
    /// Initiator control, word 0 bits 15-0 of a class block (FC-LS-3).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct InitiatorControl: u16 {
        /// Initial Process_Associator supported (bits 13-12 = 01b).
        const INITIAL_PA_SUPPORTED = 0x1000;
        /// Initial Process_Associator required (bits 13-12 = 11b).
        const INITIAL_PA_REQUIRED = 0x3000;
        /// ACK_0 capable.
        const ACK_0_CAPABLE = 0x0800;
        /// ACK_N capable.
        const ACK_N_CAPABLE = 0x0400;
        /// ACK generation assistance.
        const ACK_GENERATION_ASSISTANCE = 0x0200;
        /// Clock synchronization ELS capable.
        const CLOCK_SYNC = 0x0010;
    }
}

bitflags! {
    /// Recipient control, word 1 bits 31-16 of a class block (FC-LS-3).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct RecipientControl: u16 {
        /// ACK_0 capable.
        const ACK_0_CAPABLE = 0x8000;
        /// ACK_N capable.
        const ACK_N_CAPABLE = 0x4000;
        /// X_ID interlock required.
        const X_ID_INTERLOCK = 0x2000;
        /// Error policy (bits 12-11) 10b: both discard and process policies supported
        /// (00b: discard only).
        const ERROR_POLICY_PROCESS = 0x1000;
        /// Categories per sequence (bits 5-4) 01b: two categories.
        const CATEGORIES_2 = 0x0010;
        /// Categories per sequence (bits 5-4) 11b: more than two.
        const CATEGORIES_MORE = 0x0030;
        /// Clock synchronization ELS capable.
        const CLOCK_SYNC = 0x0008;
    }
}

/// A view over a login payload (FLOGI, FDISC, PLOGI, PDISC or their LS_ACC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Login<T> {
    /// Length of the login payload without the 256-byte form's extension.
    pub const LEN: usize = field::END;

    /// Wraps a buffer without checking its length; getters panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Login<T> {
        Login { buffer }
    }

    /// Wraps a buffer of at least [`Login::LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<Login<T>, LenError> {
        LenError::check(Layer::Els, Self::LEN, buffer.as_ref().len())?;
        Ok(Login { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Command code (byte 0).
    pub fn code(&self) -> ElsCode {
        ElsCode(self.buffer.as_ref()[field::CODE])
    }

    /// The common service parameters.
    pub fn common(&self) -> CommonServiceParams {
        CommonServiceParams::read(&self.buffer.as_ref()[field::COMMON])
    }

    /// Buffer-to-buffer credit.
    pub fn bb_credit(&self) -> u16 {
        be16(self.buffer.as_ref(), field::BB_CREDIT)
    }

    /// Common features.
    pub fn features(&self) -> CommonFeatures {
        CommonFeatures::from_bits_retain(be16(self.buffer.as_ref(), field::FEATURES))
    }

    /// Buffer-to-buffer receive data field size (12 bits).
    pub fn rx_data_field_size(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SC_N_RX_SIZE) & 0x0FFF
    }

    /// R_A_TOV in milliseconds (meaningful in a FLOGI/FDISC LS_ACC).
    pub fn r_a_tov(&self) -> u32 {
        be32(self.buffer.as_ref(), field::R_A_TOV)
    }

    /// E_D_TOV (milliseconds, or nanoseconds with [`CommonFeatures::E_D_TOV_RESOLUTION`]).
    pub fn e_d_tov(&self) -> u32 {
        be32(self.buffer.as_ref(), field::E_D_TOV)
    }

    /// N_Port or F_Port name.
    pub fn port_name(&self) -> Wwn {
        Wwn::from_u64(be64(self.buffer.as_ref(), field::PORT_NAME))
    }

    /// Node name (fabric name in a FLOGI/FDISC LS_ACC).
    pub fn node_name(&self) -> Wwn {
        Wwn::from_u64(be64(self.buffer.as_ref(), field::NODE_NAME))
    }

    /// Service parameters of class `class` (1 to 4); `None` for another number.
    pub fn class(&self, class: u8) -> Option<ClassServiceParams> {
        let at = class_offset(class)?;
        Some(ClassServiceParams::read(
            &self.buffer.as_ref()[at..at + field::CLASS_LEN],
        ))
    }

    /// Vendor version level.
    pub fn vendor_version(&self) -> [u8; 16] {
        let mut v = [0; 16];
        v.copy_from_slice(&self.buffer.as_ref()[field::VENDOR_VERSION]);
        v
    }

    /// Bytes after the 116-byte layout (the rest of the 256-byte form).
    pub fn extension(&self) -> &[u8] {
        &self.buffer.as_ref()[field::END..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Login<T> {
    /// Sets the command code and zeroes the rest of the command word.
    pub fn set_code(&mut self, code: ElsCode) {
        let b = self.buffer.as_mut();
        b[field::CODE] = code.0;
        b[field::RESERVED].fill(0);
    }

    /// Writes the common service parameters.
    pub fn set_common(&mut self, c: &CommonServiceParams) {
        self.buffer.as_mut()[field::COMMON].copy_from_slice(&c.to_bytes());
    }

    /// Sets the port name.
    pub fn set_port_name(&mut self, w: Wwn) {
        put_be64(self.buffer.as_mut(), field::PORT_NAME, w.to_u64());
    }

    /// Sets the node (or fabric) name.
    pub fn set_node_name(&mut self, w: Wwn) {
        put_be64(self.buffer.as_mut(), field::NODE_NAME, w.to_u64());
    }

    /// Writes the service parameters of class `class` (1 to 4); does nothing for another
    /// number.
    pub fn set_class(&mut self, class: u8, params: &ClassServiceParams) {
        if let Some(at) = class_offset(class) {
            params.write(&mut self.buffer.as_mut()[at..at + field::CLASS_LEN]);
        }
    }

    /// Sets the vendor version level.
    pub fn set_vendor_version(&mut self, v: &[u8; 16]) {
        self.buffer.as_mut()[field::VENDOR_VERSION].copy_from_slice(v);
    }
}

/// Offset of the block of class `class` (1 to 4).
fn class_offset(class: u8) -> Option<usize> {
    match class {
        1..=4 => Some(field::CLASSES + (class as usize - 1) * field::CLASS_LEN),
        _ => None,
    }
}

/// Common service parameters (FC-LS-3 §6), 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CommonServiceParams {
    /// Highest FC-PH version supported (obsolete; 0x20 by convention).
    pub fc_ph_high: u8,
    /// Lowest FC-PH version supported (obsolete; 0x20 by convention).
    pub fc_ph_low: u8,
    /// Buffer-to-buffer credit the sender grants.
    pub bb_credit: u16,
    /// Common features.
    pub features: CommonFeatures,
    /// BB_SC_N, the buffer-to-buffer state change number (4 bits; `emit` writes the low 4).
    pub bb_sc_n: u8,
    /// Buffer-to-buffer receive data field size (12 bits; `emit` writes the low 12).
    pub rx_data_field_size: u16,
    /// Total concurrent sequences (PLOGI); the high half of R_A_TOV in a FLOGI LS_ACC.
    pub total_concurrent_sequences: u16,
    /// Relative offset by information category (PLOGI); the low half of R_A_TOV in a FLOGI
    /// LS_ACC.
    pub ro_by_info_category: u16,
    /// E_D_TOV (milliseconds, or nanoseconds with [`CommonFeatures::E_D_TOV_RESOLUTION`]).
    pub e_d_tov: u32,
}

impl CommonServiceParams {
    /// Length in bytes.
    pub const LEN: usize = 16;

    /// Reads the 16 wire bytes.
    pub fn from_bytes(b: &[u8; 16]) -> CommonServiceParams {
        Self::read(b)
    }

    /// Reads the block. The caller guarantees `b.len() >= 16`.
    fn read(b: &[u8]) -> CommonServiceParams {
        CommonServiceParams {
            fc_ph_high: b[field::CSP_FC_PH_HIGH],
            fc_ph_low: b[field::CSP_FC_PH_LOW],
            bb_credit: be16(b, field::CSP_BB_CREDIT),
            features: CommonFeatures::from_bits_retain(be16(b, field::CSP_FEATURES)),
            bb_sc_n: b[field::CSP_SC_N_RX_SIZE] >> 4,
            rx_data_field_size: be16(b, field::CSP_SC_N_RX_SIZE) & 0x0FFF,
            total_concurrent_sequences: be16(b, field::CSP_TOTAL_CONCURRENT_SEQ),
            ro_by_info_category: be16(b, field::CSP_RO_BY_INFO_CATEGORY),
            e_d_tov: be32(b, field::CSP_E_D_TOV),
        }
    }

    /// The 16 wire bytes.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[field::CSP_FC_PH_HIGH] = self.fc_ph_high;
        b[field::CSP_FC_PH_LOW] = self.fc_ph_low;
        put_be16(&mut b, field::CSP_BB_CREDIT, self.bb_credit);
        put_be16(&mut b, field::CSP_FEATURES, self.features.bits());
        put_be16(
            &mut b,
            field::CSP_SC_N_RX_SIZE,
            (u16::from(self.bb_sc_n & 0x0F) << 12) | (self.rx_data_field_size & 0x0FFF),
        );
        put_be16(
            &mut b,
            field::CSP_TOTAL_CONCURRENT_SEQ,
            self.total_concurrent_sequences,
        );
        put_be16(
            &mut b,
            field::CSP_RO_BY_INFO_CATEGORY,
            self.ro_by_info_category,
        );
        put_be32(&mut b, field::CSP_E_D_TOV, self.e_d_tov);
        b
    }

    /// R_A_TOV in milliseconds: word 2 read whole, as a FLOGI/FDISC LS_ACC carries it.
    pub const fn r_a_tov(&self) -> u32 {
        (self.total_concurrent_sequences as u32) << 16 | self.ro_by_info_category as u32
    }

    /// Sets word 2 to R_A_TOV (for a FLOGI/FDISC LS_ACC).
    pub fn set_r_a_tov(&mut self, ms: u32) {
        self.total_concurrent_sequences = (ms >> 16) as u16;
        self.ro_by_info_category = ms as u16;
    }
}

/// Class service parameters (FC-LS-3 §6), 16 bytes; one block each for classes 1 to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ClassServiceParams {
    /// Service options; [`ServiceOptions::CLASS_VALID`] says the class is supported.
    pub service_options: ServiceOptions,
    /// Initiator control.
    pub initiator_control: InitiatorControl,
    /// Recipient control.
    pub recipient_control: RecipientControl,
    /// Receive data field size for this class.
    pub rx_data_field_size: u16,
    /// Concurrent sequences.
    pub concurrent_sequences: u16,
    /// N_Port end-to-end credit.
    pub end_to_end_credit: u16,
    /// Open sequences per exchange.
    pub open_sequences_per_exchange: u8,
}

impl ClassServiceParams {
    /// Length in bytes.
    pub const LEN: usize = field::CLASS_LEN;

    /// The block of a class that is not supported: all zero.
    pub const NOT_SUPPORTED: ClassServiceParams = ClassServiceParams {
        service_options: ServiceOptions::empty(),
        initiator_control: InitiatorControl::empty(),
        recipient_control: RecipientControl::empty(),
        rx_data_field_size: 0,
        concurrent_sequences: 0,
        end_to_end_credit: 0,
        open_sequences_per_exchange: 0,
    };

    /// A class 3 block as N_Ports commonly send it: valid, sequential delivery, the given
    /// receive data field size, 255 concurrent sequences, one open sequence per exchange.
    pub const fn class3(rx_data_field_size: u16) -> ClassServiceParams {
        ClassServiceParams {
            service_options: ServiceOptions::CLASS_VALID.union(ServiceOptions::SEQUENTIAL_DELIVERY),
            initiator_control: InitiatorControl::empty(),
            recipient_control: RecipientControl::empty(),
            rx_data_field_size,
            concurrent_sequences: 255,
            end_to_end_credit: 0,
            open_sequences_per_exchange: 1,
        }
    }

    /// True when [`ServiceOptions::CLASS_VALID`] is set.
    pub const fn is_valid(&self) -> bool {
        self.service_options.contains(ServiceOptions::CLASS_VALID)
    }

    /// Reads the 16 wire bytes.
    pub fn from_bytes(b: &[u8; 16]) -> ClassServiceParams {
        Self::read(b)
    }

    /// The 16 wire bytes; reserved bytes are zero.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        self.write(&mut b);
        b
    }

    /// Reads a block. The caller guarantees `b.len() >= 16`.
    fn read(b: &[u8]) -> ClassServiceParams {
        ClassServiceParams {
            service_options: ServiceOptions::from_bits_retain(be16(b, field::CLASS_OPTIONS)),
            initiator_control: InitiatorControl::from_bits_retain(be16(b, field::CLASS_INITIATOR)),
            recipient_control: RecipientControl::from_bits_retain(be16(b, field::CLASS_RECIPIENT)),
            rx_data_field_size: be16(b, field::CLASS_RX_SIZE),
            concurrent_sequences: be16(b, field::CLASS_CONCURRENT_SEQ),
            end_to_end_credit: be16(b, field::CLASS_EE_CREDIT),
            open_sequences_per_exchange: b[field::CLASS_OPEN_SEQ],
        }
    }

    /// Writes a block, reserved bytes zero. The caller guarantees `b.len() >= 16`.
    fn write(&self, b: &mut [u8]) {
        b[..field::CLASS_LEN].fill(0);
        put_be16(b, field::CLASS_OPTIONS, self.service_options.bits());
        put_be16(b, field::CLASS_INITIATOR, self.initiator_control.bits());
        put_be16(b, field::CLASS_RECIPIENT, self.recipient_control.bits());
        put_be16(b, field::CLASS_RX_SIZE, self.rx_data_field_size);
        put_be16(b, field::CLASS_CONCURRENT_SEQ, self.concurrent_sequences);
        put_be16(b, field::CLASS_EE_CREDIT, self.end_to_end_credit);
        b[field::CLASS_OPEN_SEQ] = self.open_sequences_per_exchange;
    }
}

/// A login payload: FLOGI, FDISC, PLOGI, PDISC or the LS_ACC to one of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoginRepr {
    /// Command code: FLOGI, FDISC, PLOGI, PDISC, or LS_ACC.
    pub code: ElsCode,
    /// Common service parameters.
    pub common: CommonServiceParams,
    /// N_Port name (F_Port name in a FLOGI/FDISC LS_ACC).
    pub port_name: Wwn,
    /// Node name (fabric name in a FLOGI/FDISC LS_ACC).
    pub node_name: Wwn,
    /// Service parameters of classes 1, 2, 3 and 4, in that order.
    pub classes: [ClassServiceParams; 4],
    /// Vendor version level.
    pub vendor_version: [u8; 16],
    /// Bytes after the 116-byte layout (the rest of the 256-byte form: services
    /// availability, login extension data length, clock synchronization QoS), kept raw.
    pub extension: Vec<u8>,
}

impl LoginRepr {
    /// A login request (FLOGI, FDISC, PLOGI or PDISC) as Linux' libfc builds one: FC-PH
    /// 0x20/0x20, BB_Credit 10, class 3 only; for PLOGI and PDISC also continuously
    /// increasing relative offset, 255 concurrent sequences, RO by category 0x1F and
    /// E_D_TOV 2000 ms. Also the LS_ACC to a PLOGI, with `code` [`ElsCode::LS_ACC`].
    pub fn request(code: ElsCode, port_name: Wwn, node_name: Wwn, rx_size: u16) -> LoginRepr {
        let fabric = code == ElsCode::FLOGI || code == ElsCode::FDISC;
        let mut common = CommonServiceParams {
            fc_ph_high: 0x20,
            fc_ph_low: 0x20,
            bb_credit: 10,
            rx_data_field_size: rx_size,
            ..CommonServiceParams::default()
        };
        if !fabric {
            common.features = CommonFeatures::CONTINUOUSLY_INCREASING_RO;
            common.total_concurrent_sequences = 255;
            common.ro_by_info_category = 0x1F;
            common.e_d_tov = 2000;
        }
        let mut class3 = ClassServiceParams::class3(rx_size);
        if fabric {
            class3.concurrent_sequences = 0;
            class3.open_sequences_per_exchange = 0;
        }
        LoginRepr {
            code,
            common,
            port_name,
            node_name,
            classes: [
                ClassServiceParams::NOT_SUPPORTED,
                ClassServiceParams::NOT_SUPPORTED,
                class3,
                ClassServiceParams::NOT_SUPPORTED,
            ],
            vendor_version: [0; 16],
            extension: Vec::new(),
        }
    }

    /// The LS_ACC an F_Port sends to a FLOGI or FDISC: F_Port bit set, R_A_TOV and E_D_TOV
    /// in milliseconds, the F_Port's name and the fabric name, class 3 with sequential
    /// delivery.
    pub fn fabric_accept(
        f_port_name: Wwn,
        fabric_name: Wwn,
        rx_size: u16,
        r_a_tov: u32,
        e_d_tov: u32,
    ) -> LoginRepr {
        let mut common = CommonServiceParams {
            fc_ph_high: 0x20,
            fc_ph_low: 0x20,
            bb_credit: 10,
            features: CommonFeatures::F_PORT,
            rx_data_field_size: rx_size,
            e_d_tov,
            ..CommonServiceParams::default()
        };
        common.set_r_a_tov(r_a_tov);
        let mut class3 = ClassServiceParams::class3(rx_size);
        class3.concurrent_sequences = 0;
        class3.open_sequences_per_exchange = 0;
        LoginRepr {
            code: ElsCode::LS_ACC,
            common,
            port_name: f_port_name,
            node_name: fabric_name,
            classes: [
                ClassServiceParams::NOT_SUPPORTED,
                ClassServiceParams::NOT_SUPPORTED,
                class3,
                ClassServiceParams::NOT_SUPPORTED,
            ],
            vendor_version: [0; 16],
            extension: Vec::new(),
        }
    }

    /// Parses a login payload of at least 116 bytes. Any command code is taken as data;
    /// content is not checked (see [`validate`](Self::validate)).
    pub fn parse(buf: &[u8]) -> Result<LoginRepr, ElsError> {
        check_len(buf, Login::<&[u8]>::LEN)?;
        let v = Login::new_unchecked(buf);
        Ok(LoginRepr {
            code: v.code(),
            common: v.common(),
            port_name: v.port_name(),
            node_name: v.node_name(),
            // Invariant: 1..=4 are valid class numbers, so `class` returns Some.
            classes: [1, 2, 3, 4].map(|n| v.class(n).unwrap_or_default()),
            vendor_version: v.vendor_version(),
            extension: v.extension().to_vec(),
        })
    }

    /// The content checks a responder rejects a login for (with
    /// [`ElsError::ls_rjt`]): FC-LS-3 §6 allows receive data field
    /// sizes of 256 to 2112 bytes, in the common service parameters and in every class
    /// marked valid.
    pub fn validate(&self) -> Result<(), ElsError> {
        let rx = self.common.rx_data_field_size;
        if !(MIN_RX_SIZE..=MAX_RX_SIZE).contains(&rx) {
            return Err(ElsError::BadCommonRxSize(rx));
        }
        for (class, p) in (1u8..).zip(self.classes.iter()) {
            if p.is_valid() && !(MIN_RX_SIZE..=MAX_RX_SIZE).contains(&p.rx_data_field_size) {
                return Err(ElsError::BadClassRxSize {
                    class,
                    size: p.rx_data_field_size,
                });
            }
        }
        Ok(())
    }

    /// Service parameters of class 3, the class fcsan uses.
    pub const fn class3(&self) -> &ClassServiceParams {
        &self.classes[2]
    }

    /// True when this is the LS_ACC of an F_Port (FLOGI/FDISC accept): then the node name is
    /// the fabric name and word 2 of the common parameters is R_A_TOV.
    pub const fn is_from_f_port(&self) -> bool {
        self.common.features.contains(CommonFeatures::F_PORT)
    }

    /// Bytes [`emit`](Self::emit) writes: 116 plus the extension.
    pub fn buffer_len(&self) -> usize {
        Login::<&[u8]>::LEN + self.extension.len()
    }

    /// Writes the payload; reserved bytes are zero. Panics if `buf` is shorter than
    /// [`buffer_len`](Self::buffer_len).
    pub fn emit(&self, buf: &mut [u8]) {
        let mut v = Login::new_unchecked(&mut buf[..self.buffer_len()]);
        v.set_code(self.code);
        v.set_common(&self.common);
        v.set_port_name(self.port_name);
        v.set_node_name(self.node_name);
        for (class, p) in (1u8..).zip(self.classes.iter()) {
            v.set_class(class, p);
        }
        v.set_vendor_version(&self.vendor_version);
        let b = v.into_inner();
        b[field::END..].copy_from_slice(&self.extension);
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

impl LoginRepr {
    /// Writes the summary after the command code: ` wwpn=.. wwnn=.. rxsize=2112`, or for an
    /// F_Port's accept ` wwpn=.. fabric=.. rxsize=.. r_a_tov=.. e_d_tov=..`.
    pub(crate) fn fmt_body(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_from_f_port() {
            write!(
                f,
                " wwpn={} fabric={} rxsize={} r_a_tov={} e_d_tov={}",
                self.port_name,
                self.node_name,
                self.common.rx_data_field_size,
                self.common.r_a_tov(),
                self.common.e_d_tov
            )
        } else {
            write!(
                f,
                " wwpn={} wwnn={} rxsize={}",
                self.port_name, self.node_name, self.common.rx_data_field_size
            )
        }
    }
}

/// `PLOGI wwpn=20:00:00:25:b5:00:00:01 wwnn=20:00:00:25:b5:00:00:00 rxsize=2112`; from an
/// F_Port `LS_ACC wwpn=.. fabric=.. rxsize=2112 r_a_tov=10000 e_d_tov=2000`.
impl fmt::Display for LoginRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        self.fmt_body(f)
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;
    use crate::els::strategies::arb_login;

    const WWPN: Wwn = Wwn([0x20, 0x00, 0x00, 0x25, 0xb5, 0x00, 0x00, 0x01]);
    const WWNN: Wwn = Wwn([0x20, 0x00, 0x00, 0x25, 0xb5, 0x00, 0x00, 0x00]);

    // A PLOGI as LoginRepr::request builds it. tshark 4.0.17 shows: fcels.opcode == 0x03,
    // fcels.logi.b2b == 10, fcels.cmn.cios == 1, fcels.logi.rcvsize == 2112,
    // fcels.logi.maxconseq == 255, fcels.logi.reloff == 31, fcels.edtov == 2000,
    // fcels.npname == 20:00:00:25:b5:00:00:01, fcels.fnname == 20:00:00:25:b5:00:00:00,
    // class 3 fcels.logi.clsflags == 0x8800, fcels.logi.clsrcvsize == 2112,
    // fcels.logi.openseq == 1.
    static PLOGI: [u8; 116] = hex!(
        "03000000"
        "2020000a 80000840 00ff001f 000007d0"
        "20000025b5000001"
        "20000025b5000000"
        "00000000000000000000000000000000"
        "00000000000000000000000000000000"
        "88000000 00000840 00ff0000 00010000"
        "00000000000000000000000000000000"
        "00000000000000000000000000000000"
    );

    // The F_Port's LS_ACC to a FLOGI: F_Port bit, R_A_TOV 10000 ms, E_D_TOV 2000 ms.
    // tshark (reply after a FLOGI with the same OX_ID): fcels.opcode == 0x02,
    // fcels.logi.cmnfeatures == 0x1000, fcels.logi.rcvsize == 2112, fcels.edtov == 2000,
    // fcels.fnname == 10:00:00:00:c9:00:00:ff (tshark reads R_A_TOV's low half as
    // fcels.logi.reloff == 10000).
    static FLOGI_ACC: [u8; 116] = hex!(
        "02000000"
        "2020000a 10000840 00002710 000007d0"
        "2001000000c90001"
        "10000000c90000ff"
        "00000000000000000000000000000000"
        "00000000000000000000000000000000"
        "88000000 00000840 00000000 00000000"
        "00000000000000000000000000000000"
        "00000000000000000000000000000000"
    );

    fn plogi() -> LoginRepr {
        LoginRepr::request(ElsCode::PLOGI, WWPN, WWNN, 2112)
    }

    fn flogi_acc() -> LoginRepr {
        LoginRepr::fabric_accept(
            Wwn([0x20, 0x01, 0, 0, 0, 0xc9, 0, 0x01]),
            Wwn([0x10, 0, 0, 0, 0xc9, 0, 0, 0xff]),
            2112,
            10_000,
            2000,
        )
    }

    #[test]
    fn test_parse() {
        let p = LoginRepr::parse(&PLOGI).unwrap();
        assert_eq!(p.code, ElsCode::PLOGI);
        assert_eq!(p.common.fc_ph_high, 0x20);
        assert_eq!(p.common.fc_ph_low, 0x20);
        assert_eq!(p.common.bb_credit, 10);
        assert_eq!(
            p.common.features,
            CommonFeatures::CONTINUOUSLY_INCREASING_RO
        );
        assert_eq!(p.common.bb_sc_n, 0);
        assert_eq!(p.common.rx_data_field_size, 2112);
        assert_eq!(p.common.total_concurrent_sequences, 255);
        assert_eq!(p.common.ro_by_info_category, 0x1F);
        assert_eq!(p.common.e_d_tov, 2000);
        assert_eq!(p.port_name, WWPN);
        assert_eq!(p.node_name, WWNN);
        assert!(!p.classes[0].is_valid());
        assert!(!p.classes[1].is_valid());
        assert!(!p.classes[3].is_valid());
        let c3 = p.class3();
        assert!(c3.is_valid());
        assert_eq!(
            c3.service_options,
            ServiceOptions::CLASS_VALID | ServiceOptions::SEQUENTIAL_DELIVERY
        );
        assert_eq!(c3.rx_data_field_size, 2112);
        assert_eq!(c3.concurrent_sequences, 255);
        assert_eq!(c3.open_sequences_per_exchange, 1);
        assert_eq!(p.vendor_version, [0; 16]);
        assert!(p.extension.is_empty());
        assert_eq!(p.validate(), Ok(()));

        let a = LoginRepr::parse(&FLOGI_ACC).unwrap();
        assert_eq!(a.code, ElsCode::LS_ACC);
        assert!(a.is_from_f_port());
        assert_eq!(a.common.r_a_tov(), 10_000);
        assert_eq!(a.common.e_d_tov, 2000);
        assert_eq!(a.node_name.to_string(), "10:00:00:00:c9:00:00:ff");
    }

    #[test]
    fn test_emit() {
        let p = plogi();
        assert_eq!(p.buffer_len(), 116);
        assert_eq!(p.to_vec(), PLOGI);
        assert_eq!(LoginRepr::parse(&p.to_vec()), Ok(p));
        let a = flogi_acc();
        assert_eq!(a.to_vec(), FLOGI_ACC);
        assert_eq!(LoginRepr::parse(&a.to_vec()), Ok(a));
    }

    #[test]
    fn test_flogi_request() {
        let f = LoginRepr::request(ElsCode::FLOGI, WWPN, WWNN, 2048);
        let b = f.to_vec();
        // Command word, then FC-PH 20/20, BB_Credit 10, no features, rx size 2048.
        // tshark: fcels.opcode == 0x04, fcels.logi.cmnfeatures == 0x0000,
        // fcels.logi.rcvsize == 2048, class 3 fcels.logi.clsflags == 0x8800 ("Seq Delivery
        // Requested"), fcels.logi.clsrcvsize == 2048.
        assert_eq!(b[..12], hex!("04000000 2020000a 00000800"));
        // Word 2 and E_D_TOV zero in a FLOGI.
        assert_eq!(b[12..20], [0; 8]);
        assert_eq!(b[68..84], hex!("88000000 00000800 00000000 00000000"));
        assert_eq!(LoginRepr::parse(&b), Ok(f));
    }

    #[test]
    fn test_view() {
        let v = Login::new_checked(&PLOGI[..]).unwrap();
        assert_eq!(v.code(), ElsCode::PLOGI);
        assert_eq!(v.rx_data_field_size(), 2112);
        assert_eq!(v.bb_credit(), 10);
        assert_eq!(v.features(), CommonFeatures::CONTINUOUSLY_INCREASING_RO);
        assert_eq!(v.e_d_tov(), 2000);
        assert_eq!(v.port_name(), WWPN);
        assert_eq!(v.class(3).map(|c| c.rx_data_field_size), Some(2112));
        assert_eq!(v.class(0), None);
        assert_eq!(v.class(5), None);
        assert_eq!(
            Login::new_checked(&FLOGI_ACC[..]).unwrap().r_a_tov(),
            10_000
        );
        assert!(Login::new_checked(&PLOGI[..115]).is_err());

        let mut buf = PLOGI;
        let mut m = Login::new_unchecked(&mut buf[..]);
        m.set_code(ElsCode::PDISC);
        m.set_class(3, &ClassServiceParams::NOT_SUPPORTED);
        m.set_class(9, &ClassServiceParams::class3(256));
        assert_eq!(buf[0], 0x50);
        assert_eq!(buf[68..84], [0; 16]);
        assert_eq!(buf[84..], PLOGI[84..]);
    }

    #[test]
    fn test_common_and_class_bytes() {
        let c = plogi().common;
        assert_eq!(c.to_bytes(), PLOGI[4..20]);
        let mut b = [0u8; 16];
        b.copy_from_slice(&PLOGI[4..20]);
        assert_eq!(CommonServiceParams::from_bytes(&b), c);
        let k = ClassServiceParams::class3(2112);
        assert_eq!(k.to_bytes(), PLOGI[68..84]);
        b.copy_from_slice(&PLOGI[68..84]);
        assert_eq!(ClassServiceParams::from_bytes(&b), k);
        // BB_SC_N in bits 15-12 of the word with the receive size.
        let mut c = c;
        c.bb_sc_n = 0xA;
        assert_eq!(c.to_bytes()[6..8], hex!("a840"));
    }

    #[test]
    fn test_extension_kept() {
        let mut b = PLOGI.to_vec();
        b[9] |= 0x01; // PAYLOAD_256
        b.extend((0u8..140).map(|i| i.wrapping_mul(3)));
        let p = LoginRepr::parse(&b).unwrap();
        assert!(p.common.features.contains(CommonFeatures::PAYLOAD_256));
        assert_eq!(p.extension.len(), 140);
        assert_eq!(p.buffer_len(), 256);
        assert_eq!(p.to_vec(), b);
    }

    #[test]
    fn test_display() {
        assert_eq!(
            plogi().to_string(),
            "PLOGI wwpn=20:00:00:25:b5:00:00:01 wwnn=20:00:00:25:b5:00:00:00 rxsize=2112"
        );
        assert_eq!(
            flogi_acc().to_string(),
            "LS_ACC wwpn=20:01:00:00:00:c9:00:01 fabric=10:00:00:00:c9:00:00:ff \
             rxsize=2112 r_a_tov=10000 e_d_tov=2000"
        );
    }

    #[test]
    fn test_validate_common_rx_size() {
        for bad in [0u16, 255, 2113, 0x0FFF] {
            let mut p = plogi();
            p.common.rx_data_field_size = bad;
            assert_eq!(p.validate(), Err(ElsError::BadCommonRxSize(bad)));
        }
        for good in [256u16, 2048, 2112] {
            let mut p = plogi();
            p.common.rx_data_field_size = good;
            p.classes[2].rx_data_field_size = good;
            assert_eq!(p.validate(), Ok(()));
        }
    }

    #[test]
    fn test_validate_class_rx_size() {
        let mut b = PLOGI;
        b[74..76].copy_from_slice(&hex!("0080")); // class 3 receive size 128
        let p = LoginRepr::parse(&b).unwrap();
        assert_eq!(
            p.validate(),
            Err(ElsError::BadClassRxSize {
                class: 3,
                size: 128
            })
        );
        assert_eq!(
            p.validate().unwrap_err().ls_rjt().explanation,
            crate::els::LsRjtExplanation::RECEIVE_DATA_FIELD_SIZE
        );
        // A class that is not valid may hold anything.
        let mut p = plogi();
        p.classes[0].rx_data_field_size = 9;
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn test_truncated() {
        for len in 0..PLOGI.len() {
            assert!(matches!(
                LoginRepr::parse(&PLOGI[..len]),
                Err(ElsError::Len(LenError { required: 116, .. }))
            ));
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(l in arb_login()) {
            prop_assert_eq!(LoginRepr::parse(&l.to_vec()), Ok(l));
        }

        #[test]
        fn prop_no_panic(buf in proptest::collection::vec(any::<u8>(), 0..3000)) {
            if let Ok(l) = LoginRepr::parse(&buf) {
                let _ = l.validate();
                let _ = l.to_string();
            }
        }
    }
}
