//! `fcsan`: the one binary of the project.
//!
//! - `fcsan up` runs the embedded default: two SANs joined by an FCIP link, on loopback in one
//!   process (a gateway and a disk array on each site, a host on site A) — the host writes a
//!   file to a LUN on site B and reads it back.
//! - `fcsan switch|gateway|disk|host|controller --config FILE` runs one role as its own process;
//!   `fcsan gateway --capture FILE.pcap` also records every FCIP frame for Wireshark.
//! - `fcsan pcap show FILE` prints any FC capture (link type 225 or 224) decoded, one line a
//!   frame; `fcsan pcap catalogue` writes the scripted capture of every message kind.
//! - `fcsan pcap inspect FILE [--json]` prints every FC frame of any capture, FCIP over TCP
//!   included (replay::inspect).
//! - `fcsan volume list|show|build|delete|real|map|peers|counters` talks to a controller's
//!   management API (`--api URL`, or `FCSAN_API`), as tables or `--json`.

// Large I/O buffers come and go with every command: an allocator that keeps freed memory
// mapped avoids a page fault and a page clear per 4 KiB on the data path (glibc unmaps
// allocations above its mmap threshold on free).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use fc_frames::scsi::Lun;
use fc_frames::{FcId, Wwn};
use fc_node::fcp::discovery::{self, FindTargetError};
use fc_node::fcp::initiator::Initiator;
use fc_node::fcp::transfer;
use fc_pcap::{capture, catalogue, decode};
use gateway::Gateway;
use topology::config::{self, GatewayFile};
use topology::roles::{self, RunningGateway};

mod progress;
mod relay;
mod report;
mod up;
mod up_config;
mod volume;

#[derive(Parser)]
#[command(
    name = "fcsan",
    version,
    about = "Software Fibre Channel SAN, FCIP gateway and virtualization controllers"
)]
struct Cli {
    /// More log detail on standard error: -v info, -vv debug (a span per exchange with its
    /// OX_ID, S_ID and D_ID, per volume command), -vvv trace. RUST_LOG, when set, decides
    /// instead (e.g. RUST_LOG=fc_node=debug,controller=info).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run two SANs joined by an FCIP link on loopback in one process: a gateway, a disk
    /// array on each site, a host on site A that writes a file to a LUN on site B and reads it
    /// back verified.
    Up {
        /// Size of the file the host writes (bytes, or with KiB/MiB/GiB).
        #[arg(long, default_value = "64MiB", value_parser = parse_size)]
        file_size: u64,
        /// Folder for the LUN files (default: a temporary folder, removed at the end).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Write site A's switch traffic to this pcap file (FC frames, link type 225).
        #[arg(long)]
        capture: Option<PathBuf>,
        /// Where to write the FCIP capture of the link (default: fcsan-up.fcip.pcap in the
        /// temporary folder, replaced by each run).
        #[arg(long)]
        fcip_capture: Option<PathBuf>,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
        /// Number of sites, each a gateway with a controller (2 to 16).
        #[arg(long, default_value_t = 2)]
        sites: usize,
        /// Join every site to every other by FCIP (default: a chain A-B-C-...).
        #[arg(long)]
        mesh: bool,
        /// Keep running after the report, printing each controller's API URL, until Ctrl-C.
        #[arg(long)]
        stay: bool,
        /// Start the installation a topology file describes instead (see
        /// examples/topology.toml), print where everything listens, and run until Ctrl-C.
        #[arg(long, conflicts_with_all = ["sites", "mesh", "stay", "file_size", "capture", "fcip_capture"])]
        config: Option<PathBuf>,
    },
    /// Run a fabric switch from a TOML file; prints the name server and counters on exit.
    Switch {
        /// The switch's configuration (see configs/switch.toml).
        #[arg(long)]
        config: PathBuf,
        /// Write every frame the switch receives and originates (overrides the file's capture) to this pcapng file (link type 225, with the
        /// metadata `fcsan pcap replay` starts a fresh instance from).
        #[arg(long)]
        capture: Option<PathBuf>,
    },
    /// Run an FCIP gateway from a TOML file: a switch for the site's nodes whose
    /// inter-switch ports are FCIP links to peer gateways; prints the name server, port and
    /// link counters on exit.
    Gateway {
        /// The gateway's configuration (see configs/gateway-a.toml).
        #[arg(long)]
        config: PathBuf,
        /// Write every FCIP frame sent and received to this pcap file, as Ethernet/IP/TCP
        /// packets with the real addresses (in Wireshark: Decode As FCIP on the FCIP port).
        /// A name ending in .pcapng writes pcapng with the metadata and directions
        /// `fcsan pcap replay` needs.
        #[arg(long)]
        capture: Option<PathBuf>,
    },
    /// Run a disk array from a TOML file.
    Disk {
        /// The array's configuration (see configs/disk-ssd.toml).
        #[arg(long)]
        config: PathBuf,
        /// Write every frame the array sends and receives on its link to this pcapng file (link type 225, with the
        /// metadata `fcsan pcap replay` starts a fresh instance from).
        #[arg(long)]
        capture: Option<PathBuf>,
    },
    /// Run a virtualization controller from a TOML file: an FC node on its site's switch that
    /// keeps the common volume mapping with its peers, and serves the management API that
    /// `fcsan volume` talks to.
    Controller {
        /// The controller's configuration (see configs/controller-a.toml).
        #[arg(long)]
        config: PathBuf,
        /// Write every frame the controller's node sends and receives on its link to this pcapng file (link type 225, with the
        /// metadata `fcsan pcap replay` starts a fresh instance from).
        #[arg(long)]
        capture: Option<PathBuf>,
    },
    /// Run a host: log in, then list, write, read or verify LUNs.
    Host {
        /// The host's configuration (see configs/host.toml).
        #[arg(long)]
        config: PathBuf,
        /// Time-out of each SCSI command, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Write every frame the host sends and receives on its link to this pcapng file (link type 225, with the
        /// metadata `fcsan pcap replay` starts a fresh instance from).
        #[arg(long)]
        capture: Option<PathBuf>,
        #[command(subcommand)]
        command: HostCommand,
    },
    /// Inspect capture files.
    Pcap {
        #[command(subcommand)]
        command: PcapCommand,
    },
    /// Manage the common virtual volumes through a controller's management API.
    Volume(volume::VolumeArgs),
    /// Run the WAN impairment relay between two gateways: every connection to --listen is
    /// relayed to --to, delayed and rate-limited.
    Relay(relay::RelayArgs),
}

#[derive(clap::Args)]
struct LunArgs {
    /// The target's port name (WWPN); may be left out when one target is logged in.
    #[arg(long)]
    target: Option<Wwn>,
    /// Address the target by N_Port ID even when the name server does not show it.
    #[arg(long, conflicts_with = "target")]
    target_id: Option<FcId>,
    /// The LUN.
    #[arg(long, default_value_t = 0)]
    lun: u16,
}

#[derive(Subcommand)]
enum HostCommand {
    /// List the targets and LUNs the host sees, with tier and capacity.
    List,
    /// Write a local file to a LUN from LBA 0 (then SYNCHRONIZE CACHE).
    Write {
        #[command(flatten)]
        lun: LunArgs,
        /// Force unit access: every write is durable before it is acknowledged.
        #[arg(long)]
        fua: bool,
        /// The file to write.
        file: PathBuf,
    },
    /// Read a LUN from LBA 0 into a local file.
    Read {
        #[command(flatten)]
        lun: LunArgs,
        /// Bytes to read (bytes, or with KiB/MiB/GiB).
        #[arg(long, value_parser = parse_size)]
        length: u64,
        /// The file to create.
        file: PathBuf,
    },
    /// Compare a LUN from LBA 0 with a local file.
    Verify {
        #[command(flatten)]
        lun: LunArgs,
        /// The file to compare with.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum PcapCommand {
    /// Print every frame of an FC capture (link type 225 or 224), one line a frame.
    Show {
        /// The capture file.
        file: PathBuf,
    },
    /// Feed what one role received, as its capture (`--capture`) holds it, into a fresh
    /// instance of the role (the capture's seed, configuration and clock), and compare what
    /// it sends with what the capture holds, field by field. Exit 0: all identical; 1: the
    /// first difference is printed; 2: the file cannot be replayed.
    Replay {
        /// The capture (pcapng with fcsan metadata).
        file: PathBuf,
        /// The role to replay as (default: the role that wrote the capture).
        #[arg(long = "as", value_parser = ["switch", "array", "controller", "gateway"])]
        role: Option<String>,
        /// A controller capture: the file holding the installation's key (hex digits, as a
        /// controller's `key_file`); captures made by `fcsan pcap record` hold their test key.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Run the canonical scenarios in-process, captures on, and write their captures (what
    /// captures/ holds; see captures/README.md), then replay each.
    Record {
        /// Where to write the captures.
        #[arg(default_value = "captures")]
        dir: PathBuf,
    },
    /// Print every FC frame of any capture, one line a frame: link types 224/225, and FCIP in
    /// Ethernet/IP/TCP (reassembled, resynchronized), pcap or pcapng; a summary at the end.
    Inspect {
        /// The capture file.
        file: PathBuf,
        /// One JSON object a line (JSON Lines), the summary last.
        #[arg(long)]
        json: bool,
        /// A file holding the controllers' shared key in hex: their messages' MACs are checked
        /// (without it they are decoded unchecked).
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Write the scripted conversation of every message kind fc-frames encodes.
    Catalogue {
        /// Where to write the capture (pcap, link type 225).
        #[arg(long, default_value = "captures/fc-frames.pcap")]
        out: PathBuf,
    },
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} (use B, KiB, MiB or GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s} is too large"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match (cli.verbose, &cli.command) {
        (0, Command::Switch { .. })
        | (0, Command::Gateway { .. })
        | (0, Command::Disk { .. })
        | (0, Command::Controller { .. })
        | (0, Command::Relay(_))
        | (1, _) => "info",
        (0, _) => "warn",
        (2, _) => "debug",
        _ => "trace",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(io::stderr)
        // Colours only for a terminal: a log file or a test reading the output gets plain text.
        .with_ansi(
            io::IsTerminal::is_terminal(&io::stderr()) && std::env::var_os("NO_COLOR").is_none(),
        )
        .try_init();
    if let Command::Pcap {
        command:
            PcapCommand::Replay {
                file,
                role,
                key_file,
            },
    } = &cli.command
    {
        return pcap_replay(file, role.as_deref(), key_file.as_deref());
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`fcsan pcap show x | head`): not an error of ours.
        Err(e)
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fcsan: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> Result<()> {
    let mut out = io::stdout().lock();
    match cli.command {
        Command::Up {
            config: Some(path),
            data,
            ..
        } => runtime()?.block_on(up_config::run(&path, data, &mut out)),
        Command::Up {
            config: None,
            file_size,
            data,
            capture,
            fcip_capture,
            quiet,
            sites,
            mesh,
            stay,
        } => {
            let opts = up::UpOptions {
                file_bytes: file_size,
                data_dir: data,
                capture,
                fcip_capture: match fcip_capture {
                    Some(p) => p,
                    None => {
                        // One file, replaced by each run (not one more per run); removed
                        // first, so that a link planted in its place is not followed.
                        let p = std::env::temp_dir().join("fcsan-up.fcip.pcap");
                        let _ = std::fs::remove_file(&p);
                        p
                    }
                },
                progress: !quiet,
                sites,
                mesh,
                stay,
            };
            runtime()?.block_on(up::up(opts, &mut out))
        }
        Command::Switch { config, capture } => {
            runtime()?.block_on(run_switch(&config, capture, &mut out))
        }
        Command::Gateway { config, capture } => {
            runtime()?.block_on(run_gateway(&config, capture, &mut out))
        }
        Command::Disk { config, capture } => {
            runtime()?.block_on(run_disk(&config, capture.as_deref(), &mut out))
        }
        Command::Controller { config, capture } => {
            runtime()?.block_on(run_controller(&config, capture.as_deref(), &mut out))
        }
        Command::Host {
            config,
            timeout,
            capture,
            command,
        } => runtime()?.block_on(run_host(
            &config,
            timeout,
            capture.as_deref(),
            command,
            &mut out,
        )),
        Command::Pcap {
            command: PcapCommand::Show { file },
        } => pcap_show(&file, &mut out),
        Command::Volume(args) => volume::run(args, &mut out),
        Command::Relay(args) => runtime()?.block_on(relay::run(args, &mut out)),
        Command::Pcap {
            command: PcapCommand::Record { dir },
        } => {
            for f in replay::record::record(&dir)? {
                let o = replay::replay_file(&f, None)?;
                let size = std::fs::metadata(&f).map_or(0, |m| m.len());
                match o.difference {
                    None => writeln!(
                        out,
                        "{}: {size} bytes, replays as {}: {} frames sent, all identical",
                        f.display(),
                        o.role.name(),
                        o.sent
                    )?,
                    Some(d) => bail!("{} does not replay: {d}", f.display()),
                }
            }
            Ok(())
        }
        Command::Pcap {
            command:
                PcapCommand::Replay {
                    file,
                    role,
                    key_file,
                },
        } => {
            if pcap_replay(&file, role.as_deref(), key_file.as_deref()) == ExitCode::SUCCESS {
                Ok(())
            } else {
                bail!("replay of {} failed", file.display())
            }
        }
        Command::Pcap {
            command:
                PcapCommand::Inspect {
                    file,
                    json,
                    key_file,
                },
        } => pcap_inspect(&file, json, key_file.as_deref(), &mut out),
        Command::Pcap {
            command: PcapCommand::Catalogue { out: path },
        } => {
            let frames = catalogue::conversation();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            capture::write_file(&path, catalogue::START, &frames)?;
            let mut decoder = decode::Decoder::default();
            for (i, f) in frames.iter().enumerate() {
                let line = decoder.line(i + 1, Duration::from_millis(i as u64), f);
                writeln!(out, "{line}")?;
            }
            writeln!(
                out,
                "{} frames written to {} (open it in Wireshark, or: fcsan pcap show {})",
                frames.len(),
                path.display(),
                path.display()
            )?;
            Ok(())
        }
    }
}

/// `fcsan pcap replay`: prints the outcome; exit 0 identical, 1 a difference, 2 bad input.
fn pcap_replay(file: &Path, role: Option<&str>, key_file: Option<&Path>) -> ExitCode {
    let role = role.and_then(replay::Role::from_name);
    let outcome = match key_file {
        Some(k) if role.is_none_or(|r| r == replay::Role::Controller) => {
            replay::controller::replay_file_with_key(file, k)
        }
        Some(_) => {
            eprintln!("fcsan: --key-file is for controller captures (--as controller)");
            return ExitCode::from(2);
        }
        None => replay::replay_file(file, role),
    };
    match outcome {
        Ok(o) => {
            for n in &o.notes {
                eprintln!("note: {n}");
            }
            match &o.difference {
                None => {
                    println!(
                        "replayed {} as {}: {} frames fed, {} frames sent, all identical",
                        file.display(),
                        o.role.name(),
                        o.fed,
                        o.sent
                    );
                    ExitCode::SUCCESS
                }
                Some(d) => {
                    println!(
                        "replayed {} as {}: {} frames fed, {} sent ({} in the capture); first difference:\n{d}",
                        file.display(),
                        o.role.name(),
                        o.fed,
                        o.sent,
                        o.expected
                    );
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            eprintln!("fcsan: cannot replay {}: {e}", file.display());
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  {s}");
                source = s.source();
            }
            ExitCode::from(2)
        }
    }
}

fn pcap_show(file: &Path, out: &mut dyn Write) -> Result<()> {
    let records = capture::read_file(file)?;
    let start = records.first().map(|r| r.ts).unwrap_or_default();
    let mut decoder = decode::Decoder::default();
    for r in &records {
        let ts = r.ts.saturating_sub(start);
        match &r.frame {
            Ok(f) => writeln!(out, "{}", decoder.line(r.number, ts, f))?,
            Err(e) => writeln!(
                out,
                "{:>4} {:>10.6} not a valid FC frame: {e}",
                r.number,
                ts.as_secs_f64()
            )?,
        }
    }
    Ok(())
}

fn pcap_inspect(
    file: &Path,
    json: bool,
    key_file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<()> {
    let key = match key_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the key file {}", path.display()))?;
            Some(
                controller::wire::Key::from_hex(&text)
                    .with_context(|| format!("the key file {}", path.display()))?,
            )
        }
        None => None,
    };
    let summary = replay::inspect::inspect(file, key, &mut |e| {
        if json {
            let line = serde_json::to_string(e).map_err(io::Error::other)?;
            writeln!(out, "{line}")
        } else {
            writeln!(out, "{e}")
        }
    })
    .map_err(|e| match e {
        // The io::Error itself, so that a closed pipe (`| head`) is told apart in main.
        replay::inspect::InspectError::Output(e) => anyhow::Error::from(e),
        e => anyhow::Error::from(e),
    })?;
    if json {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            event: &'static str,
            #[serde(flatten)]
            summary: &'a replay::inspect::Summary,
        }
        let line = Line {
            event: "summary",
            summary: &summary,
        };
        writeln!(out, "{}", serde_json::to_string(&line)?)?;
    } else {
        writeln!(out, "summary: {summary}")?;
    }
    Ok(())
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn run_switch(path: &Path, capture: Option<PathBuf>, out: &mut dyn Write) -> Result<()> {
    let mut file = config::load_switch(path)?;
    if capture.is_some() {
        file.capture = capture;
    }
    let sw = roles::switch(&file).await?;
    writeln!(
        out,
        "switch domain {:02x} ({}) listening on {}",
        file.switch.domain, file.switch.switch_name, sw.addr
    )?;
    out.flush()?;
    stop_signal().await;
    let snap = sw.handle.snapshot();
    writeln!(out, "Name server:\n{}", report::name_server_table(&snap))?;
    writeln!(
        out,
        "Switch port counters:\n{}",
        report::counters_table(&snap)
    )?;
    out.flush()?;
    Ok(())
}

async fn run_gateway(path: &Path, capture: Option<PathBuf>, out: &mut dyn Write) -> Result<()> {
    let file = config::load_gateway(path)?;
    // Connection nonces and backoff jitter: different on every start.
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
        ^ (u64::from(std::process::id()) << 32);
    let RunningGateway {
        gateway: gw,
        addr: node_addr,
    } = roles::gateway(&file, capture.clone(), seed).await?;
    let sw = &file.switch.switch;
    writeln!(
        out,
        "gateway domain {:02x} ({}) listening on {node_addr} for nodes",
        sw.domain, sw.switch_name
    )?;
    writeln!(out, "FCIP listening on {}", gw.fcip_addr())?;
    for p in &file.peers {
        let domains: Vec<String> = p.domains.iter().map(|d| format!("{d:02x}")).collect();
        let how = p
            .dial
            .map_or_else(|| "waits for its dial".to_owned(), |a| format!("dials {a}"));
        let also = if domains.is_empty() {
            String::new()
        } else {
            format!(", also routes domains {}", domains.join(" "))
        };
        writeln!(
            out,
            "peer {} on port {}: {} connection(s), {how}{also}",
            p.fabric, p.port.0, p.connections
        )?;
    }
    if let Some(c) = &capture {
        writeln!(out, "FCIP capture: {}", c.display())?;
    }
    out.flush()?;

    watch_links(&gw, &file, out).await?;

    let snap = gw.switch.snapshot();
    writeln!(out, "Name server:\n{}", report::name_server_table(&snap))?;
    writeln!(
        out,
        "Switch port counters:\n{}",
        report::counters_table(&snap)
    )?;
    writeln!(out, "FCIP links:\n{}", report::links_table(&gw.links()))?;
    writeln!(
        out,
        "FCIP connections refused: {}",
        report::setup_line(&gw.refused())
    )?;
    out.flush()?;
    gw.finish_capture()
        .context("cannot write the FCIP capture")?;
    if let (Some(c), Some(stats)) = (&capture, gw.capture_stats()) {
        writeln!(
            out,
            "FCIP capture written to {}: {}",
            c.display(),
            report::capture_line(&stats)
        )?;
    }
    Ok(())
}

/// Says when each peer link's connections come and go, until the process is asked to stop.
async fn watch_links(gw: &Gateway, file: &GatewayFile, out: &mut dyn Write) -> Result<()> {
    let stop = stop_signal();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut up = vec![0u64; file.peers.len()];
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            _ = tick.tick() => {}
        }
        for ((link, peer), was) in gw.links().iter().zip(&file.peers).zip(&mut up) {
            let now = link.counters.connections_up;
            if now == *was {
                continue;
            }
            let state = match (*was, now) {
                (0, _) => "up",
                (_, 0) => "down",
                _ => "changed",
            };
            writeln!(
                out,
                "FCIP link to {} {state}: {now} of {} connection(s) up (port {})",
                link.peer, peer.connections, link.port.0
            )?;
            out.flush()?;
            *was = now;
        }
    }
}

async fn run_disk(path: &Path, capture: Option<&Path>, out: &mut dyn Write) -> Result<()> {
    let file = config::load_disk(path)?;
    let array = roles::disk(
        &file,
        format!("fcsan disk array {}", path.display()),
        capture,
    )?;
    for l in &file.luns {
        writeln!(
            out,
            "LUN {:<3} {} {} x {} B, {}",
            l.lun.index().unwrap_or(0),
            l.tier.name(),
            l.bytes / u64::from(l.block_size),
            l.block_size,
            l.path.display()
        )?;
    }
    for t in &file.tapes {
        writeln!(
            out,
            "LUN {:<3} tape {}",
            t.lun.index().unwrap_or(0),
            t.serial
        )?;
    }
    let id = array.node.wait_online(Duration::from_secs(3600)).await?;
    writeln!(
        out,
        "disk array {} logged in as {id} via {}",
        file.node.port_name, file.node.switch
    )?;
    out.flush()?;
    stop_signal().await;
    array.node.shutdown().await;
    Ok(())
}

async fn run_controller(path: &Path, capture: Option<&Path>, out: &mut dyn Write) -> Result<()> {
    let file = config::load_controller(path)?;
    let running = roles::controller_captured(&file, capture).await?;
    // The first line is what scripts and tests read the API's address from.
    writeln!(
        out,
        "controller {} api {}",
        file.controller.name,
        running.api_url()
    )?;
    writeln!(
        out,
        "site {} port {} via switch {}, database {}",
        file.controller.site,
        file.controller.port_name,
        file.switch,
        file.controller.database.display()
    )?;
    out.flush()?;
    stop_signal().await;
    running.shutdown().await;
    writeln!(out, "controller {} stopped", file.controller.name)?;
    out.flush()?;
    Ok(())
}

async fn run_host(
    path: &Path,
    timeout: u64,
    capture: Option<&Path>,
    command: HostCommand,
    out: &mut dyn Write,
) -> Result<()> {
    let file = config::load_host(path)?;
    let timeout = Duration::from_secs(timeout.max(1));
    let init = match capture {
        Some(c) => roles::host_captured(&file, timeout, c)?,
        None => roles::host(&file, timeout),
    };
    let node = init.node().clone();
    let login = Duration::from_secs(20);
    node.wait_online(login)
        .await
        .with_context(|| format!("no fabric login through {}", file.node.switch))?;
    node.wait_discovery(login).await.context("discovery")?;
    let progress = io::IsTerminal::is_terminal(&io::stderr());
    let result = match command {
        HostCommand::List => {
            let luns = discovery::list_luns(&init).await?;
            if luns.is_empty() {
                writeln!(out, "no LUNs visible (is this port zoned with a target?)")?;
            }
            for l in luns {
                writeln!(out, "{}", report::lun_line(&l))?;
            }
            Ok(())
        }
        HostCommand::Write { lun, fua, file } => {
            let (t, l) = pick(&init, &lun)?;
            let len = std::fs::metadata(&file).map_or(0, |m| m.len());
            let bar = progress::bar(len, progress, "write");
            let r = transfer::write_file(&init, t, l, &file, fua, &mut |_, n| bar.inc(n)).await;
            bar.finish_and_clear();
            let r = r?;
            writeln!(
                out,
                "wrote {} in {:.2} s ({:.0} MiB/s)",
                report::human(r.bytes),
                r.elapsed.as_secs_f64(),
                r.mib_per_s()
            )?;
            Ok(())
        }
        HostCommand::Read { lun, length, file } => {
            let (t, l) = pick(&init, &lun)?;
            let bar = progress::bar(length, progress, "read");
            let r = transfer::read_file(&init, t, l, &file, length, &mut |_, n| bar.inc(n)).await;
            bar.finish_and_clear();
            let r = r?;
            writeln!(
                out,
                "read {} in {:.2} s ({:.0} MiB/s)",
                report::human(r.bytes),
                r.elapsed.as_secs_f64(),
                r.mib_per_s()
            )?;
            Ok(())
        }
        HostCommand::Verify { lun, file } => {
            let (t, l) = pick(&init, &lun)?;
            let len = std::fs::metadata(&file).map_or(0, |m| m.len());
            let bar = progress::bar(len, progress, "verify");
            let r = transfer::verify_file(&init, t, l, &file, &mut |_, n| bar.inc(n)).await;
            bar.finish_and_clear();
            let r = r?;
            writeln!(out, "verified {}: identical", report::human(r.bytes))?;
            Ok(())
        }
    };
    node.shutdown().await;
    result
}

fn pick(init: &Initiator, args: &LunArgs) -> Result<(FcId, Lun)> {
    let Some(lun) = Lun::from_index(args.lun) else {
        bail!("LUN {} is out of range", args.lun);
    };
    let target = match args.target_id {
        Some(id) => id,
        None => match discovery::find_target(init, args.target) {
            Ok(t) => t.port_id,
            Err(FindTargetError::NotLoggedIn(w)) => {
                bail!("no target {w} is logged in (see `fcsan host list`)")
            }
            Err(FindTargetError::Several(n)) => {
                bail!("{n} targets are logged in: name one with --target")
            }
            Err(e) => return Err(e.into()),
        },
    };
    Ok((target, lun))
}
