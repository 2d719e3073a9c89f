//! `fcsan volume`: the client of a controller's management API (`controller::api`), over
//! blocking HTTP. Tables follow PATENT.md's figures: `list` is figure 4 (a), `map` figure 4 (b),
//! `real` figure 3 (a) and (b); `--json` prints the server's JSON instead, pretty. An error
//! prints the server's message and fails the command; with `--json` its JSON goes to stdout
//! too.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use controller::api::views::{
    format_bytes, parse_capacity, CountersView, ErrorBody, FoundView, MapRowView, PeerView,
    RealVolumesView, ReplicaPhase, ReplicaState, VolumeIoView, VolumeView,
};
use controller::api::{BuildSpec, MaskingSpec, ReplicaSpec};
use controller::model::{MediaType, VolumeName};
use fc_frames::Wwn;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tabled::builder::Builder;
use tabled::settings::Style;
use tabled::Table;

/// Where the API is when neither `--api` nor `FCSAN_API` says.
pub const DEFAULT_API: &str = "http://127.0.0.1:7800";

/// The environment variable that names the API.
pub const API_ENV: &str = "FCSAN_API";

#[derive(clap::Args)]
pub struct VolumeArgs {
    /// Base URL of the controller's management API [default: $FCSAN_API, else
    /// http://127.0.0.1:7800].
    #[arg(long, global = true, value_name = "URL")]
    api: Option<String>,
    /// Print the server's JSON (pretty) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: VolumeCommand,
}

#[derive(Subcommand)]
enum VolumeCommand {
    /// List the common virtual volumes (PATENT.md figure 4 (a)).
    List,
    /// Show one volume: its row of figure 4 (a) and its sector map, figure 4 (b).
    Show {
        /// The common volume name.
        name: VolumeName,
    },
    /// Build a volume of a media type and a capacity (figure 7).
    Build {
        /// ssd, fast-hdd, slow-hdd or tape.
        #[arg(long = "type", value_name = "TYPE")]
        media: MediaType,
        /// Bytes, or with a unit: B, KiB, MiB, GiB, TiB (powers of 1024), KB, MB, GB, TB.
        #[arg(long, value_parser = capacity_arg)]
        capacity: u64,
        /// The common name; left out, the controller picks one.
        #[arg(long)]
        name: Option<VolumeName>,
    },
    /// Delete a volume.
    Delete {
        /// The common volume name.
        name: VolumeName,
        /// First copy the volume's data into this other volume.
        #[arg(long, value_name = "OTHER")]
        keep_data_in: Option<VolumeName>,
    },
    /// Add a replica to a volume (PATENT.md [0098]-[0100]): copied in the background while
    /// the volume stays in use, then every write mirrored. Ask the volume's owner.
    Replica {
        /// The common volume name.
        name: VolumeName,
        /// The replica's media type; left out, the volume's.
        #[arg(long = "type", value_name = "TYPE")]
        media: Option<MediaType>,
        /// The site (SAN) to put it on; left out, this controller's SAN first, then the
        /// others by priority, off the arrays that hold the volume when it can.
        #[arg(long)]
        site: Option<String>,
        /// Follow the copy (a progress bar on a terminal) until the replica is in sync;
        /// fail if it fails.
        #[arg(long)]
        wait: bool,
    },
    /// A volume's I/O at this controller: its LUN, counters, and replica (syncing, in sync,
    /// failed).
    Io {
        /// The common volume name.
        name: VolumeName,
    },
    /// Set the hosts that may see a volume (LUN masking), at every controller. Ask the
    /// volume's owner.
    Mask {
        /// The common volume name.
        name: VolumeName,
        /// The hosts' port names (WWPNs), e.g. 21:00:00:24:ff:00:00:01.
        #[arg(value_name = "HOST", required_unless_present = "all_hosts")]
        hosts: Vec<Wwn>,
        /// Let every host see it (no masking).
        #[arg(long, conflicts_with = "hosts")]
        all_hosts: bool,
    },
    /// The controller's real volumes (figure 3 (a)) and their free space by type (figure 3 (b)).
    Real,
    /// The sector maps (figure 4 (b)) of every volume, or of one.
    Map {
        /// Only this volume.
        name: Option<VolumeName>,
    },
    /// The controllers this one knows, itself first: state, API, version vectors.
    Peers,
    /// The controller's counters.
    Counters,
}

fn capacity_arg(s: &str) -> Result<u64, String> {
    match parse_capacity(s) {
        Ok(0) => Err("a volume needs more than 0 bytes".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs one `fcsan volume` command, printing to `out`.
pub fn run(args: VolumeArgs, out: &mut dyn Write) -> Result<()> {
    let base = args
        .api
        .or_else(|| std::env::var(API_ENV).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| DEFAULT_API.to_owned());
    let api = Api::new(&base);
    let json = args.json;
    match args.command {
        VolumeCommand::List => {
            let text = api.call("GET", "/v1/volumes", None, json)?;
            if json {
                return print_json(out, &text);
            }
            let volumes: Vec<VolumeView> = decode(&text)?;
            if volumes.is_empty() {
                writeln!(out, "no volumes")?;
            } else {
                writeln!(out, "{}", volumes_table(&volumes))?;
            }
        }
        VolumeCommand::Show { name } => {
            let text = api.call("GET", &format!("/v1/volumes/{name}"), None, json)?;
            if json {
                return print_json(out, &text);
            }
            let v: VolumeView = decode(&text)?;
            show_volume(out, &v)?;
        }
        VolumeCommand::Build {
            media,
            capacity,
            name,
        } => {
            let spec = BuildSpec {
                name,
                media,
                capacity,
            };
            let body = serde_json::to_value(&spec)?;
            let text = api.call("POST", "/v1/volumes", Some(body), json)?;
            if json {
                return print_json(out, &text);
            }
            let v: VolumeView = decode(&text)?;
            writeln!(out, "built {}", v.name)?;
            show_volume(out, &v)?;
        }
        VolumeCommand::Delete { name, keep_data_in } => {
            let path = match &keep_data_in {
                Some(keep) => format!("/v1/volumes/{name}?keep={keep}"),
                None => format!("/v1/volumes/{name}"),
            };
            let text = api.call("DELETE", &path, None, json)?;
            if json {
                return print_json(out, &text);
            }
            match keep_data_in {
                Some(keep) => writeln!(out, "deleted {name} (its data kept in {keep})")?,
                None => writeln!(out, "deleted {name}")?,
            }
        }
        VolumeCommand::Replica {
            name,
            media,
            site,
            wait,
        } => {
            let body = serde_json::to_value(ReplicaSpec { media, site })?;
            let path = format!("/v1/volumes/{name}/replicas");
            let text = api.call("POST", &path, Some(body), json)?;
            if json && !wait {
                return print_json(out, &text);
            }
            let mut st: ReplicaState = decode(&text)?;
            if !json {
                writeln!(
                    out,
                    "replica of {name} started; `fcsan volume io {name}` follows it"
                )?;
            }
            if wait {
                st = follow_replica(&api, &name, st)?;
            }
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&st)?)?;
            } else {
                show_replica(out, &st)?;
            }
            if st.state == ReplicaPhase::Failed {
                bail!(
                    "the replica of {name} failed: {}",
                    st.reason.as_deref().unwrap_or("no reason given")
                );
            }
        }
        VolumeCommand::Io { name } => {
            let text = api.call("GET", &format!("/v1/volumes/{name}/io"), None, json)?;
            if json {
                return print_json(out, &text);
            }
            let io: VolumeIoView = decode(&text)?;
            match io.lun {
                Some(lun) => writeln!(out, "{name} is LUN {lun} at this controller")?,
                None => writeln!(out, "{name} is not served at this controller")?,
            }
            writeln!(out, "{}", io_table(&io))?;
            if let Some(st) = &io.replica {
                writeln!(out)?;
                show_replica(out, st)?;
            }
        }
        VolumeCommand::Mask {
            name,
            hosts,
            all_hosts: _,
        } => {
            let body = serde_json::to_value(MaskingSpec { hosts })?;
            let path = format!("/v1/volumes/{name}/masking");
            let text = api.call("PUT", &path, Some(body), json)?;
            if json {
                return print_json(out, &text);
            }
            let v: VolumeView = decode(&text)?;
            show_volume(out, &v)?;
        }
        VolumeCommand::Real => {
            let text = api.call("GET", "/v1/real-volumes", None, json)?;
            if json {
                return print_json(out, &text);
            }
            let real: RealVolumesView = decode(&text)?;
            let (volumes, free) = real_tables(&real);
            writeln!(
                out,
                "real volumes of {} (site {}), figure 3 (a):",
                real.controller, real.site
            )?;
            writeln!(out, "{volumes}")?;
            writeln!(out)?;
            writeln!(out, "free space by type, figure 3 (b):")?;
            writeln!(out, "{free}")?;
        }
        VolumeCommand::Map { name } => {
            let path = match &name {
                Some(n) => format!("/v1/volumes/{n}"),
                None => "/v1/volumes".to_owned(),
            };
            let text = api.call("GET", &path, None, json)?;
            if json {
                return print_json(out, &text);
            }
            let volumes: Vec<VolumeView> = match name {
                Some(_) => vec![decode(&text)?],
                None => decode(&text)?,
            };
            writeln!(out, "{}", map_table(&volumes))?;
        }
        VolumeCommand::Peers => {
            let text = api.call("GET", "/v1/peers", None, json)?;
            if json {
                return print_json(out, &text);
            }
            let peers: Vec<PeerView> = decode(&text)?;
            writeln!(out, "{}", peers_table(&peers))?;
        }
        VolumeCommand::Counters => {
            let text = api.call("GET", "/v1/counters", None, json)?;
            if json {
                return print_json(out, &text);
            }
            let counters: CountersView = decode(&text)?;
            writeln!(out, "{}", counters_table(&counters))?;
        }
    }
    Ok(())
}

/// The API at one base URL.
struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    fn new(base: &str) -> Api {
        let config = ureq::Agent::config_builder()
            // 4xx and 5xx are answers with a JSON message, not transport errors.
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            // A build waits for reservations and replication across sites.
            .timeout_global(Some(Duration::from_secs(120)))
            .build();
        Api {
            base: base.trim_end_matches('/').to_owned(),
            agent: config.new_agent(),
        }
    }

    /// Sends a request; answers the body of a 2xx, else fails with the server's message (and,
    /// with `json`, prints its JSON body to stdout first).
    fn call(&self, method: &str, path: &str, body: Option<Value>, json: bool) -> Result<String> {
        let url = format!("{}{path}", self.base);
        let sent = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            ("POST", Some(b)) => self.agent.post(&url).send_json(b),
            ("PUT", Some(b)) => self.agent.put(&url).send_json(b),
            _ => bail!("{method} {path}: not a request this client makes"),
        };
        let mut response =
            sent.with_context(|| format!("cannot reach the management API at {}", self.base))?;
        let status = response.status();
        let text = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("{method} {url}: cannot read the answer"))?;
        if status.is_success() {
            return Ok(text);
        }
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(err) => {
                if json {
                    print_json(&mut std::io::stdout().lock(), &text)?;
                }
                if !err.found.is_empty() {
                    eprintln!("found:\n{}", found_table(&err.found));
                }
                Err(anyhow!("{} ({status})", err.error))
            }
            Err(_) => Err(anyhow!(
                "{method} {url}: {status}{}{}",
                if text.is_empty() { "" } else { ": " },
                text.trim()
            )),
        }
    }
}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).context("the server's answer is not what this client expects")
}

fn print_json(out: &mut dyn Write, text: &str) -> Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    let value: Value = serde_json::from_str(text).context("the server's answer is not JSON")?;
    writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    Ok(())
}

/// A table in the house style (psql) of these headers and rows.
pub(crate) fn plain_table(header: &[&str], rows: Vec<Vec<String>>) -> Table {
    table(header, rows)
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> Table {
    let mut b = Builder::default();
    b.push_record(header.iter().copied());
    for r in rows {
        b.push_record(r);
    }
    let mut t = b.build();
    t.with(Style::psql());
    t
}

/// `first~last`, 1-based and inclusive, as PATENT.md writes ranges; `-` when empty.
fn range(start: u64, len: u64) -> String {
    if len == 0 {
        "-".into()
    } else {
        format!("{}~{}", start + 1, start + len)
    }
}

/// Figure 4 (a): one row a volume.
pub(crate) fn volumes_table(volumes: &[VolumeView]) -> Table {
    table(
        &[
            "volume",
            "controller",
            "controller WWPN",
            "FC_ID",
            "local name",
            "capacity",
            "type",
            "state",
            "version",
        ],
        volumes
            .iter()
            .map(|v| {
                vec![
                    v.name.to_string(),
                    v.owner.clone(),
                    v.owner_wwpn.to_string(),
                    v.owner_fc_id.to_string(),
                    v.local_name.clone(),
                    format_bytes(v.capacity),
                    v.media.to_string(),
                    v.state.to_string(),
                    format!("{}.{}", v.generation, v.version),
                ]
            })
            .collect(),
    )
}

/// Figure 4 (b): one row a map row, ranges 1-based like the patent's.
pub(crate) fn map_table(volumes: &[VolumeView]) -> Table {
    table(
        &MAP_HEADER,
        volumes
            .iter()
            .flat_map(|v| v.rows.iter().map(|r| map_row(&v.name, &v.local_name, r)))
            .collect(),
    )
}

const MAP_HEADER: [&str; 9] = [
    "volume",
    "virtual sectors (512 B, 1-based)",
    "local name",
    "storage FC_ID",
    "storage WWPN",
    "LUN",
    "real blocks (1-based)",
    "block",
    "copy",
];

/// One row of figure 4 (b).
fn map_row(volume: &VolumeName, local_name: &str, r: &MapRowView) -> Vec<String> {
    vec![
        volume.to_string(),
        range(r.virtual_start, r.sectors),
        local_name.to_owned(),
        r.array_fc_id.to_string(),
        r.array.to_string(),
        format!("LUN{}", r.lun),
        range(r.real_start, r.blocks),
        r.block_size.to_string(),
        match r.copy {
            0 => "primary".to_owned(),
            n => format!("replica {n}"),
        },
    ]
}

/// Polls the volume's replica until it is in sync or failed, with a progress bar of the
/// bytes copied on a terminal.
fn follow_replica(api: &Api, name: &VolumeName, mut st: ReplicaState) -> Result<ReplicaState> {
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = crate::progress::bar(st.total, show, &format!("replica of {name}"));
    let path = format!("/v1/volumes/{name}/io");
    while st.state == ReplicaPhase::Syncing {
        bar.set_length(st.total);
        bar.set_position(st.copied);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let io: VolumeIoView = decode(&api.call("GET", &path, None, false)?)?;
        st = io
            .replica
            .ok_or_else(|| anyhow!("{name} no longer reports a replica"))?;
    }
    bar.finish_and_clear();
    Ok(st)
}

/// A replica's state, and its rows (figure 4 (b); while syncing, not in the mapping yet).
fn show_replica(out: &mut dyn Write, st: &ReplicaState) -> Result<()> {
    let done = if st.total == 0 {
        100.0
    } else {
        st.copied as f64 * 100.0 / st.total as f64
    };
    let t = table(
        &[
            "volume", "replica", "copies", "copy", "copied", "rate", "limit", "reason",
        ],
        vec![vec![
            st.volume.to_string(),
            st.state.to_string(),
            st.copies.to_string(),
            st.copy.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            format!(
                "{} of {} ({done:.0}%)",
                format_bytes(st.copied),
                format_bytes(st.total)
            ),
            format!("{}/s", format_bytes(st.rate)),
            if st.rate_limit == 0 {
                "none".to_owned()
            } else {
                format!("{}/s", format_bytes(st.rate_limit))
            },
            st.reason.clone().unwrap_or_else(|| "-".to_owned()),
        ]],
    );
    writeln!(out, "{t}")?;
    if !st.rows.is_empty() {
        let rows = st
            .rows
            .iter()
            .map(|r| map_row(&st.volume, "-", r))
            .collect();
        writeln!(out)?;
        if st.state == ReplicaPhase::Syncing {
            writeln!(out, "its rows, not in the mapping until it is in sync:")?;
        }
        writeln!(out, "{}", table(&MAP_HEADER, rows))?;
    }
    Ok(())
}

/// A volume's counters at the answering controller.
fn io_table(io: &VolumeIoView) -> Table {
    let c = &io.counters;
    table(
        &["counter", "value"],
        [
            ("reads", c.reads.to_string()),
            ("writes", c.writes.to_string()),
            ("read", format_bytes(c.read_bytes)),
            ("written", format_bytes(c.write_bytes)),
            ("cache hits", c.cache_hits.to_string()),
            ("cache misses", c.cache_misses.to_string()),
            ("invalidations", c.invalidations.to_string()),
            ("WAN", format_bytes(c.wan_bytes)),
            ("WAN saved", format_bytes(c.wan_bytes_saved)),
            ("replica reads", c.replica_reads.to_string()),
            ("route changes", c.route_changes.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| vec![k.to_owned(), v])
        .collect(),
    )
}

fn show_volume(out: &mut dyn Write, v: &VolumeView) -> Result<()> {
    writeln!(out, "{}", volumes_table(std::slice::from_ref(v)))?;
    writeln!(out)?;
    if v.rows.is_empty() {
        writeln!(out, "no sector map rows")?;
    } else {
        writeln!(out, "{}", map_table(std::slice::from_ref(v)))?;
    }
    writeln!(out)?;
    if v.masking.is_empty() {
        writeln!(out, "visible to every host")?;
    } else {
        let hosts: Vec<String> = v.masking.iter().map(ToString::to_string).collect();
        writeln!(out, "visible to hosts {}", hosts.join(", "))?;
    }
    Ok(())
}

/// Figure 3 (a) and (b).
pub(crate) fn real_tables(real: &RealVolumesView) -> (Table, Table) {
    let volumes = table(
        &[
            "volumes on it",
            "storage FC_ID",
            "storage WWPN",
            "LUN",
            "capacity",
            "type",
            "block",
            "product",
            "present",
        ],
        real.volumes
            .iter()
            .map(|r| {
                let mut users: Vec<String> =
                    r.used_by.iter().map(|u| u.volume.to_string()).collect();
                users.sort_unstable();
                users.dedup();
                vec![
                    if users.is_empty() {
                        "-".to_owned()
                    } else {
                        users.join(", ")
                    },
                    r.array_fc_id.to_string(),
                    r.array.to_string(),
                    format!("LUN{}", r.lun),
                    format_bytes(r.capacity),
                    r.media.to_string(),
                    r.block_size.to_string(),
                    format!("{} {}", r.vendor, r.product),
                    if r.present { "yes" } else { "no" }.to_owned(),
                ]
            })
            .collect(),
    );
    let free = table(
        &["storage FC_ID", "storage WWPN", "type", "free", "extents"],
        real.free
            .iter()
            .map(|f| {
                vec![
                    f.array_fc_id.to_string(),
                    f.array.to_string(),
                    f.media.to_string(),
                    format_bytes(f.free_bytes),
                    f.extents.to_string(),
                ]
            })
            .collect(),
    );
    (volumes, free)
}

pub(crate) fn peers_table(peers: &[PeerView]) -> Table {
    table(
        &[
            "name", "site", "state", "WWPN", "FC_ID", "API", "heard", "versions",
        ],
        peers
            .iter()
            .map(|p| {
                let versions: Vec<String> = p
                    .versions
                    .iter()
                    .map(|v| {
                        let owner = v.owner_name.clone().unwrap_or_else(|| v.owner.to_string());
                        format!("{owner} {}.{}", v.generation, v.version)
                    })
                    .collect();
                vec![
                    p.name.clone(),
                    p.site.clone(),
                    p.state.to_string(),
                    p.wwpn.to_string(),
                    p.fc_id.to_string(),
                    if p.api.is_empty() {
                        "-".to_owned()
                    } else {
                        p.api.clone()
                    },
                    p.last_heard_ms
                        .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms ago")),
                    versions.join(", "),
                ]
            })
            .collect(),
    )
}

fn counters_table(counters: &CountersView) -> Table {
    table(
        &["counter", "value"],
        counters
            .counters
            .iter()
            .map(|(k, v)| vec![k.clone(), v.to_string()])
            .collect(),
    )
}

fn found_table(found: &[FoundView]) -> Table {
    table(
        &["site", "controller", "type", "free found"],
        found
            .iter()
            .map(|f| {
                vec![
                    f.site.clone(),
                    f.controller.clone(),
                    f.media.to_string(),
                    format_bytes(f.bytes),
                ]
            })
            .collect(),
    )
}
