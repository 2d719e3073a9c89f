//! What the gateway tests share: waiting for a condition, and a raw N_Port's fabric login.

#![allow(dead_code)]

use std::time::Duration;

use fabric::link::{Link, Received};
use fc_frames::els::{ElsCode, ElsRequest, LoginRepr};
use fc_frames::{FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Wwn};
use tokio::time::timeout;

/// Long enough that only a hang fails a test, not a slow machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// Waits until `f` holds; fails the test with `what` after [`WAIT`].
pub async fn until(what: &str, mut f: impl FnMut() -> bool) {
    timeout(WAIT, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"));
}

/// The next frame on `link` that is not an RSCN (or other ELS request) from the fabric.
pub async fn recv(link: &mut Link) -> FcFrame {
    loop {
        match timeout(WAIT, link.rx.recv()).await.expect("a frame") {
            Some(Received::Frame(f))
                if f.header.s_id.is_well_known() && f.header.r_ctl == RCtl::ELS_REQUEST => {}
            Some(Received::Frame(f)) => return f,
            other => panic!("{other:?}"),
        }
    }
}

/// FLOGI on `link` as `wwpn`; the N_Port ID the fabric assigned.
pub async fn flogi(link: &mut Link, wwpn: Wwn) -> FcId {
    let req = ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, wwpn, wwpn, 2048));
    let h = FrameHeaderRepr::request(
        RCtl::ELS_REQUEST,
        FcType::ELS,
        FcId::F_PORT_CONTROLLER,
        FcId::UNIDENTIFIED,
        1,
    );
    link.tx
        .send(FcFrame::single(h, req.to_vec()))
        .await
        .expect("link up");
    recv(link).await.header.d_id
}
