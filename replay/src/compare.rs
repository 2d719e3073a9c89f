//! Comparing what a fresh instance sent with what the capture holds: frames matched in order,
//! or by exchange where the code interleaves independent exchanges, then field by field.

use std::collections::HashMap;
use std::fmt;

use fc_frames::FcFrame;

/// The first place a replay's answer differs from the capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The capture's frame number (from 1, as Wireshark counts) of the expected frame; for an
    /// extra frame the replay sent, the number of the last frame of the capture.
    pub frame: usize,
    /// The field, e.g. `FC header OX_ID`, `payload byte 37`, `egress port`.
    pub field: String,
    /// What the capture holds.
    pub expected: String,
    /// What the replay sent.
    pub got: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frame {}: {}: expected {}, got {}",
            self.frame, self.field, self.expected, self.got
        )
    }
}

/// A frame the captured role sent, or the replay sent: where it went (port or link) and the
/// frame.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The capture's frame number (0 for a frame the replay sent).
    pub number: usize,
    /// Its port or link (switch: the egress port).
    pub port: u8,
    /// The frame.
    pub frame: FcFrame,
}

/// An exchange and the frame's place in it: frames of one exchange keep their order.
fn exchange_key(f: &FcFrame) -> (u32, u32, u16, u16, u8) {
    let h = &f.header;
    (
        h.s_id.to_u32(),
        h.d_id.to_u32(),
        h.ox_id,
        h.seq_cnt,
        h.r_ctl.0,
    )
}

/// Compares `got` with `expected`: each expected frame, in order, with the first unmatched
/// frame the replay sent of the same exchange (S_ID, D_ID, OX_ID, SEQ_CNT, R_CTL), else with
/// the first unmatched one. The first difference, or `None` when every frame is identical.
///
/// SEQ_IDs are compared as a renumbering: a port numbers its sequences from one counter over
/// all its exchanges, so independent exchanges that interleave otherwise than in the capture
/// get other SEQ_IDs, which is no difference of behaviour. Within an exchange, the frames of
/// one sequence of the capture must share one SEQ_ID in the replay, and those of two
/// sequences must not.
pub fn compare(expected: &[Sent], got: &[Sent]) -> Option<Difference> {
    let mut used = vec![false; got.len()];
    // (S_ID, D_ID, OX_ID, the capture's SEQ_ID) -> the replay's, and back.
    let mut seq_ids: HashMap<(u32, u32, u16, u8), u8> = HashMap::new();
    let mut seq_ids_back: HashMap<(u32, u32, u16, u8), u8> = HashMap::new();
    for e in expected {
        let key = exchange_key(&e.frame);
        let pick = got
            .iter()
            .enumerate()
            .find(|(i, g)| !used[*i] && exchange_key(&g.frame) == key)
            .or_else(|| got.iter().enumerate().find(|(i, _)| !used[*i]));
        let Some((i, g)) = pick else {
            return Some(Difference {
                frame: e.number,
                field: "frame".into(),
                expected: summary(&e.frame),
                got: "nothing (the replay sent no more frames)".into(),
            });
        };
        used[i] = true;
        if e.port != g.port {
            return Some(Difference {
                frame: e.number,
                field: "port".into(),
                expected: e.port.to_string(),
                got: g.port.to_string(),
            });
        }
        let (eh, gh) = (&e.frame.header, &g.frame.header);
        let exchange = (eh.s_id.to_u32(), eh.d_id.to_u32(), eh.ox_id);
        let forward = *seq_ids
            .entry((exchange.0, exchange.1, exchange.2, eh.seq_id))
            .or_insert(gh.seq_id);
        let back = *seq_ids_back
            .entry((exchange.0, exchange.1, exchange.2, gh.seq_id))
            .or_insert(eh.seq_id);
        if forward != gh.seq_id || back != eh.seq_id {
            return Some(Difference {
                frame: e.number,
                field: "FC header SEQ_ID".into(),
                expected: format!(
                    "{:#04x} (the replay's {forward:#04x} for this sequence)",
                    eh.seq_id
                ),
                got: format!("{:#04x}", gh.seq_id),
            });
        }
        let mut renumbered = g.frame.clone();
        renumbered.header.seq_id = eh.seq_id;
        if let Some((field, expected, got)) = frame_difference(&e.frame, &renumbered) {
            return Some(Difference {
                frame: e.number,
                field,
                expected,
                got,
            });
        }
    }
    let last = expected.last().map_or(0, |e| e.number);
    got.iter()
        .zip(&used)
        .find(|(_, u)| !**u)
        .map(|(g, _)| Difference {
            frame: last,
            field: "frame after the capture's last".into(),
            expected: "nothing".into(),
            got: summary(&g.frame),
        })
}

/// A frame in a few words: addresses, exchange, R_CTL and TYPE.
pub fn summary(f: &FcFrame) -> String {
    let h = &f.header;
    format!(
        "{} -> {} OX_ID {:#06x} R_CTL {:#04x} TYPE {:#04x}, {} payload bytes",
        h.s_id,
        h.d_id,
        h.ox_id,
        h.r_ctl.0,
        h.fc_type.0,
        f.payload.len()
    )
}

/// The header's fields: name, offset and length in the 24 header bytes.
const HEADER_FIELDS: [(&str, usize, usize); 12] = [
    ("R_CTL", 0, 1),
    ("D_ID", 1, 3),
    ("CS_CTL", 4, 1),
    ("S_ID", 5, 3),
    ("TYPE", 8, 1),
    ("F_CTL", 9, 3),
    ("SEQ_ID", 12, 1),
    ("DF_CTL", 13, 1),
    ("SEQ_CNT", 14, 2),
    ("OX_ID", 16, 2),
    ("RX_ID", 18, 2),
    ("parameter", 20, 4),
];

/// The first field in which two frames differ: its name, the expected and the got value.
pub fn frame_difference(expected: &FcFrame, got: &FcFrame) -> Option<(String, String, String)> {
    let (e, g) = (delimited(expected), delimited(got));
    if e[..4] != g[..4] {
        return Some(("SOF".into(), hex(&e[..4]), hex(&g[..4])));
    }
    for (name, at, len) in HEADER_FIELDS {
        let (x, y) = (&e[4 + at..4 + at + len], &g[4 + at..4 + at + len]);
        if x != y {
            return Some((format!("FC header {name}"), hex(x), hex(y)));
        }
    }
    let (pe, pg) = (&expected.payload, &got.payload);
    if let Some(i) = (0..pe.len().min(pg.len())).find(|&i| pe[i] != pg[i]) {
        return Some((
            payload_field(expected, i),
            format!("{:#04x}", pe[i]),
            format!("{:#04x}", pg[i]),
        ));
    }
    if pe.len() != pg.len() {
        return Some((
            "payload length".into(),
            pe.len().to_string(),
            pg.len().to_string(),
        ));
    }
    let (ee, ge) = (&e[e.len() - 4..], &g[g.len() - 4..]);
    if ee != ge {
        return Some(("EOF".into(), hex(ee), hex(ge)));
    }
    None
}

/// The name of payload byte `i` of `f`: a named field where the payload's layout is known.
fn payload_field(f: &FcFrame, i: usize) -> String {
    let h = &f.header;
    // FCP (TYPE 08) command status: FCP_RSP.
    if h.fc_type.0 == 0x08 && h.r_ctl.0 == 0x07 {
        let name = match i {
            0..=7 => Some("reserved"),
            8..=9 => Some("retry delay timer"),
            10 => Some("flags"),
            11 => Some("SCSI status"),
            12..=15 => Some("residual count"),
            16..=19 => Some("sense length"),
            20..=23 => Some("response length"),
            _ => None,
        };
        if let Some(n) = name {
            return format!("FCP_RSP {n} (payload byte {i})");
        }
        return format!("FCP_RSP sense or response (payload byte {i})");
    }
    if h.fc_type.0 == 0x08 && h.r_ctl.0 == 0x01 {
        return format!(
            "FCP_DATA byte {} (payload byte {i})",
            h.parameter as usize + i
        );
    }
    format!("payload byte {i}")
}

fn delimited(f: &FcFrame) -> Vec<u8> {
    let mut buf = vec![0; f.delimited_len()];
    f.emit_delimited(&mut buf);
    buf
}

fn hex(b: &[u8]) -> String {
    let mut s = String::from("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use fc_frames::{FcFrame, FcId, FrameHeaderRepr, RCtl};

    use super::*;

    /// A one-frame sequence of exchange `ox_id` from 010100 with SEQ_ID `seq_id`.
    fn sent(ox_id: u16, seq_id: u8, seq_cnt: u16, payload: &'static [u8]) -> Sent {
        let header = FrameHeaderRepr {
            r_ctl: RCtl::ELS_REPLY,
            d_id: FcId::from_parts(1, 2, 0),
            s_id: FcId::from_parts(1, 1, 0),
            seq_id,
            seq_cnt,
            ox_id,
            ..FrameHeaderRepr::default()
        };
        Sent {
            number: usize::from(ox_id),
            port: 0,
            frame: FcFrame::single(header, payload),
        }
    }

    /// Two exchanges that interleaved the other way got each other's SEQ_IDs: no difference.
    /// A payload difference is still found through the renumbering.
    #[test]
    fn test_seq_ids_renumbered_across_exchanges_are_no_difference() {
        let capture = [sent(1, 7, 0, b"a"), sent(2, 8, 0, b"b")];
        let replay = [sent(2, 7, 0, b"b"), sent(1, 8, 0, b"a")];
        assert_eq!(compare(&capture, &replay), None);
        let changed = [sent(2, 7, 0, b"b"), sent(1, 8, 0, b"x")];
        let d = compare(&capture, &changed).expect("a difference");
        assert_eq!((d.frame, d.field.as_str()), (1, "payload byte 0"));
    }

    /// Within an exchange, one sequence's frames keep one SEQ_ID and two sequences keep two.
    #[test]
    fn test_a_sequence_split_or_two_merged_is_a_seq_id_difference() {
        let capture = [sent(1, 7, 0, b"a"), sent(1, 7, 1, b"a")];
        let split = [sent(1, 3, 0, b"a"), sent(1, 4, 1, b"a")];
        let d = compare(&capture, &split).expect("a difference");
        assert_eq!(d.field, "FC header SEQ_ID");
        let capture = [sent(1, 7, 0, b"a"), sent(1, 8, 1, b"a")];
        let merged = [sent(1, 3, 0, b"a"), sent(1, 3, 1, b"a")];
        let d = compare(&capture, &merged).expect("a difference");
        assert_eq!(d.field, "FC header SEQ_ID");
    }
}
