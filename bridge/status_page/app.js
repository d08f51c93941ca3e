// Hearth status page: renders the figures the bridge sends on "events" (server-sent events).
// Relative URLs only, so the page works at the bridge's root and under Home Assistant's ingress.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function text(id, value, cls) {
  const el = $(id);
  el.textContent = value;
  if (cls !== undefined) el.className = cls;
}

function yesNo(value) {
  return value ? "yes" : "no";
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
  const m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${s} s`;
  return `${s} s`;
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

function cell(row, cls, value, extra) {
  const td = document.createElement("td");
  td.className = cls + (extra ? " " + extra : "");
  td.textContent = value;
  row.appendChild(td);
  return td;
}

function renderBridge(b) {
  text("bridge-state", b.state, b.state === "online" ? "yes" : "no");
  text("bridge-version", `${b.version} (protocol ${b.protocol}) · ${b.id}`);
  text("bridge-uptime", duration(b.uptime_seconds));
  const broker = b.broker;
  text("bridge-broker", `${broker.host}:${broker.port}${broker.tls ? " (TLS)" : ""} · ` +
    `${broker.connected ? "connected" : "disconnected"} · ${broker.address_class} · ` +
    `${broker.reconnects} reconnect${broker.reconnects === 1 ? "" : "s"}`);
  const v = b.vocabulary || {};
  if (v.status) {
    const g = v.grammar || {};
    const size = ["states", "transitions", "words"].filter((k) => k in g).map((k) => `${g[k]} ${k}`).join(", ");
    text("bridge-grammar", `${size || "compiled"} · ${v.entities} entities in ${v.areas} areas · ` +
      `compiled in ${Number(v.compile_seconds).toFixed(2)} s` +
      (v.status !== "ok" ? ` · last change refused: ${v.error}` : ""));
  }
  const body = $("engines").tBodies[0];
  body.replaceChildren();
  for (const [kind, engine] of Object.entries(b.engines)) {
    if (!engine) continue;
    const row = document.createElement("tr");
    cell(row, "kind", kind);
    cell(row, "name", engine.name);
    cell(row, "locality", String(engine.locality).replace("_", " "), engine.locality === "cloud" ? "no" : "yes");
    body.appendChild(row);
  }
}

function renderPrivacy(p, a) {
  text("policy-local-only", yesNo(p.local_only), p.local_only ? "yes" : "no");
  text("policy-privacy-mode", p.privacy_mode ? "on: nothing is listened to" : "off", p.privacy_mode ? "muted-yes" : "");
  text("policy-retention", p.retention);
  const muted = Object.entries(p.microphones).filter(([, m]) => m).map(([id]) => id);
  text("policy-mutes", muted.length ? muted.join(", ") : "none");
  text("audit-blocked", String(a.blocked_cloud_requests));
  text("audit-off-lan", bytes(a.bytes_off_lan), a.bytes_off_lan ? "no" : "yes");
}

function level(td, db) {
  td.replaceChildren();
  const meter = document.createElement("span");
  meter.className = "meter";
  const bar = document.createElement("span");
  meter.appendChild(bar);
  td.appendChild(meter);
  const label = document.createElement("span");
  label.className = "level-db";
  if (db === null || db === undefined) {
    label.textContent = "–";
  } else {
    bar.style.width = `${Math.max(0, Math.min(100, (db + 70) / 70 * 100))}%`;
    label.textContent = `${Math.round(db)} dB`;
  }
  td.appendChild(label);
}

function renderSatellites(list) {
  const body = $("satellites").tBodies[0];
  body.replaceChildren();
  $("no-satellites").hidden = list.length > 0;
  for (const s of list) {
    const row = document.createElement("tr");
    row.dataset.satellite = s.id;
    const name = cell(row, "id", s.id);
    if (s.area) name.title = s.area;
    cell(row, "online", yesNo(s.online), s.online ? "yes" : "no");
    cell(row, "protocol", s.protocol);
    cell(row, "state", s.state, `state-${s.state}`);
    cell(row, "muted", s.muted ? "muted" : "on", s.muted ? "muted-yes" : "");
    level(cell(row, "level", ""), s.level_db);
    cell(row, "latency", s.latency_ms === null ? "–" : `${Math.round(s.latency_ms)} ms`);
    cell(row, "utterances", String(s.utterances));
    cell(row, "rejections", String(s.rejections));
    body.appendChild(row);
    if (s.text !== undefined) {  // only while retention is "memory"
      const said = document.createElement("tr");
      said.className = "said";
      const td = cell(said, "text", `last heard: “${s.text}”`, "hint");
      td.colSpan = 9;
      body.appendChild(said);
    }
  }
}

function svg(tag, attrs, content) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (content !== undefined) el.textContent = content;
  return el;
}

function renderLatency(h) {
  const chart = $("latency");
  chart.replaceChildren();
  text("latency-summary", h.total
    ? `${h.total} utterance${h.total === 1 ? "" : "s"}, median ${Math.round(h.median_ms)} ms`
    : "No utterances in the last hour.");
  const labels = h.edges_ms.map((e) => `≤${e}`).concat([`>${h.edges_ms.at(-1)}`]);
  const top = Math.max(1, ...h.counts);
  const width = 440 / h.counts.length;
  h.counts.forEach((n, i) => {
    const height = (n / top) * 130;
    const x = i * width + 2;
    const bar = svg("rect", {class: "bar", x, y: 145 - height, width: width - 4, height});
    bar.dataset.count = String(n);
    chart.appendChild(bar);
    if (n) chart.appendChild(svg("text", {x: x + (width - 4) / 2, y: 140 - height, "text-anchor": "middle"}, String(n)));
    chart.appendChild(svg("text", {x: x + (width - 4) / 2, y: 162, "text-anchor": "middle"}, labels[i]));
  });
  chart.appendChild(svg("text", {x: 438, y: 178, "text-anchor": "end"}, "milliseconds"));
}

function render(figures) {
  renderBridge(figures.bridge);
  renderPrivacy(figures.policy, figures.audit);
  renderSatellites(figures.satellites);
  renderLatency(figures.latency);
  document.body.dataset.updated = String(Date.now());
}

function showLive(on) {
  const live = $("live");
  live.textContent = on ? "live" : "reconnecting…";
  live.className = on ? "badge on" : "badge off";
}

// Server-sent events, for a proxy that does not pass WebSockets on.
function listen() {
  const source = new EventSource("events");
  source.onopen = () => showLive(true);
  source.onerror = () => showLive(false);
  source.onmessage = (event) => render(JSON.parse(event.data));
}

// A WebSocket first (ingress proxies may compress, and so hold back, server-sent events).
function connect() {
  const url = new URL("ws", document.baseURI);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url);
  let heard = false;
  socket.onmessage = (event) => {
    heard = true;
    showLive(true);
    render(JSON.parse(event.data));
  };
  socket.onclose = () => {
    showLive(false);
    if (heard) setTimeout(connect, 2000);
    else listen();
  };
}

connect();
