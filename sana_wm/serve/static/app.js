// sana-wm live: the page's client of the WebSocket protocol (README: "Live in the browser: sana-wm serve").
// It only shows what the server sends and sends what the keys are; every decision is the server's.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_OF = {
  KeyW: "w", KeyA: "a", KeyS: "s", KeyD: "d", KeyI: "i", KeyJ: "j", KeyK: "k", KeyL: "l",
  ArrowUp: "up", ArrowDown: "down", ArrowLeft: "left", ArrowRight: "right",
};
const LEGEND = {
  v1: "v1: W/S forward/back · A/D strafe · J/L turn · I/K look · arrows: look ↑↓, strafe ←→",
  v2: "v2: W/S forward/back · A/D turn · J/L strafe · I/K look · arrows: look ↑↓, strafe ←→ (smoothed)",
};

// Everything the page knows, also read by the end-to-end test.
const state = window.sanaState = {
  info: null, state: "connecting", session: null, frames: 0, shown: 0, lastFrame: null, pose: null,
  latencies: [], errors: [], notices: [], busy: null, download: null, queuePosition: null,
  track: [], // [frame index, x, z, yaw_deg, keys_seq] per frame received (the latest 2000)
};
let socket = null;
let seq = 0;
const sentAt = new Map(); // key-state seq -> time sent
let pendingSeq = null;    // the latest key change not yet seen in a frame
const held = new Set();
const playQueue = [];
let fps = 16;
const shownTimes = [];
const madeTimes = [];

function setText(id, text) { $(id).textContent = text; }

function showError(message) {
  state.errors.push(message);
  setText("error", message);
}

function showNotice(message) {
  state.notices.push(message);
  setText("notice", message);
}

function tokenQuery() {
  const token = new URLSearchParams(location.search).get("token");
  return token ? "?token=" + encodeURIComponent(token) : "";
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  socket = new WebSocket(scheme + location.host + "/ws" + tokenQuery());
  socket.onmessage = (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch (err) { showError("unreadable message from the server"); return; }
    onMessage(message);
  };
  socket.onclose = (event) => {
    setState("disconnected");
    showError("connection closed" + (event.reason ? ": " + event.reason : "") + " (code " + event.code + "); reconnecting…");
    setTimeout(connect, 1500);
  };
}

function send(message) {
  if (!socket || socket.readyState !== WebSocket.OPEN) { showError("not connected"); return false; }
  socket.send(typeof message === "string" ? message : JSON.stringify(message));
  return true;
}
window.sanaSend = send; // for other clients in the console (and the test)

function setState(name) {
  state.state = name;
  setText("state", name);
  const running = ["starting", "generating", "paused", "queued"].includes(name);
  $("start").disabled = running;
  $("stop").disabled = !running;
  $("reset").disabled = !(running || state.download);
}

function onMessage(m) {
  switch (m.type) {
    case "hello": {
      state.info = m;
      setText("model", `${m.model} model on ${m.device} · default ${m.defaults.width}×${m.defaults.height}, ` +
        `${m.defaults.distilled ? "distilled steps" : m.defaults.steps + " steps"} · up to ${m.limits.max_chunks} chunks`);
      $("size").replaceChildren(...sizes(m.defaults).map(([w, h], i) => new Option(
        `${w}×${h}${i ? "" : " (model)"}`, `${w}x${h}`)));
      $("steps").placeholder = m.defaults.steps;
      $("steps").disabled = m.defaults.distilled;
      $("max-chunks").placeholder = m.limits.max_chunks;
      $("max-chunks").max = m.limits.max_chunks;
      $("prompt").disabled = m.prompt_free;
      if (m.prompt_free) $("prompt").placeholder = "this model is prompt-free";
      setText("image-hint", `Empty: the model's own first frame. At most ${(m.limits.max_upload_bytes / 1048576).toFixed(1)} MiB.`);
      setState("idle");
      break;
    }
    case "busy":
      state.busy = m; state.queuePosition = m.position;
      setText("queue", "#" + m.position + " in line");
      setText("overlay", m.message);
      setState("queued");
      break;
    case "started":
      state.session = m.session; state.frames = 0; state.busy = null;
      fps = m.fps; setText("queue", "–");
      $("canvas").width = m.width; $("canvas").height = m.height;
      $("screen").style.aspectRatio = m.width + " / " + m.height;
      setText("overlay", "generating the first chunk…");
      setState("generating");
      sendKeys(true);
      break;
    case "frame": onFrame(m); break;
    case "chunk":
      setText("chunk", m.index);
      break;
    case "state":
      if (m.state === "paused") setText("overlay", "paused: hold a key to walk on");
      if (m.state === "generating") setText("overlay", "");
      if (m.state === "reset") { clearScreen(); setState("idle"); break; }
      setState(m.state);
      break;
    case "ended":
      state.download = m.download;
      setDownload(m.download);
      setText("overlay", m.reason === "max_length" ? "the world ended (longest session); Reset to start again"
        : m.reason === "idle_timeout" ? "ended: idle while others wait" : "stopped");
      setState(m.reason === "error" ? "failed" : "ended");
      break;
    case "notice": showNotice(m.message); break;
    case "error":
      showError(`${m.code}: ${m.message}`);
      if (state.state === "starting") setState(state.download ? "ended" : "idle"); // the start was refused
      break;
    case "pong": break;
    default: break;
  }
}

function onFrame(m) {
  const now = performance.now();
  state.frames += 1;
  state.lastFrame = m.index;
  madeTimes.push(now);
  state.track.push([m.index, m.pose.position[0], m.pose.position[2], m.pose.yaw_deg, m.keys_seq]);
  if (state.track.length > 2000) state.track.shift();
  if (pendingSeq !== null && m.keys_seq >= pendingSeq) {
    const latency = now - sentAt.get(pendingSeq);
    state.latencies.push({ seq: pendingSeq, ms: latency });
    setText("latency", (latency / 1000).toFixed(2) + " s key → frame");
    pendingSeq = null;
  }
  playQueue.push(m);
}

// The model's size and smaller ones of the same aspect (multiples of 32): smaller is faster.
function sizes(defaults) {
  const out = [];
  for (const scale of [1, 0.75, 0.5, 0.25]) {
    const w = Math.max(32, Math.round(defaults.width * scale / 32) * 32);
    const h = Math.max(32, Math.round(defaults.height * scale / 32) * 32);
    if (!out.some(([a, b]) => a === w && b === h)) out.push([w, h]);
  }
  return out;
}

function b64ToBlob(b64) {
  const bytes = atob(b64);
  const array = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) array[i] = bytes.charCodeAt(i);
  return new Blob([array], { type: "image/jpeg" });
}

let nextShow = 0;
async function play(now) {
  requestAnimationFrame(play);
  if (!playQueue.length || now < nextShow) return;
  // Catch up when far behind (a slow device sends chunks in bursts): never lag more than two chunks.
  while (playQueue.length > 48) playQueue.shift();
  const m = playQueue.shift();
  nextShow = Math.max(now, nextShow) + 1000 / fps;
  const bitmap = await createImageBitmap(b64ToBlob(m.jpeg));
  $("canvas").getContext("2d").drawImage(bitmap, 0, 0, $("canvas").width, $("canvas").height);
  bitmap.close();
  state.shown += 1;
  state.pose = m.pose;
  shownTimes.push(now);
  setText("frame-count", m.index);
  const p = m.pose;
  setText("pose", `x ${p.position[0].toFixed(2)} y ${p.position[1].toFixed(2)} z ${p.position[2].toFixed(2)} · ` +
    `yaw ${p.yaw_deg.toFixed(1)}° pitch ${p.pitch_deg.toFixed(1)}°`);
}
requestAnimationFrame(play);

setInterval(() => {
  const now = performance.now();
  for (const times of [shownTimes, madeTimes]) while (times.length && times[0] < now - 3000) times.shift();
  setText("fps", shownTimes.length ? (shownTimes.length / 3).toFixed(1) : "–");
  setText("gen-fps", madeTimes.length ? (madeTimes.length / 3).toFixed(1) : "–");
}, 500);

function sendKeys(force) {
  document.querySelectorAll("kbd").forEach((k) => k.classList.toggle("held", held.has(k.dataset.key)));
  if (!state.session && !force) return;
  if (!["generating", "paused", "starting"].includes(state.state)) return;
  seq += 1;
  sentAt.set(seq, performance.now());
  if (sentAt.size > 512) sentAt.delete(sentAt.keys().next().value);
  if (pendingSeq === null) pendingSeq = seq;
  else pendingSeq = seq; // measure the newest change
  send({ type: "keys", keys: [...held], seq });
}

function typing(event) {
  const tag = event.target && event.target.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
}

window.addEventListener("keydown", (event) => {
  const key = KEY_OF[event.code];
  if (!key || typing(event)) return;
  event.preventDefault();
  if (held.has(key)) return;
  held.add(key);
  sendKeys(false);
});
window.addEventListener("keyup", (event) => {
  const key = KEY_OF[event.code];
  if (!key || !held.has(key)) return;
  held.delete(key);
  sendKeys(false);
});
window.addEventListener("blur", () => { if (held.size) { held.clear(); sendKeys(false); } });

function clearScreen() {
  playQueue.length = 0;
  const canvas = $("canvas");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  state.session = null; state.download = null; setDownload(null);
  setText("frame-count", "0"); setText("chunk", "–"); setText("pose", "–"); setText("latency", "–");
  setText("overlay", "Start a world, then hold keys to walk.");
}

function setDownload(url) {
  const link = $("download");
  link.classList.toggle("disabled", !url);
  link.setAttribute("aria-disabled", url ? "false" : "true");
  link.href = url ? url + tokenQuery() : "#";
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

$("start-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  setText("error", ""); setText("notice", "");
  const settings = { mapping: $("mapping").value, seed: Number($("seed").value || 42),
    pause_when_idle: $("pause-idle").checked, hud: $("hud").checked };
  const [width, height] = $("size").value.split("x").map(Number);
  if (width && height && $("size").selectedIndex > 0) Object.assign(settings, { width, height });
  if ($("steps").value && !$("steps").disabled) settings.steps = Number($("steps").value);
  if ($("max-chunks").value) settings.max_chunks = Number($("max-chunks").value);
  let image = null;
  const file = $("image").files[0];
  if (file) {
    const limit = state.info ? state.info.limits.max_message_bytes * 0.7 : Infinity;
    if (file.size > limit) { showError(`upload_too_large: ${file.name} is ${(file.size / 1048576).toFixed(1)} MiB`); return; }
    image = await readFile(file);
  }
  clearScreen();
  setText("legend", LEGEND[settings.mapping]);
  if (send({ type: "start", image, prompt: $("prompt").value, settings })) setState("starting");
  $("canvas").focus();
});
$("stop").addEventListener("click", () => send({ type: "stop" }));
$("reset").addEventListener("click", () => { send({ type: "reset" }); clearScreen(); setState("idle"); });
$("mapping").addEventListener("change", () => setText("legend", LEGEND[$("mapping").value]));
setText("legend", LEGEND.v1);
connect();
