//! Proptest generators for every CDB, with each field within its width in the form generated
//! and within the rules `parse` enforces, so that emit then parse must give the value back.

use proptest::prelude::*;

use super::*;
use crate::scsi::data::ModeForm;

/// A plain READ of the given form (no flags, control zero).
pub(crate) fn read(size: CdbSize, lba: u64, blocks: u32) -> Read {
    Read {
        size,
        lba,
        blocks,
        ..Read::default()
    }
}

/// A plain WRITE of the given form (no flags, control zero).
pub(crate) fn write(size: CdbSize, lba: u64, blocks: u32) -> Write {
    Write {
        size,
        lba,
        blocks,
        ..Write::default()
    }
}

/// Any control byte.
pub(crate) fn control() -> impl Strategy<Value = Control> {
    any::<u8>().prop_map(Control::from_bits_retain)
}

fn mode_form() -> impl Strategy<Value = ModeForm> {
    prop_oneof![Just(ModeForm::Six), Just(ModeForm::Ten)]
}

pub(crate) fn test_unit_ready() -> impl Strategy<Value = TestUnitReady> {
    control().prop_map(|control| TestUnitReady { control })
}

pub(crate) fn request_sense() -> impl Strategy<Value = RequestSense> {
    (any::<bool>(), any::<u8>(), control()).prop_map(|(desc, alloc_len, control)| RequestSense {
        desc,
        alloc_len,
        control,
    })
}

pub(crate) fn inquiry() -> impl Strategy<Value = Inquiry> {
    // Page code only with EVPD.
    (any::<bool>(), any::<u8>(), any::<u16>(), control()).prop_map(
        |(evpd, page, alloc_len, control)| Inquiry {
            evpd,
            page_code: if evpd { page } else { 0 },
            alloc_len,
            control,
        },
    )
}

pub(crate) fn mode_sense() -> impl Strategy<Value = ModeSense> {
    (
        mode_form(),
        any::<bool>(),
        any::<bool>(),
        0u8..4,
        0u8..0x40,
        any::<u8>(),
        any::<u16>(),
        control(),
    )
        .prop_map(
            |(form, dbd, llbaa, pc, page_code, subpage, alloc, control)| ModeSense {
                form,
                dbd,
                llbaa: llbaa && form == ModeForm::Ten,
                pc,
                page_code,
                subpage,
                alloc_len: match form {
                    ModeForm::Six => alloc & 0xFF,
                    ModeForm::Ten => alloc,
                },
                control,
            },
        )
}

pub(crate) fn mode_select() -> impl Strategy<Value = ModeSelect> {
    (
        mode_form(),
        any::<bool>(),
        any::<bool>(),
        any::<u16>(),
        control(),
    )
        .prop_map(|(form, pf, sp, len, control)| ModeSelect {
            form,
            pf,
            sp,
            param_list_len: match form {
                ModeForm::Six => len & 0xFF,
                ModeForm::Ten => len,
            },
            control,
        })
}

pub(crate) fn report_luns() -> impl Strategy<Value = ReportLuns> {
    (any::<u8>(), ReportLuns::MIN_ALLOC_LEN..=u32::MAX, control()).prop_map(
        |(select_report, alloc_len, control)| ReportLuns {
            select_report,
            alloc_len,
            control,
        },
    )
}

pub(crate) fn read_capacity_10() -> impl Strategy<Value = ReadCapacity10> {
    // An LBA only with PMI.
    (any::<bool>(), any::<u32>(), control()).prop_map(|(pmi, lba, control)| ReadCapacity10 {
        lba: if pmi { lba } else { 0 },
        pmi,
        control,
    })
}

pub(crate) fn read_capacity_16() -> impl Strategy<Value = ReadCapacity16> {
    (any::<bool>(), any::<u64>(), any::<u32>(), control()).prop_map(
        |(pmi, lba, alloc_len, control)| ReadCapacity16 {
            lba: if pmi { lba } else { 0 },
            alloc_len,
            pmi,
            control,
        },
    )
}

/// The fields READ and WRITE share, within the widths of a random form: `(size, lba, blocks,
/// protect, dpo, fua, group, control)`.
#[allow(clippy::type_complexity)]
fn rw_fields() -> impl Strategy<Value = (CdbSize, u64, u32, u8, bool, bool, u8, Control)> {
    let six = (0u64..=0x1F_FFFF, 1u32..=256, control())
        .prop_map(|(lba, blocks, c)| (CdbSize::Six, lba, blocks, 0, false, false, 0, c));
    let flags = (0u8..8, any::<bool>(), any::<bool>(), 0u8..0x20);
    let ten = (any::<u32>(), any::<u16>(), flags.clone(), control()).prop_map(
        |(lba, blocks, (p, d, f, g), c)| (CdbSize::Ten, lba.into(), blocks.into(), p, d, f, g, c),
    );
    let twelve = (any::<u32>(), any::<u32>(), flags.clone(), control()).prop_map(
        |(lba, blocks, (p, d, f, g), c)| (CdbSize::Twelve, lba.into(), blocks, p, d, f, g, c),
    );
    let sixteen = (any::<u64>(), any::<u32>(), flags, control())
        .prop_map(|(lba, blocks, (p, d, f, g), c)| (CdbSize::Sixteen, lba, blocks, p, d, f, g, c));
    prop_oneof![six, ten, twelve, sixteen]
}

pub(crate) fn read_cdb() -> impl Strategy<Value = Read> {
    rw_fields().prop_map(
        |(size, lba, blocks, rdprotect, dpo, fua, group, control)| Read {
            size,
            lba,
            blocks,
            rdprotect,
            dpo,
            fua,
            group,
            control,
        },
    )
}

pub(crate) fn write_cdb() -> impl Strategy<Value = Write> {
    rw_fields().prop_map(
        |(size, lba, blocks, wrprotect, dpo, fua, group, control)| Write {
            size,
            lba,
            blocks,
            wrprotect,
            dpo,
            fua,
            group,
            control,
        },
    )
}

pub(crate) fn verify() -> impl Strategy<Value = Verify> {
    let size = prop_oneof![
        Just(VerifySize::Ten),
        Just(VerifySize::Twelve),
        Just(VerifySize::Sixteen)
    ];
    (
        size,
        0u8..8,
        any::<bool>(),
        0u8..4,
        any::<u64>(),
        any::<u32>(),
        0u8..0x20,
        control(),
    )
        .prop_map(
            |(size, vrprotect, dpo, bytchk, lba, blocks, group, control)| Verify {
                size,
                vrprotect,
                dpo,
                bytchk,
                lba: match size {
                    VerifySize::Sixteen => lba,
                    _ => lba & u64::from(u32::MAX),
                },
                blocks: match size {
                    VerifySize::Ten => blocks & u32::from(u16::MAX),
                    _ => blocks,
                },
                group,
                control,
            },
        )
}

pub(crate) fn synchronize_cache() -> impl Strategy<Value = SynchronizeCache> {
    let size = prop_oneof![Just(SyncCacheSize::Ten), Just(SyncCacheSize::Sixteen)];
    (
        size,
        any::<bool>(),
        any::<u64>(),
        any::<u32>(),
        0u8..0x20,
        control(),
    )
        .prop_map(|(size, immed, lba, blocks, group, control)| {
            let ten = size == SyncCacheSize::Ten;
            SynchronizeCache {
                size,
                immed,
                lba: if ten { lba & u64::from(u32::MAX) } else { lba },
                blocks: if ten {
                    blocks & u32::from(u16::MAX)
                } else {
                    blocks
                },
                group,
                control,
            }
        })
}

pub(crate) fn write_same_16() -> impl Strategy<Value = WriteSame16> {
    (
        0u8..8,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
        any::<u32>(),
        0u8..0x20,
        control(),
    )
        .prop_map(
            |(wrprotect, anchor, unmap, ndob, lba, blocks, group, control)| WriteSame16 {
                wrprotect,
                // ANCHOR only with UNMAP.
                anchor: anchor && unmap,
                unmap,
                ndob,
                lba,
                blocks,
                group,
                control,
            },
        )
}

pub(crate) fn unmap() -> impl Strategy<Value = Unmap> {
    (any::<bool>(), 0u8..0x20, any::<u16>(), control()).prop_map(
        |(anchor, group, param_list_len, control)| Unmap {
            anchor,
            group,
            param_list_len,
            control,
        },
    )
}

pub(crate) fn read_block_limits() -> impl Strategy<Value = ReadBlockLimits> {
    (any::<bool>(), control()).prop_map(|(mloc, control)| ReadBlockLimits { mloc, control })
}

/// Any CDB this module types.
pub(crate) fn any_cdb() -> impl Strategy<Value = Cdb> {
    prop_oneof![
        test_unit_ready().prop_map(Cdb::from),
        request_sense().prop_map(Cdb::from),
        inquiry().prop_map(Cdb::from),
        mode_sense().prop_map(Cdb::from),
        mode_select().prop_map(Cdb::from),
        report_luns().prop_map(Cdb::from),
        read_capacity_10().prop_map(Cdb::from),
        read_capacity_16().prop_map(Cdb::from),
        read_cdb().prop_map(Cdb::from),
        write_cdb().prop_map(Cdb::from),
        verify().prop_map(Cdb::from),
        synchronize_cache().prop_map(Cdb::from),
        write_same_16().prop_map(Cdb::from),
        unmap().prop_map(Cdb::from),
        read_block_limits().prop_map(Cdb::from),
    ]
}
