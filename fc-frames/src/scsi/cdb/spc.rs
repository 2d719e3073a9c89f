//! The primary commands (SPC-4 §6) every logical unit answers: TEST UNIT READY, REQUEST SENSE,
//! INQUIRY, MODE SENSE(6)/(10), MODE SELECT(6)/(10), REPORT LUNS.

use core::fmt;

use super::{expect_opcode, fixed, flag, out, show_control, CdbError, Control, OperationCode};
use crate::scsi::data::ModeForm;
use crate::wire::{be16, be32, put_be16, put_be32};

/// TEST UNIT READY (SPC-4 §6.47): is the logical unit ready for medium access?
///
/// ```text
///  0 0x00 | 1-4 reserved | 5 CONTROL
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TestUnitReady {
    /// CONTROL.
    pub control: Control,
}

impl TestUnitReady {
    /// Bytes of the CDB.
    pub const LEN: usize = 6;

    /// Parses the CDB at the front of `buf` (longer buffers are fine).
    pub fn parse(buf: &[u8]) -> Result<TestUnitReady, CdbError> {
        expect_opcode(buf, &[OperationCode::TEST_UNIT_READY])?;
        let b = fixed::<6>(buf)?;
        Ok(TestUnitReady {
            control: Control::from_bits_retain(b[5]),
        })
    }

    /// TEST UNIT READY.
    pub const fn opcode(&self) -> OperationCode {
        OperationCode::TEST_UNIT_READY
    }

    /// Bytes of the CDB: 6.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the CDB into `buf[..6]`; panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = out::<6>(buf);
        b[0] = self.opcode().0;
        b[5] = self.control.bits();
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `TEST UNIT READY`.
impl fmt::Display for TestUnitReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TEST UNIT READY")?;
        show_control(f, self.control)
    }
}

/// REQUEST SENSE (SPC-4 §6.39): return the sense data of the last command, or the current
/// state.
///
/// ```text
///  0 0x03 | 1 bit 0 DESC | 2-3 reserved | 4 ALLOCATION LENGTH | 5 CONTROL
/// ```
///
/// DESC asks for descriptor-format sense; a device server that cannot return it rejects the
/// command (SPC-4 §6.39) — the engine's decision, so it is data here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RequestSense {
    /// DESC: descriptor-format sense data wanted.
    pub desc: bool,
    /// ALLOCATION LENGTH.
    pub alloc_len: u8,
    /// CONTROL.
    pub control: Control,
}

impl RequestSense {
    /// Bytes of the CDB.
    pub const LEN: usize = 6;

    /// REQUEST SENSE for fixed-format sense, `alloc_len` bytes at most.
    pub const fn new(alloc_len: u8) -> RequestSense {
        RequestSense {
            desc: false,
            alloc_len,
            control: Control::empty(),
        }
    }

    /// Parses the CDB at the front of `buf` (longer buffers are fine).
    pub fn parse(buf: &[u8]) -> Result<RequestSense, CdbError> {
        expect_opcode(buf, &[OperationCode::REQUEST_SENSE])?;
        let b = fixed::<6>(buf)?;
        Ok(RequestSense {
            desc: b[1] & 0x01 != 0,
            alloc_len: b[4],
            control: Control::from_bits_retain(b[5]),
        })
    }

    /// REQUEST SENSE.
    pub const fn opcode(&self) -> OperationCode {
        OperationCode::REQUEST_SENSE
    }

    /// Bytes of the CDB: 6.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the CDB into `buf[..6]`; panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = out::<6>(buf);
        b[0] = self.opcode().0;
        b[1] = u8::from(self.desc);
        b[4] = self.alloc_len;
        b[5] = self.control.bits();
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `REQUEST SENSE alloc=252 desc`.
impl fmt::Display for RequestSense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "REQUEST SENSE alloc={}", self.alloc_len)?;
        flag(f, self.desc, "desc")?;
        show_control(f, self.control)
    }
}

/// INQUIRY (SPC-4 §6.6): standard INQUIRY data, or a vital product data page.
///
/// ```text
///  0 0x12 | 1 bit 1 obsolete (CMDDT), bit 0 EVPD | 2 PAGE CODE | 3-4 ALLOCATION LENGTH | 5 CONTROL
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Inquiry {
    /// EVPD: return the vital product data page `page_code`, not the standard data.
    pub evpd: bool,
    /// PAGE CODE: the VPD page; zero when `evpd` is clear (enforced by `parse`).
    pub page_code: u8,
    /// ALLOCATION LENGTH.
    pub alloc_len: u16,
    /// CONTROL.
    pub control: Control,
}

impl Inquiry {
    /// Bytes of the CDB.
    pub const LEN: usize = 6;

    /// INQUIRY for the standard data.
    pub const fn standard(alloc_len: u16) -> Inquiry {
        Inquiry {
            evpd: false,
            page_code: 0,
            alloc_len,
            control: Control::empty(),
        }
    }

    /// INQUIRY for VPD page `page_code`.
    pub const fn vpd(page_code: u8, alloc_len: u16) -> Inquiry {
        Inquiry {
            evpd: true,
            page_code,
            alloc_len,
            control: Control::empty(),
        }
    }

    /// Parses the CDB at the front of `buf` (longer buffers are fine).
    pub fn parse(buf: &[u8]) -> Result<Inquiry, CdbError> {
        expect_opcode(buf, &[OperationCode::INQUIRY])?;
        let b = fixed::<6>(buf)?;
        // SPC-2 §7.3 (INQUIRY): a device server that does not return command support data terminates
        // an INQUIRY with CMDDT set with INVALID FIELD IN CDB. SPC-3 made the bit obsolete;
        // SCST and Linux scsi_debug still reject it, pointing at byte 1 bit 1.
        if b[1] & 0x02 != 0 {
            return Err(CdbError::InvalidField {
                byte: 1,
                bit: Some(1),
                what: "CMDDT (command support data) is not supported",
            });
        }
        let inquiry = Inquiry {
            evpd: b[1] & 0x01 != 0,
            page_code: b[2],
            alloc_len: be16(b, 3),
            control: Control::from_bits_retain(b[5]),
        };
        // SPC-4 §6.6.1: if EVPD is zero and PAGE CODE is not, the device server shall
        // terminate the command with INVALID FIELD IN CDB (libiscsi Inquiry.EVPD checks it).
        if !inquiry.evpd && inquiry.page_code != 0 {
            return Err(CdbError::InvalidField {
                byte: 2,
                bit: None,
                what: "PAGE CODE set with EVPD zero",
            });
        }
        Ok(inquiry)
    }

    /// INQUIRY.
    pub const fn opcode(&self) -> OperationCode {
        OperationCode::INQUIRY
    }

    /// Bytes of the CDB: 6.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the CDB into `buf[..6]`; panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = out::<6>(buf);
        b[0] = self.opcode().0;
        b[1] = u8::from(self.evpd);
        b[2] = self.page_code;
        put_be16(b, 3, self.alloc_len);
        b[5] = self.control.bits();
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `INQUIRY alloc=96`, `INQUIRY vpd=0x83 alloc=255`.
impl fmt::Display for Inquiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("INQUIRY")?;
        if self.evpd {
            write!(f, " vpd={:#04x}", self.page_code)?;
        } else if self.page_code != 0 {
            // Only a hand-built value gets here: parse rejects it.
            write!(f, " page={:#04x}", self.page_code)?;
        }
        write!(f, " alloc={}", self.alloc_len)?;
        show_control(f, self.control)
    }
}

/// MODE SENSE(6) and MODE SENSE(10) (SPC-4 §6.11, §6.12): read mode pages.
///
/// ```text
///  (6)  0 0x1A | 1 bit 3 DBD | 2 PC (7-6), PAGE CODE (5-0) | 3 SUBPAGE CODE
///       | 4 ALLOCATION LENGTH | 5 CONTROL
///  (10) 0 0x5A | 1 bit 4 LLBAA, bit 3 DBD | 2 PC, PAGE CODE | 3 SUBPAGE CODE | 4-6 reserved
///       | 7-8 ALLOCATION LENGTH | 9 CONTROL
/// ```
///
/// Page control 3 (saved values) without saving support, and pages the logical unit does not
/// have, are the engine's to reject (INVALID FIELD IN CDB, or SAVING PARAMETERS NOT SUPPORTED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ModeSense {
    /// Which CDB: MODE SENSE(6) or MODE SENSE(10) (and so which mode parameter header).
    pub form: ModeForm,
    /// DBD: disable block descriptors.
    pub dbd: bool,
    /// LLBAA: long LBA block descriptors accepted (MODE SENSE(10) only).
    pub llbaa: bool,
    /// PC, page control (2 bits): 0 current, 1 changeable, 2 default, 3 saved values.
    pub pc: u8,
    /// PAGE CODE (6 bits); 0x3F asks for all pages.
    pub page_code: u8,
    /// SUBPAGE CODE; 0xFF with page 0x3F asks for all subpages.
    pub subpage: u8,
    /// ALLOCATION LENGTH (8 bits in MODE SENSE(6)).
    pub alloc_len: u16,
    /// CONTROL.
    pub control: Control,
}

impl ModeSense {
    /// MODE SENSE of the current values of `page_code` (0x3F: all pages), block descriptors
    /// included.
    pub const fn current(form: ModeForm, page_code: u8, alloc_len: u16) -> ModeSense {
        ModeSense {
            form,
            dbd: false,
            llbaa: false,
            pc: 0,
            page_code,
            subpage: 0,
            alloc_len,
            control: Control::empty(),
        }
    }

    /// Whether every field fits its form: `pc` in 2 bits, `page_code` in 6, and for MODE
    /// SENSE(6) `alloc_len` in 8 bits and `llbaa` clear. `emit` cuts what does not fit.
    pub const fn fits(&self) -> bool {
        let six_ok = match self.form {
            ModeForm::Six => self.alloc_len <= 0xFF && !self.llbaa,
            ModeForm::Ten => true,
        };
        self.pc <= 3 && self.page_code <= 0x3F && six_ok
    }

    /// Parses a MODE SENSE(6) or (10) CDB at the front of `buf` (longer buffers are fine).
    pub fn parse(buf: &[u8]) -> Result<ModeSense, CdbError> {
        let op = expect_opcode(
            buf,
            &[OperationCode::MODE_SENSE_6, OperationCode::MODE_SENSE_10],
        )?;
        Ok(if op == OperationCode::MODE_SENSE_6 {
            let b = fixed::<6>(buf)?;
            ModeSense {
                form: ModeForm::Six,
                dbd: b[1] & 0x08 != 0,
                llbaa: false,
                pc: b[2] >> 6,
                page_code: b[2] & 0x3F,
                subpage: b[3],
                alloc_len: b[4].into(),
                control: Control::from_bits_retain(b[5]),
            }
        } else {
            let b = fixed::<10>(buf)?;
            ModeSense {
                form: ModeForm::Ten,
                dbd: b[1] & 0x08 != 0,
                llbaa: b[1] & 0x10 != 0,
                pc: b[2] >> 6,
                page_code: b[2] & 0x3F,
                subpage: b[3],
                alloc_len: be16(b, 7),
                control: Control::from_bits_retain(b[9]),
            }
        })
    }

    /// MODE SENSE(6) or MODE SENSE(10).
    pub const fn opcode(&self) -> OperationCode {
        match self.form {
            ModeForm::Six => OperationCode::MODE_SENSE_6,
            ModeForm::Ten => OperationCode::MODE_SENSE_10,
        }
    }

    /// Bytes of the CDB: 6 or 10.
    pub const fn buffer_len(&self) -> usize {
        match self.form {
            ModeForm::Six => 6,
            ModeForm::Ten => 10,
        }
    }

    /// Writes the CDB into `buf[..self.buffer_len()]`; panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let page = (self.pc & 0x03) << 6 | (self.page_code & 0x3F);
        let dbd = if self.dbd { 0x08 } else { 0 };
        match self.form {
            ModeForm::Six => {
                let b = out::<6>(buf);
                b[0] = self.opcode().0;
                b[1] = dbd;
                b[2] = page;
                b[3] = self.subpage;
                b[4] = self.alloc_len as u8;
                b[5] = self.control.bits();
            }
            ModeForm::Ten => {
                let b = out::<10>(buf);
                b[0] = self.opcode().0;
                b[1] = dbd | if self.llbaa { 0x10 } else { 0 };
                b[2] = page;
                b[3] = self.subpage;
                put_be16(b, 7, self.alloc_len);
                b[9] = self.control.bits();
            }
        }
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `MODE SENSE(6) page=0x3f pc=0 alloc=255 dbd`; a subpage shows as `page=0x08/0xff`.
impl fmt::Display for ModeSense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} page={:#04x}", self.opcode(), self.page_code)?;
        if self.subpage != 0 {
            write!(f, "/{:#04x}", self.subpage)?;
        }
        write!(f, " pc={} alloc={}", self.pc, self.alloc_len)?;
        flag(f, self.dbd, "dbd")?;
        flag(f, self.llbaa, "llbaa")?;
        show_control(f, self.control)
    }
}

/// MODE SELECT(6) and MODE SELECT(10) (SPC-4 §6.9, §6.10): set mode pages from the parameter
/// list that follows as data out.
///
/// ```text
///  (6)  0 0x15 | 1 bit 4 PF, bit 0 SP | 2-3 reserved | 4 PARAMETER LIST LENGTH | 5 CONTROL
///  (10) 0 0x55 | 1 bit 4 PF, bit 0 SP | 2-6 reserved | 7-8 PARAMETER LIST LENGTH | 9 CONTROL
/// ```
///
/// SP without saving support is the engine's to reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ModeSelect {
    /// Which CDB: MODE SELECT(6) or MODE SELECT(10).
    pub form: ModeForm,
    /// PF: the pages follow the page format of SPC-4.
    pub pf: bool,
    /// SP: save the pages.
    pub sp: bool,
    /// PARAMETER LIST LENGTH (8 bits in MODE SELECT(6)).
    pub param_list_len: u16,
    /// CONTROL.
    pub control: Control,
}

impl ModeSelect {
    /// Whether every field fits its form: for MODE SELECT(6), `param_list_len` in 8 bits.
    pub const fn fits(&self) -> bool {
        match self.form {
            ModeForm::Six => self.param_list_len <= 0xFF,
            ModeForm::Ten => true,
        }
    }

    /// Parses a MODE SELECT(6) or (10) CDB at the front of `buf` (longer buffers are fine).
    pub fn parse(buf: &[u8]) -> Result<ModeSelect, CdbError> {
        let op = expect_opcode(
            buf,
            &[OperationCode::MODE_SELECT_6, OperationCode::MODE_SELECT_10],
        )?;
        Ok(if op == OperationCode::MODE_SELECT_6 {
            let b = fixed::<6>(buf)?;
            ModeSelect {
                form: ModeForm::Six,
                pf: b[1] & 0x10 != 0,
                sp: b[1] & 0x01 != 0,
                param_list_len: b[4].into(),
                control: Control::from_bits_retain(b[5]),
            }
        } else {
            let b = fixed::<10>(buf)?;
            ModeSelect {
                form: ModeForm::Ten,
                pf: b[1] & 0x10 != 0,
                sp: b[1] & 0x01 != 0,
                param_list_len: be16(b, 7),
                control: Control::from_bits_retain(b[9]),
            }
        })
    }

    /// MODE SELECT(6) or MODE SELECT(10).
    pub const fn opcode(&self) -> OperationCode {
        match self.form {
            ModeForm::Six => OperationCode::MODE_SELECT_6,
            ModeForm::Ten => OperationCode::MODE_SELECT_10,
        }
    }

    /// Bytes of the CDB: 6 or 10.
    pub const fn buffer_len(&self) -> usize {
        match self.form {
            ModeForm::Six => 6,
            ModeForm::Ten => 10,
        }
    }

    /// Writes the CDB into `buf[..self.buffer_len()]`; panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let flags = if self.pf { 0x10 } else { 0 } | u8::from(self.sp);
        match self.form {
            ModeForm::Six => {
                let b = out::<6>(buf);
                b[0] = self.opcode().0;
                b[1] = flags;
                b[4] = self.param_list_len as u8;
                b[5] = self.control.bits();
            }
            ModeForm::Ten => {
                let b = out::<10>(buf);
                b[0] = self.opcode().0;
                b[1] = flags;
                put_be16(b, 7, self.param_list_len);
                b[9] = self.control.bits();
            }
        }
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `MODE SELECT(6) param_len=24 pf sp`.
impl fmt::Display for ModeSelect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} param_len={}", self.opcode(), self.param_list_len)?;
        flag(f, self.pf, "pf")?;
        flag(f, self.sp, "sp")?;
        show_control(f, self.control)
    }
}

/// REPORT LUNS (SPC-4 §6.33): the logical unit inventory.
///
/// ```text
///  0 0xA0 | 1 reserved | 2 SELECT REPORT | 3-5 reserved | 6-9 ALLOCATION LENGTH
///  | 10 reserved | 11 CONTROL
/// ```
///
/// SELECT REPORT values the target does not support are the engine's to reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportLuns {
    /// SELECT REPORT: 0x00 logical units, 0x01 well-known logical units, 0x02 both (SPC-4
    /// §6.33 Table 199; later revisions add 0x10-0x12).
    pub select_report: u8,
    /// ALLOCATION LENGTH: at least 16 (enforced by `parse`).
    pub alloc_len: u32,
    /// CONTROL.
    pub control: Control,
}

impl ReportLuns {
    /// Bytes of the CDB.
    pub const LEN: usize = 12;
    /// The smallest allocation length a device server accepts (SPC-4 §6.33).
    pub const MIN_ALLOC_LEN: u32 = 16;

    /// REPORT LUNS of all logical units (SELECT REPORT 0).
    pub const fn new(alloc_len: u32) -> ReportLuns {
        ReportLuns {
            select_report: 0,
            alloc_len,
            control: Control::empty(),
        }
    }

    /// Parses the CDB at the front of `buf` (longer buffers are fine).
    pub fn parse(buf: &[u8]) -> Result<ReportLuns, CdbError> {
        expect_opcode(buf, &[OperationCode::REPORT_LUNS])?;
        let b = fixed::<12>(buf)?;
        let rl = ReportLuns {
            select_report: b[2],
            alloc_len: be32(b, 6),
            control: Control::from_bits_retain(b[11]),
        };
        // SPC-4 §6.33 (a SHALL in SPC-3, kept by SPC-4 for SPC-compliant device servers): an
        // ALLOCATION LENGTH under 16 is terminated with INVALID FIELD IN CDB.
        if rl.alloc_len < Self::MIN_ALLOC_LEN {
            return Err(CdbError::InvalidField {
                byte: 6,
                bit: None,
                what: "ALLOCATION LENGTH under 16",
            });
        }
        Ok(rl)
    }

    /// REPORT LUNS.
    pub const fn opcode(&self) -> OperationCode {
        OperationCode::REPORT_LUNS
    }

    /// Bytes of the CDB: 12.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the CDB into `buf[..12]`; panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = out::<12>(buf);
        b[0] = self.opcode().0;
        b[2] = self.select_report;
        put_be32(b, 6, self.alloc_len);
        b[11] = self.control.bits();
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// An allocation length of 16 (room for the header and one LUN), so that the default value
/// is one `parse` accepts.
impl Default for ReportLuns {
    fn default() -> ReportLuns {
        ReportLuns::new(Self::MIN_ALLOC_LEN)
    }
}

/// `REPORT LUNS select=0 alloc=4096`.
impl fmt::Display for ReportLuns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "REPORT LUNS select={} alloc={}",
            self.select_report, self.alloc_len
        )?;
        show_control(f, self.control)
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;

    use super::*;
    use crate::scsi::cdb::Cdb;

    #[test]
    fn test_inquiry_page_code_without_evpd() {
        // libiscsi Inquiry.EVPD: EVPD 0 with page code 1.
        let e = Cdb::parse(&hex!("12 00 01 01 00 00")).unwrap_err();
        assert_eq!(
            e,
            CdbError::InvalidField {
                byte: 2,
                bit: None,
                what: "PAGE CODE set with EVPD zero"
            }
        );
        assert_eq!(Inquiry::parse(&hex!("12 00 83 00 ff 00")), Err(e));
        // With EVPD the same page is fine.
        assert_eq!(
            Inquiry::parse(&hex!("12 01 01 01 00 00")),
            Ok(Inquiry::vpd(1, 256))
        );
    }

    #[test]
    fn test_inquiry_cmddt() {
        let e = Cdb::parse(&hex!("12 02 00 00 ff 00")).unwrap_err();
        assert!(matches!(
            e,
            CdbError::InvalidField {
                byte: 1,
                bit: Some(1),
                ..
            }
        ));
        // CMDDT is reported before the page code.
        assert_eq!(Inquiry::parse(&hex!("12 03 12 00 ff 00")), Err(e));
    }

    #[test]
    fn test_inquiry_reserved_bits_ignored() {
        assert_eq!(
            Inquiry::parse(&hex!("12 fd 80 00 ff 00")),
            Ok(Inquiry::vpd(0x80, 255))
        );
    }

    #[test]
    fn test_report_luns_alloc_len() {
        for alloc in 0..16u8 {
            let bytes = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0, alloc, 0, 0];
            assert_eq!(
                ReportLuns::parse(&bytes),
                Err(CdbError::InvalidField {
                    byte: 6,
                    bit: None,
                    what: "ALLOCATION LENGTH under 16"
                }),
                "alloc {alloc}"
            );
        }
        let ok = hex!("a0 00 00 00 00 00 00 00 00 10 00 00");
        assert_eq!(ReportLuns::parse(&ok), Ok(ReportLuns::default()));
        assert_eq!(ReportLuns::default().to_vec(), ok);
        // A large length in the high byte is not under 16.
        let big = hex!("a0 00 00 00 00 00 01 00 00 00 00 00");
        assert_eq!(ReportLuns::parse(&big).unwrap().alloc_len, 1 << 24);
    }

    #[test]
    fn test_report_luns_select_report_is_data() {
        let rl = ReportLuns::parse(&hex!("a0 00 ff 00 00 00 00 00 01 00 00 00")).unwrap();
        assert_eq!(rl.select_report, 0xFF);
        assert_eq!(rl.to_string(), "REPORT LUNS select=255 alloc=256");
    }

    #[test]
    fn test_mode_sense_page_control_saved_is_data() {
        // PC 3 (saved values) parses; whether saving is supported is the engine's question.
        let ms = ModeSense::parse(&hex!("1a 00 ff 00 c0 00")).unwrap();
        assert_eq!(ms.pc, 3);
        assert_eq!(ms.page_code, 0x3F);
        assert_eq!(ms.alloc_len, 192);
        assert_eq!(ms.to_vec(), hex!("1a 00 ff 00 c0 00"));
    }

    #[test]
    fn test_mode_sense_six_ignores_llbaa_bit() {
        // Bit 4 of byte 1 is reserved in MODE SENSE(6).
        let ms = ModeSense::parse(&hex!("1a 10 3f 00 ff 00")).unwrap();
        assert!(!ms.llbaa);
        assert_eq!(ms, ModeSense::current(ModeForm::Six, 0x3F, 255));
    }

    #[test]
    fn test_fits() {
        assert!(ModeSense::current(ModeForm::Six, 0x3F, 255).fits());
        assert!(!ModeSense::current(ModeForm::Six, 0x3F, 256).fits());
        assert!(ModeSense::current(ModeForm::Ten, 0x3F, 256).fits());
        assert!(!ModeSense::current(ModeForm::Ten, 0x40, 256).fits());
        assert!(!ModeSense {
            pc: 4,
            ..ModeSense::default()
        }
        .fits());
        assert!(!ModeSense {
            llbaa: true,
            ..ModeSense::default()
        }
        .fits());
        let sel = ModeSelect {
            form: ModeForm::Six,
            param_list_len: 256,
            ..ModeSelect::default()
        };
        assert!(!sel.fits());
        assert!(ModeSelect {
            form: ModeForm::Ten,
            ..sel
        }
        .fits());
    }

    #[test]
    fn test_request_sense_new() {
        assert_eq!(RequestSense::new(18).to_vec(), hex!("03 00 00 00 12 00"));
    }
}
