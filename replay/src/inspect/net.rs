//! From a packet record to what inspect reads in it: an FC frame (link types 224 and 225), or a
//! TCP segment (Ethernet with VLAN tags, raw IP, Linux cooked captures v1 and v2, then IPv4 or
//! IPv6), parsed with `etherparse` leniently so that a record cut by the snapshot length still
//! gives the bytes it has and says how many it lacks.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use super::reader::{link, Direction, Packet};

/// One direction of a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
}

impl FlowKey {
    /// The other direction.
    pub fn reverse(self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
        }
    }
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} > {}", self.src, self.dst)
    }
}

/// A TCP segment as captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Its direction.
    pub flow: FlowKey,
    /// Sequence number.
    pub seq: u32,
    /// The acknowledgement number, when ACK is set.
    pub ack: Option<u32>,
    /// SYN.
    pub syn: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
    /// The payload bytes captured.
    pub payload: &'a [u8],
    /// Payload bytes the segment carried that the capture cut off (snapshot length).
    pub missing: usize,
}

/// What a record holds, for inspect.
#[derive(Debug)]
pub enum Content<'a> {
    /// An FC frame's bytes, with (225) or without (224) delimiters and CRC.
    Fc {
        /// Whether SOF, EOF and CRC are present.
        delimited: bool,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// A TCP segment; the direction a Linux cooked header gives, if any.
    Tcp(Segment<'a>, Option<Direction>),
    /// Anything else (ARP, UDP, IP fragments...): passed over.
    Other,
}

/// Reads a record by its link type.
pub fn content(p: &Packet) -> Content<'_> {
    let data = &p.data[..];
    let missing_total = (p.orig_len as usize).saturating_sub(data.len());
    let (sliced, direction) = match p.link {
        link::FC_2_WITH_FRAME_DELIMS => {
            return Content::Fc {
                delimited: true,
                bytes: data,
            }
        }
        link::FC_2 => {
            return Content::Fc {
                delimited: false,
                bytes: data,
            }
        }
        link::ETHERNET => (LaxSlicedPacket::from_ethernet(data).ok(), None),
        link::RAW | link::IPV4 | link::IPV6 => (LaxSlicedPacket::from_ip(data).ok(), None),
        link::LINUX_SLL => match sll(data, 0, 14, 16) {
            Some((ty, dir, rest)) => (Some(LaxSlicedPacket::from_ether_type(ty, rest)), dir),
            None => (None, None),
        },
        link::LINUX_SLL2 => match sll(data, 10, 0, 20) {
            Some((ty, dir, rest)) => (Some(LaxSlicedPacket::from_ether_type(ty, rest)), dir),
            None => (None, None),
        },
        _ => (None, None),
    };
    let Some(s) = sliced else {
        return Content::Other;
    };
    let (src, dst, incomplete, fragmented) = match &s.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                ip.payload().incomplete,
                ip.payload().fragmented,
            )
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                ip.payload().incomplete,
                ip.payload().fragmented,
            )
        }
        _ => return Content::Other,
    };
    if fragmented {
        return Content::Other;
    }
    let Some(TransportSlice::Tcp(tcp)) = &s.transport else {
        return Content::Other;
    };
    let seg = Segment {
        flow: FlowKey {
            src: SocketAddr::new(src, tcp.source_port()),
            dst: SocketAddr::new(dst, tcp.destination_port()),
        },
        seq: tcp.sequence_number(),
        ack: tcp.ack().then(|| tcp.acknowledgment_number()),
        syn: tcp.syn(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
        missing: if incomplete { missing_total } else { 0 },
    };
    Content::Tcp(seg, direction)
}

/// A Linux cooked header: the packet type at `ptype` (2 bytes in v1, 1 in v2: read as the byte
/// at `ptype` + (v1: 1)), the protocol at `proto`, the payload after `len` bytes.
fn sll(
    data: &[u8],
    ptype: usize,
    proto: usize,
    len: usize,
) -> Option<(EtherType, Option<Direction>, &[u8])> {
    let rest = data.get(len..)?;
    let ty = u16::from_be_bytes([*data.get(proto)?, *data.get(proto + 1)?]);
    // v1: a 16-bit packet type at 0; v2: one byte at 10.
    let pt = if len == 16 {
        u16::from_be_bytes([data[0], data[1]])
    } else {
        u16::from(*data.get(ptype)?)
    };
    let dir = match pt {
        0..=3 => Some(Direction::Inbound),
        4 => Some(Direction::Outbound),
        _ => None,
    };
    Some((EtherType(ty), dir, rest))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use etherparse::PacketBuilder;

    use super::*;

    fn packet(link: u32, data: Vec<u8>, orig_len: u32) -> Packet {
        Packet {
            number: 1,
            ts: Duration::ZERO,
            link,
            direction: None,
            orig_len,
            data,
        }
    }

    #[test]
    fn test_ethernet_vlan_ipv4_and_truncation() {
        let b = PacketBuilder::ethernet2([2; 6], [3; 6])
            .single_vlan(7.try_into().expect("vlan"))
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(3225, 40000, 77, 1000);
        let mut data = Vec::new();
        b.write(&mut data, &[9; 100]).expect("build");
        let len = data.len() as u32;
        let p = packet(link::ETHERNET, data.clone(), len);
        let Content::Tcp(s, None) = content(&p) else {
            panic!("not TCP")
        };
        assert_eq!(s.flow.to_string(), "10.0.0.1:3225 > 10.0.0.2:40000");
        assert_eq!((s.seq, s.payload.len(), s.missing), (77, 100, 0));
        // Cut by a snapshot length: 40 payload bytes captured, 60 missing.
        data.truncate(data.len() - 60);
        let p = packet(link::ETHERNET, data, len);
        let Content::Tcp(s, _) = content(&p) else {
            panic!("not TCP")
        };
        assert_eq!((s.payload.len(), s.missing), (40, 60));
    }

    #[test]
    fn test_raw_ipv6_and_sll() {
        let b = PacketBuilder::ipv6([1; 16], [2; 16], 64).tcp(1, 2, 5, 1000);
        let mut ip = Vec::new();
        b.write(&mut ip, b"xyz").expect("build");
        let p = packet(link::RAW, ip.clone(), ip.len() as u32);
        let Content::Tcp(s, _) = content(&p) else {
            panic!("not TCP")
        };
        assert_eq!(s.payload, b"xyz");
        let mut sll1 = vec![0, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x86, 0xdd];
        sll1.extend_from_slice(&ip);
        let n = sll1.len() as u32;
        let p = packet(link::LINUX_SLL, sll1, n);
        let Content::Tcp(s, dir) = content(&p) else {
            panic!("not TCP")
        };
        assert_eq!((s.payload, dir), (&b"xyz"[..], Some(Direction::Outbound)));
        let mut sll2 = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.extend_from_slice(&ip);
        let n = sll2.len() as u32;
        let p = packet(link::LINUX_SLL2, sll2, n);
        let Content::Tcp(s, dir) = content(&p) else {
            panic!("not TCP")
        };
        assert_eq!((s.payload, dir), (&b"xyz"[..], Some(Direction::Inbound)));
        assert!(matches!(
            content(&packet(link::ETHERNET, vec![1, 2, 3], 3)),
            Content::Other
        ));
    }
}
