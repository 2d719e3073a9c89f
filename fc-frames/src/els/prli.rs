//! PRLI and PRLO, process login and logout, and their LS_ACC (FC-LS-3 §4.2);
//! the FCP service parameters of a page from FCP-4 §6.3 (Table 19).
//!
//! The four payloads share one layout: a command word with the page length and the payload
//! length, then one or more 16-byte service parameter pages.
//!
//! ```text
//!  byte 0      1        2        3
//! +--------+--------+--------+--------+
//! |  code  |  0x10  | payload length  |  code: PRLI 0x20, PRLO 0x21, LS_ACC 0x02
//! +--------+--------+--------+--------+  payload length = 4 + 16 × pages
//! | service parameter page 1 ... n    |
//! +--------+--------+--------+--------+
//!
//! page:
//! +--------+--------+--------+--------+
//! |  TYPE  |TYPE ext| flags  |reserved|  flags bits 7-4; LS_ACC: response code bits 3-0
//! +--------+--------+--------+--------+
//! |   originator process associator   |
//! +--------+--------+--------+--------+
//! |   responder process associator    |
//! +--------+--------+--------+--------+
//! |   service parameters (per TYPE)   |  FCP: [`FcpServiceParams`]
//! +--------+--------+--------+--------+
//! ```
//!
//! A page length other than 16, or a payload length that is not 4 + 16n (n ≥ 1) or that
//! disagrees with the bytes present, makes the payload unreadable: parsing fails with a
//! content error (LS_RJT "invalid payload length" via [`ElsError::ls_rjt`]), or with a
//! [`LenError`] when the payload stops short of its payload length.

use core::fmt;

use bitflags::bitflags;

use super::{check_len, ElsCode, ElsError, COMMAND_WORD_LEN};
use crate::error::{Layer, LenError};
use crate::wire::{be16, be32, put_be16, put_be32};

/// Offsets of the command word and of a page.
mod field {
    pub const CODE: usize = 0;
    pub const PAGE_LEN: usize = 1;
    pub const PAYLOAD_LEN: usize = 2;

    pub const TYPE: usize = 0;
    pub const TYPE_EXT: usize = 1;
    pub const FLAGS: usize = 2;
    pub const ORIGINATOR_PA: usize = 4;
    pub const RESPONDER_PA: usize = 8;
    pub const SERVICE_PARAMS: usize = 12;
}

/// Length of a service parameter page, the value of byte 1.
pub const PAGE_LEN: u8 = 0x10;

/// FC-4 TYPE of FCP (SCSI over Fibre Channel).
pub const TYPE_FCP: u8 = 0x08;
/// FC-4 TYPE of FC-NVMe.
pub const TYPE_NVME: u8 = 0x28;

bitflags! {
    /// Flags of a page, byte 2 bits 7-4 (FC-LS-3).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct PrliFlags: u8 {
        /// The originator process associator is meaningful.
        const ORIGINATOR_PA_VALID = 0x80;
        /// The responder process associator is meaningful.
        const RESPONDER_PA_VALID = 0x40;
        /// PRLI: establish an image pair (0: exchange service parameters only).
        /// In the PRLI LS_ACC the same bit says the image pair is established.
        const ESTABLISH_IMAGE_PAIR = 0x20;
    }
}

impl PrliFlags {
    /// In a PRLI LS_ACC: the image pair has been established.
    pub const IMAGE_PAIR_ESTABLISHED: PrliFlags = PrliFlags::ESTABLISH_IMAGE_PAIR;
}

bitflags! {
    /// FCP service parameters, word 3 of an FCP page (FCP-4 §6.3, Table 19).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct FcpServiceParams: u32 {
        /// Task retry identification requested.
        const TASK_RETRY_ID = 0x0200;
        /// Retry (FCP-2 sequence level error recovery) supported.
        const RETRY = 0x0100;
        /// Confirmed completion (FCP_CONF) allowed.
        const CONFIRMED_COMPLETION = 0x0080;
        /// Data overlay allowed.
        const DATA_OVERLAY = 0x0040;
        /// Initiator function.
        const INITIATOR_FUNCTION = 0x0020;
        /// Target function.
        const TARGET_FUNCTION = 0x0010;
        /// Command/data mixed allowed (obsolete).
        const COMMAND_DATA_MIXED = 0x0008;
        /// Data/response mixed allowed (obsolete).
        const DATA_RESPONSE_MIXED = 0x0004;
        /// Read FCP_XFER_RDY disabled (FCP-4: shall be one).
        const READ_XFER_RDY_DISABLED = 0x0002;
        /// Write FCP_XFER_RDY disabled.
        const WRITE_XFER_RDY_DISABLED = 0x0001;
    }
}

/// Short names of [`FcpServiceParams`] bits for one-line summaries, most significant first.
const FCP_PARAM_NAMES: [(FcpServiceParams, &str); 10] = [
    (FcpServiceParams::TASK_RETRY_ID, "task-retry-id"),
    (FcpServiceParams::RETRY, "retry"),
    (FcpServiceParams::CONFIRMED_COMPLETION, "conf"),
    (FcpServiceParams::DATA_OVERLAY, "overlay"),
    (FcpServiceParams::INITIATOR_FUNCTION, "initiator"),
    (FcpServiceParams::TARGET_FUNCTION, "target"),
    (FcpServiceParams::COMMAND_DATA_MIXED, "cmd-data-mixed"),
    (FcpServiceParams::DATA_RESPONSE_MIXED, "data-rsp-mixed"),
    (FcpServiceParams::READ_XFER_RDY_DISABLED, "rd-xfer-rdy-dis"),
    (FcpServiceParams::WRITE_XFER_RDY_DISABLED, "wr-xfer-rdy-dis"),
];

/// `initiator,rd-xfer-rdy-dis`; unknown bits as hex; `none` for zero.
impl fmt::Display for FcpServiceParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { "," };
            first = false;
            f.write_str(s)
        };
        for (flag, name) in FCP_PARAM_NAMES {
            if self.contains(flag) {
                sep(f)?;
                f.write_str(name)?;
            }
        }
        let unknown = self.bits() & !FcpServiceParams::all().bits();
        if unknown != 0 {
            sep(f)?;
            write!(f, "{unknown:#x}")?;
        }
        if self.is_empty() {
            f.write_str("none")?;
        }
        Ok(())
    }
}

code_point! {
    /// Response code of a page in a PRLI or PRLO LS_ACC, byte 2 bits 3-0 (FC-LS-3).
    /// Open: any 4-bit value is data; zero in requests.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct PrliResponseCode(pub u8) {
        /// Not a response (requests carry zero).
        NONE = 0x0 => "none",
        /// Request executed.
        REQUEST_EXECUTED = 0x1 => "request executed",
        /// The responder has no resources for an image pair; do not retry.
        NO_RESOURCES = 0x2 => "no resources",
        /// The responder's FC-4 has not finished initializing; retry later.
        INITIALIZATION_INCOMPLETE = 0x3 => "initialization not complete",
        /// The process associator named does not exist (no such image pair).
        NO_SUCH_IMAGE_PAIR = 0x4 => "no such image pair",
        /// The responder's predefined configuration precludes this image pair.
        PRECLUDED_BY_CONFIGURATION = 0x5 => "precluded by configuration",
        /// Request executed conditionally: some service parameters were not accepted.
        EXECUTED_CONDITIONALLY = 0x6 => "executed conditionally",
        /// The responder cannot handle more than one page.
        MULTIPLE_PAGES_NOT_SUPPORTED = 0x7 => "multiple pages not supported",
        /// The service parameters of the page are invalid (e.g. an unsupported TYPE).
        INVALID_SERVICE_PARAMS = 0x8 => "invalid service parameters",
    }

    /// A description, or `None` for an unknown code.
    pub const fn name;
}

/// `request executed (1)`, or the number alone for an unknown code.
impl fmt::Display for PrliResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// One service parameter page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PrliPage {
    /// FC-4 TYPE ([`TYPE_FCP`] for FCP).
    pub type_code: u8,
    /// TYPE code extension.
    pub type_code_ext: u8,
    /// Flags (byte 2 bits 7-4; `emit` writes only those).
    pub flags: PrliFlags,
    /// Response code (byte 2 bits 3-0; `emit` writes the low 4 bits). Zero in requests.
    pub response_code: PrliResponseCode,
    /// Originator process associator.
    pub originator_pa: u32,
    /// Responder process associator.
    pub responder_pa: u32,
    /// Service parameters: FCP's for TYPE 0x08, and kept bit-exact for any other TYPE.
    pub service_params: FcpServiceParams,
}

impl PrliPage {
    /// Length in bytes.
    pub const LEN: usize = PAGE_LEN as usize;

    /// An FCP page of a PRLI: establish image pair, no process associators.
    pub const fn fcp_request(service_params: FcpServiceParams) -> PrliPage {
        PrliPage {
            type_code: TYPE_FCP,
            type_code_ext: 0,
            flags: PrliFlags::ESTABLISH_IMAGE_PAIR,
            response_code: PrliResponseCode::NONE,
            originator_pa: 0,
            responder_pa: 0,
            service_params,
        }
    }

    /// An FCP page of a PRLI LS_ACC: image pair established when `response` is
    /// [`PrliResponseCode::REQUEST_EXECUTED`].
    pub fn fcp_accept(service_params: FcpServiceParams, response: PrliResponseCode) -> PrliPage {
        let flags = if response == PrliResponseCode::REQUEST_EXECUTED {
            PrliFlags::IMAGE_PAIR_ESTABLISHED
        } else {
            PrliFlags::empty()
        };
        PrliPage {
            flags,
            response_code: response,
            ..PrliPage::fcp_request(service_params)
        }
    }

    /// An FCP page of a PRLO (or its LS_ACC, with a response code): no flags, no
    /// service parameters.
    pub const fn fcp_logout(response: PrliResponseCode) -> PrliPage {
        PrliPage {
            type_code: TYPE_FCP,
            type_code_ext: 0,
            flags: PrliFlags::empty(),
            response_code: response,
            originator_pa: 0,
            responder_pa: 0,
            service_params: FcpServiceParams::empty(),
        }
    }

    /// Reads a page. The caller guarantees `b.len() >= 16`.
    fn read(b: &[u8]) -> PrliPage {
        PrliPage {
            type_code: b[field::TYPE],
            type_code_ext: b[field::TYPE_EXT],
            flags: PrliFlags::from_bits_retain(b[field::FLAGS] & 0xF0),
            response_code: PrliResponseCode(b[field::FLAGS] & 0x0F),
            originator_pa: be32(b, field::ORIGINATOR_PA),
            responder_pa: be32(b, field::RESPONDER_PA),
            service_params: FcpServiceParams::from_bits_retain(be32(b, field::SERVICE_PARAMS)),
        }
    }

    /// Writes a page, reserved byte zero. The caller guarantees `b.len() >= 16`.
    fn write(&self, b: &mut [u8]) {
        b[field::TYPE] = self.type_code;
        b[field::TYPE_EXT] = self.type_code_ext;
        b[field::FLAGS] = (self.flags.bits() & 0xF0) | (self.response_code.0 & 0x0F);
        b[field::FLAGS + 1] = 0;
        put_be32(b, field::ORIGINATOR_PA, self.originator_pa);
        put_be32(b, field::RESPONDER_PA, self.responder_pa);
        put_be32(b, field::SERVICE_PARAMS, self.service_params.bits());
    }
}

/// `FCP eip initiator,rd-xfer-rdy-dis`, with `response=...` in an LS_ACC and the process
/// associators where they are valid.
impl fmt::Display for PrliPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.type_code {
            TYPE_FCP => f.write_str("FCP")?,
            TYPE_NVME => f.write_str("NVMe")?,
            t => write!(f, "type={t:#04x}")?,
        }
        if self.flags.contains(PrliFlags::ORIGINATOR_PA_VALID) {
            write!(f, " opa={:#x}", self.originator_pa)?;
        }
        if self.flags.contains(PrliFlags::RESPONDER_PA_VALID) {
            write!(f, " rpa={:#x}", self.responder_pa)?;
        }
        if self.flags.contains(PrliFlags::ESTABLISH_IMAGE_PAIR) {
            f.write_str(" eip")?;
        }
        if self.response_code != PrliResponseCode::NONE {
            write!(f, " response={}", self.response_code)?;
        }
        if self.type_code == TYPE_FCP {
            write!(f, " {}", self.service_params)
        } else {
            write!(f, " params={:#010x}", self.service_params.bits())
        }
    }
}

/// A PRLI, PRLO, or the LS_ACC to either: the command code and one or more pages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PrliRepr {
    /// PRLI, PRLO or LS_ACC.
    pub code: ElsCode,
    /// The service parameter pages (at least one for a valid payload).
    pub pages: Vec<PrliPage>,
}

impl PrliRepr {
    /// A payload with a single page.
    pub fn single(code: ElsCode, page: PrliPage) -> PrliRepr {
        PrliRepr {
            code,
            pages: vec![page],
        }
    }

    /// Parses the payload. Any command code is taken as data. The number of pages comes
    /// from the payload length, which must match the bytes present, so it is bounded by them.
    pub fn parse(buf: &[u8]) -> Result<PrliRepr, ElsError> {
        check_len(buf, COMMAND_WORD_LEN)?;
        // Invariant: buf.len() >= 4 (checked above).
        let code = ElsCode(buf[field::CODE]);
        // FC-LS-3: the page length shall be 0x10.
        let page_len = buf[field::PAGE_LEN];
        if page_len != PAGE_LEN {
            return Err(ElsError::BadPageLength {
                els: code,
                expected: PAGE_LEN,
                actual: page_len,
            });
        }
        // FC-LS-3: the payload length is the command word plus the pages, 20 to 65532
        // in steps of 16.
        let field = be16(buf, field::PAYLOAD_LEN);
        let payload_len = usize::from(field);
        let bad_len = || ElsError::BadPayloadLength {
            els: code,
            field,
            page_len,
            actual: buf.len(),
        };
        if payload_len < COMMAND_WORD_LEN + PrliPage::LEN
            || (payload_len - COMMAND_WORD_LEN) % PrliPage::LEN != 0
        {
            return Err(bad_len());
        }
        LenError::check(Layer::Els, payload_len, buf.len())?;
        if buf.len() != payload_len {
            return Err(bad_len());
        }
        let pages = buf[COMMAND_WORD_LEN..]
            .chunks_exact(PrliPage::LEN)
            .map(PrliPage::read)
            .collect();
        Ok(PrliRepr { code, pages })
    }

    /// Bytes [`emit`](Self::emit) writes: 4 + 16 × pages.
    pub fn buffer_len(&self) -> usize {
        COMMAND_WORD_LEN + PrliPage::LEN * self.pages.len()
    }

    /// Writes the payload. Panics if `buf` is shorter than [`buffer_len`](Self::buffer_len)
    /// or the payload length exceeds 65535 bytes (more than 4095 pages).
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        let len16 = u16::try_from(len).unwrap_or_else(|_| panic!("PRLI of {len} bytes"));
        buf[field::CODE] = self.code.0;
        buf[field::PAGE_LEN] = PAGE_LEN;
        put_be16(buf, field::PAYLOAD_LEN, len16);
        for (page, chunk) in self
            .pages
            .iter()
            .zip(buf[COMMAND_WORD_LEN..len].chunks_exact_mut(PrliPage::LEN))
        {
            page.write(chunk);
        }
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// Writes the pages of the one-line summary, `; ` between them.
    pub(crate) fn fmt_pages(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, page) in self.pages.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { "; " })?;
            write!(f, "{page}")?;
        }
        Ok(())
    }
}

/// `PRLI FCP eip initiator,rd-xfer-rdy-dis`.
impl fmt::Display for PrliRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        self.fmt_pages(f)
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;
    use crate::els::strategies::arb_prli;

    // An FCP initiator's PRLI. tshark: fcels.opcode == 0x20, fcels.prlilo.page_length == 16,
    // fcels.prlilo.payload_length == 20, fcels.prlilo.type == 8,
    // fcels.prliloflags.eip == 1, fcels.fcpflags == 0x22 (fcels.fcpflags.initiator == 1,
    // fcels.fcpflags.rdxr == 1).
    static PRLI: [u8; 20] = hex!("20100014 08002000 00000000 00000000 00000022");

    // The target's LS_ACC: image pair established, request executed, target function,
    // read XFER_RDY disabled. tshark (after the PRLI, same OX_ID): fcels.prliloflags == 0x21
    // (tshark 4.0.17 shows the whole byte as fcels.prlilo.response_code == 0x21),
    // fcels.fcpflags == 0x12 (fcels.fcpflags.target == 1).
    static PRLI_ACC: [u8; 20] = hex!("02100014 08002100 00000000 00000000 00000012");

    // Two pages: FCP and a type-0x05 page with a process associator. tshark:
    // fcels.prlilo.payload_length == 36 and two pages, but 4.0.17 shows page 0's fields again
    // for page 1 (a dissector defect): do not assert page 1 against tshark.
    static PRLI_2: [u8; 36] = hex!(
        "20100024"
        "08002000 00000000 00000000 00000022"
        "05008000 12345678 00000000 00000000"
    );

    // PRLO of the FCP image pair and its LS_ACC. tshark: fcels.opcode == 0x21,
    // fcels.prlilo.type == 8; the LS_ACC fcels.prlilo.response_code == 0x01.
    static PRLO: [u8; 20] = hex!("21100014 08000000 00000000 00000000 00000000");
    static PRLO_ACC: [u8; 20] = hex!("02100014 08000100 00000000 00000000 00000000");

    fn initiator() -> FcpServiceParams {
        FcpServiceParams::INITIATOR_FUNCTION | FcpServiceParams::READ_XFER_RDY_DISABLED
    }

    fn target() -> FcpServiceParams {
        FcpServiceParams::TARGET_FUNCTION | FcpServiceParams::READ_XFER_RDY_DISABLED
    }

    #[test]
    fn test_parse() {
        let p = PrliRepr::parse(&PRLI).unwrap();
        assert_eq!(p.code, ElsCode::PRLI);
        assert_eq!(p.pages.len(), 1);
        let pg = p.pages[0];
        assert_eq!(pg.type_code, TYPE_FCP);
        assert_eq!(pg.type_code_ext, 0);
        assert_eq!(pg.flags, PrliFlags::ESTABLISH_IMAGE_PAIR);
        assert_eq!(pg.response_code, PrliResponseCode::NONE);
        assert_eq!(pg.originator_pa, 0);
        assert_eq!(pg.responder_pa, 0);
        assert_eq!(pg.service_params, initiator());

        let a = PrliRepr::parse(&PRLI_ACC).unwrap();
        assert_eq!(a.code, ElsCode::LS_ACC);
        assert_eq!(a.pages[0].flags, PrliFlags::IMAGE_PAIR_ESTABLISHED);
        assert_eq!(a.pages[0].response_code, PrliResponseCode::REQUEST_EXECUTED);
        assert_eq!(a.pages[0].service_params, target());

        let two = PrliRepr::parse(&PRLI_2).unwrap();
        assert_eq!(two.pages.len(), 2);
        assert_eq!(two.pages[1].type_code, 0x05);
        assert_eq!(two.pages[1].flags, PrliFlags::ORIGINATOR_PA_VALID);
        assert_eq!(two.pages[1].originator_pa, 0x1234_5678);
    }

    #[test]
    fn test_emit() {
        let p = PrliRepr::single(ElsCode::PRLI, PrliPage::fcp_request(initiator()));
        assert_eq!(p.buffer_len(), 20);
        assert_eq!(p.to_vec(), PRLI);
        assert_eq!(PrliRepr::parse(&p.to_vec()), Ok(p));

        let a = PrliRepr::single(
            ElsCode::LS_ACC,
            PrliPage::fcp_accept(target(), PrliResponseCode::REQUEST_EXECUTED),
        );
        assert_eq!(a.to_vec(), PRLI_ACC);
        assert_eq!(PrliRepr::parse(&a.to_vec()), Ok(a));

        let two = PrliRepr {
            code: ElsCode::PRLI,
            pages: vec![
                PrliPage::fcp_request(initiator()),
                PrliPage {
                    type_code: 0x05,
                    flags: PrliFlags::ORIGINATOR_PA_VALID,
                    originator_pa: 0x1234_5678,
                    ..PrliPage::default()
                },
            ],
        };
        assert_eq!(two.to_vec(), PRLI_2);
        assert_eq!(PrliRepr::parse(&two.to_vec()), Ok(two));

        let o = PrliRepr::single(ElsCode::PRLO, PrliPage::fcp_logout(PrliResponseCode::NONE));
        assert_eq!(o.to_vec(), PRLO);
        assert_eq!(PrliRepr::parse(&o.to_vec()), Ok(o));
        let oa = PrliRepr::single(
            ElsCode::LS_ACC,
            PrliPage::fcp_logout(PrliResponseCode::REQUEST_EXECUTED),
        );
        assert_eq!(oa.to_vec(), PRLO_ACC);
        assert_eq!(PrliRepr::parse(&oa.to_vec()), Ok(oa));
    }

    #[test]
    fn test_fcp_bits() {
        // FCP-4 Table 19: bit 0 write XFER_RDY disabled ... bit 9 task retry identification.
        assert_eq!(FcpServiceParams::WRITE_XFER_RDY_DISABLED.bits(), 0x001);
        assert_eq!(FcpServiceParams::READ_XFER_RDY_DISABLED.bits(), 0x002);
        assert_eq!(FcpServiceParams::TARGET_FUNCTION.bits(), 0x010);
        assert_eq!(FcpServiceParams::INITIATOR_FUNCTION.bits(), 0x020);
        assert_eq!(FcpServiceParams::DATA_OVERLAY.bits(), 0x040);
        assert_eq!(FcpServiceParams::CONFIRMED_COMPLETION.bits(), 0x080);
        assert_eq!(FcpServiceParams::RETRY.bits(), 0x100);
        assert_eq!(FcpServiceParams::TASK_RETRY_ID.bits(), 0x200);
        // Unknown bits survive a round trip.
        let mut b = PRLI;
        b[17] = 0x04;
        let p = PrliRepr::parse(&b).unwrap();
        assert_eq!(p.pages[0].service_params.bits(), 0x0004_0022);
        assert_eq!(p.to_vec(), b);
    }

    #[test]
    fn test_display() {
        assert_eq!(
            PrliRepr::parse(&PRLI).unwrap().to_string(),
            "PRLI FCP eip initiator,rd-xfer-rdy-dis"
        );
        assert_eq!(
            PrliRepr::parse(&PRLI_ACC).unwrap().to_string(),
            "LS_ACC FCP eip response=request executed (1) target,rd-xfer-rdy-dis"
        );
        assert_eq!(
            PrliRepr::parse(&PRLI_2).unwrap().to_string(),
            "PRLI FCP eip initiator,rd-xfer-rdy-dis; type=0x05 opa=0x12345678 params=0x00000000"
        );
        assert_eq!(PrliRepr::parse(&PRLO).unwrap().to_string(), "PRLO FCP none");
        assert_eq!(
            FcpServiceParams::from_bits_retain(0x8000_0001).to_string(),
            "wr-xfer-rdy-dis,0x80000000"
        );
        assert_eq!(PrliResponseCode(0xC).to_string(), "12");
    }

    #[test]
    fn test_bad_page_length() {
        let mut b = PRLI;
        b[1] = 0x14;
        assert_eq!(
            PrliRepr::parse(&b),
            Err(ElsError::BadPageLength {
                els: ElsCode::PRLI,
                expected: 16,
                actual: 0x14
            })
        );
    }

    #[test]
    fn test_bad_payload_length() {
        // Not 4 + 16n.
        let mut b = PRLI;
        b[3] = 0x15;
        assert_eq!(
            PrliRepr::parse(&b),
            Err(ElsError::BadPayloadLength {
                els: ElsCode::PRLI,
                field: 0x15,
                page_len: 16,
                actual: 20
            })
        );
        // No pages.
        let b = hex!("20100004");
        assert!(matches!(
            PrliRepr::parse(&b),
            Err(ElsError::BadPayloadLength { field: 4, .. })
        ));
        // Bytes beyond the payload length.
        let mut b = PRLI_2;
        b[3] = 0x14;
        assert!(matches!(
            PrliRepr::parse(&b),
            Err(ElsError::BadPayloadLength {
                field: 0x14,
                actual: 36,
                ..
            })
        ));
        // Payload length beyond the bytes present: truncated.
        let mut b = PRLI;
        b[3] = 0x24;
        assert!(matches!(
            PrliRepr::parse(&b),
            Err(ElsError::Len(LenError {
                required: 36,
                actual: 20,
                ..
            }))
        ));
    }

    #[test]
    fn test_truncated() {
        for len in 0..PRLI_2.len() {
            assert!(PrliRepr::parse(&PRLI_2[..len]).is_err(), "{len}");
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(p in arb_prli()) {
            prop_assert_eq!(PrliRepr::parse(&p.to_vec()), Ok(p));
        }

        #[test]
        fn prop_no_panic(buf in proptest::collection::vec(any::<u8>(), 0..3000)) {
            if let Ok(p) = PrliRepr::parse(&buf) {
                prop_assert_eq!(p.buffer_len(), buf.len());
                let _ = p.to_string();
            }
        }

        #[test]
        fn prop_no_panic_valid_header(
            n in 0u16..200,
            body in proptest::collection::vec(any::<u8>(), 0..3000),
        ) {
            let mut buf = vec![0x20, 0x10];
            buf.extend((4 + 16 * n).to_be_bytes());
            buf.extend(body);
            let _ = PrliRepr::parse(&buf);
        }
    }
}
