// excap station page: polls /api/status, refreshes camera previews, posts the session form and actions.
// The page never shows remembered values as current: when status updates stop for LOST_MS it blanks the recording
// state, commands and streams as unknown, disables every control and sounds an alarm until the station answers
// again, then says what happened meanwhile.
"use strict";

const $ = (id) => document.getElementById(id);
const safeId = (text) => text.replace(/[^A-Za-z0-9_-]/g, "-");
const POLL_MS = 250;
const PREVIEW_MS = 150;
const LOST_MS = 1000;  // no status update for this long: connection lost
const REQUEST_TIMEOUT_MS = 1000;
const MAX_MESSAGES = 20;  // the message list keeps the latest ones only
const ACTION_BUTTONS = ["btn-start", "btn-stop", "btn-success", "btn-failure", "btn-discard", "btn-marker"];
const SESSION_KEYS = ["operator", "site", "task", "notes"];

const conn = {lastOk: performance.now(), lost: false, lostWall: null, before: null, last: null};

function clock(wallSeconds) {
  return new Date(wallSeconds * 1000).toLocaleTimeString([], {hour12: false});
}

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

let csrfToken = "";  // the login's CSRF token (GET /api/whoami); empty on a loopback station, which needs no login

// Every request of the page goes through here (one place for headers).
async function api(method, path, body, timeoutMs) {
  const options = {method: method, headers: {}};
  if (method !== "GET") options.headers["X-CSRF-Token"] = csrfToken;
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let timer = null;
  if (timeoutMs) {
    const abort = new AbortController();
    options.signal = abort.signal;
    timer = setTimeout(() => abort.abort(), timeoutMs);
  }
  try {
    const response = await fetch(path, options);
    if (response.status === 401) {  // not logged in, or the login expired
      window.location.assign("/login");
      return {ok: false, status: 401, data: {}};
    }
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    return {ok: response.ok, status: response.status, data: data};
  } finally {
    if (timer !== null) clearTimeout(timer);
  }
}

// -- sound: WebAudio beeps; never throws, says when the browser keeps it off ---------------------------------------

const sound = {context: null, failed: false};

function audio() {
  if (sound.context || sound.failed) return sound.context;
  try {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) { sound.failed = true; return null; }
    sound.context = new Context();
  } catch (e) {
    sound.failed = true;
  }
  return sound.context;
}

function soundOn() {
  const context = audio();
  return !!context && context.state === "running";
}

function unlockSound() {
  const context = audio();
  try {
    if (context && context.state !== "running") context.resume().then(showSoundHint, showSoundHint);
  } catch (e) { /* stays off: the hint says so */ }
  showSoundHint();
}

function showSoundHint() {
  const wanted = document.body.dataset.alarm || "";
  $("btn-sound").classList.toggle("hidden", soundOn());
  $("btn-sound").textContent = audio() ? "Sound off: tap to enable" : "Sound off: this browser cannot play alarms";
  $("btn-sound").dataset.alarm = wanted;
}

function tone(frequency, startS, lengthS) {
  const context = audio();
  if (!context || context.state !== "running") return false;
  try {
    const oscillator = context.createOscillator(), gain = context.createGain();
    oscillator.type = "square";
    oscillator.frequency.value = frequency;
    gain.gain.value = 0.2;
    oscillator.connect(gain);
    gain.connect(context.destination);
    const t = context.currentTime + startS;
    oscillator.start(t);
    oscillator.stop(t + lengthS);
    return true;
  } catch (e) {
    return false;
  }
}

let alarmTick = 0;

function alarm() {
  // connection lost: fast high-low pairs every second; a loud alert: one low beep every two seconds
  alarmTick += 1;
  const kind = document.body.dataset.alarm || "";
  let played = false;
  if (kind === "connection") played = tone(1200, 0, 0.15) && tone(800, 0.2, 0.15);
  else if (kind === "alert" && alarmTick % 2 === 0) played = tone(520, 0, 0.35);
  if (played) document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
  showSoundHint();
}

// -- live values ----------------------------------------------------------------------------------------------------

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
    row.querySelector(".value").textContent = (v === null || v === undefined) ? "?" : Number(v).toFixed(2);
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

function unknownRows(table) {
  table.querySelectorAll("tbody tr").forEach((row) => {
    row.className = "unknown";
    Array.from(row.children).slice(1).forEach((cell) => { cell.textContent = "?"; });
  });
}

function cameras(names, frames) {
  const box = $("cameras");
  names.forEach((name) => {
    const id = "cam-" + safeId(name);
    if (!$(id)) {
      const figure = document.createElement("figure");
      figure.id = "figure-" + safeId(name);
      const img = document.createElement("img");
      img.id = id;
      img.alt = name;
      img.dataset.loads = "0";
      const note = document.createElement("div");
      note.className = "frozen-note hidden";
      note.id = "frozen-" + safeId(name);
      const caption = document.createElement("figcaption");
      caption.textContent = name;
      figure.appendChild(img);
      figure.appendChild(note);
      figure.appendChild(caption);
      box.appendChild(figure);
      let n = 0;
      const next = (delay) => setTimeout(() => {
        img.src = `/api/camera/${encodeURIComponent(name)}.jpg?n=${n++}`;
      }, delay);
      img.onload = () => { img.dataset.loads = String(Number(img.dataset.loads) + 1); next(PREVIEW_MS); };
      img.onerror = () => next(500);
      next(0);
    }
    const frame = (frames || {})[name] || {};
    const figure = $("figure-" + safeId(name)), note = $("frozen-" + safeId(name));
    figure.classList.toggle("frozen", !!frame.frozen);
    figure.dataset.ageS = frame.age_s === null || frame.age_s === undefined ? "" : String(frame.age_s);
    note.classList.toggle("hidden", !frame.frozen);
    note.textContent = frame.frozen ? `FROZEN — last picture ${Math.round(frame.age_s)} s ago` : "";
  });
}

function alerts(s) {
  const banner = $("banner"), list = $("warnings");
  const items = s.alerts || [];
  list.innerHTML = "";
  items.forEach((a) => {
    const item = document.createElement("li");
    item.className = a.colour;
    item.dataset.code = a.code;
    item.dataset.sound = String(a.sound);
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = a.title;
    item.appendChild(title);
    if (a.since_wall !== null) {
      const since = document.createElement("span");
      since.className = "since";
      since.textContent = `since ${clock(a.since_wall)} (${duration(a.since_s)})`;
      item.appendChild(since);
    }
    const detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = `${a.meaning} ${a.action}`.trim();
    item.appendChild(detail);
    list.appendChild(item);
  });
  const red = items.some((a) => a.level === "error");
  banner.className = "banner " + (items.length ? (red ? "red" : "amber") : "hidden");
  banner.dataset.codes = items.map((a) => a.code).join(" ");
  return items.some((a) => a.sound);
}

function messages(list) {
  const box = $("messages");
  box.innerHTML = "";
  list.slice(-MAX_MESSAGES).reverse().forEach((m) => {
    const item = document.createElement("li");
    item.textContent = `${clock(m.wall_time)} [${m.source}] ${m.text}`;
    item.className = m.level;
    item.dataset.seq = String(m.seq);
    box.appendChild(item);
  });
}

function setControls(s) {
  const active = !!(s && s.recording.active);
  $("btn-start").disabled = !s || active;
  ["btn-stop", "btn-success", "btn-failure", "btn-discard", "btn-marker"].forEach((id) => { $(id).disabled = !active; });
  SESSION_KEYS.forEach((key) => { $("session-" + key).disabled = !s; });
  $("marker-label").disabled = !s;
}

function render(s) {
  const loud = alerts(s);
  document.body.dataset.alarm = loud ? "alert" : "";

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
  setControls(s);

  const axes = Object.keys(s.sticks.axes);
  bars($("sticks"), axes, axes.map((a) => s.sticks.axes[a]));
  bars($("commands"), s.command.names, s.command.values.length ? s.command.values : s.command.names.map(() => 0));

  tableRows($("streams"), "stream-", s.streams, "path",
    (x) => [x.path, x.rate_hz.toFixed(1) + " Hz", String(x.dropped),
      x.staleness_s === null ? "-" : x.staleness_s.toFixed(2) + " s", x.state], (x) => x.state);
  tableRows($("can"), "can-", s.can, "name",
    (x) => [x.name, x.frames_per_s.toFixed(0), x.load_pct === null ? "-" : x.load_pct.toFixed(1) + " %",
      String(x.error_frames), x.state === "ok" ? `${x.health} ${x.bus_state}` : x.state],
    (x) => (x.state === "ok" && x.health === "ok" ? "ok" : x.state !== "ok" ? x.state : "stale"));
  cameras(s.cameras, s.camera_frames);

  $("disk-free").textContent = bytes(s.disk.free_bytes);
  $("disk-rate").textContent = s.disk.write_rate_bps ? bytes(s.disk.write_rate_bps) + "/s" : "-";
  $("disk-left").textContent = s.disk.time_left_s ? duration(s.disk.time_left_s) : "-";
  if (s.uplink) $("uplink").textContent = s.uplink.line;

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
  messages(s.messages);
  const latest = s.messages[s.messages.length - 1];
  if (latest && Number($("message").dataset.seq || 0) < latest.seq) {
    $("message").dataset.seq = String(latest.seq);
    showMessage(latest.text, latest.level);
  }
}

// -- connection state -----------------------------------------------------------------------------------------------

function renderLost() {
  document.body.className = "lost";
  document.body.dataset.alarm = "connection";
  $("connection").classList.remove("hidden");
  $("warnings").innerHTML = "";  // the station's health is unknown too: no remembered alerts
  $("banner").className = "banner hidden";
  $("banner").dataset.codes = "";
  $("rec-box").className = "rec unknown";
  $("rec-state").textContent = "REC ?";
  $("rec-timer").textContent = "--:--";
  $("rec-timer").dataset.seconds = "";
  $("link-box").className = "link unknown";
  $("link-state").textContent = "UNKNOWN";
  $("link-state").dataset.state = "unknown";
  $("link-fault").textContent = "";
  $("enable-box").className = "enable unknown";
  $("enable-state").textContent = "?";
  document.querySelectorAll(".bar").forEach((row) => {
    row.querySelector(".fill").style.width = "0";
    row.querySelector(".value").textContent = "?";
    row.dataset.value = "";
  });
  unknownRows($("streams"));
  unknownRows($("can"));
  setControls(null);
  ACTION_BUTTONS.forEach((id) => { $(id).disabled = true; });
}

function lostSeconds() {
  return Math.max(0, Math.round((Date.now() / 1000) - conn.lostWall));
}

function watchdog() {
  if (!conn.lost && performance.now() - conn.lastOk > LOST_MS) {
    conn.lost = true;
    conn.lostWall = conn.last ? conn.last.wall_time : Date.now() / 1000 - LOST_MS / 1000;
    conn.before = conn.last;
    $("summary").classList.add("hidden");
    showSoundHint();
  }
  if (conn.lost) {
    renderLost();
    $("connection-since").textContent = conn.before ?
      `no update from the station since ${clock(conn.lostWall)} (${lostSeconds()} s)` :
      "the station does not answer";
  }
}

function meanwhile(before, after) {
  // what the page missed while it could not see the station
  const parts = [];
  const was = before.recording, now = after.recording;
  const restarted = before.boot_id !== after.boot_id;
  if (restarted) parts.push("station restarted");
  if (was.active && (!now.active || now.episode_id !== was.episode_id)) {
    const last = after.last_episode;
    let how = was.episode_id;
    if (last && last.episode_id === was.episode_id) how += last.discarded ? ", discarded" : `, ${last.outcome || "no outcome"}`;
    parts.push(`recording stopped (${how})`);
  } else if (was.active) {
    parts.push(`still recording (${now.episode_id}, ${duration(now.elapsed_s)})`);
  }
  if (now.active && (!was.active || now.episode_id !== was.episode_id)) parts.push(`recording started (${now.episode_id})`);
  if (!was.active && !now.active) parts.push("not recording");
  const seen = restarted ? 0 : before.message_seq;
  const missed = after.message_seq - seen;
  if (missed > 0) {
    const texts = after.messages.filter((m) => m.seq > seen).map((m) => m.text);
    parts.push(`${missed} message${missed === 1 ? "" : "s"}` + (texts.length ? ": " + texts.join("; ") : ""));
  }
  return parts.join(", ");
}

function reconnected(s) {
  conn.lost = false;
  document.body.className = "";
  $("connection").classList.add("hidden");
  if (!conn.before) return;
  const text = `connection lost ${clock(conn.lostWall)}–${clock(s.wall_time)} ` +
    `(${Math.round(s.wall_time - conn.lostWall)} s); meanwhile: ${meanwhile(conn.before, s)}`;
  $("summary-text").textContent = text;
  $("summary").classList.remove("hidden");
  $("summary").dataset.restarted = String(conn.before.boot_id !== s.boot_id);
}

async function poll() {
  try {
    const result = await api("GET", "/api/status", undefined, REQUEST_TIMEOUT_MS);
    if (result.ok) {
      conn.lastOk = performance.now();
      if (conn.lost) reconnected(result.data);
      document.body.classList.remove("connecting");
      render(result.data);
      conn.last = result.data;
    }
  } catch (e) { /* the watchdog decides when the page no longer knows */ }
  setTimeout(poll, POLL_MS);
}

// -- session form and actions ---------------------------------------------------------------------------------------

function showSession(data) {
  const form = data.session;
  SESSION_KEYS.forEach((key) => {
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
  SESSION_KEYS.forEach((key) => { values[key] = $("session-" + key).value; });
  return values;
}

async function saveSession() {
  const values = formValues();
  SESSION_KEYS.forEach((key) => { delete $("session-" + key).dataset.dirty; });
  try {
    const result = await api("POST", "/api/session", values);
    if (result.ok) showSession(result.data);
    else showMessage(result.data.detail || "session not saved", "error");
  } catch (e) {
    showMessage("session not saved: station not reachable", "error");
  }
}

async function loadSession() {
  try {
    const result = await api("GET", "/api/session");
    if (result.ok) showSession(result.data);
  } catch (e) { /* shown once the station answers */ }
}

async function action(path, body) {
  if (conn.lost) return null;
  try {
    const result = await api("POST", path, body);
    const text = result.data.message || result.data.detail || `${path}: HTTP ${result.status}`;
    showMessage(text, result.ok ? "info" : "error");
    // the station keeps this message too: a status that arrives later must not show it again over a newer one
    const shown = Number(result.data.message_seq || 0);
    if (shown > Number($("message").dataset.seq || 0)) $("message").dataset.seq = String(shown);
    if (path === "/api/start") await loadSession();
    document.dispatchEvent(new CustomEvent("excap-action", {detail: {path: path, result: result}}));
    return result;
  } catch (e) {
    showMessage(`${path}: station not reachable`, "error");
    return null;
  }
}

function holdToAct(button, onHeld) {
  // acts only when held for data-hold-ms; a tap says so instead of acting
  const holdMs = Number(button.dataset.holdMs || 1500);
  const bar = button.querySelector(".progress");
  let timer = null, started = 0, fired = false;
  const reset = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    bar.style.width = "0";
    delete button.dataset.holding;
  };
  const grow = () => {
    if (timer === null) return;
    bar.style.width = Math.min(100, 100 * (performance.now() - started) / holdMs) + "%";
    requestAnimationFrame(grow);
  };
  button.addEventListener("pointerdown", (e) => {
    if (button.disabled) return;
    e.preventDefault();
    reset();
    fired = false;
    started = performance.now();
    button.dataset.holding = "1";
    timer = setTimeout(() => { reset(); fired = true; onHeld(); }, holdMs);
    requestAnimationFrame(grow);
  });
  ["pointerup", "pointercancel", "pointerleave"].forEach((name) => button.addEventListener(name, reset));
  button.addEventListener("contextmenu", (e) => e.preventDefault());
  button.addEventListener("click", (e) => {
    e.preventDefault();
    if (!fired) showMessage(`Hold ${button.textContent.trim().replace(/^Hold to /, "")} for ` +
      `${holdMs / 1000} s: a tap does nothing`, "warn");
    fired = false;
  });
}

function wire() {
  SESSION_KEYS.forEach((key) => {
    const input = $("session-" + key);
    input.addEventListener("input", () => { input.dataset.dirty = "1"; });  // typed, not yet saved
    input.addEventListener("change", saveSession);
  });
  $("session-form").addEventListener("submit", (e) => { e.preventDefault(); saveSession(); });
  $("btn-start").addEventListener("click", () => action("/api/start", formValues()));
  $("btn-stop").addEventListener("click", () => action("/api/stop", {}));
  $("btn-success").addEventListener("click", () => action("/api/stop", {outcome: "success"}));
  $("btn-failure").addEventListener("click", () => action("/api/stop", {outcome: "failure"}));
  holdToAct($("btn-discard"), () => action("/api/discard", {}));
  $("btn-marker").addEventListener("click", () => {
    action("/api/mark", {label: $("marker-label").value});
    $("marker-label").value = "";
  });
  $("btn-summary-close").addEventListener("click", () => $("summary").classList.add("hidden"));
  $("btn-sound").addEventListener("click", unlockSound);
  ["pointerdown", "keydown"].forEach((name) => document.addEventListener(name, unlockSound, true));
  setControls(null);
  loadSession();
  poll();
  setInterval(watchdog, 200);
  setInterval(alarm, 1000);
  showSoundHint();
}

function showLogin(who) {
  // a remote station's login: who is logged in, and a way out (a loopback station has no login)
  $("login-box").classList.toggle("hidden", !who.login);
  if (!who.login) return;
  $("logged-in-as").textContent = `Logged in as ${who.user} (${who.role})`;
  $("btn-logout").addEventListener("click", async () => {
    try {
      await api("POST", "/api/logout", {});
    } catch (e) { /* the login page says whether the station answers */ }
    window.location.assign("/login");
  });
}

// who is logged in, then the page starts; a station that does not answer yet is asked again every second
function start() {
  api("GET", "/api/whoami", undefined, 5 * REQUEST_TIMEOUT_MS).then((r) => {
    csrfToken = (r.ok && r.data.csrf) || "";
    if (r.status === 401) return;
    showLogin(r.ok ? r.data : {});
    wire();
  }, () => setTimeout(start, 1000));
}

start();
