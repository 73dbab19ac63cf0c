// @ts-check
// Moderator console: sign in, review the queue (vote distribution, the
// crowd's posterior, the model's probabilities), accept / override / flag,
// the player reliability table with ban / clear, and the model registry
// (accuracy per version, the gate's decisions; admins promote and roll
// back). Text only for names.
import { EMOTIONS, accuracyByVersion, gateText, percent, promotion, shares } from "./mod-logic.js";

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
let token = sessionStorage.getItem("emofy.mod") ?? "";
let role = sessionStorage.getItem("emofy.mod.role") ?? "moderator";

/** @param {string} path @param {any} [body] */
async function api(path, body) {
  const res = await fetch(path, {
    method: body ? "POST" : "GET",
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.message ?? `HTTP ${res.status}`);
  return data;
}

/**
 * Shows a contributed face: its bytes need the moderator's token (a face not
 * shown to players is served to its contributor and moderators only).
 * @param {HTMLImageElement} img @param {string} url
 */
async function showPrivate(img, url) {
  const res = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
  if (res.ok) img.src = URL.createObjectURL(await res.blob());
}

/**
 * A labelled bar chart of seven values.
 * @param {string} title @param {number[]} values shares in [0, 1]
 * @param {string[]} [names] the bars' names (the seven emotions by default)
 * @param {string[]} [texts] what each bar says (its percentage by default)
 */
function bars(title, values, names = EMOTIONS, texts) {
  const fig = document.createElement("figure");
  fig.className = "bars";
  const cap = document.createElement("figcaption");
  cap.textContent = title;
  fig.append(cap);
  names.forEach((e, i) => {
    const row = document.createElement("div");
    row.className = "bar";
    const label = document.createElement("span");
    label.textContent = e;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = percent(values[i] ?? 0);
    track.append(fill);
    const value = document.createElement("span");
    value.textContent = texts?.[i] ?? percent(values[i] ?? 0);
    row.append(label, track, value);
    fig.append(row);
  });
  return fig;
}

async function loadQueue() {
  const { items } = await api("/api/moderation/queue?limit=20");
  $("queue-empty").hidden = items.length > 0;
  $("queue").replaceChildren(...items.map((/** @type {any} */ it) => {
    const li = document.createElement("li");
    li.className = "item";
    li.dataset.image = it.image;
    const img = document.createElement("img");
    if (it.upload) showPrivate(img, it.url);
    else img.src = it.url;
    img.alt = "Face under review";
    img.width = 144;
    img.height = 144;
    const info = document.createElement("div");
    const head = document.createElement("p");
    head.textContent = `${it.status} · crowd: ${it.crowd ?? "—"} · model: ${it.model_guess ?? "—"} · ${it.labels.length} labels`;
    const total = it.labels.length || 1;
    info.append(head, bars("Votes", it.votes.map((/** @type {number} */ v) => v / total)));
    if (it.posterior) info.append(bars("Crowd posterior", it.posterior));
    if (it.model_probabilities) info.append(bars("Model", it.model_probabilities));
    const actions = document.createElement("div");
    actions.className = "actions";
    const accept = document.createElement("button");
    accept.textContent = "Accept crowd";
    accept.disabled = !it.crowd;
    accept.addEventListener("click", () => act(it.image, { action: "accept" }));
    const pick = document.createElement("select");
    pick.setAttribute("aria-label", "Correct label");
    for (const e of EMOTIONS) pick.append(new Option(e, e));
    const override = document.createElement("button");
    override.textContent = "Override";
    override.addEventListener("click", () => act(it.image, { action: "override", label: pick.value }));
    const flag = document.createElement("button");
    flag.textContent = "Flag: not a face";
    flag.className = "danger";
    flag.addEventListener("click", () => act(it.image, { action: "flag", reason: "not_a_face" }));
    actions.append(accept, pick, override, flag);
    li.append(img, info, actions);
    return li;
  }));
}

/** @param {string} image @param {any} body */
async function act(image, body) {
  try {
    const r = await api(`/api/moderation/images/${image}`, body);
    $("status").textContent = `Image ${image.slice(0, 8)}: ${r.status}${r.gold ? ` (verified: ${r.gold})` : ""}.`;
    await Promise.all([loadQueue(), loadStats()]);
  } catch (e) {
    $("status").textContent = String(/** @type {Error} */ (e).message);
  }
}

async function loadPlayers() {
  const { players } = await api("/api/moderation/players?limit=100");
  /** @type {HTMLElement} */ (document.querySelector("#players tbody")).replaceChildren(...players.map((/** @type {any} */ p) => {
    const tr = document.createElement("tr");
    const cells = [p.name, String(p.answers), percent(p.accuracy), percent(p.copy_rate), p.why ?? "", p.moderation === "none" ? (p.counts ? "counted" : "flagged") : p.moderation];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.append(td);
    }
    const td = document.createElement("td");
    const b = document.createElement("button");
    const banned = p.moderation === "banned";
    b.textContent = banned ? "Clear" : "Ban";
    b.addEventListener("click", async () => {
      await api(`/api/moderation/players/${p.player}`, { action: banned ? "reset" : "ban" });
      await loadPlayers();
    });
    td.append(b);
    tr.append(td);
    return tr;
  }));
}

async function loadStats() {
  const s = await api("/api/moderation/stats?days=14");
  const days = s.labels_per_day.map((/** @type {any} */ d) => d.day);
  const perDay = s.labels_per_day.map((/** @type {any} */ d) => d.labels);
  const status = ["open", "retired", "disputed", "removed"];
  const statusCounts = status.map((k) => s.status[k]);
  const classCounts = EMOTIONS.map((e) => s.retired_per_class[e]);
  $("stats").replaceChildren(
    bars("Labels per day (UTC)", shares(perDay), days, perDay.map(String)),
    bars("Images by status", shares(statusCounts), status, statusCounts.map(String)),
    bars("Class balance (retired images)", shares(classCounts), EMOTIONS, classCounts.map(String)),
  );
}

/** @param {number} ms */
function utc(ms) {
  return new Date(ms).toISOString().slice(0, 16).replace("T", " ");
}

async function loadModels() {
  const page = await api("/api/admin/models?limit=50");
  const admin = role === "admin";
  const points = accuracyByVersion(page.models);
  $("model-chart").replaceChildren(...(points.length ? [bars(
    "Test accuracy per version, oldest first (each on the test split when it was judged)",
    points.map((p) => p.accuracy), points.map((p) => p.version), points.map((p) => percent(p.accuracy)),
  )] : []));
  const champion = page.models.find((/** @type {any} */ m) => m.state === "champion");
  const rollback = $("rollback");
  rollback.hidden = !admin || !champion?.replaced;
  rollback.textContent = champion?.replaced ? `Roll back to ${champion.replaced}` : "Roll back the champion";
  /** @type {HTMLElement} */ (document.querySelector("#models tbody")).replaceChildren(...page.models.map((/** @type {any} */ m) => {
    const tr = document.createElement("tr");
    tr.dataset.version = m.version;
    const acc = m.test_accuracy == null ? "—"
      : percent(m.test_accuracy) + (m.parent_test_accuracy == null ? "" : ` (parent ${percent(m.parent_test_accuracy)})`);
    const state = m.state + (m.version === page.serving ? " · serving here" : "");
    for (const c of [m.version, state, utc(m.created_ms), acc, gateText(m.gate)]) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.append(td);
    }
    const td = document.createElement("td");
    const plan = promotion(m);
    if (admin && plan) {
      const b = document.createElement("button");
      b.textContent = plan.force ? "Promote anyway" : "Promote";
      if (plan.force) b.className = "danger";
      b.addEventListener("click", () => promote(m.version, plan.force));
      td.append(b);
    }
    tr.append(td);
    return tr;
  }));
}

/** @param {string} version @param {boolean} force */
async function promote(version, force) {
  if (force && !confirm(`${version} was refused by the gate or rolled back. Serve it on every replica anyway?`)) return;
  await registryChange(`/api/admin/models/${encodeURIComponent(version)}/promote`, force ? { force: true } : {});
}

/** @param {string} path @param {any} body */
async function registryChange(path, body) {
  try {
    const r = await api(path, body);
    $("models-status").textContent = `${r.champion} is the champion (was ${r.previous ?? "none"}); every replica serves it at its next poll.`;
  } catch (e) {
    $("models-status").textContent = String(/** @type {Error} */ (e).message);
  }
  await loadModels();
}

$("rollback").addEventListener("click", () => registryChange("/api/admin/models/rollback", {}));

async function open() {
  $("signin").hidden = true;
  $("console").hidden = false;
  await Promise.all([loadQueue(), loadPlayers(), loadStats(), loadModels()]);
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const username = /** @type {HTMLInputElement} */ ($("username")).value;
  const password = /** @type {HTMLInputElement} */ ($("password")).value;
  const res = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username, password }) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) { $("signin-error").textContent = data.message ?? "Sign-in failed."; return; }
  if (data.role !== "moderator" && data.role !== "admin") { $("signin-error").textContent = "This account is not a moderator."; return; }
  token = data.token;
  role = data.role;
  sessionStorage.setItem("emofy.mod", token);
  sessionStorage.setItem("emofy.mod.role", role);
  await open();
});

if (token) open().catch(() => { sessionStorage.removeItem("emofy.mod"); token = ""; $("signin").hidden = false; $("console").hidden = true; });
