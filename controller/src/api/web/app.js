// The operator's page of an fcsan controller: polls the management API's JSON routes once a
// second and draws the tables `fcsan volume` prints, with the same columns; its forms build and
// delete volumes. Served by the controller itself (controller/src/api/web.rs); no build step, no
// outside resource. Everything shown is inserted as text (textContent), never as markup.
"use strict";

const PERIOD_MS = 1000;

// ---- formatting, as src/volume.rs and controller::api::views format ----

// Bytes in the largest binary unit that leaves at least 1, up to two decimals: "16 MiB".
function formatBytes(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let unit = 0;
  while (unit + 1 < units.length && bytes >= Math.pow(1024, unit + 1)) {
    unit += 1;
  }
  const scale = Math.pow(1024, unit);
  if (bytes % scale === 0) {
    return `${bytes / scale} ${units[unit]}`;
  }
  const s = (bytes / scale).toFixed(2).replace(/0+$/, "").replace(/\.$/, "");
  return `${s} ${units[unit]}`;
}

// "first~last", 1-based and inclusive, as PATENT.md writes ranges; "-" when empty.
function range(start, len) {
  return len === 0 ? "-" : `${start + 1}~${start + len}`;
}

function copyName(copy) {
  return copy === 0 ? "primary" : `replica ${copy}`;
}

function replicaText(st) {
  if (!st) {
    return "-";
  }
  switch (st.state) {
    case "syncing": {
      const pct = st.total === 0 ? 100 : Math.floor((st.copied * 100) / st.total);
      return `syncing ${formatBytes(st.copied)} of ${formatBytes(st.total)} (${pct}%) at ${formatBytes(st.rate)}/s`;
    }
    case "in-sync":
      return `in-sync (${st.copies} copies)`;
    case "failed":
      return `failed: ${st.reason || "no reason given"}`;
    default:
      return st.state;
  }
}

// ---- the API ----

// An answer: `ok`, the status line, and the body as JSON (or null) and as text.
async function call(method, path, body) {
  const init = { method, cache: "no-store", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (_) {
    json = null;
  }
  return { ok: r.ok, status: `${r.status} ${r.statusText}`.trim(), json, text };
}

// The JSON of a GET that must succeed; throws with the API's message otherwise.
async function getJson(path) {
  const a = await call("GET", path);
  if (!a.ok) {
    throw new Error(`${path}: ${(a.json && a.json.error) || a.text || a.status}`);
  }
  return a.json;
}

// ---- drawing ----

const $ = (id) => document.getElementById(id);

// What each table last showed, so that an unchanged table is not redrawn (a selection in it
// survives the refresh).
const shown = new Map();

// Fills the body of table `id` with `rows` (arrays of cell texts, or of {text, href}); each row
// may carry a `key` (set as data-key) for tests and styles.
function fill(id, rows, empty) {
  const key = JSON.stringify(rows);
  if (shown.get(id) === key) {
    return;
  }
  shown.set(id, key);
  const table = $(id);
  const tbody = table.tBodies[0];
  const columns = table.tHead.rows[0].cells.length;
  const out = document.createDocumentFragment();
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = document.createElement("td");
    td.colSpan = columns;
    td.textContent = empty;
    tr.appendChild(td);
    out.appendChild(tr);
  }
  for (const row of rows) {
    const tr = document.createElement("tr");
    if (row.key !== undefined) {
      tr.dataset.key = row.key;
    }
    for (const cell of row.cells) {
      const td = document.createElement("td");
      if (cell && typeof cell === "object" && cell.href) {
        const a = document.createElement("a");
        a.href = cell.href;
        a.textContent = cell.text;
        td.appendChild(a);
      } else {
        td.textContent = String(cell);
      }
      tr.appendChild(td);
    }
    out.appendChild(tr);
  }
  tbody.replaceChildren(out);
}

function mapRow(volume, localName, r) {
  return {
    key: volume,
    cells: [
      volume,
      range(r.virtual_start, r.sectors),
      localName,
      r.array_fc_id,
      r.array,
      `LUN${r.lun}`,
      range(r.real_start, r.blocks),
      r.block_size,
      copyName(r.copy),
    ],
  };
}

function drawVolumes(volumes) {
  fill(
    "volumes",
    volumes.map((v) => ({
      key: v.name,
      cells: [
        v.name,
        v.owner,
        v.owner_wwpn,
        v.owner_fc_id,
        v.local_name,
        formatBytes(v.capacity),
        v.media,
        v.state,
        `${v.generation}.${v.version}`,
      ],
    })),
    "no volumes",
  );
  fill(
    "map",
    volumes.flatMap((v) => v.rows.map((r) => mapRow(v.name, v.local_name, r))),
    "no sector map rows",
  );
  const names = volumes.map((v) => v.name);
  const listKey = JSON.stringify(names);
  if (shown.get("volume-names") !== listKey) {
    shown.set("volume-names", listKey);
    $("volume-names").replaceChildren(
      ...names.map((n) => {
        const o = document.createElement("option");
        o.value = n;
        return o;
      }),
    );
  }
}

function drawIo(volumes, ios) {
  fill(
    "io",
    volumes.map((v, i) => {
      const io = ios[i];
      if (!io) {
        return { key: v.name, cells: [v.name, "-", "", "", "", "", "", "", "", "", "", "", "", "-"] };
      }
      const c = io.counters;
      return {
        key: v.name,
        cells: [
          v.name,
          io.lun === null ? "not served" : io.lun,
          c.reads,
          c.writes,
          formatBytes(c.read_bytes),
          formatBytes(c.write_bytes),
          c.cache_hits,
          c.cache_misses,
          c.invalidations,
          formatBytes(c.wan_bytes),
          formatBytes(c.wan_bytes_saved),
          c.replica_reads,
          c.route_changes,
          replicaText(io.replica),
        ],
      };
    }),
    "no volumes",
  );
}

function drawReal(real) {
  $("controller-name").textContent = real.controller;
  $("controller-site").textContent = real.site;
  document.title = `${real.controller} (site ${real.site}) · fcsan controller`;
  fill(
    "real",
    real.volumes.map((r) => {
      const users = [...new Set(r.used_by.map((u) => u.volume))].sort();
      return {
        key: `${r.array}/${r.lun}`,
        cells: [
          users.length === 0 ? "-" : users.join(", "),
          r.array_fc_id,
          r.array,
          `LUN${r.lun}`,
          formatBytes(r.capacity),
          r.media,
          r.block_size,
          `${r.vendor} ${r.product}`,
          r.present ? "yes" : "no",
        ],
      };
    }),
    "no real volumes found yet",
  );
  fill(
    "free",
    real.free.map((f) => ({
      key: `${f.array}/${f.media}`,
      cells: [f.array_fc_id, f.array, f.media, formatBytes(f.free_bytes), f.extents],
    })),
    "no free space",
  );
}

// A link to another controller's page, when its API URL is plain http(s).
function apiLink(api) {
  if (!api) {
    return "-";
  }
  try {
    const u = new URL(api);
    if (u.protocol === "http:" || u.protocol === "https:") {
      return { text: api, href: new URL("/", u).href };
    }
  } catch (_) {
    // not a URL: shown as text
  }
  return api;
}

function drawPeers(peers) {
  fill(
    "peers",
    peers.map((p) => ({
      key: p.name,
      cells: [
        p.name,
        p.site,
        p.state,
        p.wwpn,
        p.fc_id,
        apiLink(p.api),
        p.last_heard_ms === null ? "-" : `${p.last_heard_ms} ms ago`,
        p.versions
          .map((v) => `${v.owner_name || v.owner} ${v.generation}.${v.version}`)
          .join(", "),
      ],
    })),
    "no controllers",
  );
}

function drawCounters(counters) {
  const c = counters.counters;
  const ready = $("ready");
  ready.textContent = c.ready === 1 ? "ready" : "not ready yet (catching up with its peers)";
  ready.className = c.ready === 1 ? "" : "warn";
  if ($("counters-details").open) {
    fill(
      "counters",
      Object.keys(c).map((k) => ({ key: k, cells: [k, c[k]] })),
      "no counters",
    );
  }
}

// ---- the refresh loop ----

let timer = null;
let running = false;
let again = false;

// Refreshes now; when a refresh is under way, once more right after it.
function refreshNow() {
  if (running) {
    again = true;
    return;
  }
  clearTimeout(timer);
  refresh();
}

async function refresh() {
  running = true;
  const status = $("refresh");
  try {
    const [volumes, real, peers, counters] = await Promise.all([
      getJson("v1/volumes"),
      getJson("v1/real-volumes"),
      getJson("v1/peers"),
      getJson("v1/counters"),
    ]);
    // A volume deleted between the two requests has no I/O to show: null.
    const ios = await Promise.all(
      volumes.map((v) =>
        getJson(`v1/volumes/${encodeURIComponent(v.name)}/io`).catch(() => null),
      ),
    );
    drawVolumes(volumes);
    drawIo(volumes, ios);
    drawReal(real);
    drawPeers(peers);
    drawCounters(counters);
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    status.className = "";
  } catch (e) {
    status.textContent = `cannot read the management API: ${e.message}`;
    status.className = "warn";
  } finally {
    running = false;
    if (again) {
      again = false;
      refresh();
    } else {
      timer = setTimeout(refresh, PERIOD_MS);
    }
  }
}

// ---- messages and forms ----

function showError(what, answer) {
  const box = $("error");
  const head = document.createElement("strong");
  head.textContent = `${what} failed`;
  const msg = document.createElement("span");
  msg.id = "error-message";
  if (answer.json && answer.json.error) {
    msg.textContent = `${answer.json.error} (${answer.status})`;
  } else {
    msg.textContent = answer.text ? `${answer.status}: ${answer.text}` : answer.status;
  }
  // A 507's message already says what was found where (its `found` list).
  box.replaceChildren(head, document.createTextNode(": "), msg);
  box.hidden = false;
  $("notice").hidden = true;
}

function showNotice(text) {
  $("error").hidden = true;
  const n = $("notice");
  n.textContent = text;
  n.hidden = false;
}

// Sends a change with the form's button disabled; a network failure is an answer too.
async function change(button, method, path, body) {
  button.disabled = true;
  try {
    return await call(method, path, body);
  } catch (e) {
    return { ok: false, status: "no answer", json: null, text: `cannot reach the management API: ${e.message}` };
  } finally {
    button.disabled = false;
  }
}

async function build(ev) {
  ev.preventDefault();
  const name = $("build-name").value.trim();
  const spec = {
    type: $("build-type").value,
    capacity: `${$("build-capacity").value.trim()}${$("build-unit").value}`,
  };
  if (name) {
    spec.name = name;
  }
  showNotice(`building ${name || "a volume"} (${spec.capacity} of ${spec.type})…`);
  const a = await change($("build-submit"), "POST", "v1/volumes", spec);
  if (a.ok && a.json) {
    const v = a.json;
    showNotice(`built ${v.name}: ${formatBytes(v.capacity)} of ${v.media}, owner ${v.owner}, local name ${v.local_name}`);
    $("build-name").value = "";
  } else {
    showError(`build ${name || "a volume"}`, a);
  }
  refreshNow();
}

async function remove(ev) {
  ev.preventDefault();
  const name = $("delete-name").value.trim();
  const keep = $("delete-keep").value.trim();
  let path = `v1/volumes/${encodeURIComponent(name)}`;
  if (keep) {
    path += `?keep=${encodeURIComponent(keep)}`;
  }
  showNotice(keep ? `deleting ${name}, its data kept in ${keep}…` : `deleting ${name}…`);
  const a = await change($("delete-submit"), "DELETE", path);
  if (a.ok) {
    showNotice(keep ? `deleted ${name} (its data kept in ${keep})` : `deleted ${name}`);
    $("delete-name").value = "";
    $("delete-keep").value = "";
  } else {
    showError(`delete ${name}`, a);
  }
  refreshNow();
}

document.addEventListener("DOMContentLoaded", () => {
  $("build-form").addEventListener("submit", build);
  $("delete-form").addEventListener("submit", remove);
  $("counters-details").addEventListener("toggle", () => {
    shown.delete("counters");
    refreshNow();
  });
  refresh();
});
