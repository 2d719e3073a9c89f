//! The answers an N_Port gives to ELS requests from other ports (FC-LS-3 §4): a pure function
//! of the request and the session table.
//!
//! | request | answer |
//! |---|---|
//! | PLOGI | LS_ACC with our service parameters; the sender is now logged in (a new PLOGI replaces an old login and its FCP image pair) |
//! | PDISC | LS_ACC when logged in, else LS_RJT (N_Port login required) |
//! | PRLI (FCP page) | LS_ACC, image pair established, our FCP functions; LS_RJT without PLOGI |
//! | PRLO | LS_ACC, image pair gone |
//! | LOGO | LS_ACC, session gone; the manager hears of it |
//! | RSCN | LS_ACC; the manager rediscovers |
//! | ECHO | LS_ACC with the data |
//! | anything else | LS_RJT command not supported |

use std::collections::BTreeMap;

use fc_frames::els::prli::{FcpServiceParams, PrliPage, PrliRepr, PrliResponseCode, TYPE_FCP};
use fc_frames::els::{
    ElsCode, ElsReply, ElsRequest, LoginRepr, LsRjt, LsRjtExplanation, LsRjtReason,
};
use fc_frames::frame::MAX_PAYLOAD;
use fc_frames::FcId;

use super::{CoreHandle, NodeConfig, Notice, RemotePort, SessionEnd, SessionEvent};

/// The reply to send, what the manager must hear of, and the session change it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub reply: ElsReply,
    pub notice: Option<Notice>,
    pub session: Option<SessionEvent>,
}

impl Answer {
    fn reply(reply: ElsReply) -> Answer {
        Answer {
            reply,
            notice: None,
            session: None,
        }
    }

    fn rjt(reason: LsRjtReason, explanation: LsRjtExplanation) -> Answer {
        Answer::reply(ElsReply::Rjt(LsRjt::new(reason, explanation)))
    }
}

/// Our FCP service parameters, as sent in PRLI and its LS_ACC.
pub(crate) fn fcp_params(config: &NodeConfig) -> FcpServiceParams {
    let mut p = FcpServiceParams::READ_XFER_RDY_DISABLED;
    if config.initiator {
        p |= FcpServiceParams::INITIATOR_FUNCTION;
    }
    if config.target {
        p |= FcpServiceParams::TARGET_FUNCTION;
    }
    p
}

/// Our PLOGI (or its LS_ACC, with `code` LS_ACC).
pub(crate) fn login_params(config: &NodeConfig, code: ElsCode) -> LoginRepr {
    LoginRepr::request(code, config.port_name, config.node_name, MAX_PAYLOAD as u16)
}

pub(crate) fn answer(
    config: &NodeConfig,
    handle: &CoreHandle,
    header: &fc_frames::FrameHeaderRepr,
    payload: &[u8],
) -> Answer {
    answer_with(config, &mut handle.sessions(), header.s_id, payload)
}

/// Answers the ELS request `payload` from `s_id`, updating `sessions`.
pub(crate) fn answer_with(
    config: &NodeConfig,
    sessions: &mut BTreeMap<FcId, RemotePort>,
    s_id: FcId,
    payload: &[u8],
) -> Answer {
    let req = match ElsRequest::parse(payload).and_then(|r| r.validate().map(|()| r)) {
        Ok(r) => r,
        Err(e) => return Answer::reply(ElsReply::Rjt(e.ls_rjt())),
    };
    match req {
        ElsRequest::Plogi(login) => {
            let port = RemotePort {
                port_id: s_id,
                port_name: login.port_name,
                node_name: login.node_name,
                rx_size: login.common.rx_data_field_size,
                fcp: None,
                originated: false,
            };
            sessions.insert(s_id, port);
            Answer {
                session: Some(SessionEvent::Opened(port)),
                ..Answer::reply(ElsReply::Login(login_params(config, ElsCode::LS_ACC)))
            }
        }
        ElsRequest::Pdisc(_) if sessions.contains_key(&s_id) => {
            Answer::reply(ElsReply::Login(login_params(config, ElsCode::LS_ACC)))
        }
        ElsRequest::Prli(prli) => {
            let Some(session) = sessions.get_mut(&s_id) else {
                return Answer::rjt(
                    LsRjtReason::LOGICAL_ERROR,
                    LsRjtExplanation::N_PORT_LOGIN_REQUIRED,
                );
            };
            let Some(page) = prli.pages.iter().find(|p| p.type_code == TYPE_FCP) else {
                return Answer::rjt(
                    LsRjtReason::UNABLE_TO_PERFORM,
                    LsRjtExplanation::REQUEST_NOT_SUPPORTED,
                );
            };
            session.fcp = Some(page.service_params);
            let opened = *session;
            let page = PrliPage::fcp_accept(fcp_params(config), PrliResponseCode::REQUEST_EXECUTED);
            Answer {
                session: Some(SessionEvent::Opened(opened)),
                ..Answer::reply(ElsReply::Prli(PrliRepr::single(ElsCode::LS_ACC, page)))
            }
        }
        ElsRequest::Prlo(_) => {
            let closed = sessions.get_mut(&s_id).and_then(|s| {
                let was = *s;
                s.fcp.take().map(|_| SessionEvent::Closed {
                    port: was,
                    reason: SessionEnd::PrloFromPeer,
                })
            });
            let page = PrliPage::fcp_logout(PrliResponseCode::REQUEST_EXECUTED);
            Answer {
                session: closed,
                ..Answer::reply(ElsReply::Prlo(PrliRepr::single(ElsCode::LS_ACC, page)))
            }
        }
        ElsRequest::Logo(_) => {
            let was = sessions.remove(&s_id);
            Answer {
                reply: ElsReply::Acc,
                // A target we logged in to logged us out: the manager logs in again.
                notice: was
                    .filter(|p| p.originated && p.is_fcp_target())
                    .map(|_| Notice::LoggedOut(s_id)),
                session: was.map(|port| SessionEvent::Closed {
                    port,
                    reason: SessionEnd::LogoFromPeer,
                }),
            }
        }
        ElsRequest::Rscn(rscn) => Answer {
            notice: Some(Notice::Rscn(rscn.pages)),
            ..Answer::reply(ElsReply::Acc)
        },
        ElsRequest::Echo(echo) => Answer::reply(ElsReply::Echo(echo.accept().data)),
        ElsRequest::Pdisc(_) => Answer::rjt(
            LsRjtReason::LOGICAL_ERROR,
            LsRjtExplanation::N_PORT_LOGIN_REQUIRED,
        ),
        _ => Answer::reply(ElsReply::Rjt(LsRjt::not_supported())),
    }
}

#[cfg(test)]
mod tests {
    use fc_frames::els::prli::PrliFlags;
    use fc_frames::els::{Echo, Logo, Rscn, RscnPage};
    use fc_frames::Wwn;

    use super::*;

    const HOST: FcId = FcId::from_parts(1, 1, 0);

    fn disk_config() -> NodeConfig {
        let mut c = NodeConfig::new(
            Wwn::from_u64(0x2200_0000_0000_0001),
            Wwn::from_u64(0x2000_0000_0000_0001),
        );
        c.target = true;
        c
    }

    fn plogi() -> Vec<u8> {
        ElsRequest::Plogi(LoginRepr::request(
            ElsCode::PLOGI,
            Wwn::from_u64(0x2100_0000_0000_0001),
            Wwn::from_u64(0x2000_0000_0000_0011),
            2048,
        ))
        .to_vec()
    }

    fn prli() -> Vec<u8> {
        let page = PrliPage::fcp_request(FcpServiceParams::INITIATOR_FUNCTION);
        ElsRequest::Prli(PrliRepr::single(ElsCode::PRLI, page)).to_vec()
    }

    #[test]
    fn test_plogi_then_prli_establishes_an_image_pair() {
        let config = disk_config();
        let mut sessions = BTreeMap::new();
        let a = answer_with(&config, &mut sessions, HOST, &plogi());
        let ElsReply::Login(acc) = a.reply else {
            panic!("{a:?}");
        };
        assert_eq!(acc.code, ElsCode::LS_ACC);
        assert_eq!(acc.port_name, config.port_name);
        assert_eq!(sessions[&HOST].rx_size, 2048);
        assert_eq!(sessions[&HOST].fcp, None);

        let a = answer_with(&config, &mut sessions, HOST, &prli());
        let ElsReply::Prli(acc) = a.reply else {
            panic!("{a:?}");
        };
        let page = acc.pages[0];
        assert_eq!(page.response_code, PrliResponseCode::REQUEST_EXECUTED);
        assert!(page.flags.contains(PrliFlags::IMAGE_PAIR_ESTABLISHED));
        assert!(page
            .service_params
            .contains(FcpServiceParams::TARGET_FUNCTION));
        assert!(sessions[&HOST].is_fcp_initiator());
    }

    #[test]
    fn test_prli_without_plogi_is_rejected() {
        let mut sessions = BTreeMap::new();
        let a = answer_with(&disk_config(), &mut sessions, HOST, &prli());
        assert_eq!(
            a.reply,
            ElsReply::Rjt(LsRjt::new(
                LsRjtReason::LOGICAL_ERROR,
                LsRjtExplanation::N_PORT_LOGIN_REQUIRED
            ))
        );
        assert!(sessions.is_empty());
    }

    #[test]
    fn test_logo_prlo_rscn_echo_and_unknown() {
        let config = disk_config();
        let mut sessions = BTreeMap::new();
        answer_with(&config, &mut sessions, HOST, &plogi());
        answer_with(&config, &mut sessions, HOST, &prli());
        let prlo = ElsRequest::Prlo(PrliRepr::single(
            ElsCode::PRLO,
            PrliPage::fcp_logout(PrliResponseCode::NONE),
        ));
        let a = answer_with(&config, &mut sessions, HOST, &prlo.to_vec());
        assert!(matches!(a.reply, ElsReply::Prlo(_)));
        assert_eq!(sessions[&HOST].fcp, None);

        let logo = ElsRequest::Logo(Logo {
            n_port_id: HOST,
            port_name: Wwn::from_u64(0x2100_0000_0000_0001),
        });
        let a = answer_with(&config, &mut sessions, HOST, &logo.to_vec());
        assert_eq!(a.reply, ElsReply::Acc);
        assert!(sessions.is_empty());

        let rscn = ElsRequest::Rscn(Rscn {
            pages: vec![RscnPage::port(HOST)],
        });
        let a = answer_with(
            &config,
            &mut sessions,
            FcId::FABRIC_CONTROLLER,
            &rscn.to_vec(),
        );
        assert_eq!(a.notice, Some(Notice::Rscn(vec![RscnPage::port(HOST)])));

        let echo = ElsRequest::Echo(Echo::request(b"ping".to_vec()));
        let a = answer_with(&config, &mut sessions, HOST, &echo.to_vec());
        assert_eq!(a.reply, ElsReply::Echo(b"ping".to_vec()));

        let a = answer_with(&config, &mut sessions, HOST, &[0x7F, 0, 0, 0]);
        assert_eq!(a.reply, ElsReply::Rjt(LsRjt::not_supported()));
        // Garbage gets LS_RJT too, never a panic.
        let a = answer_with(&config, &mut sessions, HOST, &[0x03]);
        assert!(matches!(a.reply, ElsReply::Rjt(_)));
    }

    #[test]
    fn test_logo_from_a_target_notifies_the_manager() {
        let mut host = NodeConfig::new(
            Wwn::from_u64(0x2100_0000_0000_0001),
            Wwn::from_u64(0x2000_0000_0000_0011),
        );
        host.initiator = true;
        let disk = FcId::from_parts(1, 2, 0);
        let mut sessions = BTreeMap::new();
        sessions.insert(
            disk,
            RemotePort {
                port_id: disk,
                port_name: Wwn::from_u64(0x2200_0000_0000_0001),
                node_name: Wwn::from_u64(0x2000_0000_0000_0001),
                rx_size: 2112,
                fcp: Some(FcpServiceParams::TARGET_FUNCTION),
                originated: true,
            },
        );
        let logo = ElsRequest::Logo(Logo {
            n_port_id: disk,
            port_name: Wwn::from_u64(0x2200_0000_0000_0001),
        });
        let a = answer_with(&host, &mut sessions, disk, &logo.to_vec());
        assert_eq!(a.notice, Some(Notice::LoggedOut(disk)));
    }
}
