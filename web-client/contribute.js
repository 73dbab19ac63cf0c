// @ts-check
// Contribute a face: consent first (one checkbox per use), then a file or
// the camera, the stored crop and the model's guess, the contributor's own
// label; "My images" pages, filters, and deletes (which revokes consent).
import { EMOTIONS } from "./mod-logic.js";
import { matches } from "./contribute-logic.js";

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const token = localStorage.getItem("emofy.token");
const SCOPES = ["show_to_players", "use_for_training", "include_in_exports", "keep_original"];
let version = "";
/** @type {Record<string, boolean> | null} */
let consent = null;
let uploaded = "";
/** The photo as chosen, and as filtered (what "Send" sends). */
let original = /** @type {Blob|null} */ (null);
let current = /** @type {Blob|null} */ (null);
/** @type {string[]} */
let chain = [];
const FILTERS = ["gray", "blur", "canny", "dilate", "erode", "sepia", "cartoonify", "negative", "emboss",
  "sharpen", "edge_enhance", "rainbowify", "mirror", "flip", "rotate_left", "rotate_right"];
/** @type {any[]} */
let mine = [];
let next = /** @type {string|null} */ (null);

/**
 * `fetch`, coming back when the server is busy with other images (`503` with
 * `Retry-After`): a few times, waiting as long as it asks (at most 5 s).
 * @param {string} path @param {RequestInit} init
 */
async function fetchRetrying(path, init) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(path, init);
    if (res.status !== 503 || attempt >= 4) return res;
    const wait = Math.min(5, Number(res.headers.get("Retry-After") ?? "1") || 1);
    await new Promise((ok) => setTimeout(ok, wait * 1000));
  }
}

/** @param {string} path @param {RequestInit} [init] */
async function api(path, init = {}) {
  const res = await fetchRetrying(path, { ...init, headers: { Authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });
  const data = res.status === 204 ? {} : await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.detail ? `${data.message} (${data.detail})` : data.message ?? `HTTP ${res.status}`);
  return data;
}

/**
 * Shows one of the contributor's own face crops. Their bytes are served only
 * with the contributor's token (and never cached), so they are fetched and
 * shown from memory.
 * @param {HTMLImageElement} img @param {string} url
 */
async function showOwn(img, url) {
  const res = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) { img.alt = "Face crop unavailable"; return; }
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(await res.blob());
}

async function start() {
  if (!token) { $("need-player").hidden = false; return; }
  const c = await (await fetch("/api/consent")).json();
  version = c.version;
  $("consent-text").textContent = c.text;
  $("consent-step").hidden = false;
  await loadMine(true);
}

$("agree").addEventListener("click", () => {
  /** @type {Record<string, boolean>} */
  const chosen = {};
  for (const s of SCOPES) chosen[s] = /** @type {HTMLInputElement} */ ($(s)).checked;
  if (!chosen.show_to_players && !chosen.use_for_training) {
    $("consent-error").textContent = "Tick at least one use (shown to players, or training); otherwise we have no reason to keep your face.";
    return;
  }
  $("consent-error").textContent = "";
  consent = chosen;
  $("photo-step").hidden = false;
  /** @type {HTMLInputElement} */ ($("file")).focus();
});

/** @param {Blob} photo */
async function send(photo) {
  if (!consent) return;
  $("upload-status").textContent = "Finding your face…";
  $("upload-error").textContent = "";
  const form = new FormData();
  form.append("consent", JSON.stringify({ ...consent, text_version: version }));
  form.append("photo", photo, "photo");
  try {
    const up = await api("/api/uploads", { method: "POST", body: form });
    uploaded = up.image.id;
    $("upload-status").textContent = "Stored.";
    $("result-step").hidden = false;
    await showOwn(/** @type {HTMLImageElement} */ ($("crop")), up.image.url);
    $("prediction").textContent = up.prediction
      ? `The model thinks: ${up.prediction.emotion} (${Math.round(up.prediction.confidence * 100)}%).`
      : "The model is off right now.";
    await loadMine(true);
  } catch (e) {
    $("upload-status").textContent = "";
    $("upload-error").textContent = String(/** @type {Error} */ (e).message);
  }
}

/** Shows `photo` for editing; filters start from it. @param {Blob} photo */
function edit(photo) {
  original = photo;
  chain = [];
  show(photo);
  $("edit").hidden = false;
}

/** Shows `b`, the photo with `applied` filters. @param {Blob} b @param {string[]} [applied] */
function show(b, applied = []) {
  current = b;
  const img = /** @type {HTMLImageElement} */ ($("preview"));
  URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(b);
  img.dataset.chain = applied.join(",");
  detect(b);
  $("chain").replaceChildren(...chain.map((f, i) => {
    const li = document.createElement("li");
    li.textContent = f;
    const x = document.createElement("button");
    x.type = "button";
    x.textContent = "×";
    x.setAttribute("aria-label", `Remove ${f}`);
    x.addEventListener("click", () => { chain.splice(i, 1); refilter(); });
    li.append(" ", x);
    return li;
  }));
}

let previews = 0;
let detections = 0;

/** Shows the face crop the server would store for `b`, before anything is sent. @param {Blob} b */
async function detect(b) {
  const mine = ++detections;
  const send = /** @type {HTMLButtonElement} */ ($("send"));
  send.disabled = true;
  $("face-status").textContent = "Looking for a face…";
  const res = await fetchRetrying("/api/faces/preview", {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": b.type || "application/octet-stream" },
    body: b,
  });
  if (mine !== detections) return;
  const crop = /** @type {HTMLImageElement} */ ($("face-crop"));
  if (!res.ok) {
    const err = await res.json().catch(() => ({}));
    crop.removeAttribute("src");
    $("face-status").textContent = err.code === "no_face"
      ? "No face found: try a photo where your face is larger and well lit."
      : err.message ?? `HTTP ${res.status}`;
    return;
  }
  URL.revokeObjectURL(crop.src);
  crop.src = URL.createObjectURL(await res.blob());
  $("face-status").textContent = "Face found.";
  send.disabled = false;
}

/** Applies the chain to the original photo on the server (a preview); a newer request wins. */
async function refilter() {
  if (!original) return;
  const mine = ++previews;
  const applied = [...chain];
  if (applied.length === 0) { show(original); return; }
  try {
    const res = await fetchRetrying(`/api/filters?chain=${applied.join(",")}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": original.type || "application/octet-stream" },
      body: original,
    });
    if (!res.ok) throw new Error((await res.json().catch(() => ({}))).message ?? `HTTP ${res.status}`);
    const blob = await res.blob();
    if (mine !== previews) return;
    show(blob, applied);
    $("upload-error").textContent = "";
  } catch (e) {
    if (mine !== previews) return;
    chain.pop();
    $("upload-error").textContent = String(/** @type {Error} */ (e).message);
  }
}

for (const f of FILTERS) /** @type {HTMLSelectElement} */ ($("filter")).append(new Option(f, f));
$("add-filter").addEventListener("click", () => {
  if (chain.length >= 8) { $("upload-error").textContent = "At most 8 filters."; return; }
  chain.push(/** @type {HTMLSelectElement} */ ($("filter")).value);
  refilter();
});
$("send").addEventListener("click", () => { if (current) send(current); });

$("file").addEventListener("change", () => {
  const f = /** @type {HTMLInputElement} */ ($("file")).files?.[0];
  if (f) edit(f);
});

$("camera").addEventListener("click", async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true });
    const video = /** @type {HTMLVideoElement} */ ($("video"));
    video.srcObject = stream;
    video.hidden = false;
    $("snap").hidden = false;
    await video.play();
  } catch (e) {
    $("upload-error").textContent = `No camera: ${String(/** @type {Error} */ (e).message)}`;
  }
});

$("snap").addEventListener("click", () => {
  const video = /** @type {HTMLVideoElement} */ ($("video"));
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d")?.drawImage(video, 0, 0);
  canvas.toBlob((b) => { if (b) edit(b); }, "image/png");
  for (const t of /** @type {MediaStream} */ (video.srcObject)?.getTracks() ?? []) t.stop();
  video.hidden = true;
  $("snap").hidden = true;
});

EMOTIONS.forEach((e) => {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = e;
  b.dataset.emotion = e;
  b.addEventListener("click", async () => {
    try {
      await api(`/api/uploads/${uploaded}/label`, {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ emotion: e }),
      });
      $("label-status").textContent = `Thanks: labelled ${e}.`;
      await loadMine(true);
    } catch (err) {
      $("label-status").textContent = String(/** @type {Error} */ (err).message);
    }
  });
  $("label-buttons").append(b);
  /** @type {HTMLSelectElement} */ ($("filter-label")).append(new Option(e, e));
});

/** @param {boolean} fresh */
async function loadMine(fresh) {
  if (fresh) { mine = []; next = null; }
  const page = await api(`/api/uploads?limit=10${next ? `&after=${encodeURIComponent(next)}` : ""}`);
  mine = mine.concat(page.uploads);
  next = page.next;
  $("more").hidden = !next;
  renderMine();
}

function renderMine() {
  const label = /** @type {HTMLSelectElement} */ ($("filter-label")).value;
  const from = /** @type {HTMLInputElement} */ ($("filter-from")).value;
  const shown = mine.filter((u) => matches(u, { label, from }));
  $("mine-empty").hidden = shown.length > 0;
  $("mine").replaceChildren(...shown.map((u) => {
    const li = document.createElement("li");
    li.dataset.image = u.image.id;
    const img = document.createElement("img");
    showOwn(img, u.image.url);
    img.alt = "Your face crop";
    img.width = 96;
    img.height = 96;
    const text = document.createElement("span");
    text.textContent = `${new Date(u.created_ms).toLocaleString()} · your label: ${u.label ?? "—"} · ${u.status}`;
    const del = document.createElement("button");
    del.type = "button";
    del.className = "danger";
    del.textContent = "Delete and revoke consent";
    del.addEventListener("click", async () => {
      if (!confirm("Delete this photo for good? It leaves the game at once.")) return;
      await api(`/api/uploads/${u.image.id}`, { method: "DELETE" });
      $("mine-status").textContent = "Deleted; your consent for it is revoked.";
      await loadMine(true);
    });
    li.append(img, text, del);
    return li;
  }));
}

$("more").addEventListener("click", () => loadMine(false));
$("filter-label").addEventListener("change", renderMine);
$("filter-from").addEventListener("change", renderMine);
start();
