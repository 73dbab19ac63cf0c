// @ts-check
// Live leaderboard: all-time / daily / weekly tabs, top 50, "around me" for a
// signed-in player, rank changes animated. Works as a wall display without
// signing in. Names are rendered with textContent only.
import { diffRows } from "./board-logic.js";

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const TOP = 50;
let period = new URLSearchParams(location.search).get("period") ?? "all_time";
let ws = /** @type {WebSocket|null} */ (null);
let retry = 500;
/** @type {any[]} */
let shown = [];
let aroundAt = 0;

function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/leaderboard`;
  const socket = new WebSocket(url);
  ws = socket;
  socket.onopen = () => {
    retry = 500;
    const token = localStorage.getItem("emofy.token");
    socket.send(JSON.stringify({ type: "subscribe", board: "global", period, top: TOP, ...(token ? { token } : {}) }));
  };
  socket.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "board") render(m);
    else if (m.type === "error" && m.code === "invalid_token") {
      localStorage.removeItem("emofy.token");
      socket.close();
    } else if (m.type === "error") $("status").textContent = m.message;
  };
  socket.onclose = () => {
    if (ws !== socket) return; // replaced by a tab switch
    $("status").textContent = "Reconnecting…";
    setTimeout(connect, retry = Math.min(retry * 2, 8000));
  };
}

/** @param {any} m a `board` message */
function render(m) {
  $("status").textContent = m.stale ? "Some recent points may be missing (catching up)." : "";
  const marks = diffRows(shown, m.top);
  shown = m.top;
  const me = localStorage.getItem("emofy.player");
  $("rows").replaceChildren(...m.top.map((/** @type {any} */ r) => {
    const li = document.createElement("li");
    li.dataset.player = r.player;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = r.name;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = String(r.score);
    li.append(name, score);
    const mark = marks.get(r.player);
    if (mark) li.classList.add(mark);
    if (r.player === me) li.classList.add("me");
    return li;
  }));
  $("empty").hidden = m.top.length > 0;
  if (m.you) {
    $("around-box").hidden = false;
    $("you").textContent = `You: #${m.you.rank} with ${m.you.score} points`;
    loadAround();
  } else {
    $("around-box").hidden = true;
  }
}

/** The rows around the signed-in player, at most every 2 s. */
async function loadAround() {
  const me = localStorage.getItem("emofy.player");
  if (!me || Date.now() - aroundAt < 2000) return;
  aroundAt = Date.now();
  const res = await fetch(`/api/leaderboards/global?period=${period}&limit=1&around=${encodeURIComponent(me)}&k=3`);
  if (!res.ok) return;
  const b = await res.json();
  $("around").replaceChildren(...(b.around ?? []).map((/** @type {any} */ r) => {
    const li = document.createElement("li");
    li.value = r.rank;
    li.textContent = `${r.name} — ${r.score}`;
    if (r.player === me) li.classList.add("me");
    return li;
  }));
}

function select(p) {
  period = p;
  for (const b of document.querySelectorAll("[role=tab]")) {
    const on = /** @type {HTMLElement} */ (b).dataset.period === p;
    b.setAttribute("aria-selected", String(on));
    b.setAttribute("tabindex", on ? "0" : "-1");
  }
  shown = [];
  const old = ws;
  ws = null;
  old?.close();
  connect();
}

const tabs = /** @type {HTMLElement[]} */ ([...document.querySelectorAll("[role=tab]")]);
tabs.forEach((b, i) => {
  b.addEventListener("click", () => select(/** @type {string} */ (b.dataset.period)));
  b.addEventListener("keydown", (e) => {
    const d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
    if (!d) return;
    const next = tabs[(i + d + tabs.length) % tabs.length];
    next.focus();
    next.click();
  });
});
select(period);
