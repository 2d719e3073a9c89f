//! Two managers wired back to back under virtual time (after quinn's `tests/util.rs` `Pair`).

use proptest::prelude::*;

use super::*;

const A: FcId = FcId::from_parts(1, 1, 0);
const B: FcId = FcId::from_parts(1, 2, 0);
const TIMEOUT: Duration = Duration::from_secs(30);

/// Two ports, A and B, and a clock that only moves when a test moves it.
struct Pair {
    a: ExchangeManager,
    b: ExchangeManager,
    now: Instant,
    a_events: Vec<Event>,
    b_events: Vec<Event>,
}

impl Pair {
    fn new(config: Config) -> Pair {
        let mut a = ExchangeManager::new(Config {
            xid_seed: 0x1000,
            ..config.clone()
        });
        a.set_local_id(A);
        let mut b = ExchangeManager::new(Config {
            xid_seed: 0x2000,
            ..config
        });
        b.set_local_id(B);
        Pair {
            a,
            b,
            now: Instant::now(),
            a_events: Vec::new(),
            b_events: Vec::new(),
        }
    }

    /// Frames A has queued.
    fn sent_by_a(&mut self) -> Vec<FcFrame> {
        std::iter::from_fn(|| self.a.poll_transmit()).collect()
    }

    /// Frames B has queued.
    fn sent_by_b(&mut self) -> Vec<FcFrame> {
        std::iter::from_fn(|| self.b.poll_transmit()).collect()
    }

    fn deliver_to_a(&mut self, frames: Vec<FcFrame>) {
        for f in frames {
            self.a.handle_frame(self.now, f);
        }
        self.collect();
    }

    fn deliver_to_b(&mut self, frames: Vec<FcFrame>) {
        for f in frames {
            self.b.handle_frame(self.now, f);
        }
        self.collect();
    }

    fn collect(&mut self) {
        self.a_events
            .extend(std::iter::from_fn(|| self.a.poll_event()));
        self.b_events
            .extend(std::iter::from_fn(|| self.b.poll_event()));
    }

    /// Moves frames both ways until neither side has any to send.
    fn drive(&mut self) {
        loop {
            let (fa, fb) = (self.sent_by_a(), self.sent_by_b());
            if fa.is_empty() && fb.is_empty() {
                return;
            }
            self.deliver_to_b(fa);
            self.deliver_to_a(fb);
        }
    }

    /// Advances the clock by `d`, firing each time-out when it falls due and delivering what
    /// it sends.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.collect();
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// B's sequence events, as (exchange, header, payload).
    fn b_sequences(&self) -> Vec<(ExchangeId, FrameHeaderRepr, Bytes)> {
        sequences(&self.b_events)
    }
}

fn sequences(events: &[Event]) -> Vec<(ExchangeId, FrameHeaderRepr, Bytes)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Sequence {
                id,
                header,
                payload,
            } => Some((*id, *header, payload.clone())),
            _ => None,
        })
        .collect()
}

fn pattern(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect::<Vec<_>>()
        .into()
}

#[test]
fn test_request_reply_single_frame() {
    let mut p = Pair::new(Config::default());
    let request = Outbound::new(RCtl::ELS_REQUEST, vec![0x03, 0, 0, 0]);
    let a_id =
        p.a.originate(p.now, B, FcType::ELS, request, TIMEOUT)
            .unwrap();
    let frames = p.sent_by_a();
    assert_eq!(frames.len(), 1);
    let sent_ptr = frames[0].payload.as_ptr();
    assert_eq!(frames[0].header.f_ctl, FCtl::REQUEST);
    p.deliver_to_b(frames);

    let seqs = p.b_sequences();
    assert_eq!(seqs.len(), 1);
    let (b_id, header, payload) = seqs[0].clone();
    assert_eq!(&payload[..], &[0x03, 0, 0, 0]);
    // A single-frame sequence is handed up without a copy.
    assert_eq!(payload.as_ptr(), sent_ptr);
    assert_eq!((header.ox_id, header.rx_id), (0x1000, UNASSIGNED_XID));
    let info = p.b.exchange(b_id).unwrap();
    assert_eq!(
        (info.role, info.peer, info.initiative),
        (Role::Responder, A, true)
    );

    let reply = Outbound::new(RCtl::ELS_REPLY, vec![0x02, 0, 0, 0]).last();
    p.b.send_sequence(p.now, b_id, reply).unwrap();
    assert_eq!(p.b.open_exchanges(), 0);
    let frames = p.sent_by_b();
    let h = frames[0].header;
    assert_eq!(h.f_ctl, FCtl::LAST_REPLY);
    // The RX_ID is assigned on the first reply.
    assert_eq!((h.ox_id, h.rx_id, h.s_id, h.d_id), (0x1000, 0xA000, B, A));
    p.deliver_to_a(frames);

    let seqs = sequences(&p.a_events);
    assert_eq!(seqs.len(), 1);
    assert_eq!(seqs[0].0, a_id);
    assert_eq!(&seqs[0].2[..], &[0x02, 0, 0, 0]);
    assert_eq!(p.a.open_exchanges(), 0);
    assert_eq!(p.a.poll_timeout(), None);
    assert_eq!(p.b.poll_timeout(), None);
}

#[test]
fn test_64k_sequence_reassembled() {
    let mut p = Pair::new(Config::default());
    let data = pattern(65536);
    let seq = Outbound::new(RCtl::UNSOLICITED_DATA, data.clone()).with_relative_offset(0);
    p.a.originate(p.now, B, FcType::FCP, seq, TIMEOUT).unwrap();
    let frames = p.sent_by_a();
    // 31 full frames of 2112 bytes and one of 64.
    assert_eq!(frames.len(), 32);
    assert_eq!(frames[31].payload.len(), 65536 - 31 * 2112);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(usize::from(f.header.seq_cnt), i);
        assert_eq!(f.header.parameter as usize, i * 2112);
        assert!(f.header.f_ctl.contains(FCtl::RELATIVE_OFFSET));
        assert_eq!(
            f.header
                .f_ctl
                .contains(FCtl::END_SEQUENCE | FCtl::SEQUENCE_INITIATIVE),
            i == 31
        );
        assert_eq!(f.sof == Sof::I3, i == 0);
        assert_eq!(f.eof == Eof::T, i == 31);
    }
    p.deliver_to_b(frames);
    let seqs = p.b_sequences();
    assert_eq!(seqs.len(), 1);
    assert_eq!(seqs[0].2, data);
    assert_eq!(seqs[0].1.seq_cnt, 0);
    assert_eq!(p.b.buffered_bytes(), 0);
}

#[test]
fn test_reverse_and_shuffled_order_reassemble() {
    let mut p = Pair::new(Config {
        max_payload: 1000,
        ..Config::default()
    });
    let data = pattern(20_500);
    let seq = Outbound::new(RCtl::UNSOLICITED_DATA, data.clone());
    p.a.originate(p.now, B, FcType::FCP, seq, TIMEOUT).unwrap();
    let mut frames = p.sent_by_a();
    frames.reverse();
    p.deliver_to_b(frames);
    let seqs = p.b_sequences();
    assert_eq!(seqs.len(), 1);
    assert_eq!(seqs[0].2, data);
    // The event carries the first frame's header even though it arrived last.
    assert_eq!(seqs[0].1.seq_cnt, 0);
    let b_id = seqs[0].0;

    // B answers with a sequence A receives in a fixed shuffle.
    let reply = pattern(7_001);
    p.b.send_sequence(
        p.now,
        b_id,
        Outbound::new(RCtl::SOLICITED_DATA, reply.clone()).last(),
    )
    .unwrap();
    let mut frames = p.sent_by_b();
    assert_eq!(frames.len(), 8);
    for (i, j) in [(0, 5), (1, 7), (2, 3), (4, 6)] {
        frames.swap(i, j);
    }
    p.deliver_to_a(frames);
    let seqs = sequences(&p.a_events);
    assert_eq!(seqs.len(), 1);
    assert_eq!(seqs[0].2, reply);
    assert_eq!((p.a.open_exchanges(), p.b.open_exchanges()), (0, 0));
}

#[test]
fn test_multi_sequence_exchange_passes_initiative() {
    let mut p = Pair::new(Config::default());
    // FCP write: command, transfer ready, data, response.
    let cmd = Outbound::new(RCtl::UNSOLICITED_COMMAND, vec![0; 32]);
    let a_id = p.a.originate(p.now, B, FcType::FCP, cmd, TIMEOUT).unwrap();
    p.drive();
    let b_id = p.b_sequences()[0].0;
    let xfer_rdy = Outbound::new(RCtl::DATA_DESCRIPTOR, vec![0; 12]);
    p.b.send_sequence(p.now, b_id, xfer_rdy).unwrap();
    p.drive();
    assert!(p.a.exchange(a_id).unwrap().initiative);
    // B assigns RX_IDs from its own pool, half the ID space from its OX_IDs.
    assert_eq!(p.a.exchange(a_id).unwrap().rx_id, 0xA000);
    let data = Outbound::new(RCtl::SOLICITED_DATA, pattern(5000)).with_relative_offset(0);
    p.a.send_sequence(p.now, a_id, data).unwrap();
    p.drive();
    let rsp = Outbound::new(RCtl::COMMAND_STATUS, vec![0; 24]).last();
    p.b.send_sequence(p.now, b_id, rsp).unwrap();
    p.drive();
    let at_b = p.b_sequences();
    assert_eq!(at_b.len(), 2);
    assert_eq!(at_b[1].2, pattern(5000));
    assert!(at_b[1].1.f_ctl.contains(FCtl::RELATIVE_OFFSET));
    assert!(!at_b[1].1.f_ctl.contains(FCtl::FIRST_SEQUENCE));
    let at_a = sequences(&p.a_events);
    assert_eq!(at_a.len(), 2);
    assert!(at_a[1].1.f_ctl.contains(FCtl::LAST_SEQUENCE));
    assert_eq!((p.a.open_exchanges(), p.b.open_exchanges()), (0, 0));
}

#[test]
fn test_last_sequence_flag_on_the_last_frame_only() {
    let mut p = Pair::new(Config::default());
    let cmd = Outbound::new(RCtl::UNSOLICITED_COMMAND, vec![0; 32]);
    let a_id = p.a.originate(p.now, B, FcType::FCP, cmd, TIMEOUT).unwrap();
    p.drive();
    let b_id = p.b_sequences()[0].0;
    let reply = Outbound::new(RCtl::SOLICITED_DATA, pattern(5000)).last();
    p.b.send_sequence(p.now, b_id, reply).unwrap();
    let mut frames = p.sent_by_b();
    assert!(frames.len() > 1);
    // Another implementation may set LAST_SEQUENCE on the sequence's last frame only.
    let n = frames.len();
    for f in &mut frames[..n - 1] {
        f.header.f_ctl.remove(FCtl::LAST_SEQUENCE);
    }
    p.deliver_to_a(frames);
    let at_a = sequences(&p.a_events);
    assert_eq!(at_a.len(), 1);
    assert!(at_a[0].1.f_ctl.contains(FCtl::LAST_SEQUENCE));
    assert!(at_a[0].1.f_ctl.contains(FCtl::END_SEQUENCE));
    assert_eq!(p.a.exchange(a_id), None);
}

#[test]
fn test_read_data_holds_initiative_for_the_response() {
    let mut p = Pair::new(Config::default());
    // FCP read: command, then the target's data and response with no turn in between.
    let cmd = Outbound::new(RCtl::UNSOLICITED_COMMAND, vec![0; 32]);
    let a_id = p.a.originate(p.now, B, FcType::FCP, cmd, TIMEOUT).unwrap();
    p.drive();
    let b_id = p.b_sequences()[0].0;
    let data = Outbound::new(RCtl::SOLICITED_DATA, pattern(9000))
        .with_relative_offset(0)
        .hold_initiative();
    p.b.send_sequence(p.now, b_id, data).unwrap();
    let frames = p.sent_by_b();
    let last = frames.last().unwrap().header.f_ctl;
    assert!(last.contains(FCtl::END_SEQUENCE));
    assert!(!last.contains(FCtl::SEQUENCE_INITIATIVE));
    assert!(p.b.exchange(b_id).unwrap().initiative);
    p.deliver_to_a(frames);
    assert!(!p.a.exchange(a_id).unwrap().initiative);
    // The initiator may not send now; the target may.
    let err =
        p.a.send_sequence(p.now, a_id, Outbound::new(RCtl::SOLICITED_DATA, vec![1]));
    assert_eq!(err, Err(ExchangeError::NoInitiative(a_id)));
    let rsp = Outbound::new(RCtl::COMMAND_STATUS, vec![0; 24])
        .last()
        .hold_initiative();
    p.b.send_sequence(p.now, b_id, rsp).unwrap();
    p.drive();
    let at_a = sequences(&p.a_events);
    assert_eq!(at_a.len(), 2);
    assert_eq!(at_a[0].2, pattern(9000));
    // The last sequence always hands the initiative back.
    assert!(at_a[1].1.f_ctl.contains(FCtl::SEQUENCE_INITIATIVE));
    assert_eq!((p.a.open_exchanges(), p.b.open_exchanges()), (0, 0));
}

#[test]
fn test_dropped_frame_e_d_tov_abts_ba_acc() {
    let mut p = Pair::new(Config::default());
    let seq = Outbound::new(RCtl::UNSOLICITED_DATA, pattern(3 * 2112));
    let a_id = p.a.originate(p.now, B, FcType::FCP, seq, TIMEOUT).unwrap();
    let mut frames = p.sent_by_a();
    frames.remove(1);
    p.deliver_to_b(frames);
    assert!(p.b_events.is_empty());
    assert_eq!(p.b.buffered_bytes(), 2 * 2112);
    assert_eq!(p.b.poll_timeout(), Some(p.now + Duration::from_secs(2)));

    p.advance(Duration::from_secs(2));
    let [Event::TimedOut { id: b_id }, Event::Aborted { id: b_id2 }] = p.b_events[..] else {
        panic!("{:?}", p.b_events);
    };
    assert_eq!(b_id, b_id2);
    assert_eq!(p.a_events, vec![Event::AbortedByPeer { id: a_id }]);
    assert_eq!((p.a.open_exchanges(), p.b.open_exchanges()), (0, 0));
    assert_eq!((p.a.poll_timeout(), p.b.poll_timeout()), (None, None));
    assert_eq!(p.b.buffered_bytes(), 0);
}

#[test]
fn test_exchange_timeout_and_late_frames() {
    let mut p = Pair::new(Config::default());
    let cmd = Outbound::new(RCtl::UNSOLICITED_COMMAND, vec![0; 32]);
    let a_id =
        p.a.originate(p.now, B, FcType::FCP, cmd, Duration::from_secs(5))
            .unwrap();
    p.drive();
    let b_id = p.b_sequences()[0].0;
    // B never answers: A times out at 5 s, B accepts the ABTS.
    p.advance(Duration::from_secs(6));
    assert_eq!(
        p.a_events,
        vec![Event::TimedOut { id: a_id }, Event::Aborted { id: a_id }]
    );
    assert_eq!(p.b_events.last(), Some(&Event::AbortedByPeer { id: b_id }));
    assert_eq!((p.a.open_exchanges(), p.b.open_exchanges()), (0, 0));
    // B's late reply is refused and the response dropped at A.
    let rsp = Outbound::new(RCtl::COMMAND_STATUS, vec![0; 24]).last();
    assert_eq!(
        p.b.send_sequence(p.now, b_id, rsp),
        Err(ExchangeError::UnknownExchange(b_id))
    );
}

#[test]
fn test_abts_unanswered_frees_after_r_a_tov() {
    let mut p = Pair::new(Config::default());
    let cmd = Outbound::new(RCtl::UNSOLICITED_COMMAND, vec![0; 32]);
    let a_id =
        p.a.originate(p.now, B, FcType::FCP, cmd, Duration::from_secs(5))
            .unwrap();
    let _lost = p.sent_by_a();
    p.a.handle_timeout(p.now + Duration::from_secs(5));
    let abts = p.sent_by_a();
    assert_eq!(abts.len(), 1);
    // B never opened the exchange: BA_RJT, which also frees it at A.
    p.deliver_to_b(abts.clone());
    let rjt = p.sent_by_b();
    assert_eq!(rjt[0].header.r_ctl, RCtl::BA_RJT);
    p.deliver_to_a(rjt);
    assert_eq!(
        p.a_events,
        vec![Event::TimedOut { id: a_id }, Event::Aborted { id: a_id }]
    );
    assert_eq!(p.a.open_exchanges(), 0);

    // Again, with the BA_RJT lost: R_A_TOV frees it.
    let cmd = Outbound::new(RCtl::UNSOLICITED_COMMAND, vec![0; 32]);
    let a_id =
        p.a.originate(p.now, B, FcType::FCP, cmd, Duration::from_secs(5))
            .unwrap();
    let _lost = p.sent_by_a();
    let t = p.now + Duration::from_secs(5);
    p.a.handle_timeout(t);
    let _lost = p.sent_by_a();
    assert_eq!(p.a.poll_timeout(), Some(t + Duration::from_secs(10)));
    p.a.handle_timeout(t + Duration::from_secs(10));
    p.collect();
    assert_eq!(
        p.a_events[2..],
        [Event::TimedOut { id: a_id }, Event::Aborted { id: a_id }]
    );
    assert_eq!(p.a.open_exchanges(), 0);
}

#[test]
fn test_ox_id_reused_after_completion() {
    let mut p = Pair::new(Config::default());
    for _ in 0..3 {
        let req = Outbound::new(RCtl::ELS_REQUEST, vec![1; 8]);
        p.a.originate(p.now, B, FcType::ELS, req, TIMEOUT).unwrap();
        p.drive();
        let (b_id, h, _) = p.b_sequences().pop().unwrap();
        assert_eq!(h.ox_id, 0x1000);
        let rep = Outbound::new(RCtl::ELS_REPLY, vec![2; 8]).last();
        p.b.send_sequence(p.now, b_id, rep).unwrap();
        p.drive();
        assert_eq!((p.a.open_exchanges(), p.b.open_exchanges()), (0, 0));
        // The allocator moves on; rewind it to show the freed ID is accepted again.
        p.a.originated.next = 0x1000;
    }
    assert_eq!(sequences(&p.a_events).len(), 3);
    assert_eq!(p.b.counters(), Counters::default());
}

/// A sequence split into frames, the frames permuted by `order`.
fn permuted(frames: Vec<FcFrame>, order: &[usize]) -> Vec<FcFrame> {
    let mut keyed: Vec<(usize, FcFrame)> = order.iter().copied().zip(frames).collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, f)| f).collect()
}

fn arb_frame() -> impl Strategy<Value = FcFrame> {
    (
        any::<u8>(),
        prop_oneof![Just(0x01_0100u32), Just(0x01_0200u32), 0u32..0x100_0000],
        0u32..0x100_0000,
        prop_oneof![Just(0x00u8), Just(0x01u8), Just(0x08u8), any::<u8>()],
        0u16..4,
        any::<u8>(),
        0u16..8,
        prop_oneof![
            Just(0x1000u16),
            Just(0x2000u16),
            Just(UNASSIGNED_XID),
            0u16..4
        ],
        prop_oneof![
            Just(0x2000u16),
            Just(0x9000u16),
            Just(0xA000u16),
            Just(UNASSIGNED_XID),
            0u16..4
        ],
        prop::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                r_ctl,
                s_id,
                f_ctl,
                fc_type,
                seq_id,
                _,
                seq_cnt,
                ox_id,
                rx_id,
                payload,
                sofi,
                eoft,
            )| {
                let header = FrameHeaderRepr {
                    r_ctl: RCtl(r_ctl),
                    d_id: B,
                    s_id: FcId::from_parts((s_id >> 16) as u8, (s_id >> 8) as u8, s_id as u8),
                    fc_type: FcType(fc_type),
                    f_ctl: FCtl::from_bits_retain(f_ctl),
                    seq_id: seq_id as u8,
                    seq_cnt,
                    ox_id,
                    rx_id,
                    ..FrameHeaderRepr::default()
                };
                FcFrame::new(
                    if sofi { Sof::I3 } else { Sof::N3 },
                    header,
                    payload.into(),
                    if eoft { Eof::T } else { Eof::N },
                )
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_permuted_sequences_reassemble(
        size in 1usize..=2112,
        lens in prop::collection::vec(0usize..20_000, 1..4),
        seed in any::<u64>(),
    ) {
        let mut p = Pair::new(Config { max_payload: size, ..Config::default() });
        let mut rng = seed;
        let mut next = move || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (rng >> 33) as usize
        };
        let mut a_id = None;
        for (n, &len) in lens.iter().enumerate() {
            let data = pattern(len + n);
            let mut seq = Outbound::new(RCtl::UNSOLICITED_DATA, data.clone());
            seq.last_sequence = n + 1 == lens.len();
            match a_id {
                None => a_id = Some(p.a.originate(p.now, B, FcType::FCP, seq, TIMEOUT).unwrap()),
                Some(_) => {
                    // B hands the initiative back with an empty sequence first.
                    let (b_id, _, _) = p.b_sequences().pop().unwrap();
                    p.b.send_sequence(p.now, b_id, Outbound::new(RCtl::DATA_DESCRIPTOR, Bytes::new())).unwrap();
                    p.drive();
                    p.a.send_sequence(p.now, a_id.unwrap(), seq).unwrap();
                }
            }
            let frames = p.sent_by_a();
            prop_assert_eq!(frames.len(), (len + n).div_ceil(size).max(1));
            let order: Vec<usize> = (0..frames.len()).map(|_| next()).collect();
            p.deliver_to_b(permuted(frames, &order));
            let got = p.b_sequences();
            prop_assert_eq!(got.len(), n + 1);
            prop_assert_eq!(&got[n].2, &data);
            prop_assert_eq!(p.b.buffered_bytes(), 0);
        }
        prop_assert_eq!((p.a.open_exchanges(), p.b.open_exchanges()), (0, 0));
    }

    #[test]
    fn prop_arbitrary_frames_bounded(frames in prop::collection::vec(arb_frame(), 0..200)) {
        let config = Config {
            max_exchanges: 8,
            max_open_sequences: 2,
            max_sequence_bytes: 256,
            max_buffered_bytes: 1024,
            ..Config::default()
        };
        let mut p = Pair::new(config);
        // A has an exchange open with B so that some frames match it.
        let req = Outbound::new(RCtl::UNSOLICITED_COMMAND, vec![0; 4]);
        p.b.originate(p.now, A, FcType::FCP, req, TIMEOUT).unwrap();
        let _ = p.sent_by_b();
        for (i, f) in frames.into_iter().enumerate() {
            p.now += Duration::from_millis(i as u64 % 3 * 100);
            p.b.handle_frame(p.now, f);
            p.b.handle_timeout(p.now);
            prop_assert!(p.b.open_exchanges() <= 8);
            prop_assert!(p.b.buffered_bytes() <= 1024);
            let _ = p.sent_by_b();
            p.collect();
        }
        // Everything times out: ABTS, then R_A_TOV with no answer.
        for _ in 0..3 {
            p.now += Duration::from_secs(60);
            p.b.handle_timeout(p.now);
        }
        prop_assert_eq!(p.b.open_exchanges(), 0);
        prop_assert_eq!(p.b.buffered_bytes(), 0);
        prop_assert_eq!(p.b.poll_timeout(), None);
    }
}
