// @ts-check
// Minimal Emofy play page: join as a guest, play rounds, see the leaderboard.
// Every name from the server is rendered with textContent, never as HTML.

const EMOTIONS = [
  ["angry", "😠"], ["disgust", "🤢"], ["fear", "😨"], ["happy", "😄"],
  ["neutral", "😐"], ["sad", "😢"], ["surprise", "😮"],
];

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
let ws = /** @type {WebSocket|null} */ (null);
let me = /** @type {string|null} */ (null);
let round = /** @type {any} */ (null);
let timer = 0;
let retry = 500;
let joined = false;
let advance = 0;
/** Pause after feedback before the next face, so the player can read it. */
const NEXT_DELAY_MS = 1500;

function nextSoon() {
  window.clearTimeout(advance);
  advance = window.setTimeout(() => send({ type: "next" }), NEXT_DELAY_MS);
}

function connect(hello) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/play`;
  ws = new WebSocket(url);
  ws.onopen = () => { retry = 500; ws?.send(JSON.stringify(hello())); };
  ws.onmessage = (ev) => handle(JSON.parse(ev.data));
  ws.onclose = () => {
    const token = localStorage.getItem("emofy.token");
    if (token) setTimeout(() => connect(() => ({ type: "hello", v: 1, token })), retry = Math.min(retry * 2, 8000));
  };
}

/** Answers since the comparison with the model was last read. */
let sinceVersus = 0;
const VERSUS_EVERY = 5;

/** Shows the serving model and how the player's answers compare with it. */
async function refreshVersus() {
  sinceVersus = 0;
  const token = localStorage.getItem("emofy.token");
  if (!token) return;
  let v;
  try {
    const res = await fetch("/api/me/versus-model", { headers: { Authorization: `Bearer ${token}` } });
    if (!res.ok) return;
    v = await res.json();
  } catch { return; }
  const el = $("versus");
  if (!v.model) { el.hidden = true; return; }
  const acc = v.model.test_accuracy == null ? "" : `, ${Math.round(v.model.test_accuracy * 100)}% right on its test faces`;
  el.textContent = `Model ${v.model.version}${acc}. ` + (v.faces > 0
    ? `You beat the model on ${Math.round(v.beat_share * 100)}% of ${v.faces} settled faces (it beat you on ${v.model_beat_you}).`
    : "Once the crowd settles faces you labelled, you will see how you compare with it.");
  el.hidden = false;
}

function send(msg) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg)); }

function handle(m) {
  switch (m.type) {
    case "welcome":
      joined = true;
      me = m.player.id;
      $("join-error").textContent = "";
      localStorage.setItem("emofy.token", m.token);
      localStorage.setItem("emofy.player", m.player.id);
      $("me").textContent = m.player.name;
      $("score").textContent = String(m.score);
      $("streak").textContent = String(m.streak);
      $("join").hidden = true;
      $("game").hidden = false;
      send({ type: "next" });
      refreshVersus();
      break;
    case "round":
      round = m;
      /** @type {HTMLImageElement} */ ($("face")).src = m.image.url;
      $("prompt").textContent = m.prompt;
      $("feedback").textContent = "";
      startTimer(m.time_limit_ms);
      break;
    case "result": {
      stopTimer();
      round = null;
      $("score").textContent = String(m.score);
      $("streak").textContent = String(m.streak);
      const fb = $("feedback");
      fb.className = m.agreement === "disagreed" ? "bad" : "good";
      fb.textContent = m.pending
        ? "First opinion on this face: points come when the crowd agrees."
        : m.agreement === "agreed"
          ? `+${m.points.total} points (×${m.points.multiplier_percent / 100} streak)`
          : "The crowd saw it differently.";
      if (m.gold) fb.textContent += ` The crowd says: ${m.gold}.`;
      else if (m.settled) fb.textContent += ` The crowd settled this face as ${m.settled}.`;
      else if (m.known) {
        fb.textContent += m.known.source === "demo"
          ? ` This face was drawn as ${m.known.label}.`
          : ` The dataset says: ${m.known.label}.`;
      }
      if (m.suggestion_was_test) fb.textContent += " (That suggestion was a test.)";
      if (m.settlement) fb.textContent += ` Consensus bonus +${m.settlement}!`;
      if (++sinceVersus >= VERSUS_EVERY || m.image?.status === "retired") refreshVersus();
      nextSoon();
      break;
    }
    case "round_timeout":
      stopTimer();
      round = null;
      $("feedback").textContent = "Time's up! Press \"Next face\" when you are ready.";
      break;
    case "no_round":
      $("prompt").textContent = "You have labelled every face for now. Thank you! Try again later.";
      break;
    case "score":
      $("score").textContent = String(m.score);
      if (m.image && m.delta > 0) {
        // A face you answered earlier retired with your answer.
        const note = $("notice");
        /** @type {HTMLImageElement} */ ($("notice-face")).src = `/images/${m.image}`;
        $("notice-text").textContent = `Your answer on this face was confirmed: +${m.delta}`;
        note.hidden = false;
      }
      break;
    case "leaderboard":
      renderBoard(m);
      break;
    case "error":
      if (m.code === "invalid_token") {
        localStorage.removeItem("emofy.token");
        localStorage.removeItem("emofy.username");
        joined = false;
        $("join").hidden = false;
        $("game").hidden = true;
      }
      $(joined ? "feedback" : "join-error").textContent = m.message;
      break;
    case "bye":
      $("feedback").textContent = m.reason === "server_shutdown" ? "The server is restarting; reconnecting…" : `Disconnected (${m.reason}).`;
      break;
  }
}

function renderBoard(m) {
  const ol = $("board");
  ol.replaceChildren(...m.top.map((/** @type {any} */ r) => {
    const li = document.createElement("li");
    li.textContent = `${r.name} — ${r.score}`;
    if (r.player === me) li.className = "me";
    return li;
  }));
  $("board-empty").hidden = m.top.length > 0;
  $("you").textContent = m.you ? `You: #${m.you.rank} with ${m.you.score} points` : "";
}

function startTimer(ms) {
  stopTimer();
  const start = performance.now();
  const bar = $("timer-bar");
  timer = window.setInterval(() => {
    const left = Math.max(0, 1 - (performance.now() - start) / ms);
    bar.style.width = `${left * 100}%`;
  }, 100);
}

function stopTimer() { window.clearInterval(timer); }

function answer(emotion) { if (round) send({ type: "answer", round: round.round, emotion }); }

EMOTIONS.forEach(([name, emoji], i) => {
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.emotion = name;
  b.append(`${emoji} ${name}`);
  const k = document.createElement("kbd");
  k.textContent = String(i + 1);
  b.append(k);
  b.addEventListener("click", () => answer(name));
  $("buttons").append(b);
});

document.addEventListener("keydown", (e) => {
  const n = Number(e.key);
  if (n >= 1 && n <= 7 && !(e.target instanceof HTMLInputElement)) answer(EMOTIONS[n - 1][0]);
});

$("next").addEventListener("click", () => { window.clearTimeout(advance); send({ type: "next" }); });

$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = /** @type {HTMLInputElement} */ ($("name")).value.trim();
  const hello = { type: "hello", v: 1, name };
  // Reuse an open connection after a refused name instead of opening another.
  if (ws && ws.readyState === WebSocket.OPEN) send(hello);
  else connect(() => hello);
});

/** Signed in with an account: the form to save progress is done with. */
function showAccount(username) {
  $("account-status").textContent = `Signed in as ${username}. Sign in with it on any device.`;
  /** @type {HTMLFormElement} */ ($("account-form")).hidden = true;
  $("account-intro").hidden = true;
  /** @type {HTMLFormElement} */ ($("password-form")).hidden = false;
  $("account-title").textContent = "Your account";
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const username = /** @type {HTMLInputElement} */ ($("signin-user")).value.trim();
  const password = /** @type {HTMLInputElement} */ ($("signin-pass")).value;
  $("signin-error").textContent = "";
  let res;
  try {
    res = await fetch("/api/login", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
  } catch { $("signin-error").textContent = "Cannot reach the server; try again."; return; }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const wait = res.headers.get("Retry-After");
    $("signin-error").textContent = res.status === 429
      ? `Too many attempts; try again in ${wait ?? "a few"} seconds.`
      : "Wrong username or password.";
    return;
  }
  localStorage.setItem("emofy.token", body.token);
  localStorage.setItem("emofy.username", username.toLowerCase());
  const hello = { type: "hello", v: 1, token: body.token };
  if (joined && ws) ws.close(); // reconnects with the saved (new) token
  else if (ws && ws.readyState === WebSocket.OPEN) send(hello);
  else connect(() => hello);
  showAccount(username.toLowerCase());
});

$("account-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const username = /** @type {HTMLInputElement} */ ($("account-user")).value.trim();
  const password = /** @type {HTMLInputElement} */ ($("account-pass")).value;
  const token = localStorage.getItem("emofy.token");
  let res;
  try {
    res = await fetch("/api/accounts", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ username, password }),
    });
  } catch { $("account-status").textContent = "Cannot reach the server; try again."; return; }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    $("account-status").textContent = body.detail ?? body.message ?? "That did not work; try again.";
    return;
  }
  localStorage.setItem("emofy.token", body.token);
  localStorage.setItem("emofy.username", body.username);
  showAccount(body.username);
});

$("password-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const current = /** @type {HTMLInputElement} */ ($("password-current")).value;
  const next = /** @type {HTMLInputElement} */ ($("password-new")).value;
  const token = localStorage.getItem("emofy.token");
  const res = await fetch("/api/me/password", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ current, new: next }),
  }).catch(() => null);
  if (!res) { $("account-status").textContent = "Cannot reach the server; try again."; return; }
  if (res.ok) {
    $("account-status").textContent = "Password changed.";
    /** @type {HTMLFormElement} */ ($("password-form")).reset();
    return;
  }
  const body = await res.json().catch(() => ({}));
  $("account-status").textContent = res.status === 401
    ? "That is not your current password."
    : body.detail ?? body.message ?? "That did not work; try again.";
});

$("export").addEventListener("click", async () => {
  const token = localStorage.getItem("emofy.token");
  const res = await fetch("/api/me/export", { headers: { Authorization: `Bearer ${token}` } }).catch(() => null);
  if (!res || !res.ok) { $("account-status").textContent = "The download did not work; try again."; return; }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = "emofy-export.json";
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
});

const known = localStorage.getItem("emofy.username");
if (known) showAccount(known);

const saved = localStorage.getItem("emofy.token");
if (saved) connect(() => ({ type: "hello", v: 1, token: saved }));
