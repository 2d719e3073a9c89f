//! `fcsan relay`: the WAN impairment relay (`wan_relay`) as a process of its own, put between
//! two gateways' FCIP addresses: every TCP connection it accepts is relayed to the upstream
//! address, each direction delayed and rate-limited. Run on a host (or network namespace) on
//! the path between two sites; a gateway dials the relay instead of its peer.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use wan_relay::{parse_rate, Impairment, Relay, MAX_DELAY};

use crate::report::human;

#[derive(clap::Args)]
pub struct RelayArgs {
    /// Where the relay listens (the address the dialling gateway's `dial` names).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Where each accepted connection is relayed to (the listening gateway's FCIP address).
    #[arg(long, value_name = "ADDR")]
    to: SocketAddr,
    /// One-way delay added in each direction, in milliseconds (the round trip grows by twice
    /// this).
    #[arg(long, default_value_t = 0, value_parser = delay_ms)]
    delay_ms: u64,
    /// Bandwidth cap in each direction, shared by every connection: bits per second, or with
    /// kbit, Mbit, Gbit (e.g. 1Gbit, 100Mbit); none by default.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<u64>,
}

fn delay_ms(s: &str) -> Result<u64, String> {
    let n: u64 = s.parse().map_err(|_| format!("not milliseconds: {s:?}"))?;
    if u128::from(n) > MAX_DELAY.as_millis() {
        return Err(format!("at most {} ms", MAX_DELAY.as_millis()));
    }
    Ok(n)
}

/// Runs the relay until Ctrl-C or SIGTERM, then prints what it passed.
pub async fn run(args: RelayArgs, out: &mut dyn Write) -> Result<()> {
    let impairment = Impairment {
        one_way_delay: Duration::from_millis(args.delay_ms),
        bandwidth_bps: args.rate,
    };
    let relay = Relay::start(args.listen, args.to, impairment)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let rate = args
        .rate
        .map_or_else(|| "no cap".to_owned(), |r| format!("{} bit/s", r));
    writeln!(
        out,
        "relay listening on {} to {}: one-way delay {} ms, {rate}",
        relay.local_addr(),
        args.to,
        args.delay_ms
    )?;
    out.flush()?;
    crate::stop_signal().await;
    let c = relay.counters();
    writeln!(
        out,
        "relay stopped: {} connection(s) accepted, {} to upstream failed; {} to upstream, {} back",
        c.accepted,
        c.upstream_failed,
        human(c.bytes_to_upstream),
        human(c.bytes_to_client)
    )?;
    out.flush()?;
    Ok(())
}
