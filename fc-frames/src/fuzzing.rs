//! Fuzzing oracles, shared by the cargo-fuzz targets in `fuzz/` and by the test that replays
//! their checked-in corpora. Each function takes arbitrary bytes, parses them with every decoder
//! of its layer, and for whatever parses checks that emitting it and parsing the result gives
//! the same value. A panic here is a finding: either a decoder panicked on hostile input, or a
//! repr does not survive its own encoding.

use bytes::{Bytes, BytesMut};

use crate::bls::Bls;
use crate::ct::ns::{NsRequest, NsResponse};
use crate::ct::CtCommand;
use crate::els::{ElsCode, ElsReply, ElsRequest};
use crate::encap::{
    emit_encapsulated, encapsulable, encapsulate_len, encapsulate_parts, parse_delimiters,
    parse_encapsulated, EncapHeader, EncapHeaderRepr, Gather, PFlags, HEADER_LEN,
};
use crate::fcp::{FcpCmndRepr, FcpRspRepr, FcpXferRdyRepr};
use crate::frame::{Eof, FcFrame, Sof};
use crate::scsi::cdb::Cdb;
use crate::scsi::data::{
    InquiryData, ModeForm, ModeParameters, ReadBlockLimitsData, ReadCapacity10Data,
    ReadCapacity16Data, ReportLunsData, UnmapParameterList, Vpd,
};
use crate::scsi::Sense;

/// Parses with `parse`; if that succeeds, requires the encoding to be a fixed point: `emit` of
/// the value parses again, re-emits to the same bytes, and parses to the same value. (Lenient
/// decoders may normalise what they read, e.g. a truncated REPORT LUNS list or short sense data,
/// so the first value need not equal the second; everything after that must be stable.)
fn round_trip<T, E>(
    what: &str,
    parse: impl Fn(&[u8]) -> Result<T, E>,
    emit: impl Fn(&T) -> Vec<u8>,
    data: &[u8],
) where
    T: PartialEq,
    E: core::fmt::Display,
{
    let Ok(v1) = parse(data) else { return };
    let b1 = emit(&v1);
    let v2 = match parse(&b1) {
        Ok(v) => v,
        Err(e) => panic!("{what}: own encoding {b1:02x?} does not parse: {e}"),
    };
    let b2 = emit(&v2);
    assert!(
        b1 == b2,
        "{what}: encoding not stable: {b1:02x?} then {b2:02x?}"
    );
    assert!(
        parse(&b2).ok().as_ref() == Some(&v2),
        "{what}: value changed through emit/parse of {b2:02x?}"
    );
}

/// Frames: delimited (pcap link type 225) and bare (header through CRC).
pub fn frame(data: &[u8]) {
    let delimited = |b: &[u8]| FcFrame::parse_delimited(Bytes::copy_from_slice(b));
    round_trip(
        "delimited frame",
        delimited,
        FcFrame::to_delimited_vec,
        data,
    );
    let bare = |b: &[u8]| FcFrame::parse(Sof::I3, Bytes::copy_from_slice(b), Eof::T);
    round_trip("frame", bare, FcFrame::to_vec, data);
}

/// Request codes whose replies `ElsReply::parse` decodes differently.
const ELS_REQUESTS: [ElsCode; 10] = [
    ElsCode::FLOGI,
    ElsCode::FDISC,
    ElsCode::PLOGI,
    ElsCode::PRLI,
    ElsCode::PRLO,
    ElsCode::LOGO,
    ElsCode::ECHO,
    ElsCode::LKA,
    ElsCode::RSCN,
    ElsCode::RNID,
];

/// ELS requests, ELS replies to each kind of request, and BLS payloads.
pub fn els(data: &[u8]) {
    round_trip("ELS request", ElsRequest::parse, ElsRequest::to_vec, data);
    for code in ELS_REQUESTS {
        let parse = |b: &[u8]| ElsReply::parse(code, b);
        round_trip("ELS reply", parse, ElsReply::to_vec, data);
    }
    for r_ctl in [0x81, 0x84, 0x85] {
        let parse = |b: &[u8]| Bls::parse(r_ctl, b);
        round_trip("BLS", parse, Bls::to_vec, data);
    }
}

/// Name server requests, and responses to each kind of request.
pub fn ct(data: &[u8]) {
    round_trip("NS request", NsRequest::parse, NsRequest::to_vec, data);
    for cmd in [
        CtCommand::GID_FT,
        CtCommand::GPN_ID,
        CtCommand::GNN_ID,
        CtCommand::GFF_ID,
        CtCommand::GID_PN,
        CtCommand::GA_NXT,
        CtCommand::RFT_ID,
        CtCommand::RSPN_ID,
    ] {
        let parse = |b: &[u8]| NsResponse::parse(cmd, b);
        round_trip("NS response", parse, NsResponse::to_vec, data);
    }
}

/// FCP information units, sense data and SCSI parameter data.
pub fn fcp(data: &[u8]) {
    round_trip("FCP_CMND", FcpCmndRepr::parse, FcpCmndRepr::to_vec, data);
    round_trip(
        "FCP_XFER_RDY",
        FcpXferRdyRepr::parse,
        FcpXferRdyRepr::to_vec,
        data,
    );
    round_trip("FCP_RSP", FcpRspRepr::parse, FcpRspRepr::to_vec, data);
    round_trip("sense", Sense::parse, Sense::to_vec, data);
    round_trip(
        "INQUIRY data",
        InquiryData::parse,
        InquiryData::to_vec,
        data,
    );
    round_trip("VPD page", Vpd::parse, Vpd::to_vec, data);
    round_trip(
        "READ CAPACITY(10) data",
        ReadCapacity10Data::parse,
        ReadCapacity10Data::to_vec,
        data,
    );
    round_trip(
        "READ CAPACITY(16) data",
        ReadCapacity16Data::parse,
        ReadCapacity16Data::to_vec,
        data,
    );
    round_trip(
        "REPORT LUNS data",
        ReportLunsData::parse,
        ReportLunsData::to_vec,
        data,
    );
    round_trip(
        "READ BLOCK LIMITS data",
        ReadBlockLimitsData::parse,
        ReadBlockLimitsData::to_vec,
        data,
    );
    round_trip(
        "UNMAP list",
        UnmapParameterList::parse,
        UnmapParameterList::to_vec,
        data,
    );
    for form in [ModeForm::Six, ModeForm::Ten] {
        let parse = |b: &[u8]| ModeParameters::parse(b, form);
        round_trip("mode parameters", parse, ModeParameters::to_vec, data);
    }
}

/// CDBs.
pub fn cdb(data: &[u8]) {
    round_trip("CDB", Cdb::parse, Cdb::to_vec, data);
}

/// The encapsulation of RFC 3643 §3 as FCIP uses it: the header alone, and whole encapsulated
/// frames.
///
/// The header must survive emit exactly: the same value, and the same 28 bytes but for the CRC
/// field when CRCV is set (the one thing the decoder ignores). A whole frame that parses must
/// be as long as its Frame Length, carry valid delimiters, and, when its FC frame decodes,
/// come out of [`emit_encapsulated`] (and, byte for byte the same, of [`encapsulate_parts`]
/// and [`Gather`]) as an FCIP header with its time stamp in front of the same SOF word, FC
/// frame and EOF word, which parse again to the same frame.
pub fn encap(data: &[u8]) {
    encap_header(data);
    encap_frame(data);
}

fn encap_header(data: &[u8]) {
    let Ok(view) = EncapHeader::new_checked(data) else {
        return;
    };
    let Ok(h) = EncapHeaderRepr::parse(&view) else {
        return;
    };
    let b = h.to_bytes();
    let again = EncapHeader::new_checked(&b[..]).map(|v| EncapHeaderRepr::parse(&v));
    assert!(
        again == Ok(Ok(h)),
        "encapsulation header {h:?}: own encoding {b:02x?} parses as {again:?}"
    );
    // Everything but the CRC field is in the repr; the CRC field too when CRCV is clear (it
    // must be zero then).
    let kept = if h.crcv { HEADER_LEN - 4 } else { HEADER_LEN };
    assert!(
        b.get(..kept) == data.get(..kept),
        "encapsulation header {h:?}: emitted {b:02x?}, received {:02x?}",
        data.get(..HEADER_LEN)
    );
}

fn encap_frame(data: &[u8]) {
    let Ok((h, inner)) = parse_encapsulated(Bytes::copy_from_slice(data)) else {
        return;
    };
    assert_eq!(h.total_len(), data.len(), "{h}: Frame Length");
    assert!(
        !h.flags.contains(PFlags::SPECIAL_FRAME),
        "{h}: a Special Frame"
    );
    let delimiters = parse_delimiters(data);
    let Ok(f) = inner else { return };
    assert_eq!(delimiters, Ok((f.sof, f.eof)), "{f}: delimiters");
    assert!(encapsulable(&f), "{f}: parsed but not encapsulable");
    assert_eq!(encapsulate_len(&f), data.len(), "{f}: encapsulated length");

    // A frame is re-emitted with zero fill bytes: byte for byte as received only when its fill
    // bytes were zero (and then from the CRC it was received with).
    let fill_at = data.len() - 4 - crate::frame::CRC_LEN - f.fill_len();
    let fill_is_zero = data
        .get(fill_at..fill_at + f.fill_len())
        .is_some_and(|fill| fill.iter().all(|&b| b == 0));

    let mut out = BytesMut::new();
    emit_encapsulated(&f, h.timestamp, &mut out);
    let parts = encapsulate_parts(&f, h.timestamp);
    let joined = [&parts.prefix[..], parts.payload, parts.suffix()].concat();
    assert!(
        joined == out,
        "{f}: encapsulate_parts differs from emit_encapsulated"
    );
    let mut gather = Gather::default();
    gather.push(f.clone(), h.timestamp);
    let gathered: Vec<u8> = gather
        .slices()
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect();
    assert!(
        gathered == out,
        "{f}: Gather differs from emit_encapsulated"
    );
    assert_eq!(gather.bytes(), out.len(), "{f}: Gather's length");

    let header = EncapHeaderRepr::fcip(data.len(), h.timestamp);
    assert!(
        out.get(..HEADER_LEN) == Some(&header.to_bytes()[..]),
        "{f}: header emitted"
    );
    if fill_is_zero {
        // Same SOF word, FC frame and EOF word as received.
        assert!(
            out.get(HEADER_LEN..) == data.get(HEADER_LEN..),
            "{f}: not re-emitted as received"
        );
    }
    let again = parse_encapsulated(out.freeze());
    assert!(
        again == Ok((header, Ok(f.clone()))),
        "{f}: own encapsulation parses as {again:?}"
    );
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn prop_oracles_hold_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            super::frame(&bytes);
            super::els(&bytes);
            super::ct(&bytes);
            super::fcp(&bytes);
            super::cdb(&bytes);
            super::encap(&bytes);
        }
    }
}
