// excap station page: polls /api/status, refreshes camera previews, posts the session form and actions.
"use strict";

const $ = (id) => document.getElementById(id);
const safeId = (text) => text.replace(/[^A-Za-z0-9_-]/g, "-");
const POLL_MS = 250;
const PREVIEW_MS = 150;

function duration(seconds) {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = String(m).padStart(2, "0"), ss = String(r).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  if (n >= 1e9) return (n / 1e9).toFixed(1) + " GB";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + " MB";
  return (n / 1e3).toFixed(0) + " kB";
}

function showMessage(text, level) {
  const box = $("message");
  box.textContent = text;
  box.className = "message " + (level || "info");
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  let data = {};
  try { data = await response.json(); } catch (e) { data = {}; }
  return {ok: response.ok, status: response.status, data: data};
}

function bars(container, names, values) {
  names.forEach((name, i) => {
    const id = container.id + "-" + safeId(name);
    let row = $(id);
    if (!row) {
      row = document.createElement("div");
      row.className = "bar";
      row.id = id;
      row.innerHTML = '<span class="name"></span><span class="track"><span class="fill"></span></span>' +
        '<span class="value"></span>';
      row.querySelector(".name").textContent = name;
      container.appendChild(row);
    }
    const v = values[i];
    const fill = row.querySelector(".fill");
    const x = (v === null || v === undefined || isNaN(v)) ? 0 : Math.max(-1, Math.min(1, v));
    fill.style.left = (x < 0 ? 50 + 50 * x : 50) + "%";
    fill.style.width = Math.abs(50 * x) + "%";
    row.dataset.value = String(v);
    row.querySelector(".value").textContent = (v === null || v === undefined) ? "-" : Number(v).toFixed(2);
  });
}

function tableRows(table, prefix, items, key, cells, stateOf) {
  const body = table.querySelector("tbody");
  items.forEach((item) => {
    const id = prefix + safeId(item[key]);
    let row = $(id);
    if (!row) {
      row = document.createElement("tr");
      row.id = id;
      body.appendChild(row);
    }
    row.className = stateOf(item);
    row.innerHTML = "";
    cells(item).forEach((text) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    });
  });
}

function cameras(names) {
  const box = $("cameras");
  names.forEach((name) => {
    const id = "cam-" + safeId(name);
    if ($(id)) return;
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.id = id;
    img.alt = name;
    img.dataset.loads = "0";
    const caption = document.createElement("figcaption");
    caption.textContent = name;
    figure.appendChild(img);
    figure.appendChild(caption);
    box.appendChild(figure);
    let n = 0;
    const next = (delay) => setTimeout(() => { img.src = `/api/camera/${encodeURIComponent(name)}.jpg?n=${n++}`; },
      delay);
    img.onload = () => { img.dataset.loads = String(Number(img.dataset.loads) + 1); next(PREVIEW_MS); };
    img.onerror = () => next(500);
    next(0);
  });
}

function render(s) {
  // warnings: one banner, red if any red warning
  const banner = $("banner"), list = $("warnings");
  list.innerHTML = "";
  s.warnings.forEach((w) => {
    const item = document.createElement("li");
    item.textContent = w.text;
    item.dataset.code = w.code;
    item.className = w.level;
    list.appendChild(item);
  });
  const red = s.warnings.some((w) => w.level === "red");
  banner.className = "banner " + (s.warnings.length ? (red ? "red" : "amber") : "hidden");
  banner.dataset.codes = s.warnings.map((w) => w.code).join(" ");

  const rec = s.recording;
  $("rec-box").className = "rec " + (rec.active ? "active" : "idle");
  $("rec-state").textContent = rec.active ? "● REC" : "IDLE";
  $("rec-timer").textContent = duration(rec.elapsed_s);
  $("rec-timer").dataset.seconds = String(rec.elapsed_s);
  $("episode-id").textContent = rec.episode_id;

  const link = s.command.link_state;
  $("link-box").className = "link " + link;
  $("link-state").textContent = link === "active" ? "ENABLED" : link === "neutralised" ? "NEUTRALISED" :
    link.toUpperCase();
  $("link-state").dataset.state = link;
  $("link-fault").textContent = s.command.fault || "";
  $("enable-box").className = "enable " + (s.enable.held ? "held" : "released");
  $("enable-state").textContent = s.enable.held ? "HELD" : "released";
  $("station-id").textContent = s.station;
  $("machine-text").textContent = `${s.machine.id} (${s.machine.kind}, ${s.machine.pattern})`;

  $("btn-start").disabled = rec.active;
  ["btn-stop", "btn-success", "btn-failure", "btn-discard", "btn-marker"].forEach((id) => {
    $(id).disabled = !rec.active;
  });

  const axes = Object.keys(s.sticks.axes);
  bars($("sticks"), axes, axes.map((a) => s.sticks.axes[a]));
  bars($("commands"), s.command.names, s.command.values.length ? s.command.values : s.command.names.map(() => 0));

  tableRows($("streams"), "stream-", s.streams, "path",
    (x) => [x.path, x.rate_hz.toFixed(1) + " Hz", String(x.dropped),
      x.staleness_s === null ? "-" : x.staleness_s.toFixed(2) + " s", x.state], (x) => x.state);
  tableRows($("can"), "can-", s.can, "name",
    (x) => [x.name, x.frames_per_s.toFixed(0), x.load_pct === null ? "-" : x.load_pct.toFixed(1) + " %",
      String(x.error_frames), `${x.health} ${x.bus_state}`], (x) => (x.health === "ok" ? "ok" : "stale"));
  cameras(s.cameras);

  $("disk-free").textContent = bytes(s.disk.free_bytes);
  $("disk-rate").textContent = s.disk.write_rate_bps ? bytes(s.disk.write_rate_bps) + "/s" : "-";
  $("disk-left").textContent = s.disk.time_left_s ? duration(s.disk.time_left_s) : "-";

  $("binding-pending").textContent = s.bindings.pending;
  const bindings = $("bindings");
  if (!bindings.dataset.filled) {
    s.bindings.list.forEach((b) => {
      const item = document.createElement("li");
      item.textContent = `${b.action}: ${b.buttons.join(" + ")}` + (b.hold_s ? ` held ${b.hold_s} s` : " (tap)");
      bindings.appendChild(item);
    });
    bindings.dataset.filled = "1";
  }
  const last = s.last_episode;
  $("last-episode").textContent = last ? (last.discarded ? `${last.episode_id} discarded` :
    `${last.path} (${last.outcome})`) : "-";
  const messages = $("messages");
  messages.innerHTML = "";
  s.messages.slice().reverse().forEach((m) => {
    const item = document.createElement("li");
    item.textContent = `${new Date(m.wall_time * 1000).toLocaleTimeString()} [${m.source}] ${m.text}`;
    item.className = m.level;
    messages.appendChild(item);
  });
  const latest = s.messages[s.messages.length - 1];
  if (latest && Number($("message").dataset.seq || 0) < latest.seq) {
    $("message").dataset.seq = String(latest.seq);
    showMessage(latest.text, latest.level);
  }
}

async function poll() {
  try {
    const result = await api("/api/status");
    if (result.ok) render(result.data);
    else showMessage("station status unavailable", "error");
  } catch (e) {
    showMessage("station not reachable", "error");
  }
  setTimeout(poll, POLL_MS);
}

function showSession(data) {
  const form = data.session;
  ["operator", "site", "task", "notes"].forEach((key) => {
    const input = $("session-" + key);
    if (document.activeElement !== input && !input.dataset.dirty) input.value = form[key] || "";
  });
  $("session-machine").value = `${data.machine.id} (${data.machine.kind}, ${data.machine.model})`;
  const cert = data.certification;
  $("session-certification").value = cert.value;
  const status = $("cert-status");
  status.textContent = cert.message + ` [policy ${data.policy}]`;
  status.className = "cert " + (cert.certified ? "ok" : "bad");
  status.dataset.allowed = String(cert.allowed);
  const list = $("operator-list");
  list.innerHTML = "";
  data.operators.forEach((op) => {
    const option = document.createElement("option");
    option.value = op;
    list.appendChild(option);
  });
}

function formValues() {
  const values = {};
  ["operator", "site", "task", "notes"].forEach((key) => { values[key] = $("session-" + key).value; });
  return values;
}

async function saveSession() {
  const values = formValues();
  ["operator", "site", "task", "notes"].forEach((key) => { delete $("session-" + key).dataset.dirty; });
  const result = await api("/api/session", values);
  if (result.ok) showSession(result.data);
  else showMessage(result.data.detail || "session not saved", "error");
}

async function action(path, body) {
  const result = await api(path, body);
  const text = result.data.message || result.data.detail || `${path}: HTTP ${result.status}`;
  showMessage(text, result.ok ? "info" : "error");
  if (path === "/api/start") await api("/api/session").then((r) => r.ok && showSession(r.data));
  document.dispatchEvent(new CustomEvent("excap-action", {detail: {path: path, result: result}}));
  return result;
}

function wire() {
  ["operator", "site", "task", "notes"].forEach((key) => {
    const input = $("session-" + key);
    input.addEventListener("input", () => { input.dataset.dirty = "1"; });  // typed, not yet saved
    input.addEventListener("change", saveSession);
  });
  $("session-form").addEventListener("submit", (e) => { e.preventDefault(); saveSession(); });
  $("btn-start").addEventListener("click", () => action("/api/start", formValues()));
  $("btn-stop").addEventListener("click", () => action("/api/stop", {}));
  $("btn-success").addEventListener("click", () => action("/api/stop", {outcome: "success"}));
  $("btn-failure").addEventListener("click", () => action("/api/stop", {outcome: "failure"}));
  $("btn-discard").addEventListener("click", () => {
    if (window.confirm("Discard this episode? Its file is deleted.")) action("/api/discard", {});
  });
  $("btn-marker").addEventListener("click", () => {
    action("/api/mark", {label: $("marker-label").value});
    $("marker-label").value = "";
  });
  api("/api/session").then((r) => r.ok && showSession(r.data));
  poll();
}

wire();
