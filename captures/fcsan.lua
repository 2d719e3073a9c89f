-- fcsan.lua: a Wireshark dissector for the fcsan controllers' messages.
--
--   tshark -X lua_script:captures/fcsan.lua -r FILE
--   wireshark -X lua_script:captures/fcsan.lua FILE   (or copy it to ~/.local/lib/wireshark/plugins/)
--
-- The controllers talk in CT_IUs (FC-GS-7 §4.3) of the vendor-specific GS_TYPE 0xE0,
-- GS_Subtype 0x01, carried in FC frames of FC-4 TYPE 0x20 (R_CTL 0x02 for requests, 0x03 for
-- replies and rejects). The layout of every message is in controller/src/wire/codec.rs and in
-- README.md ("The controllers' messages"); this file follows it field for field.
--
-- How it hooks into FC_CT (Wireshark 4.0, epan/dissectors/packet-fcct.c): the FC dissector hands
-- TYPE 0x20 frames to FC_CT, which dissects the preamble and then looks the *server* up in its
-- dissector table "fcct.server" (FT_UINT8). The server is not the GS_TYPE itself but a value
-- get_gs_server() derives from GS_TYPE and GS_Subtype: 0x01 dNS, 0x02 IP, 0x03 fabric
-- configuration ... 0x09 fabric controller, and 0xFF (FCCT_GSRVR_UNKNOWN) for every pair it does
-- not know, GS_TYPE 0xE0 included. FC_CT passes the whole CT_IU, preamble included (its
-- sub-dissectors read the preamble again), and falls back to "data" when the sub-dissector
-- returns 0. So this dissector registers in "fcct.server" under 0xFF, checks GS_TYPE 0xE0 and
-- GS_Subtype 0x01 itself, and returns 0 for any other unknown server's CT_IU so it still shows
-- as data. No heuristic and no post-dissector is needed; FS_ACC and FS_RJT go through the same
-- table, and the kind byte of our header says which reply body an FS_ACC carries.
--
-- The HMAC is shown, not checked: the dissector does not know the installation's key.
-- Checked with tshark 4.0.17 (Lua 5.2) by tests/dissector.rs.

local fcsan = Proto("fcsan", "fcsan controllers' messages")

local GS_TYPE = 0xE0
local GS_SUBTYPE = 0x01
local FS_RJT = 0x8001
local FS_ACC = 0x8002
local PREAMBLE_LEN = 16
local HEADER_LEN = 28
local MAC_LEN = 32
local BODY = PREAMBLE_LEN + HEADER_LEN

local KIND = {
    [0x01] = "HEARTBEAT", [0x02] = "UPDATE", [0x03] = "PULL", [0x04] = "CLAIM",
    [0x05] = "RESERVE", [0x06] = "RELEASE", [0x07] = "COMMIT", [0x08] = "LEASE",
    [0x09] = "INVALIDATE", [0x0A] = "ROUTE",
}
local COMMAND = { [FS_RJT] = "FS_RJT", [FS_ACC] = "FS_ACC" }
for k, name in pairs(KIND) do COMMAND[0x0E00 + k] = name end
local REASON = {
    [0x01] = "malformed", [0x02] = "bad-mac", [0x03] = "replayed", [0x04] = "stale",
    [0x05] = "unknown-kind", [0x06] = "foreign", [0x07] = "not-ready",
    [0x08] = "no-reservation", [0x09] = "forged-owner",
}
local MEDIA = { [1] = "ssd", [2] = "fast-hdd", [3] = "slow-hdd", [4] = "tape" }
local STATE = { [1] = "online", [2] = "degraded", [3] = "conflict" }
local YES_NO = { [0] = "no", [1] = "yes" }

local function wwn_field(abbr, name)
    return ProtoField.bytes(abbr, name, base.COLON)
end

local f = {
    message = ProtoField.string("fcsan.message", "Message"),
    command = ProtoField.uint16("fcsan.command", "Command code", base.HEX, COMMAND),
    reason = ProtoField.uint8("fcsan.reason", "Reject reason", base.HEX, REASON),
    format = ProtoField.uint8("fcsan.format", "Format", base.DEC),
    kind = ProtoField.uint8("fcsan.kind", "Kind", base.HEX, KIND),
    flags = ProtoField.uint16("fcsan.flags", "Flags", base.HEX),
    sender = wwn_field("fcsan.sender", "Sender WWPN"),
    generation = ProtoField.uint32("fcsan.generation", "Sender generation", base.DEC),
    seq = ProtoField.uint64("fcsan.seq", "Sequence", base.DEC),
    body_len = ProtoField.uint32("fcsan.body_len", "Body length", base.DEC),
    body = ProtoField.none("fcsan.body", "Body"),
    mac = ProtoField.bytes("fcsan.mac", "HMAC-SHA256"),

    hb_name = ProtoField.string("fcsan.hb.name", "Controller name"),
    hb_site = ProtoField.string("fcsan.hb.site", "Site"),
    hb_fc_id = ProtoField.uint32("fcsan.hb.fc_id", "N_Port_ID", base.HEX),
    hb_api = ProtoField.string("fcsan.hb.api", "API URL"),

    vv = ProtoField.none("fcsan.vv", "Version vector"),
    vv_count = ProtoField.uint16("fcsan.vv.count", "Owners", base.DEC),
    vv_entry = ProtoField.none("fcsan.vv.entry", "Owner"),
    vv_owner = wwn_field("fcsan.vv.owner", "Owner WWPN"),
    vv_generation = ProtoField.uint32("fcsan.vv.generation", "Generation", base.DEC),
    vv_version = ProtoField.uint64("fcsan.vv.version", "Version", base.DEC),

    rec_count = ProtoField.uint16("fcsan.rec.count", "Records", base.DEC),
    rec = ProtoField.none("fcsan.rec", "Record"),
    rec_owner = wwn_field("fcsan.rec.owner", "Owner WWPN"),
    rec_generation = ProtoField.uint32("fcsan.rec.generation", "Generation", base.DEC),
    rec_version = ProtoField.uint64("fcsan.rec.version", "Version", base.DEC),
    rec_name = ProtoField.string("fcsan.rec.name", "Volume name"),
    rec_tombstone = ProtoField.uint8("fcsan.rec.tombstone", "Tombstone", base.DEC, YES_NO),
    rec_ctl_name = ProtoField.string("fcsan.rec.ctl.name", "Owner controller name"),
    rec_ctl_wwpn = wwn_field("fcsan.rec.ctl.wwpn", "Owner controller WWPN"),
    rec_ctl_fc_id = ProtoField.uint32("fcsan.rec.ctl.fc_id", "Owner controller N_Port_ID", base.HEX),
    rec_ctl_site = ProtoField.string("fcsan.rec.ctl.site", "Owner controller site"),
    rec_local_name = ProtoField.string("fcsan.rec.local_name", "Local name"),
    rec_capacity = ProtoField.uint64("fcsan.rec.capacity", "Capacity (bytes)", base.DEC),
    rec_state = ProtoField.uint8("fcsan.rec.state", "State", base.DEC, STATE),
    rec_claimed_at = ProtoField.uint64("fcsan.rec.claimed_at", "Claimed at (ms since 1970)", base.DEC),
    rec_media = ProtoField.uint8("fcsan.rec.media", "Media type", base.DEC, MEDIA),
    rec_row_count = ProtoField.uint16("fcsan.rec.row.count", "Rows", base.DEC),
    rec_row = ProtoField.none("fcsan.rec.row", "Row"),
    rec_row_virtual_start = ProtoField.uint64("fcsan.rec.row.virtual_start", "Virtual start (sector)", base.DEC),
    rec_row_copy = ProtoField.uint8("fcsan.rec.row.copy", "Copy", base.DEC),
    rec_masking_count = ProtoField.uint16("fcsan.rec.masking.count", "Masking entries", base.DEC),
    rec_masking = wwn_field("fcsan.rec.masking", "Host WWPN"),

    ext_array = wwn_field("fcsan.extent.array", "Array WWPN"),
    ext_array_id = ProtoField.uint32("fcsan.extent.array_id", "Array N_Port_ID", base.HEX),
    ext_lun = ProtoField.uint64("fcsan.extent.lun", "LUN", base.HEX),
    ext_start = ProtoField.uint64("fcsan.extent.start", "Start block", base.DEC),
    ext_blocks = ProtoField.uint64("fcsan.extent.blocks", "Blocks", base.DEC),
    ext_block_size = ProtoField.uint32("fcsan.extent.block_size", "Block size", base.DEC),

    pull_max = ProtoField.uint16("fcsan.pull.max", "Most records", base.DEC),
    pull_complete = ProtoField.uint8("fcsan.pull.complete", "Complete", base.DEC, YES_NO),

    claim_name = ProtoField.string("fcsan.claim.name", "Volume name"),
    claim_claimed_at = ProtoField.uint64("fcsan.claim.claimed_at", "Claimed at (ms since 1970)", base.DEC),
    claim_release = ProtoField.uint8("fcsan.claim.release", "Release", base.DEC, YES_NO),
    claim_granted = ProtoField.uint8("fcsan.claim.granted", "Granted", base.DEC, YES_NO),
    claim_has_holder = ProtoField.uint8("fcsan.claim.has_holder", "Has holder", base.DEC, YES_NO),
    claim_holder = wwn_field("fcsan.claim.holder", "Holder WWPN"),
    claim_since = ProtoField.uint64("fcsan.claim.since", "Held since (ms since 1970)", base.DEC),

    reserve_id = ProtoField.uint64("fcsan.reserve.id", "Reservation", base.HEX),
    reserve_media = ProtoField.uint8("fcsan.reserve.media", "Media type", base.DEC, MEDIA),
    reserve_bytes = ProtoField.uint64("fcsan.reserve.bytes", "Bytes", base.DEC),
    reserve_ttl = ProtoField.uint32("fcsan.reserve.ttl_ms", "Held for (ms)", base.DEC),
    reserve_count = ProtoField.uint16("fcsan.reserve.count", "Extents", base.DEC),
    reserve_extent = ProtoField.none("fcsan.reserve.extent", "Extent"),

    release_id = ProtoField.uint64("fcsan.release.id", "Reservation", base.HEX),
    commit_id = ProtoField.uint64("fcsan.commit.id", "Reservation", base.HEX),
    commit_name = ProtoField.string("fcsan.commit.name", "Volume name"),

    lease_name = ProtoField.string("fcsan.lease.name", "Volume name"),
    lease_release = ProtoField.uint8("fcsan.lease.release", "Release", base.DEC, YES_NO),
    leased_ttl = ProtoField.uint32("fcsan.leased.ttl", "Lease for (ms, 0: refused or released)", base.DEC),

    inval_name = ProtoField.string("fcsan.inval.name", "Volume name"),
    inval_start = ProtoField.uint64("fcsan.inval.start", "Start (sector)", base.DEC),
    inval_sectors = ProtoField.uint64("fcsan.inval.sectors", "Sectors", base.DEC),
    inval_revoke = ProtoField.uint8("fcsan.inval.revoke", "Revoke (everything and the lease)", base.DEC, YES_NO),

    route_name = ProtoField.string("fcsan.route.name", "Volume name"),
    route_replica = ProtoField.uint8("fcsan.route.replica", "Read the replica directly", base.DEC, YES_NO),
}
local field_list = {}
for _, v in pairs(f) do field_list[#field_list + 1] = v end
fcsan.fields = field_list

local e_malformed = ProtoExpert.new("fcsan.malformed", "Malformed fcsan message",
    expert.group.MALFORMED, expert.severity.ERROR)
local e_unknown = ProtoExpert.new("fcsan.unknown_kind", "Unknown fcsan command or kind",
    expert.group.UNDECODED, expert.severity.WARN)
local e_reject = ProtoExpert.new("fcsan.rejected", "Message rejected",
    expert.group.RESPONSE_CODE, expert.severity.NOTE)
fcsan.experts = { e_malformed, e_unknown, e_reject }

-- A cursor over the body: every read checks the bounds and raises a table error that the
-- dissector turns into an expert item, never a Lua error.
local Cursor = {}
Cursor.__index = Cursor

local function cursor(tvb, offset, limit)
    return setmetatable({ tvb = tvb, off = offset, limit = limit }, Cursor)
end

function Cursor:take(n, what)
    if self.off + n > self.limit then
        error({ fcsan = true, msg = string.format("%s at byte %d: needs %d bytes, %d left",
            what, self.off, n, self.limit - self.off) })
    end
    local r = self.tvb(self.off, n)
    self.off = self.off + n
    return r
end

function Cursor:fail(msg)
    error({ fcsan = true, msg = string.format("%s at byte %d", msg, self.off) })
end

-- Adds a fixed-size field and returns its range.
function Cursor:add(tree, field, n, what)
    local r = self:take(n, what)
    tree:add(field, r)
    return r
end

-- A text: one length byte, that many bytes of UTF-8.
function Cursor:text(tree, field, what)
    local len = self:take(1, what):uint()
    local r = self:take(len, what)
    local s = r:string(ENC_UTF_8)
    tree:add(field, r, s)
    return s
end

function Cursor:flag(tree, field, what)
    local r = self:take(1, what)
    local v = r:uint()
    if v > 1 then self:fail(what .. " flag is neither 0 nor 1") end
    tree:add(field, r)
    return v == 1
end

function Cursor:count(tree, field, what)
    return self:add(tree, field, 2, what):uint()
end

local function vector(c, tree)
    local start = c.off
    local vt = tree:add(f.vv, c.tvb(start, 0))
    local n = c:count(vt, f.vv_count, "vector count")
    for _ = 1, n do
        local es = c.off
        local et = vt:add(f.vv_entry, c.tvb(es, 0))
        local owner = c:add(et, f.vv_owner, 8, "vector owner")
        local g = c:add(et, f.vv_generation, 4, "vector generation"):uint()
        local v = c:add(et, f.vv_version, 8, "vector version"):uint64()
        et:set_len(c.off - es)
        et:append_text(string.format(": %s %d.%s", owner:bytes():tohex(true, ":"), g, tostring(v)))
    end
    vt:set_len(c.off - start)
    vt:append_text(string.format(": %d owners", n))
end

local function extent(c, tree)
    c:add(tree, f.ext_array, 8, "array WWPN")
    c:add(tree, f.ext_array_id, 4, "array N_Port_ID")
    c:add(tree, f.ext_lun, 8, "LUN")
    c:add(tree, f.ext_start, 8, "extent start")
    c:add(tree, f.ext_blocks, 8, "extent blocks")
    c:add(tree, f.ext_block_size, 4, "block size")
end

local function record(c, tree)
    local start = c.off
    local rt = tree:add(f.rec, c.tvb(start, 0))
    c:add(rt, f.rec_owner, 8, "record owner")
    local g = c:add(rt, f.rec_generation, 4, "record generation"):uint()
    local v = c:add(rt, f.rec_version, 8, "record version"):uint64()
    local name = c:text(rt, f.rec_name, "volume name")
    local tomb = c:flag(rt, f.rec_tombstone, "tombstone")
    if not tomb then
        c:text(rt, f.rec_ctl_name, "owner name")
        c:add(rt, f.rec_ctl_wwpn, 8, "owner WWPN")
        c:add(rt, f.rec_ctl_fc_id, 4, "owner N_Port_ID")
        c:text(rt, f.rec_ctl_site, "owner site")
        c:text(rt, f.rec_local_name, "local name")
        c:add(rt, f.rec_capacity, 8, "capacity")
        c:add(rt, f.rec_state, 1, "state")
        c:add(rt, f.rec_claimed_at, 8, "claimed_at")
        c:add(rt, f.rec_media, 1, "media")
        local rows = c:count(rt, f.rec_row_count, "row count")
        for _ = 1, rows do
            local rs = c.off
            local row = rt:add(f.rec_row, c.tvb(rs, 0))
            c:add(row, f.rec_row_virtual_start, 8, "virtual start")
            extent(c, row)
            c:add(row, f.rec_row_copy, 1, "copy")
            row:set_len(c.off - rs)
        end
        local hosts = c:count(rt, f.rec_masking_count, "masking count")
        for _ = 1, hosts do
            c:add(rt, f.rec_masking, 8, "masking WWPN")
        end
    end
    rt:set_len(c.off - start)
    rt:append_text(string.format(": %s %d.%s%s", name, g, tostring(v), tomb and " (tombstone)" or ""))
end

local function records(c, tree)
    local n = c:count(tree, f.rec_count, "record count")
    for _ = 1, n do record(c, tree) end
end

local REQUEST_BODY = {
    [0x01] = function(c, t)
        c:text(t, f.hb_name, "controller name")
        c:text(t, f.hb_site, "site")
        c:add(t, f.hb_fc_id, 4, "N_Port_ID")
        c:text(t, f.hb_api, "API URL")
        vector(c, t)
    end,
    [0x02] = records,
    [0x03] = function(c, t)
        vector(c, t)
        c:add(t, f.pull_max, 2, "max")
    end,
    [0x04] = function(c, t)
        c:text(t, f.claim_name, "volume name")
        c:add(t, f.claim_claimed_at, 8, "claimed_at")
        c:flag(t, f.claim_release, "release")
    end,
    [0x05] = function(c, t)
        c:add(t, f.reserve_id, 8, "reservation id")
        c:add(t, f.reserve_media, 1, "media")
        c:add(t, f.reserve_bytes, 8, "bytes")
        c:add(t, f.reserve_ttl, 4, "ttl_ms")
    end,
    [0x06] = function(c, t)
        c:add(t, f.release_id, 8, "reservation id")
    end,
    [0x07] = function(c, t)
        c:add(t, f.commit_id, 8, "reservation id")
        c:text(t, f.commit_name, "volume name")
    end,
    [0x08] = function(c, t)
        c:text(t, f.lease_name, "volume name")
        c:flag(t, f.lease_release, "release")
    end,
    [0x09] = function(c, t)
        c:text(t, f.inval_name, "volume name")
        c:add(t, f.inval_start, 8, "start sector")
        c:add(t, f.inval_sectors, 8, "sectors")
        c:flag(t, f.inval_revoke, "revoke")
    end,
    [0x0A] = function(c, t)
        c:text(t, f.route_name, "volume name")
        c:flag(t, f.route_replica, "replica")
    end,
}

local function ack() end

local REPLY_BODY = {
    [0x01] = ack,
    [0x02] = vector,
    [0x03] = function(c, t)
        c:flag(t, f.pull_complete, "complete")
        vector(c, t)
        records(c, t)
    end,
    [0x04] = function(c, t)
        c:flag(t, f.claim_granted, "granted")
        if c:flag(t, f.claim_has_holder, "has holder") then
            c:add(t, f.claim_holder, 8, "holder")
            c:add(t, f.claim_since, 8, "held since")
        end
    end,
    [0x05] = function(c, t)
        local n = c:count(t, f.reserve_count, "extent count")
        for _ = 1, n do
            local es = c.off
            local et = t:add(f.reserve_extent, c.tvb(es, 0))
            extent(c, et)
            et:set_len(c.off - es)
        end
    end,
    [0x06] = ack,
    [0x07] = ack,
    [0x08] = function(c, t)
        c:add(t, f.leased_ttl, 4, "ttl_ms")
    end,
    [0x09] = ack,
    [0x0A] = ack,
}

local function malformed(item, pinfo, msg)
    item:add_proto_expert_info(e_malformed, msg)
    pinfo.cols.info:append(" [malformed: " .. msg .. "]")
end

-- FC pads a frame's payload to a whole word with 0-3 fill bytes and says how many in F_CTL
-- bits 1-0 (FC-FS-4 §9.3); Wireshark 4.0's FC dissector leaves them in the payload it hands on.
local fc_f_ctl = Field.new("fc.f_ctl")

local function fill_len(pinfo)
    local f_ctl = fc_f_ctl()
    if f_ctl == nil then return 0 end
    return f_ctl.value % 4
end

function fcsan.dissector(tvb, pinfo, tree)
    local len = tvb:len() - fill_len(pinfo)
    if len < 0 then len = tvb:len() end
    if len < PREAMBLE_LEN or tvb(4, 1):uint() ~= GS_TYPE or tvb(5, 1):uint() ~= GS_SUBTYPE then
        return 0
    end
    pinfo.cols.protocol:set("fcsan")
    local root = tree:add(fcsan, tvb(0, len))
    local command = tvb(8, 2):uint()
    root:add(f.command, tvb(8, 2))

    if command == FS_RJT then
        local reason = tvb(15, 1):uint()
        local name = REASON[reason] or string.format("0x%02x", reason)
        root:add(f.message, tvb(8, 2), "reject")
        root:add(f.reason, tvb(15, 1))
        root:append_text(", reject: " .. name)
        root:add_proto_expert_info(e_reject, "Rejected: " .. name)
        pinfo.cols.info:set("fcsan reject (" .. name .. ")")
        if tvb(13, 1):uint() ~= 0xFF then
            malformed(root, pinfo, "reject reason code is not 0xff (vendor unique)")
        elseif len ~= PREAMBLE_LEN then
            malformed(root, pinfo, "a reject is the preamble alone")
        end
        return len
    end

    local is_request = command >= 0x0E00 and command <= 0x0EFF and KIND[command - 0x0E00] ~= nil
    if not is_request and command ~= FS_ACC then
        root:add_proto_expert_info(e_unknown, string.format("unknown command code 0x%04x", command))
        pinfo.cols.info:set(string.format("fcsan unknown command 0x%04x", command))
        return len
    end
    local what = is_request and "request" or "reply"
    root:add(f.message, tvb(8, 2), what)
    if len < BODY + MAC_LEN then
        malformed(root, pinfo, "too short for the header and MAC")
        return len
    end

    local kind = tvb(17, 1):uint()
    local kind_name = KIND[kind] or string.format("0x%02x", kind)
    root:add(f.format, tvb(16, 1))
    root:add(f.kind, tvb(17, 1))
    root:add(f.flags, tvb(18, 2))
    root:add(f.sender, tvb(20, 8))
    root:add(f.generation, tvb(28, 4))
    root:add(f.seq, tvb(32, 8))
    root:add(f.body_len, tvb(40, 4))
    local seq = tvb(32, 8):uint64()
    root:append_text(string.format(", %s %s seq %s", kind_name, what, tostring(seq)))
    pinfo.cols.info:set(string.format("fcsan %s %s seq=%s gen=%d", kind_name, what,
        tostring(seq), tvb(28, 4):uint()))

    local body_len = tvb(40, 4):uint()
    if BODY + body_len + MAC_LEN ~= len then
        malformed(root, pinfo, string.format("body length %d leaves %d bytes of MAC, not 32",
            body_len, len - BODY - body_len))
        return len
    end
    if tvb(16, 1):uint() ~= 1 then
        malformed(root, pinfo, "unknown format")
        return len
    end
    if is_request and kind ~= command - 0x0E00 then
        malformed(root, pinfo, "header kind is not the command code's")
        return len
    end
    local parse = (is_request and REQUEST_BODY or REPLY_BODY)[kind]
    local mac = tvb(BODY + body_len, MAC_LEN)
    if parse == nil then
        root:add_proto_expert_info(e_unknown, "unknown kind " .. kind_name)
        root:add(f.mac, mac)
        return len
    end

    local body = root:add(f.body, tvb(BODY, body_len))
    body:append_text(string.format(": %s %s", kind_name, what))
    local c = cursor(tvb, BODY, BODY + body_len)
    local ok, err = pcall(parse, c, body)
    if not ok then
        if type(err) == "table" and err.fcsan then
            malformed(body, pinfo, err.msg)
        else
            malformed(body, pinfo, tostring(err))
        end
    elseif c.off ~= c.limit then
        malformed(body, pinfo, string.format("%d bytes after the body's end at byte %d",
            c.limit - c.off, c.off))
    end
    root:add(f.mac, mac)
    return len
end

-- See the header comment: 0xFF is FC_CT's "unknown server", where GS_TYPE 0xE0 lands.
DissectorTable.get("fcct.server"):add(0xFF, fcsan)

-- ---------------------------------------------------------------------------------------------
-- FCIP without Decode As (RFC 3821, RFC 3643).
--
-- Wireshark 4.0's FCIP dissector has no name a script could call and no port of its own: it is
-- a TCP heuristic for fcip.target_port (3225), and the LBMSRS heuristic claims FCIP segments
-- before it, even there (PROTOCOLS.md). So this file carries its own FCIP dissector, "fcsan_fcip":
-- the encapsulation header (words 0-6) and the Special Frame in a tree of their own, and the
-- encapsulated frame handed, with its SOF and EOF turned into the ordered sets of pcap link type
-- 225, to Wireshark's "fcsof" dissector, which checks the FC CRC and dissects FC, ELS, FC_CT,
-- dNS, SW_ILS, FCP and SCSI (and, through "fcct.server" above, the controllers' messages).
--
-- It registers in "tcp.port" on 3225 and on every TCP port no other dissector holds: TCP tries
-- port dissectors before heuristics, so FCIP is found on whatever port the capture's gateway
-- listened on. On a segment that does not start with a valid encapsulation header it returns 0,
-- and TCP goes on to the heuristics as before. Several FCIP frames in one segment and one frame
-- over several segments are reassembled (TCP's "allow subdissectors to reassemble" is on by
-- default).

local fcip = Proto("fcsan_fcip", "FCIP (fcsan)")
local fp = {
    protocol = ProtoField.uint8("fcsan_fcip.protocol", "Protocol", base.DEC),
    version = ProtoField.uint8("fcsan_fcip.version", "Version", base.DEC),
    pflags = ProtoField.uint8("fcsan_fcip.pflags", "pFlags", base.HEX),
    flags = ProtoField.uint8("fcsan_fcip.flags", "Flags", base.HEX),
    length = ProtoField.uint16("fcsan_fcip.length", "Frame Length (words)", base.DEC),
    ts_sec = ProtoField.uint32("fcsan_fcip.ts_sec", "Time Stamp (seconds)", base.DEC),
    ts_frac = ProtoField.uint32("fcsan_fcip.ts_frac", "Time Stamp (fraction)", base.HEX),
    crc = ProtoField.uint32("fcsan_fcip.crc", "Header CRC", base.HEX),
    sof = ProtoField.uint8("fcsan_fcip.sof", "SOF", base.HEX),
    eof = ProtoField.uint8("fcsan_fcip.eof", "EOF", base.HEX),
    sf = ProtoField.bool("fcsan_fcip.sf", "Special Frame"),
    srcwwn = ProtoField.bytes("fcsan_fcip.srcwwn", "Source Fabric Entity WWN", base.COLON),
    srcid = ProtoField.bytes("fcsan_fcip.srcid", "Source FC/FCIP Entity Identifier"),
    nonce = ProtoField.bytes("fcsan_fcip.nonce", "Connection Nonce"),
    connflags = ProtoField.uint8("fcsan_fcip.connflags", "Connection Usage Flags", base.HEX),
    conncode = ProtoField.uint16("fcsan_fcip.conncode", "Connection Usage Code", base.HEX),
    dstwwn = ProtoField.bytes("fcsan_fcip.dstwwn", "Destination Fabric Entity WWN", base.COLON),
    katov = ProtoField.uint32("fcsan_fcip.katov", "K_A_TOV (ms)", base.DEC),
}
fcip.fields = {
    fp.protocol, fp.version, fp.pflags, fp.flags, fp.length, fp.ts_sec, fp.ts_frac, fp.crc,
    fp.sof, fp.eof, fp.sf, fp.srcwwn, fp.srcid, fp.nonce, fp.connflags, fp.conncode, fp.dstwwn,
    fp.katov,
}
local fcip_bad = ProtoExpert.new("fcsan_fcip.bad", "FCIP frame with an unknown SOF or EOF",
    expert.group.MALFORMED, expert.severity.ERROR)
fcip.experts = { fcip_bad }

local FCIP_HEADER = 28
local FSF_LEN = 76
-- FC-FS-4 ordered sets (the first form of each EOF: after negative running disparity), as
-- fc-frames writes them into link type 225 captures.
local SOF_SET = {
    [0x28] = "BCB55858", [0x29] = "BCB55959", [0x2D] = "BCB55555", [0x2E] = "BCB55656",
    [0x31] = "BCB53939", [0x35] = "BCB53535", [0x36] = "BCB53636", [0x39] = "BCB51919",
}
local EOF_SET = {
    [0x41] = "BC95D5D5", [0x42] = "BC957575", [0x44] = "BC959999", [0x46] = "BC959595",
    [0x49] = "BC8AD5D5", [0x4E] = "BC8A9595", [0x4F] = "BC8A9999", [0x50] = "BC95F5F5",
}

-- The frame length in words when `tvb` holds a valid encapsulation header at `at` (RFC 3821
-- §5.6: protocol 1, version 1, word 1 a copy of word 0, the complements right, 15 < length
-- < 545), else nil.
local function fcip_length(tvb, at)
    local w0 = tvb(at, 4):uint()
    if w0 ~= 0x0101FEFE or tvb(at + 4, 4):uint() ~= w0 then
        return nil
    end
    local pflags, res = tvb(at + 8, 1):uint(), tvb(at + 9, 1):uint()
    if tvb(at + 10, 1):uint() ~= bit32.bxor(pflags, 0xFF)
        or tvb(at + 11, 1):uint() ~= bit32.bxor(res, 0xFF) then
        return nil
    end
    local fl, nfl = tvb(at + 12, 2):uint(), tvb(at + 14, 2):uint()
    if bit32.bxor(fl, nfl) ~= 0xFFFF then
        return nil
    end
    local words = bit32.band(fl, 0x3FF)
    if words <= 15 or words >= 545 then
        return nil
    end
    return words
end

local fcsof = Dissector.get("fcsof")

local function fcip_one(tvb, pinfo, root, at, len)
    local t = root:add(fcip, tvb(at, len))
    t:add(fp.protocol, tvb(at, 1))
    t:add(fp.version, tvb(at + 1, 1))
    local pflags = tvb(at + 8, 1):uint()
    t:add(fp.pflags, tvb(at + 8, 1))
    t:add(fp.flags, tvb(at + 12, 1), bit32.rshift(tvb(at + 12, 1):uint(), 2))
    t:add(fp.length, tvb(at + 12, 2), bit32.band(tvb(at + 12, 2):uint(), 0x3FF))
    t:add(fp.ts_sec, tvb(at + 16, 4))
    t:add(fp.ts_frac, tvb(at + 20, 4))
    t:add(fp.crc, tvb(at + 24, 4))
    if bit32.band(pflags, 0x01) == 1 then
        t:add(fp.sf, tvb(at + 8, 1), true)
        if len >= FSF_LEN then
            t:add(fp.srcwwn, tvb(at + 32, 8))
            t:add(fp.srcid, tvb(at + 40, 8))
            t:add(fp.nonce, tvb(at + 48, 8))
            t:add(fp.connflags, tvb(at + 56, 1))
            t:add(fp.conncode, tvb(at + 58, 2))
            t:add(fp.dstwwn, tvb(at + 60, 8))
            t:add(fp.katov, tvb(at + 68, 4))
        end
        pinfo.cols.protocol = "FCIP"
        pinfo.cols.info = bit32.band(pflags, 0x80) ~= 0 and "Special Frame (changed)" or "Special Frame"
        return
    end
    local sof = tvb(at + FCIP_HEADER, 1):uint()
    local eof = tvb(at + len - 4, 1):uint()
    t:add(fp.sof, tvb(at + FCIP_HEADER, 1))
    t:add(fp.eof, tvb(at + len - 4, 1))
    local sof_set, eof_set = SOF_SET[sof], EOF_SET[eof]
    if not sof_set or not eof_set then
        t:add_proto_expert_info(fcip_bad)
        return
    end
    -- SOF ordered set, FC header, payload and CRC as they came, EOF ordered set: link type 225.
    local frame = ByteArray.new(sof_set)
    frame:append(tvb(at + FCIP_HEADER + 4, len - FCIP_HEADER - 8):bytes())
    frame:append(ByteArray.new(eof_set))
    fcsof:call(frame:tvb("Encapsulated FC frame"), pinfo, root)
end

function fcip.dissector(tvb, pinfo, tree)
    local total = tvb:len()
    local at = 0
    while at < total do
        local left = total - at
        if left < 16 then
            pinfo.desegment_offset = at
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            return total
        end
        local words = fcip_length(tvb, at)
        if not words then
            -- Not FCIP (at the start: let TCP ask the others), or a broken stream: the rest
            -- shows as data.
            return at
        end
        local len = words * 4
        if left < len then
            pinfo.desegment_offset = at
            pinfo.desegment_len = len - left
            return total
        end
        fcip_one(tvb, pinfo, tree, at, len)
        at = at + len
    end
    return total
end

do
    local tcp_port = DissectorTable.get("tcp.port")
    tcp_port:add(3225, fcip)
    for port = 1, 65535 do
        if port ~= 3225 and tcp_port:get_dissector(port) == nil then
            tcp_port:add(port, fcip)
        end
    end
end
