// @ts-check
// Starts the real server binary on a free port with a fresh data dir, and
// Debian's Chromium through playwright-core (which never downloads a browser).
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const here = new URL(".", import.meta.url).pathname;

/** The folder screenshots go to (TEST_OUT, else web-client/test-output). */
export const OUT = process.env.TEST_OUT ?? resolve(here, "..", "test-output");
mkdirSync(OUT, { recursive: true });

const bin = process.env.TEST_EMOFY_BIN ?? resolve(here, "..", "..", "target", "debug", "emofy");

/** A fresh data dir. */
export function dataDir() {
  return mkdtempSync(join(tmpdir(), "emofy-e2e-"));
}

/**
 * Creates a moderator account the way an operator does (`emofy admin create-moderator`).
 * @param {string} data @param {string} username @param {string} password
 * @param {boolean} [admin] an admin instead of a moderator
 */
export async function createModerator(data, username, password, admin = false) {
  const args = ["admin", "create-moderator", "--username", username, "--data-dir", data, ...(admin ? ["--admin"] : [])];
  const child = spawn(bin, args, {
    env: { PATH: process.env.PATH ?? "" },
    stdio: ["pipe", "ignore", "inherit"],
  });
  child.stdin?.end(`${password}\n`);
  const code = await new Promise((ok) => child.on("exit", ok));
  if (code !== 0) throw new Error(`create-moderator exited with ${code}`);
}

/**
 * Runs an `emofy` command on a data dir, as an operator does beside a running server.
 * @param {string[]} args @param {string} data @param {Record<string, string>} [env]
 * @returns {Promise<{code: number | null, stdout: string, stderr: string}>}
 */
export async function emofy(args, data, env = {}) {
  const child = spawn(bin, [...args, "--data-dir", data], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d) => { stdout += d; });
  child.stderr?.on("data", (d) => { stderr += d; });
  const code = await new Promise((ok) => child.on("exit", ok));
  return { code: /** @type {number | null} */ (code), stdout, stderr };
}

/** A port that was free a moment ago. */
export async function freePort() {
  const net = await import("node:net");
  return new Promise((ok) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = /** @type {any} */ (srv.address()).port;
      srv.close(() => ok(port));
    });
  });
}

/**
 * @param {Record<string, string>} env extra EMOFY_* settings
 * @param {string} [data] the data dir (a fresh one by default)
 * @param {number} [port] 0: any free port
 * @returns {Promise<{url: string, stop: () => Promise<void>}>}
 */
export async function startServer(env = {}, data = dataDir(), port = 0) {
  const child = spawn(bin, ["serve", "--port", String(port), "--log-filter", "warn", "--data-dir", data], {
    env: {
      PATH: process.env.PATH ?? "",
      EMOFY_WORKERS: "1",
      EMOFY_NET__EXEMPT_LOOPBACK: "true",
      EMOFY_TRUTH__GOLD: "false",
      EMOFY_TRUTH__DECOYS: "false",
      EMOFY_TRUTH__BLIND_TEST: "false",
      EMOFY_TRUTH__EXPLORE: "0",
      // Everyone trusted from the first label and the demo faces' drawn
      // emotions unused, as in the server's own tests; pages that show
      // them switch them back on.
      EMOFY_TRUTH__TRUST__NEWCOMER_WEIGHT: "1.0",
      EMOFY_TRUTH__TRUST__MIN_ESTABLISHED: "0",
      EMOFY_TRUTH__TRUST__KNOWN_LABELS: "false",
      ...env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: /** @type {any} */ (child.stdout) });
  const url = await new Promise((ok, fail) => {
    const t = setTimeout(() => fail(new Error("the server did not start in 60 s")), 60_000);
    lines.on("line", (line) => {
      const m = line.match(/http:\/\/[^:]+:(\d+)\//);
      if (m) { clearTimeout(t); ok(`http://127.0.0.1:${m[1]}`); }
    });
    child.on("exit", (code) => fail(new Error(`the server exited with ${code}`)));
  });
  const exited = new Promise((ok) => child.on("exit", ok));
  return { url, stop: async () => { child.kill("SIGTERM"); await exited; } };
}

/**
 * Debian's Chromium. Every page it opens is watched for Content-Security-
 * Policy violations: `close()` fails the test if the server's policy blocked
 * anything a page tried to load or run.
 */
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: process.env.TEST_CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  /** @type {string[]} */
  const violations = [];
  /** @param {import("playwright-core").Page} page */
  const watch = (page) => page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) violations.push(`${page.url()}: ${m.text()}`);
  });
  const newContext = browser.newContext.bind(browser);
  browser.newContext = async (/** @type {any} */ ...args) => {
    const ctx = await newContext(...args);
    ctx.on("page", watch);
    return ctx;
  };
  browser.newPage = async (/** @type {any} */ ...args) => {
    const ctx = await browser.newContext(...args);
    const page = await ctx.newPage();
    return page;
  };
  const close = browser.close.bind(browser);
  browser.close = async (/** @type {any} */ ...args) => {
    await close(...args);
    if (violations.length) throw new Error(`CSP violations:\n${violations.join("\n")}`);
  };
  return browser;
}

/**
 * Waits for a fresh round, answers it with `emotion` (a click, or its 1–7 key), waits for the result.
 * @param {import("playwright-core").Page} page
 * @param {string} emotion
 * @param {boolean} [byKey]
 */
export async function playRound(page, emotion, byKey = false) {
  await page.waitForFunction(() =>
    (document.getElementById("prompt")?.textContent ?? "").includes("predicted") &&
    document.getElementById("feedback")?.textContent === "");
  if (byKey) {
    const keys = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"];
    await page.keyboard.press(String(keys.indexOf(emotion) + 1));
  } else {
    await page.click(`#buttons button[data-emotion=${emotion}]`);
  }
  await page.waitForFunction(() => (document.getElementById("feedback")?.textContent ?? "") !== "");
}
