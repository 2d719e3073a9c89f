//! `fcsan up --config topology.toml`: any installation a `topology.toml` describes
//! (`topology::config::load_topology`), started in this process with the topology builder on
//! loopback; prints where everything listens and each controller's management API, then runs
//! until Ctrl-C or SIGTERM.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use topology::config::{self, Declared};

/// Starts the topology of the file at `path`, LUN files in `data` (a temporary folder when
/// `None`), and runs it until asked to stop.
pub async fn run(path: &Path, data: Option<PathBuf>, out: &mut dyn Write) -> Result<()> {
    let file = config::load_topology(path)?;
    let tmp;
    let dir = match data {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
            tmp.path().to_path_buf()
        }
    };
    let Declared {
        topology,
        sites,
        links,
        arrays,
        hosts,
        controllers,
    } = file.declare();
    let san = topology
        .start(&dir)
        .await
        .with_context(|| format!("cannot start the topology of {}", path.display()))?;
    for (spec, &id) in file.sites.iter().zip(&sites) {
        let s = san.site(id);
        let fcip = s
            .gateway
            .as_ref()
            .map_or_else(String::new, |g| format!(", FCIP on {}", g.fcip_addr()));
        writeln!(
            out,
            "site {}: {} {}, domain {:02x}, switch on {}{fcip}",
            s.name,
            if spec.gateway { "gateway" } else { "switch" },
            s.switch_name,
            s.domain,
            s.addr
        )?;
    }
    for (spec, &id) in file.links.iter().zip(&links) {
        let l = san.link(id);
        let relay = match (&l.relay, spec.relay) {
            (Some(r), Some(i)) => format!(
                " through the WAN relay on {} ({} ms each way, {})",
                r.local_addr(),
                i.one_way_delay.as_millis(),
                i.bandwidth_bps
                    .map_or_else(|| "no cap".to_owned(), |b| format!("{b} bit/s"))
            ),
            _ => String::new(),
        };
        writeln!(
            out,
            "link {} -> {}: {} TCP connection(s){relay}",
            san.site(l.dialer).name,
            san.site(l.listener).name,
            spec.connections
        )?;
    }
    for &id in &arrays {
        let a = san.array(id);
        writeln!(
            out,
            "array {} on site {}: {}, {} LUN(s)",
            a.name,
            san.site(a.site).name,
            a.port_name,
            a.luns.len() + a.tapes.len()
        )?;
    }
    for &id in &hosts {
        let h = san.host(id);
        writeln!(
            out,
            "host on site {}: {}",
            san.site(h.site).name,
            h.port_name
        )?;
    }
    writeln!(out, "LUN files in {}", dir.display())?;
    for &id in &controllers {
        let c = san.controller(id);
        writeln!(
            out,
            "controller {} (site {}): api http://{}",
            c.name,
            san.site(c.site).name,
            c.api
        )?;
    }
    match controllers.first() {
        Some(&c) => writeln!(
            out,
            "Running until Ctrl-C; e.g. fcsan volume --api http://{} build --type ssd --capacity 16MiB --name vol1",
            san.controller(c).api
        )?,
        None => writeln!(out, "Running until Ctrl-C")?,
    }
    out.flush()?;
    crate::stop_signal().await;
    san.shutdown().await;
    writeln!(out, "stopped")?;
    out.flush()?;
    Ok(())
}
