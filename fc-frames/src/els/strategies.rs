//! proptest generators for the ELS reprs: every value they make survives emit → parse.

use proptest::collection::vec;
use proptest::prelude::*;

use super::login::{
    ClassServiceParams, CommonFeatures, CommonServiceParams, InitiatorControl, LoginRepr,
    RecipientControl, ServiceOptions,
};
use super::prli::{FcpServiceParams, PrliFlags, PrliPage, PrliRepr, PrliResponseCode};
use super::rscn::{Rscn, RscnAddressFormat, RscnEventQualifier, RscnPage, Scr, ScrFunction};
use super::{Echo, ElsCode, ElsReply, ElsRequest, Logo, LsRjt, LsRjtExplanation, LsRjtReason, Rrq};
use crate::addr::{FcId, Wwn};

/// Command codes [`ElsRequest::parse`] decodes into a typed variant.
const HANDLED: [u8; 12] = [
    0x03, 0x04, 0x05, 0x10, 0x12, 0x20, 0x21, 0x50, 0x51, 0x61, 0x62, 0x80,
];

pub(crate) fn arb_fcid() -> impl Strategy<Value = FcId> {
    any::<[u8; 3]>().prop_map(FcId::from_bytes)
}

pub(crate) fn arb_wwn() -> impl Strategy<Value = Wwn> {
    any::<[u8; 8]>().prop_map(Wwn)
}

pub(crate) fn arb_ls_rjt() -> impl Strategy<Value = LsRjt> {
    any::<[u8; 3]>().prop_map(|[r, e, v]| LsRjt {
        reason: LsRjtReason(r),
        explanation: LsRjtExplanation(e),
        vendor_unique: v,
    })
}

prop_compose! {
    pub(crate) fn arb_common()(
        (fc_ph_high, fc_ph_low, bb_credit, features) in any::<(u8, u8, u16, u16)>(),
        bb_sc_n in 0u8..16,
        rx_data_field_size in 0u16..0x1000,
        (total_concurrent_sequences, ro_by_info_category, e_d_tov) in any::<(u16, u16, u32)>(),
    ) -> CommonServiceParams {
        CommonServiceParams {
            fc_ph_high,
            fc_ph_low,
            bb_credit,
            features: CommonFeatures::from_bits_retain(features),
            bb_sc_n,
            rx_data_field_size,
            total_concurrent_sequences,
            ro_by_info_category,
            e_d_tov,
        }
    }
}

prop_compose! {
    pub(crate) fn arb_class()(
        (options, initiator, recipient, rx) in any::<(u16, u16, u16, u16)>(),
        (concurrent, credit, open) in any::<(u16, u16, u8)>(),
    ) -> ClassServiceParams {
        ClassServiceParams {
            service_options: ServiceOptions::from_bits_retain(options),
            initiator_control: InitiatorControl::from_bits_retain(initiator),
            recipient_control: RecipientControl::from_bits_retain(recipient),
            rx_data_field_size: rx,
            concurrent_sequences: concurrent,
            end_to_end_credit: credit,
            open_sequences_per_exchange: open,
        }
    }
}

prop_compose! {
    pub(crate) fn arb_login()(
        code in any::<u8>(),
        common in arb_common(),
        port_name in arb_wwn(),
        node_name in arb_wwn(),
        classes in [arb_class(), arb_class(), arb_class(), arb_class()],
        vendor_version in any::<[u8; 16]>(),
        extension in vec(any::<u8>(), 0..150),
    ) -> LoginRepr {
        LoginRepr {
            code: ElsCode(code),
            common,
            port_name,
            node_name,
            classes,
            vendor_version,
            extension,
        }
    }
}

prop_compose! {
    pub(crate) fn arb_prli_page()(
        (type_code, type_code_ext) in any::<(u8, u8)>(),
        flags in 0u8..16,
        response in 0u8..16,
        (originator_pa, responder_pa, params) in any::<(u32, u32, u32)>(),
    ) -> PrliPage {
        PrliPage {
            type_code,
            type_code_ext,
            flags: PrliFlags::from_bits_retain(flags << 4),
            response_code: PrliResponseCode(response),
            originator_pa,
            responder_pa,
            service_params: FcpServiceParams::from_bits_retain(params),
        }
    }
}

prop_compose! {
    pub(crate) fn arb_prli()(
        code in any::<u8>(),
        pages in vec(arb_prli_page(), 1..6),
    ) -> PrliRepr {
        PrliRepr { code: ElsCode(code), pages }
    }
}

prop_compose! {
    pub(crate) fn arb_rscn_page()(
        qualifier in 0u8..16,
        format in 0u8..4,
        affected in arb_fcid(),
    ) -> RscnPage {
        RscnPage {
            qualifier: RscnEventQualifier(qualifier),
            format: RscnAddressFormat(format),
            affected,
        }
    }
}

pub(crate) fn arb_rscn() -> impl Strategy<Value = Rscn> {
    vec(arb_rscn_page(), 1..20).prop_map(|pages| Rscn { pages })
}

pub(crate) fn arb_scr() -> impl Strategy<Value = Scr> {
    any::<u8>().prop_map(|f| Scr {
        function: ScrFunction(f),
    })
}

prop_compose! {
    pub(crate) fn arb_logo()(n_port_id in arb_fcid(), port_name in arb_wwn()) -> Logo {
        Logo { n_port_id, port_name }
    }
}

prop_compose! {
    pub(crate) fn arb_rrq()(originator in arb_fcid(), ox_id in any::<u16>(), rx_id in any::<u16>()) -> Rrq {
        Rrq { originator, ox_id, rx_id }
    }
}

fn arb_echo_data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..64),
        vec(
            any::<u8>(),
            super::echo::MAX_ECHO_DATA - 4..=super::echo::MAX_ECHO_DATA
        ),
    ]
}

pub(crate) fn arb_echo() -> impl Strategy<Value = Echo> {
    (any::<u8>(), arb_echo_data()).prop_map(|(code, data)| Echo {
        code: ElsCode(code),
        data,
    })
}

fn with_code(mut l: LoginRepr, code: ElsCode) -> LoginRepr {
    l.code = code;
    l
}

fn with_prli_code(mut p: PrliRepr, code: ElsCode) -> PrliRepr {
    p.code = code;
    p
}

fn arb_unknown_code() -> impl Strategy<Value = ElsCode> {
    any::<u8>()
        .prop_filter("handled", |c| !HANDLED.contains(c))
        .prop_map(ElsCode)
}

/// Any request, with its reprs' codes matching the variant (as parsing makes them).
pub(crate) fn arb_els_request() -> impl Strategy<Value = ElsRequest> {
    prop_oneof![
        arb_login().prop_map(|l| ElsRequest::Flogi(with_code(l, ElsCode::FLOGI))),
        arb_login().prop_map(|l| ElsRequest::Fdisc(with_code(l, ElsCode::FDISC))),
        arb_login().prop_map(|l| ElsRequest::Plogi(with_code(l, ElsCode::PLOGI))),
        arb_login().prop_map(|l| ElsRequest::Pdisc(with_code(l, ElsCode::PDISC))),
        arb_logo().prop_map(ElsRequest::Logo),
        arb_prli().prop_map(|p| ElsRequest::Prli(with_prli_code(p, ElsCode::PRLI))),
        arb_prli().prop_map(|p| ElsRequest::Prlo(with_prli_code(p, ElsCode::PRLO))),
        arb_rscn().prop_map(ElsRequest::Rscn),
        arb_scr().prop_map(ElsRequest::Scr),
        arb_echo_data().prop_map(|d| ElsRequest::Echo(Echo::request(d))),
        Just(ElsRequest::Lka),
        arb_rrq().prop_map(ElsRequest::Rrq),
        (arb_unknown_code(), vec(any::<u8>(), 3..100))
            .prop_map(|(code, payload)| ElsRequest::Unknown { code, payload }),
    ]
}

/// Any reply, with the code of a request it can answer.
pub(crate) fn arb_els_reply() -> impl Strategy<Value = (ElsCode, ElsReply)> {
    let login_codes = prop::sample::select(vec![
        ElsCode::FLOGI,
        ElsCode::FDISC,
        ElsCode::PLOGI,
        ElsCode::PDISC,
    ]);
    let bare_codes = prop::sample::select(vec![
        ElsCode::LOGO,
        ElsCode::SCR,
        ElsCode::RSCN,
        ElsCode::LKA,
        ElsCode::RRQ,
    ]);
    prop_oneof![
        (any::<u8>(), arb_ls_rjt()).prop_map(|(c, r)| (ElsCode(c), ElsReply::Rjt(r))),
        bare_codes.prop_map(|c| (c, ElsReply::Acc)),
        (login_codes, arb_login())
            .prop_map(|(c, l)| (c, ElsReply::Login(with_code(l, ElsCode::LS_ACC)))),
        arb_prli().prop_map(|p| (
            ElsCode::PRLI,
            ElsReply::Prli(with_prli_code(p, ElsCode::LS_ACC))
        )),
        arb_prli().prop_map(|p| (
            ElsCode::PRLO,
            ElsReply::Prlo(with_prli_code(p, ElsCode::LS_ACC))
        )),
        arb_echo_data().prop_map(|d| (ElsCode::ECHO, ElsReply::Echo(d))),
        (arb_unknown_code(), vec(any::<u8>(), 3..100))
            .prop_map(|(c, p)| (c, ElsReply::AccPayload(p))),
    ]
}
