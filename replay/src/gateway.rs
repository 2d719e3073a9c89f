//! Replay as an FCIP gateway: a fresh [`gateway::Gateway`] built from the capture's metadata
//! (its switch, K_A_TOV, peers and the seed of its connection nonces), listening on loopback;
//! the replayer plays the peer gateways' side of every TCP connection the capture holds.
//!
//! The capture is a gateway's pcapng FCIP capture (`--capture FILE.pcapng`): one FCIP frame
//! (a Special Frame or an encapsulated FC frame) per Ethernet/IP/TCP packet, each with its
//! direction. A connection the captured gateway dialled is dialled by the fresh one, to a
//! loopback listener of the replayer standing for that peer's address; a connection the peer
//! dialled the replayer dials to the fresh gateway. The replay goes in the capture's order, in
//! lockstep: before it sends an inbound packet's bytes (as captured: the peer's FSF or FSF
//! echo, its FCIP frames), it waits until the fresh gateway has sent as many frames as the
//! capture shows it had sent by then (at most [`STEP_WAIT`]).
//!
//! Compared, in order per connection: the Special Frames field by field by name (pFlags Ch,
//! source fabric WWN, source entity, nonce, usage flags and code, destination fabric WWN,
//! K_A_TOV — not the time stamp), and the FC frames through [`crate::compare`] (the
//! encapsulation header's time stamp is not compared, nor which connection of a link carried
//! the frame: that depends on which connections were up when it was sent). The fresh
//! gateway's connections to one peer come in any order; they are paired with the capture's by
//! their FSF nonces. Keep-alives are driven by real time, so
//! they are left out on both sides: LKAs and their LS_ACCs the gateway sends are not compared,
//! the peer's LKAs are fed (the fresh gateway's answers are not compared) and the peer's
//! answers to the captured gateway's LKAs are not fed.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use fc_frames::encap::Timestamp;
use fc_frames::FcFrame;
use fc_pcap::capture::Direction;
use fcip::connection::{is_lka, is_lka_reply};
use fcip::engine::{Output, Receiver, ReceiverConfig};
use fcip::fsf::SpecialFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};

use crate::compare::{compare, Difference, Sent};
use crate::{Loaded, Outcome, ReplayError, Role};

/// Longest wait for the fresh gateway's frames before the next inbound packet is sent (and
/// at the end).
pub const STEP_WAIT: Duration = Duration::from_secs(3);

/// What an FCIP packet of the capture, or of the fresh gateway's stream, holds.
#[derive(Debug, Clone)]
enum Item {
    Fsf(SpecialFrame),
    Frame(FcFrame),
}

impl Item {
    /// Whether it is compared (keep-alives are not).
    fn compared(&self) -> bool {
        match self {
            Item::Fsf(_) => true,
            Item::Frame(f) => !is_lka(f) && !is_lka_reply(f),
        }
    }
}

/// One packet of the capture.
struct Packet {
    number: usize,
    direction: Direction,
    /// Index of its TCP connection, in order of first appearance.
    conn: usize,
    payload: Vec<u8>,
    item: Item,
}

/// One TCP connection of the capture: the gateway's end, the peer's, who dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Conn {
    gateway: SocketAddr,
    peer: SocketAddr,
    gateway_dialled: bool,
}

fn bad(number: usize, why: impl Into<String>) -> ReplayError {
    ReplayError::BadFrame {
        number,
        why: why.into(),
    }
}

fn setup(why: impl ToString) -> ReplayError {
    ReplayError::Setup {
        role: "gateway",
        why: why.to_string(),
    }
}

/// The FCIP frames in `bytes` (a TCP payload or a stretch of the stream), as `receiver`
/// frames them.
fn items(receiver: &mut Receiver, bytes: &[u8]) -> Result<Vec<Item>, String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    loop {
        let n = receiver.push(rest);
        rest = rest.get(n..).unwrap_or(&[]);
        while let Some(o) = receiver.poll(Timestamp::ZERO) {
            match o {
                Output::Frame { frame, .. } => out.push(Item::Frame(frame)),
                Output::Special(s) => out.push(Item::Fsf(s)),
                Output::Malformed { error, .. } => return Err(format!("bad FC frame: {error}")),
                Output::SyncLost { error } => return Err(format!("not FCIP: {error}")),
            }
        }
        if rest.is_empty() || n == 0 {
            return Ok(out);
        }
    }
}

/// The capture's packets and connections.
fn packets(loaded: &Loaded) -> Result<(Vec<Packet>, Vec<Conn>), ReplayError> {
    let mut packets = Vec::new();
    let mut conns: Vec<Conn> = Vec::new();
    for p in &loaded.capture.packets {
        let n = p.number;
        let iface = &loaded.capture.interfaces[p.interface];
        if iface.linktype != pcap_file::DataLink::ETHERNET {
            return Err(bad(
                n,
                format!("link type {} is not Ethernet", u32::from(iface.linktype)),
            ));
        }
        let direction = p
            .direction
            .ok_or_else(|| bad(n, "no direction (epb_flags)"))?;
        let sliced = SlicedPacket::from_ethernet(&p.data)
            .map_err(|e| bad(n, format!("not Ethernet/IP/TCP: {e}")))?;
        let (src, dst): (std::net::IpAddr, std::net::IpAddr) = match sliced.net {
            Some(NetSlice::Ipv4(ip)) => (
                ip.header().source_addr().into(),
                ip.header().destination_addr().into(),
            ),
            Some(NetSlice::Ipv6(ip)) => (
                ip.header().source_addr().into(),
                ip.header().destination_addr().into(),
            ),
            _ => return Err(bad(n, "not IP")),
        };
        let Some(TransportSlice::Tcp(tcp)) = sliced.transport else {
            return Err(bad(n, "not TCP"));
        };
        let src = SocketAddr::new(src, tcp.source_port());
        let dst = SocketAddr::new(dst, tcp.destination_port());
        let (gw, peer) = match direction {
            Direction::Outbound => (src, dst),
            Direction::Inbound => (dst, src),
        };
        let payload = tcp.payload().to_vec();
        let mut receiver = Receiver::new(ReceiverConfig::default());
        let mut found = items(&mut receiver, &payload).map_err(|e| bad(n, e))?;
        if found.len() != 1 || receiver.buffered() != 0 {
            return Err(bad(
                n,
                format!(
                    "{} FCIP frames in one TCP segment (an FCIP capture has one)",
                    found.len()
                ),
            ));
        }
        let item = found.remove(0);
        let conn = match conns.iter().position(|c| c.gateway == gw && c.peer == peer) {
            Some(i) => i,
            None => {
                if !matches!(item, Item::Fsf(_)) {
                    return Err(bad(
                        n,
                        "the connection's first packet is not a Special Frame (the capture \
                         began after the connection was set up)",
                    ));
                }
                conns.push(Conn {
                    gateway: gw,
                    peer,
                    gateway_dialled: direction == Direction::Outbound,
                });
                conns.len() - 1
            }
        };
        packets.push(Packet {
            number: n,
            direction,
            conn,
            payload,
            item,
        });
    }
    Ok((packets, conns))
}

/// What the fresh gateway sent, in order, with its connection.
type Got = Arc<Mutex<Vec<(usize, Item)>>>;

fn lock(got: &Got) -> std::sync::MutexGuard<'_, Vec<(usize, Item)>> {
    got.lock().unwrap_or_else(|e| e.into_inner())
}

fn compared_count(got: &Got) -> usize {
    lock(got).iter().filter(|(_, i)| i.compared()).count()
}

/// Waits (at most [`STEP_WAIT`]) until the fresh gateway has sent `n` compared frames.
async fn wait_for(got: &Got, n: usize) {
    let deadline = tokio::time::Instant::now() + STEP_WAIT;
    while compared_count(got) < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Reads what the fresh gateway sends on connection `conn` into `got`.
async fn read_into(mut rd: tokio::net::tcp::OwnedReadHalf, conn: usize, got: Got) {
    let mut receiver = Receiver::new(ReceiverConfig::default());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let Ok(found) = items(&mut receiver, &buf[..n]) else {
            return;
        };
        lock(&got).extend(found.into_iter().map(|i| (conn, i)));
    }
}

/// Connections the fresh gateway dialled, with the Special Frame each opened with, not yet
/// paired with one of the capture's.
type Pending = Vec<(SocketAddr, SpecialFrame, TcpStream)>;

/// The fresh gateway's connection to the listener standing for `peer` that matches the
/// capture's connection whose FSF carried `nonce`: connections to one peer are dialled at
/// once and come in any order, so they are told apart by their nonces. One that does not
/// match waits in `pending`; when none matches within [`STEP_WAIT`], the first that came is
/// taken (the nonce then shows as the difference).
async fn accept(
    listeners: &HashMap<SocketAddr, TcpListener>,
    pending: &mut Pending,
    peer: SocketAddr,
    nonce: u64,
) -> Result<(TcpStream, SpecialFrame), String> {
    let listener = listeners
        .get(&peer)
        .ok_or_else(|| format!("the gateway dialled {peer}, not a peer it dials"))?;
    let deadline = tokio::time::Instant::now() + STEP_WAIT;
    loop {
        if let Some(i) = pending
            .iter()
            .position(|(to, fsf, _)| *to == peer && fsf.nonce == nonce)
        {
            let (_, fsf, s) = pending.remove(i);
            return Ok((s, fsf));
        }
        let accepted = tokio::time::timeout_at(deadline, async {
            let (mut s, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let mut b = [0u8; fcip::fsf::FSF_LEN];
            s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
            let fsf = SpecialFrame::parse(&b).map_err(|e| e.to_string())?;
            Ok::<_, String>((s, fsf))
        })
        .await;
        match accepted {
            Ok(Ok((s, fsf))) => pending.push((peer, fsf, s)),
            Ok(Err(e)) => return Err(format!("the gateway's connection to {peer}: {e}")),
            Err(_) => {
                return match pending.iter().position(|(to, _, _)| *to == peer) {
                    Some(i) => {
                        let (_, fsf, s) = pending.remove(i);
                        Ok((s, fsf))
                    }
                    None => Err(format!("the gateway did not dial {peer}")),
                };
            }
        }
    }
}

/// Replays `loaded` as a gateway.
pub fn replay(loaded: &Loaded) -> Result<Outcome, ReplayError> {
    let mut config =
        topology::capture::gateway_config_from_json(&loaded.metadata.config).map_err(setup)?;
    let (packets, conns) = packets(loaded)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| setup(format!("runtime: {e}")))?;
    rt.block_on(async move {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        // A listener of ours for each peer the gateway dials, standing for its address.
        let mut listeners = HashMap::new();
        for p in &mut config.peers {
            if let Some(addr) = p.dial {
                let l = TcpListener::bind(loopback)
                    .await
                    .map_err(|e| setup(format!("listen on loopback: {e}")))?;
                p.dial = Some(l.local_addr().map_err(setup)?);
                listeners.insert(addr, l);
            }
        }
        config.fcip_listen = loopback;
        config.capture = None;
        let gw = gateway::Gateway::start(config, loaded.metadata.seed)
            .await
            .map_err(setup)?;
        let got: Got = Arc::default();
        let mut writers: Vec<Option<OwnedWriteHalf>> = conns.iter().map(|_| None).collect();
        let mut pending = Vec::new();
        let mut expected = Vec::new();
        let mut expected_fsf = Vec::new();
        let mut fed = 0;
        for p in &packets {
            if writers[p.conn].is_none() {
                let c = conns[p.conn];
                let (stream, first) = if c.gateway_dialled {
                    let nonce = match &p.item {
                        Item::Fsf(s) => s.nonce,
                        Item::Frame(_) => 0,
                    };
                    let (s, fsf) = accept(&listeners, &mut pending, c.peer, nonce)
                        .await
                        .map_err(|why| bad(p.number, why))?;
                    (s, Some(fsf))
                } else {
                    let s = TcpStream::connect(gw.fcip_addr())
                        .await
                        .map_err(|e| setup(format!("dial the gateway: {e}")))?;
                    (s, None)
                };
                if let Some(fsf) = first {
                    lock(&got).push((p.conn, Item::Fsf(fsf)));
                }
                let (rd, wr) = stream.into_split();
                tokio::spawn(read_into(rd, p.conn, Arc::clone(&got)));
                writers[p.conn] = Some(wr);
            }
            match p.direction {
                Direction::Outbound => match &p.item {
                    Item::Fsf(s) => expected_fsf.push((p.number, p.conn, *s)),
                    Item::Frame(f) if p.item.compared() => expected.push(Sent {
                        number: p.number,
                        port: 0,
                        frame: f.clone(),
                    }),
                    Item::Frame(_) => {}
                },
                Direction::Inbound => {
                    if matches!(&p.item, Item::Frame(f) if is_lka_reply(f)) {
                        continue;
                    }
                    wait_for(&got, expected.len() + expected_fsf.len()).await;
                    if let Some(w) = writers[p.conn].as_mut() {
                        // A write the gateway refused shows as frames missing.
                        let _ = w.write_all(&p.payload).await;
                    }
                    fed += 1;
                }
            }
        }
        wait_for(&got, expected.len() + expected_fsf.len()).await;
        // Anything more it would send.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got = std::mem::take(&mut *lock(&got));
        let mut got_fsf = Vec::new();
        let mut got_frames = Vec::new();
        // Which connection of a link carries an FC frame depends on which were up when it was
        // sent (real time): not compared.
        for (conn, item) in got.into_iter().filter(|(_, i)| i.compared()) {
            match item {
                Item::Fsf(s) => got_fsf.push((conn, s)),
                Item::Frame(frame) => got_frames.push(Sent {
                    number: 0,
                    port: 0,
                    frame,
                }),
            }
        }
        let sent = got_fsf.len() + got_frames.len();
        let last = packets.last().map_or(0, |p| p.number);
        let differences = [
            compare_fsf(&expected_fsf, &got_fsf, last),
            compare(&expected, &got_frames),
        ];
        let difference = differences.into_iter().flatten().min_by_key(|d| d.frame);
        drop(writers);
        Ok(Outcome {
            role: Role::Gateway,
            fed,
            expected: expected.len() + expected_fsf.len(),
            sent,
            difference,
            notes: vec!["keep-alives (LKA and their LS_ACCs) are not compared".into()],
        })
    })
}

/// The Special Frames' fields, by name, as compared.
fn fsf_fields(s: &SpecialFrame) -> [(&'static str, String); 8] {
    [
        ("pFlags Ch", s.changed.to_string()),
        ("source fabric WWN", s.source_fabric.to_string()),
        ("source entity", format!("{:02x?}", s.source_entity)),
        ("nonce", format!("{:#018x}", s.nonce)),
        ("usage flags", format!("{:#04x}", s.usage_flags)),
        ("usage code", format!("{:#06x}", s.usage_code)),
        ("destination fabric WWN", s.destination_fabric.to_string()),
        ("K_A_TOV", format!("{} ms", s.k_a_tov_ms)),
    ]
}

/// The first difference between the Special Frames the capture shows the gateway sent and
/// those the fresh one sent, per connection in order.
fn compare_fsf(
    expected: &[(usize, usize, SpecialFrame)],
    got: &[(usize, SpecialFrame)],
    last: usize,
) -> Option<Difference> {
    let mut used = vec![false; got.len()];
    for (number, conn, e) in expected {
        let Some(i) = (0..got.len()).find(|&i| !used[i] && got[i].0 == *conn) else {
            return Some(Difference {
                frame: *number,
                field: "Special Frame".into(),
                expected: format!("FSF nonce {:#018x}", e.nonce),
                got: "nothing (the replay sent no Special Frame)".into(),
            });
        };
        used[i] = true;
        for ((name, want), (_, have)) in fsf_fields(e).into_iter().zip(fsf_fields(&got[i].1)) {
            if want != have {
                return Some(Difference {
                    frame: *number,
                    field: format!("FSF {name}"),
                    expected: want,
                    got: have,
                });
            }
        }
    }
    got.iter()
        .zip(&used)
        .find(|(_, u)| !**u)
        .map(|((_, s), _)| Difference {
            frame: last,
            field: "Special Frame after the capture's".into(),
            expected: "nothing".into(),
            got: format!("FSF nonce {:#018x}", s.nonce),
        })
}
