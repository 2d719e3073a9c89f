#!/usr/bin/env python3
"""An FCIP peer written from the byte layouts of PROTOCOLS.md alone (RFC 3643 encapsulation as
RFC 3821 uses it, the FCIP Special Frame of RFC 3821 section 7, FC-FS frame header and CRC),
with nothing but the Python standard library. It shares no code with the Rust implementation,
so two readings of the same layouts meet on the wire.

As the TCP originator it:
  1. sends the FCIP Special Frame (FSF) and checks the echo          -> prints "fsf echoed"
  2. sends an LKA (ELS 0x80, FFFFFD -> FFFFFD) and waits for LS_ACC  -> prints "lka answered"
  3. sends ECHO (ELS 0x10) from --s-id to --target, checks the data  -> prints "echo answered"
  4. with --class-f-lka, sends an LKA in class F (SOFf) and checks
     that its LS_ACC comes in class F too                            -> "class f lka answered"
  5. with --fabric-echo, sends ECHO to the fabric controller FFFFFD
     in class 3 and in class F, checks the data and that each LS_ACC
     comes in its request's class                                    -> "fabric echo answered"
     then an ELS the fabric controller does not serve (ADISC) and
     checks the LS_RJT says "command not supported"                  -> "fabric adisc rejected"
  6. with --gateway-lka, waits until it has answered an LKA of the
     gateway's                                                       -> "gateway lka answered"
With --expect-refused it only sends the FSF and expects the connection to be closed without
an echo                                                              -> prints "refused"

While waiting it answers the gateway's LKAs with LS_ACC, SW_ILS requests with SW_ACC, other ELS
requests with LS_RJT (command not supported), and ignores everything else. Every encapsulation
header, delimiter word and FC CRC it receives is checked; any failure exits 1 with a message on
stderr. Every read has a deadline, so it never hangs.
"""

import argparse
import os
import socket
import struct
import sys
import time
import zlib

# RFC 3643 / RFC 3821 encapsulation (PROTOCOLS.md).
ENCAP_HEADER_LEN = 28
FSF_LEN = 76
FSF_WORDS = 19
MIN_WORDS, MAX_WORDS = 16, 544
PROTOCOL_FCIP, VERSION_1 = 1, 1
PFLAG_CH, PFLAG_SF = 0x80, 0x01
CRCV = 0x04  # in byte 12 of the header
FSF_MARKER = b"\x00\x00\xff\xff"  # words 7 and 18 of the FSF

SOF_F, SOF_I3, SOF_N3 = 0x28, 0x2E, 0x36
EOF_N, EOF_T = 0x41, 0x42
VALID_SOF = {0x28, 0x29, 0x2D, 0x2E, 0x31, 0x35, 0x36, 0x39}
VALID_EOF = {0x41, 0x42, 0x44, 0x46, 0x49, 0x4E, 0x4F, 0x50}

# FC-FS frame header.
FC_HEADER_LEN = 24
R_CTL_ELS_REQUEST, R_CTL_ELS_REPLY = 0x22, 0x23
R_CTL_SW_ILS_REQUEST, R_CTL_SW_ILS_REPLY = 0x02, 0x03
TYPE_ELS, TYPE_SW_ILS = 0x01, 0x22
F_CTL_EXCHANGE_CONTEXT = 0x800000
F_CTL_FIRST_SEQUENCE = 0x200000
F_CTL_LAST_SEQUENCE = 0x100000
F_CTL_END_SEQUENCE = 0x080000
F_CTL_SEQUENCE_INITIATIVE = 0x010000
F_CTL_REQUEST = F_CTL_FIRST_SEQUENCE | F_CTL_END_SEQUENCE | F_CTL_SEQUENCE_INITIATIVE
F_CTL_LAST_REPLY = (F_CTL_EXCHANGE_CONTEXT | F_CTL_LAST_SEQUENCE | F_CTL_END_SEQUENCE
                    | F_CTL_SEQUENCE_INITIATIVE)
FABRIC_CONTROLLER = 0xFFFFFD
UNASSIGNED_XID = 0xFFFF

# ELS command codes and payloads.
ELS_LS_RJT, ELS_LS_ACC, ELS_ECHO, ELS_LKA, ELS_ADISC = 0x01, 0x02, 0x10, 0x80, 0x52
LS_RJT_REASON_NOT_SUPPORTED = 0x0B
LS_ACC = b"\x02\x00\x00\x00"
SW_ACC = b"\x02\x00\x00\x00"
LS_RJT_NOT_SUPPORTED = b"\x01\x00\x00\x00\x00\x0b\x00\x00"

NTP_UNIX_OFFSET = 2208988800  # seconds from 1900 to 1970


class PeerError(Exception):
    """A check failed: the message says which and what was seen."""


def log(msg):
    print("interop_peer: " + msg, file=sys.stderr, flush=True)


def sntp_now():
    """RFC 2030 time stamp: seconds since 1900 and a 32-bit binary fraction."""
    t = time.time()
    secs = int(t)
    return (secs + NTP_UNIX_OFFSET) & 0xFFFFFFFF, int((t - secs) * (1 << 32)) & 0xFFFFFFFF


def encap_header(total_len, pflags=0):
    """The 28-byte encapsulation header for an encapsulated frame of total_len bytes."""
    if total_len % 4 or not MIN_WORDS <= total_len // 4 <= MAX_WORDS:
        raise PeerError("cannot encapsulate %d bytes" % total_len)
    word0 = bytes([PROTOCOL_FCIP, VERSION_1, PROTOCOL_FCIP ^ 0xFF, VERSION_1 ^ 0xFF])
    flags_len = total_len // 4  # flags (CRCV included) all clear
    seconds, fraction = sntp_now()
    return (word0 + word0
            + bytes([pflags, 0x00, pflags ^ 0xFF, 0xFF])
            + struct.pack(">HH", flags_len, flags_len ^ 0xFFFF)
            + struct.pack(">II", seconds, fraction)
            + b"\x00\x00\x00\x00")


def check_encap_header(h, where):
    """Validates a received header; returns (pflags, total length in bytes)."""
    if len(h) != ENCAP_HEADER_LEN:
        raise PeerError("%s: header of %d bytes" % (where, len(h)))
    if h[0] != PROTOCOL_FCIP or h[1] != VERSION_1:
        raise PeerError("%s: protocol %d version %d, want FCIP 1" % (where, h[0], h[1]))
    if h[2] != h[0] ^ 0xFF or h[3] != h[1] ^ 0xFF:
        raise PeerError("%s: protocol/version complements %s" % (where, h[0:4].hex()))
    if h[4:8] != h[0:4]:
        raise PeerError("%s: word 1 %s is not a copy of word 0 %s" % (where, h[4:8].hex(),
                                                                       h[0:4].hex()))
    pflags = h[8]
    if h[10] != pflags ^ 0xFF:
        raise PeerError("%s: pFlags %02x with complement %02x" % (where, pflags, h[10]))
    if pflags & ~(PFLAG_CH | PFLAG_SF):
        raise PeerError("%s: reserved pFlags bits set: %02x" % (where, pflags))
    if h[9] != 0x00 or h[11] != 0xFF:
        raise PeerError("%s: reserved byte %02x, complement %02x" % (where, h[9], h[11]))
    flags_len, flags_len_c = struct.unpack(">HH", h[12:16])
    if flags_len_c != flags_len ^ 0xFFFF:
        raise PeerError("%s: flags/length %04x with complement %04x" % (where, flags_len,
                                                                         flags_len_c))
    words = flags_len & 0x3FF
    if not MIN_WORDS <= words <= MAX_WORDS:
        raise PeerError("%s: frame length %d words" % (where, words))
    if flags_len >> 10:
        # Of the six flag bits only CRCV is defined, and FCIP sends it clear.
        raise PeerError("%s: flags %02x set (CRCV or reserved)" % (where, flags_len >> 10))
    if h[24:28] != b"\x00\x00\x00\x00":
        raise PeerError("%s: CRC field %s with CRCV clear" % (where, h[24:28].hex()))
    return pflags, words * 4


def delimiter(code):
    return bytes([code, code, code ^ 0xFF, code ^ 0xFF])


def check_delimiter(word, valid, what, where):
    if len(word) != 4 or word[0] != word[1] or word[2] != word[0] ^ 0xFF \
            or word[3] != word[0] ^ 0xFF:
        raise PeerError("%s: bad %s word %s" % (where, what, word.hex()))
    if word[0] not in valid:
        raise PeerError("%s: unknown %s code %02x" % (where, what, word[0]))
    return word[0]


def fc_crc(data):
    """The FC CRC: IEEE 802.3 CRC-32, in the byte order of an Ethernet FCS."""
    return struct.pack("<I", zlib.crc32(data) & 0xFFFFFFFF)


class Frame:
    """An FC frame with its delimiters; payload without fill."""

    def __init__(self, sof, r_ctl, d_id, s_id, fc_type, f_ctl, ox_id, payload,
                 eof=EOF_T, rx_id=UNASSIGNED_XID, seq_id=0, seq_cnt=0, parameter=0,
                 cs_ctl=0, df_ctl=0):
        self.sof, self.eof = sof, eof
        self.r_ctl, self.d_id, self.s_id, self.fc_type = r_ctl, d_id, s_id, fc_type
        self.f_ctl, self.ox_id, self.rx_id = f_ctl, ox_id, rx_id
        self.seq_id, self.seq_cnt, self.parameter = seq_id, seq_cnt, parameter
        self.cs_ctl, self.df_ctl = cs_ctl, df_ctl
        self.payload = bytes(payload)

    def __str__(self):
        return "%06x -> %06x r_ctl=%02x type=%02x f_ctl=%06x ox=%04x rx=%04x len=%d" % (
            self.s_id, self.d_id, self.r_ctl, self.fc_type, self.f_ctl, self.ox_id,
            self.rx_id, len(self.payload))

    def encapsulate(self):
        fill = -len(self.payload) % 4
        f_ctl = (self.f_ctl & ~0x3) | fill  # fill byte count in F_CTL bits 1-0
        header = (bytes([self.r_ctl]) + self.d_id.to_bytes(3, "big")
                  + bytes([self.cs_ctl]) + self.s_id.to_bytes(3, "big")
                  + bytes([self.fc_type]) + f_ctl.to_bytes(3, "big")
                  + bytes([self.seq_id, self.df_ctl])
                  + struct.pack(">HHHI", self.seq_cnt, self.ox_id, self.rx_id, self.parameter))
        assert len(header) == FC_HEADER_LEN
        fc = header + self.payload + b"\x00" * fill
        fc += fc_crc(fc)
        total = ENCAP_HEADER_LEN + 4 + len(fc) + 4
        return encap_header(total) + delimiter(self.sof) + fc + delimiter(self.eof)

    @staticmethod
    def decode(body, sof, eof, where):
        """The FC frame between the delimiters: header, payload, fill, CRC."""
        if len(body) < FC_HEADER_LEN + 4 or len(body) % 4:
            raise PeerError("%s: FC frame of %d bytes" % (where, len(body)))
        if fc_crc(body[:-4]) != body[-4:]:
            raise PeerError("%s: FC CRC %s, computed %s" % (where, body[-4:].hex(),
                                                             fc_crc(body[:-4]).hex()))
        h = body[:FC_HEADER_LEN]
        f_ctl = int.from_bytes(h[9:12], "big")
        data = body[FC_HEADER_LEN:-4]
        fill = f_ctl & 0x3
        if fill > len(data):
            raise PeerError("%s: fill count %d for %d bytes" % (where, fill, len(data)))
        seq_cnt, ox_id, rx_id, parameter = struct.unpack(">HHHI", h[14:24])
        return Frame(sof, h[0], int.from_bytes(h[1:4], "big"), int.from_bytes(h[5:8], "big"),
                     h[8], f_ctl, ox_id, data[:len(data) - fill], eof=eof, rx_id=rx_id,
                     seq_id=h[12], seq_cnt=seq_cnt, parameter=parameter, cs_ctl=h[4],
                     df_ctl=h[13])


def wwn(text):
    v = int(text.replace(":", ""), 16)
    if not 0 <= v < 1 << 64:
        raise argparse.ArgumentTypeError("not a 64-bit WWN: " + text)
    return v


def port_id(text):
    v = int(text, 16)
    if not 0 <= v < 1 << 24:
        raise argparse.ArgumentTypeError("not a 24-bit N_Port ID: " + text)
    return v


class Fsf:
    """An FCIP Special Frame (RFC 3821 section 7, as PROTOCOLS.md lays it out)."""

    def __init__(self, source_fabric, source_entity, nonce, destination_fabric, k_a_tov_ms,
                 usage_flags=0, usage_code=0, pflags=PFLAG_SF):
        self.source_fabric, self.source_entity = source_fabric, source_entity
        self.nonce, self.destination_fabric = nonce, destination_fabric
        self.k_a_tov_ms, self.usage_flags, self.usage_code = k_a_tov_ms, usage_flags, usage_code
        self.pflags = pflags

    def emit(self):
        b = (encap_header(FSF_LEN, PFLAG_SF) + FSF_MARKER
             + struct.pack(">Q", self.source_fabric) + self.source_entity
             + struct.pack(">Q", self.nonce)
             + struct.pack(">BBH", self.usage_flags, 0, self.usage_code)
             + struct.pack(">Q", self.destination_fabric)
             + struct.pack(">I", self.k_a_tov_ms) + FSF_MARKER)
        assert len(b) == FSF_LEN
        return b

    @staticmethod
    def parse(b):
        pflags, total = check_encap_header(b[:ENCAP_HEADER_LEN], "FSF echo")
        if not pflags & PFLAG_SF:
            raise PeerError("FSF echo: pFlags %02x without SF" % pflags)
        if total != FSF_LEN:
            raise PeerError("FSF echo: frame length %d words, want %d" % (total // 4, FSF_WORDS))
        if b[28:32] != FSF_MARKER or b[72:76] != FSF_MARKER:
            raise PeerError("FSF echo: words 7/18 are %s/%s" % (b[28:32].hex(), b[72:76].hex()))
        usage_flags, _, usage_code = struct.unpack(">BBH", b[56:60])
        return Fsf(struct.unpack(">Q", b[32:40])[0], b[40:48], struct.unpack(">Q", b[48:56])[0],
                   struct.unpack(">Q", b[60:68])[0], struct.unpack(">I", b[68:72])[0],
                   usage_flags, usage_code, pflags)


class Connection:
    """One FCIP connection: reads with deadlines, frames in and out, unsolicited requests
    answered."""

    def __init__(self, sock, s_id):
        self.sock = sock
        self.buf = b""
        self.s_id = s_id
        self.next_rx_id = 0x0100
        self.gateway_lkas = 0
        self.frames_in = 0

    def read_exact(self, n, deadline, what):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerError("timed out waiting for %s" % what)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise PeerError("timed out waiting for %s" % what) from None
            except OSError as e:
                raise PeerError("connection failed waiting for %s: %s" % (what, e)) from None
            if not chunk:
                raise PeerError("connection closed by the gateway waiting for %s" % what)
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, frame):
        self.sock.sendall(frame.encapsulate())

    def recv_frame(self, deadline, what):
        where = "frame %d" % (self.frames_in + 1)
        header = self.read_exact(ENCAP_HEADER_LEN, deadline, what)
        pflags, total = check_encap_header(header, where)
        if pflags & PFLAG_SF:
            raise PeerError("%s: a Special Frame in the data phase" % where)
        rest = self.read_exact(total - ENCAP_HEADER_LEN, deadline, what)
        if total < ENCAP_HEADER_LEN + 8 + FC_HEADER_LEN + 4:
            raise PeerError("%s: %d bytes cannot hold an FC frame" % (where, total))
        sof = check_delimiter(rest[:4], VALID_SOF, "SOF", where)
        eof = check_delimiter(rest[-4:], VALID_EOF, "EOF", where)
        self.frames_in += 1
        return Frame.decode(rest[4:-4], sof, eof, where)

    def reply(self, req, r_ctl, payload):
        rx_id = self.next_rx_id
        self.next_rx_id = self.next_rx_id % 0xFFFE + 1
        sof = SOF_F if req.sof == SOF_F else SOF_I3
        self.send(Frame(sof, r_ctl, req.s_id, req.d_id, req.fc_type, F_CTL_LAST_REPLY,
                        req.ox_id, payload, eof=EOF_T, rx_id=rx_id,
                        seq_id=(req.seq_id + 1) & 0xFF))

    def handle_unsolicited(self, f):
        """Answers a request of the gateway's; returns True if it was one."""
        code = f.payload[0] if f.payload else None
        if f.r_ctl == R_CTL_ELS_REQUEST and f.fc_type == TYPE_ELS:
            if code == ELS_LKA:
                self.reply(f, R_CTL_ELS_REPLY, LS_ACC)
                self.gateway_lkas += 1
                log("answered the gateway's LKA (%s)" % f)
            else:
                self.reply(f, R_CTL_ELS_REPLY, LS_RJT_NOT_SUPPORTED)
                log("rejected ELS %s (%s)" % ("%02x" % code if code is not None else "-", f))
            return True
        if f.r_ctl == R_CTL_SW_ILS_REQUEST and f.fc_type == TYPE_SW_ILS:
            self.reply(f, R_CTL_SW_ILS_REPLY, SW_ACC)
            log("accepted SW_ILS %s (%s)" % ("%02x" % code if code is not None else "-", f))
            return True
        return False

    def wait(self, match, deadline, what):
        """Frames until one `match` takes, answering the gateway's requests meanwhile."""
        while True:
            f = self.recv_frame(deadline, what)
            if match(f):
                return f
            if not self.handle_unsolicited(f):
                log("ignored %s" % f)

    def request(self, frame, timeout, what):
        """Sends an ELS request, returns its reply (LS_ACC or LS_RJT)."""
        self.send(frame)

        def is_reply(f):
            return (f.r_ctl == R_CTL_ELS_REPLY and f.fc_type == TYPE_ELS
                    and f.ox_id == frame.ox_id and f.s_id == frame.d_id
                    and f.d_id == frame.s_id)

        return self.wait(is_reply, time.monotonic() + timeout, what)


def handshake(sock, args):
    sent = Fsf(args.wwn, os.urandom(8), int.from_bytes(os.urandom(8), "big"), args.dest_wwn,
               args.k_a_tov)
    sock.sendall(sent.emit())
    return sent


def check_echo(sent, echo):
    if echo.nonce != sent.nonce:
        raise PeerError("FSF echo: nonce %016x, sent %016x" % (echo.nonce, sent.nonce))
    if echo.source_fabric != sent.source_fabric:
        raise PeerError("FSF echo: source fabric WWN %016x, sent %016x"
                        % (echo.source_fabric, sent.source_fabric))
    if echo.destination_fabric != sent.destination_fabric:
        raise PeerError("FSF echo: destination fabric WWN %016x, sent %016x"
                        % (echo.destination_fabric, sent.destination_fabric))
    if echo.source_entity != sent.source_entity:
        raise PeerError("FSF echo: source entity %s, sent %s"
                        % (echo.source_entity.hex(), sent.source_entity.hex()))
    if not echo.pflags & PFLAG_CH and (echo.k_a_tov_ms, echo.usage_flags, echo.usage_code) != \
            (sent.k_a_tov_ms, sent.usage_flags, sent.usage_code):
        raise PeerError("FSF echo: fields changed without Ch")


def run(args):
    host, _, port = args.connect.rpartition(":")
    try:
        sock = socket.create_connection((host, int(port)), timeout=args.timeout)
    except OSError as e:
        raise PeerError("cannot connect to %s: %s" % (args.connect, e)) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Connection(sock, args.s_id)
    try:
        sent = handshake(sock, args)
        deadline = time.monotonic() + args.timeout
        if args.expect_refused:
            try:
                echo = conn.read_exact(FSF_LEN, deadline, "the connection to close")
            except PeerError as e:
                if "closed by the gateway" in str(e) or "connection failed" in str(e):
                    print("refused", flush=True)
                    return
                raise
            raise PeerError("an unknown peer got an FSF echo: %s" % echo.hex())
        check_echo(sent, Fsf.parse(conn.read_exact(FSF_LEN, deadline, "the FSF echo")))
        print("fsf echoed", flush=True)

        ox = int.from_bytes(os.urandom(2), "big") % 0x8000
        lka = Frame(SOF_I3, R_CTL_ELS_REQUEST, FABRIC_CONTROLLER, FABRIC_CONTROLLER, TYPE_ELS,
                    F_CTL_REQUEST, ox, bytes([ELS_LKA, 0, 0, 0]))
        acc = conn.request(lka, args.timeout, "the LS_ACC to our LKA")
        if acc.payload[:4] != LS_ACC:
            raise PeerError("LKA answered with %s, want LS_ACC" % acc.payload[:8].hex())
        print("lka answered", flush=True)

        # Some data whose length is not a multiple of four, so the reply carries fill bytes.
        data = bytes((7 * i + 3) & 0xFF for i in range(args.echo_len))
        echo = Frame(SOF_I3, R_CTL_ELS_REQUEST, args.target, args.s_id, TYPE_ELS,
                     F_CTL_REQUEST, ox + 1, bytes([ELS_ECHO, 0, 0, 0]) + data)
        acc = conn.request(echo, args.timeout, "the LS_ACC to ECHO")
        if acc.payload[:1] == bytes([ELS_LS_RJT]):
            raise PeerError("ECHO rejected: %s" % acc.payload.hex())
        if acc.payload != LS_ACC + data:
            raise PeerError("ECHO answered with %d bytes %s..., want LS_ACC and %d bytes of data"
                            % (len(acc.payload), acc.payload[:16].hex(), len(data)))
        print("echo answered", flush=True)

        if args.class_f_lka:
            lka = Frame(SOF_F, R_CTL_ELS_REQUEST, FABRIC_CONTROLLER, FABRIC_CONTROLLER,
                        TYPE_ELS, F_CTL_REQUEST, ox + 2, bytes([ELS_LKA, 0, 0, 0]))
            acc = conn.request(lka, args.timeout, "the LS_ACC to our class F LKA")
            if acc.payload[:4] != LS_ACC:
                raise PeerError("class F LKA answered with %s, want LS_ACC"
                                % acc.payload[:8].hex())
            if acc.sof != SOF_F:
                raise PeerError("class F LKA answered with SOF %02x, want SOFf (%02x)"
                                % (acc.sof, SOF_F))
            print("class f lka answered", flush=True)

        if args.fabric_echo:
            for i, sof in enumerate((SOF_I3, SOF_F)):
                req = Frame(sof, R_CTL_ELS_REQUEST, FABRIC_CONTROLLER, args.s_id, TYPE_ELS,
                            F_CTL_REQUEST, ox + 3 + i, bytes([ELS_ECHO, 0, 0, 0]) + data)
                acc = conn.request(req, args.timeout, "the fabric controller's LS_ACC to ECHO")
                if acc.payload != LS_ACC + data:
                    raise PeerError("fabric controller answered ECHO with %d bytes %s..., want "
                                    "LS_ACC and %d bytes of data"
                                    % (len(acc.payload), acc.payload[:16].hex(), len(data)))
                if acc.sof != sof:
                    raise PeerError("ECHO in SOF %02x answered in SOF %02x" % (sof, acc.sof))
            print("fabric echo answered", flush=True)
            # ADISC: command word, 3 reserved bytes, then hard address, port and node names,
            # N_Port ID (FC-LS-3); the fabric controller does not serve it.
            adisc = Frame(SOF_I3, R_CTL_ELS_REQUEST, FABRIC_CONTROLLER, args.s_id, TYPE_ELS,
                          F_CTL_REQUEST, ox + 5, bytes([ELS_ADISC, 0, 0, 0]) + bytes(24))
            rjt = conn.request(adisc, args.timeout, "the fabric controller's answer to ADISC")
            if rjt.payload[:1] != bytes([ELS_LS_RJT]) or len(rjt.payload) < 8 \
                    or rjt.payload[5] != LS_RJT_REASON_NOT_SUPPORTED:
                raise PeerError("ADISC to the fabric controller answered with %s, want LS_RJT "
                                "command not supported" % rjt.payload[:8].hex())
            print("fabric adisc rejected", flush=True)

        if args.gateway_lka:
            deadline = time.monotonic() + args.timeout
            while conn.gateway_lkas == 0:
                f = conn.recv_frame(deadline, "an LKA from the gateway")
                if not conn.handle_unsolicited(f):
                    log("ignored %s" % f)
            print("gateway lka answered", flush=True)
    finally:
        sock.close()


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connect", required=True, help="the gateway's FCIP address, HOST:PORT")
    p.add_argument("--wwn", type=wwn, required=True, help="our Source FC Fabric Entity WWN")
    p.add_argument("--dest-wwn", type=wwn, required=True, help="the gateway's fabric WWN")
    p.add_argument("--s-id", type=port_id, default=0x020100, help="our N_Port ID (hex)")
    p.add_argument("--target", type=port_id, help="the N_Port ID to ECHO (hex)")
    p.add_argument("--k-a-tov", type=int, default=6000, help="K_A_TOV to announce, ms")
    p.add_argument("--echo-len", type=int, default=37, help="bytes of ECHO data (0-2108)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds for each step")
    p.add_argument("--class-f-lka", action="store_true",
                   help="after the ECHO, send an LKA in class F and check the class of its answer")
    p.add_argument("--fabric-echo", action="store_true",
                   help="ECHO the fabric controller FFFFFD (class 3 and F), then send it an ADISC")
    p.add_argument("--gateway-lka", action="store_true",
                   help="after the ECHO, wait for an LKA of the gateway's and answer it")
    p.add_argument("--expect-refused", action="store_true",
                   help="only check that the gateway closes the connection without an echo")
    args = p.parse_args()
    if not args.expect_refused and args.target is None:
        p.error("--target is required")
    if not 0 <= args.echo_len <= 2108:
        p.error("--echo-len must be 0-2108")
    try:
        # CRC-32/IEEE's check value is 0xcbf43926; an Ethernet FCS sends it low byte first.
        if fc_crc(b"123456789") != bytes.fromhex("2639f4cb"):
            raise PeerError("zlib.crc32 is not the IEEE 802.3 CRC-32")
        run(args)
    except PeerError as e:
        log("FAIL: %s" % e)
        sys.exit(1)


if __name__ == "__main__":
    main()
