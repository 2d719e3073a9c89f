//! Every role's own capture (`--capture FILE`): pcapng with the metadata a replay needs to
//! start a fresh instance of the role ([`fc_pcap::capture::Metadata`]), one interface per
//! link or port, each packet marked inbound or outbound.
//!
//! A node's capture taps its link: the connector's link is relayed through an in-process pair,
//! and every frame that crosses is recorded once, as the node sent or received it. Records are
//! written unbuffered, so a capture survives a kill of the process. The switch's capture
//! ([`crate::switch::capture_switch`]) uses the switch's own tap.
//!
//! The `config` of the metadata, per role:
//! - `switch`: [`switch_config_json`] (domain, names, F_Ports, time-outs, zoning);
//! - `array`, `host`, `controller`: [`node_config_json`] (names, symbolic name, time-outs), and
//!   for an array its LUNs and tapes ([`array_metadata`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fabric::config::{DefaultZone, Zone, ZoneSet, Zoning};
use fabric::link::{self, Link, LinkRx, LinkTx, Received};
use fabric::{Config, PortId};
use fc_frames::scsi::Lun;
use fc_frames::{FcFrame, Wwn};
use fc_node::disk::{LunSpec, TapeSpec};
use fc_node::node::{Connector, NodeConfig};
use fc_node::scsi::Tier;
use fc_pcap::capture::{CaptureError, Direction, Metadata, RoleCaptureWriter};
use pcap_file::DataLink;
use serde_json::{json, Value};

use crate::StartError;

/// The name of a node's link in its capture.
pub const NODE_LINK: &str = "link to switch";

/// Now, since the Unix epoch.
pub fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// An open role capture: shared by the tasks that record into it.
#[derive(Clone)]
pub struct CaptureFile {
    writer: Arc<Mutex<RoleCaptureWriter<File>>>,
}

impl std::fmt::Debug for CaptureFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaptureFile")
    }
}

impl CaptureFile {
    /// Creates the pcapng file at `path` (FC frames, link type 225) with `metadata`.
    pub fn create(path: &Path, metadata: &Metadata) -> Result<CaptureFile, StartError> {
        let capture_error = |source| StartError::Capture {
            path: path.to_path_buf(),
            source,
        };
        let file = File::create(path).map_err(|source| {
            capture_error(CaptureError::File {
                path: path.to_path_buf(),
                source,
            })
        })?;
        // Unbuffered: every record reaches the file at once, so a capture survives a kill.
        let writer = RoleCaptureWriter::new(file, metadata, DataLink::FC_2_WITH_FRAME_DELIMS)
            .map_err(capture_error)?;
        Ok(CaptureFile {
            writer: Arc::new(Mutex::new(writer)),
        })
    }

    /// Records `frame`, seen now on `interface` going `direction`.
    pub fn record(&self, interface: &str, direction: Direction, frame: &FcFrame) {
        let ts = wall_clock();
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = w.write_frame(interface, ts, direction, frame) {
            tracing::warn!(error = %e, "capture write failed");
        }
    }
}

/// A connector whose every link is tapped: what the node sends and receives on it is
/// recorded in `capture` (interface [`NODE_LINK`]).
/// Without a capture, the connector as it is.
pub fn tapped(connector: impl Connector, capture: Option<CaptureFile>) -> impl Connector {
    Tapped {
        inner: connector,
        capture,
    }
}

/// Opens the capture at `path` (when given) with the metadata `metadata` makes, and taps
/// `connector` with it.
pub fn tap_node(
    connector: impl Connector,
    path: Option<&Path>,
    metadata: impl FnOnce() -> Metadata,
) -> Result<impl Connector, StartError> {
    let capture = match path {
        Some(p) => Some(CaptureFile::create(p, &metadata())?),
        None => None,
    };
    Ok(tapped(connector, capture))
}

struct Tapped<C> {
    inner: C,
    capture: Option<CaptureFile>,
}

impl<C: Connector> Connector for Tapped<C> {
    fn connect(&mut self) -> Pin<Box<dyn Future<Output = io::Result<Link>> + Send + '_>> {
        let capture = self.capture.clone();
        let fut = self.inner.connect();
        Box::pin(async move {
            let link = fut.await?;
            Ok(match capture {
                Some(c) => relay(link, c),
                None => link,
            })
        })
    }
}

/// The node's end of a pair whose other end is relayed to `real`, recording every frame.
fn relay(real: Link, capture: CaptureFile) -> Link {
    let (node_end, relay_end) = link::pair();
    // Switch to node: ends when the switch's side goes down, and dropping the relay's sender
    // then takes the node's link down. Node to switch: ends when the node drops its link,
    // and dropping the real sender closes the real one.
    tokio::spawn(forward(
        real.rx,
        relay_end.tx,
        capture.clone(),
        Direction::Inbound,
    ));
    tokio::spawn(forward(relay_end.rx, real.tx, capture, Direction::Outbound));
    node_end
}

/// Moves everything from `rx` to `tx`, recording each frame as going `direction`.
async fn forward(mut rx: LinkRx, tx: LinkTx, capture: CaptureFile, direction: Direction) {
    while let Some(item) = rx.recv().await {
        let sent = match item {
            Received::Frame(frame) => {
                capture.record(NODE_LINK, direction, &frame);
                tx.send(frame).await
            }
            Received::Malformed { bytes, error } => tx.send_malformed(bytes, error).await,
        };
        if sent.is_err() {
            break;
        }
    }
}

/// The metadata of a node's capture: its role, names, seed and time-outs; `config` gets the
/// node's settings merged with `more`.
pub fn node_metadata(role: &str, nc: &NodeConfig, more: Value) -> Metadata {
    let mut config = node_config_json(nc);
    if let (Value::Object(c), Value::Object(m)) = (&mut config, more) {
        c.extend(m);
    }
    Metadata {
        role: role.into(),
        seed: nc.seed,
        clock_origin_ns: wall_clock().as_nanos() as u64,
        config,
        extra: serde_json::Map::new(),
    }
}

/// The metadata of a disk array's capture: the node and every LUN (size, block size, tier,
/// serial; whether its file was new, that is zeroed, at start) and tape.
pub fn array_metadata(nc: &NodeConfig, luns: &[LunSpec], tapes: &[TapeSpec]) -> Metadata {
    let luns: Vec<Value> = luns
        .iter()
        .map(|l| {
            json!({
                "lun": l.lun.index().unwrap_or(0),
                "bytes": l.bytes,
                "block_size": l.block_size,
                "tier": l.tier.name(),
                "serial": l.serial,
                "fresh": std::fs::metadata(&l.path).map_or(true, |m| m.len() == 0),
            })
        })
        .collect();
    let tapes: Vec<Value> = tapes
        .iter()
        .map(|t| json!({"lun": t.lun.index().unwrap_or(0), "serial": t.serial}))
        .collect();
    node_metadata("array", nc, json!({"luns": luns, "tapes": tapes}))
}

/// A node's settings as the metadata holds them.
pub fn node_config_json(nc: &NodeConfig) -> Value {
    json!({
        "port_name": nc.port_name.to_string(),
        "node_name": nc.node_name.to_string(),
        "symbolic_name": nc.symbolic_name,
        "initiator": nc.initiator,
        "target": nc.target,
        "e_d_tov_ms": nc.exchange.e_d_tov.as_millis() as u64,
        "r_a_tov_ms": nc.exchange.r_a_tov.as_millis() as u64,
        "els_timeout_ms": nc.els_timeout.as_millis() as u64,
    })
}

/// Reads back what [`node_config_json`] wrote (and the seed) into a node configuration.
pub fn node_config_from_json(v: &Value, seed: u64) -> Result<NodeConfig, String> {
    let port_name = wwn(v, "port_name")?;
    let mut nc = NodeConfig::new(port_name, wwn(v, "node_name")?);
    nc.symbolic_name = string(v, "symbolic_name")?;
    nc.initiator = v["initiator"].as_bool().unwrap_or(false);
    nc.target = v["target"].as_bool().unwrap_or(false);
    nc.exchange.e_d_tov = Duration::from_millis(number(v, "e_d_tov_ms")?);
    nc.exchange.r_a_tov = Duration::from_millis(number(v, "r_a_tov_ms")?);
    nc.els_timeout = Duration::from_millis(number(v, "els_timeout_ms")?);
    nc.seed = seed;
    Ok(nc)
}

/// The LUNs and tapes of an array's metadata, LUN files in `dir`.
pub fn array_luns_from_json(
    v: &Value,
    dir: &Path,
) -> Result<(Vec<LunSpec>, Vec<TapeSpec>), String> {
    let lun = |l: &Value| -> Result<Lun, String> {
        let n = number(l, "lun")?;
        u16::try_from(n)
            .ok()
            .and_then(Lun::from_index)
            .ok_or_else(|| format!("LUN {n} is out of range"))
    };
    let mut luns = Vec::new();
    for l in v["luns"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let tier = string(l, "tier")?;
        let tier = [Tier::Ssd, Tier::FastHdd, Tier::SlowHdd]
            .into_iter()
            .find(|t| t.name() == tier)
            .ok_or_else(|| format!("unknown tier {tier:?}"))?;
        let lun = lun(l)?;
        luns.push(LunSpec {
            lun,
            path: dir.join(format!("lun{}.img", lun.index().unwrap_or(0))),
            bytes: number(l, "bytes")?,
            block_size: u32::try_from(number(l, "block_size")?)
                .map_err(|_| "block_size out of range".to_string())?,
            tier,
            serial: string(l, "serial")?,
        });
    }
    let mut tapes = Vec::new();
    for t in v["tapes"].as_array().map(Vec::as_slice).unwrap_or_default() {
        tapes.push(TapeSpec {
            lun: lun(t)?,
            serial: string(t, "serial")?,
        });
    }
    Ok((luns, tapes))
}

/// A switch's configuration as its capture's metadata holds it.
pub fn switch_config_json(c: &Config) -> Value {
    let f_ports: BTreeMap<String, Value> = c
        .f_ports
        .iter()
        .map(|(p, w)| {
            (
                p.0.to_string(),
                w.map_or(Value::Null, |w| w.to_string().into()),
            )
        })
        .collect();
    let zoning = json!({
        "default_zone": match c.zoning.default_zone {
            DefaultZone::AllAccess => "all-access",
            DefaultZone::NoAccess => "no-access",
        },
        "active": c.zoning.active.as_ref().map(|s| json!({
            "name": s.name,
            "zones": s.zones.iter().map(|z| json!({
                "name": z.name,
                "members": z.members.iter().map(Wwn::to_string).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })),
    });
    json!({
        "domain": c.domain,
        "switch_name": c.switch_name.to_string(),
        "fabric_name": c.fabric_name.to_string(),
        "f_ports": f_ports,
        "r_a_tov_ms": c.r_a_tov,
        "e_d_tov_ms": c.e_d_tov,
        "zoning": zoning,
    })
}

/// Reads back what [`switch_config_json`] wrote.
pub fn switch_config_from_json(v: &Value) -> Result<Config, String> {
    let domain =
        u8::try_from(number(v, "domain")?).map_err(|_| "domain out of range".to_string())?;
    let mut c = Config::new(domain, wwn(v, "switch_name")?, []);
    c.fabric_name = wwn(v, "fabric_name")?;
    let ports = v["f_ports"]
        .as_object()
        .ok_or("the switch configuration has no f_ports")?;
    for (p, w) in ports {
        let p: u8 = p.parse().map_err(|_| format!("bad port number {p:?}"))?;
        let w = match w {
            Value::Null => None,
            Value::String(s) => Some(s.parse().map_err(|_| format!("bad port name {s:?}"))?),
            _ => return Err(format!("bad port name for port {p}")),
        };
        c.f_ports.insert(PortId(p), w);
    }
    let ms =
        |k| number(v, k).and_then(|n| u32::try_from(n).map_err(|_| format!("{k} out of range")));
    c.r_a_tov = ms("r_a_tov_ms")?;
    c.e_d_tov = ms("e_d_tov_ms")?;
    let z = &v["zoning"];
    c.zoning = Zoning {
        default_zone: match z["default_zone"].as_str() {
            Some("no-access") => DefaultZone::NoAccess,
            _ => DefaultZone::AllAccess,
        },
        active: match &z["active"] {
            Value::Null => None,
            s => {
                let mut zones = Vec::new();
                for zone in s["zones"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    let mut members = std::collections::BTreeSet::new();
                    for m in zone["members"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                    {
                        let m = m.as_str().ok_or("bad zone member")?;
                        members.insert(m.parse().map_err(|_| format!("bad zone member {m:?}"))?);
                    }
                    zones.push(Zone {
                        name: string(zone, "name")?,
                        members,
                    });
                }
                Some(ZoneSet {
                    name: string(s, "name")?,
                    zones,
                })
            }
        },
    };
    Ok(c)
}

/// The metadata of a controller's capture: its node, identity and heartbeat. The
/// installation key is not written (a capture is shared; the key is not): a replay takes it
/// from the controller's file.
pub fn controller_metadata(c: &controller::driver::ControllerConfig) -> Metadata {
    let mut nc = NodeConfig::new(c.port_name, c.node_name);
    nc.symbolic_name = c.symbolic_name();
    nc.initiator = true;
    nc.target = true;
    nc.els_timeout = Duration::from_secs(5);
    node_metadata(
        "controller",
        &nc,
        json!({
            "name": c.name,
            "site": c.site,
            "api_url": c.api_url,
            "heartbeat_ms": c.heartbeat.as_millis() as u64,
            "peers": c.peers.iter().map(Wwn::to_string).collect::<Vec<_>>(),
            "database_fresh": !c.database.exists(),
        }),
    )
}

/// The metadata of a switch's capture.
pub fn switch_metadata(c: &Config) -> Metadata {
    Metadata {
        role: "switch".into(),
        seed: 0,
        clock_origin_ns: wall_clock().as_nanos() as u64,
        config: switch_config_json(c),
        extra: serde_json::Map::new(),
    }
}

fn number(v: &Value, key: &str) -> Result<u64, String> {
    v[key]
        .as_u64()
        .ok_or_else(|| format!("the configuration has no number {key}"))
}

fn string(v: &Value, key: &str) -> Result<String, String> {
    v[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("the configuration has no string {key}"))
}

fn wwn(v: &Value, key: &str) -> Result<Wwn, String> {
    let s = string(v, key)?;
    s.parse().map_err(|_| format!("{key} {s:?} is not a WWN"))
}

/// The metadata of a gateway's FCIP capture: its switch, FCIP listening address, K_A_TOV,
/// receive engine settings and peers (each one's fabric WWN, inter-switch port, connections
/// and whether the gateway dials it), and the seed of its connection nonces.
pub fn gateway_metadata(c: &gateway::GatewayConfig, seed: u64) -> Metadata {
    let r = &c.receiver;
    Metadata {
        role: "gateway".into(),
        seed,
        clock_origin_ns: wall_clock().as_nanos() as u64,
        config: json!({
            "switch": switch_config_json(&c.switch),
            "fcip_listen": c.fcip_listen.to_string(),
            "k_a_tov_ms": c.k_a_tov.as_millis() as u64,
            "receiver": {
                "on_error": match r.on_error {
                    fcip::engine::OnError::Resync => "resync",
                    fcip::engine::OnError::Close => "close",
                },
                "transit_limit_ms": r.transit_limit.map(|t| t.as_millis() as u64),
                "max_buffered": r.max_buffered,
            },
            "peers": c.peers.iter().map(|p| json!({
                "fabric": p.fabric.to_string(),
                "dial": p.dial.map(|a| a.to_string()),
                "domains": p.domains,
                "port": p.port.0,
                "connections": p.connections,
            })).collect::<Vec<_>>(),
        }),
        extra: serde_json::Map::new(),
    }
}

/// Reads back what [`gateway_metadata`] wrote as the configuration (no capture file).
pub fn gateway_config_from_json(v: &Value) -> Result<gateway::GatewayConfig, String> {
    let switch = switch_config_from_json(&v["switch"])?;
    let addr = |s: &str| {
        s.parse::<std::net::SocketAddr>()
            .map_err(|_| format!("{s:?} is not an address"))
    };
    let fcip_listen = addr(&string(v, "fcip_listen")?)?;
    let k_a_tov = Duration::from_millis(number(v, "k_a_tov_ms")?);
    let r = &v["receiver"];
    let receiver = fcip::engine::ReceiverConfig {
        on_error: match r["on_error"].as_str() {
            Some("close") => fcip::engine::OnError::Close,
            _ => fcip::engine::OnError::Resync,
        },
        transit_limit: r["transit_limit_ms"].as_u64().map(Duration::from_millis),
        max_buffered: usize::try_from(number(r, "max_buffered")?)
            .map_err(|_| "max_buffered out of range".to_string())?,
    };
    let mut peers = Vec::new();
    for p in v["peers"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let port = u8::try_from(number(p, "port")?).map_err(|_| "peer port out of range")?;
        let domains = p["domains"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|d| d.as_u64().and_then(|d| u8::try_from(d).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or("bad peer domain")?;
        peers.push(gateway::PeerConfig {
            fabric: wwn(p, "fabric")?,
            dial: p["dial"].as_str().map(addr).transpose()?,
            domains,
            port: PortId(port),
            connections: usize::try_from(number(p, "connections")?)
                .map_err(|_| "connections out of range")?,
        });
    }
    Ok(gateway::GatewayConfig {
        switch,
        fcip_listen,
        peers,
        k_a_tov,
        receiver,
        capture: None,
    })
}

/// Starts a gateway; an FCIP capture whose file name ends in `.pcapng` is written as pcapng
/// with the gateway's metadata ([`gateway_metadata`], replayable with `fcsan pcap replay`),
/// any other as classic pcap.
pub async fn start_gateway(
    config: gateway::GatewayConfig,
    seed: u64,
) -> Result<gateway::Gateway, gateway::GatewayError> {
    let pcapng = config
        .capture
        .as_ref()
        .is_some_and(|p| p.extension().is_some_and(|e| e == "pcapng"));
    let metadata = pcapng.then(|| gateway_metadata(&config, seed));
    gateway::Gateway::start_with(config, seed, metadata).await
}
