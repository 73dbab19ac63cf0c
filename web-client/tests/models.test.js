// @ts-check
// An admin sees the model registry in the moderator console: accuracy per
// version, the gate's decision in words; promotes a candidate the gate
// refused (after confirming) and rolls the champion back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, launchBrowser, createModerator, dataDir, emofy, OUT } from "./harness.js";

const BUNDLED = /^mini-xception-fer2013-\w+$/;

test("an admin promotes a refused candidate from the console and rolls it back", async () => {
  const data = dataDir();
  await createModerator(data, "admin.e2e", "a long enough secret", true);
  const server = await startServer({
    EMOFY_DEMO__IMAGES: "200",
    EMOFY_MODEL__REGISTRY_POLL_MS: "200",
    EMOFY_TRAINING__BACKGROUND__ENABLED: "false",
  }, data);
  const browser = await launchBrowser();
  try {
    // A real training run beside the server, on the demo faces' drawn
    // emotions, with a gate no candidate can pass.
    const run = await emofy(["train", "--epochs", "1"], data, {
      EMOFY_TRAINING__DATA__USE_KNOWN_LABELS: "true",
      EMOFY_TRAINING__GATE__MIN_GAIN: "0.99",
      EMOFY_TRAINING__GATE__MIN_TEST_IMAGES: "1",
    });
    assert.equal(run.code, 0, run.stderr);
    const trained = JSON.parse(run.stdout);
    assert.equal(trained.promoted, false, run.stdout);
    const candidate = trained.version;

    const page = await (await browser.newContext()).newPage();
    await page.goto(`${server.url}/mod.html`);
    await page.fill("#username", "admin.e2e");
    await page.fill("#password", "a long enough secret");
    await page.click("#signin-form button[type=submit]");
    const row = (/** @type {string} */ v) => `#models tbody tr[data-version="${v}"]`;
    await page.waitForSelector(row(candidate));
    const cells = await page.$$eval(`${row(candidate)} td`, (tds) => tds.map((td) => td.textContent ?? ""));
    assert.equal(cells[1], "candidate");
    assert.match(cells[3], /^\d+% \(parent \d+%\)$/);
    assert.match(cells[4], /^refused: gain [+−]\d+\.\d pp \(needs \+99\.0 pp\)(; [^;]+)* \(\d+ faces only it got right, \d+ only its parent did, p = \d\.\d{3}\)$/);
    const bundled = await page.$$eval("#models tbody tr", (trs) => trs.map((tr) => tr.getAttribute("data-version") ?? ""));
    assert.equal(bundled.length, 2);
    assert.match(bundled[1], BUNDLED);
    assert.match(await page.textContent(row(bundled[1])) ?? "", /champion · serving here.*installed \(no gate\)/);
    // The chart: the installed model (measured as the candidate's parent), then the candidate.
    const chart = await page.$$eval("#model-chart .bar", (bs) => bs.map((b) => b.textContent ?? ""));
    assert.equal(chart.length, 2);
    assert.ok(chart[0].startsWith(bundled[1]) && chart[1].startsWith(candidate), chart.join(" | "));
    assert.equal(await page.isVisible("#rollback"), false, "nothing to roll back to yet");
    await page.screenshot({ path: join(OUT, "models-refused.png"), fullPage: true });

    // Overruling the gate asks first; declining changes nothing.
    page.once("dialog", (d) => d.dismiss());
    await page.click(`${row(candidate)} button:text("Promote anyway")`);
    assert.equal(await page.textContent("#models-status"), "");
    page.once("dialog", (d) => d.accept());
    await page.click(`${row(candidate)} button:text("Promote anyway")`);
    await page.waitForFunction((v) => (document.getElementById("models-status")?.textContent ?? "").startsWith(`${v} is the champion`), candidate);
    await page.waitForFunction((v) => /^champion/.test(document.querySelector(`#models tbody tr[data-version="${v}"] td:nth-child(2)`)?.textContent ?? ""), candidate);
    const models = await (await fetch(`${server.url}/api/admin/models`, {
      headers: { Authorization: `Bearer ${await page.evaluate(() => sessionStorage.getItem("emofy.mod"))}` },
    })).json();
    assert.equal(models.champion, candidate);
    assert.equal(models.serving, candidate);
    assert.equal(await page.textContent(`${row(bundled[1])} td:nth-child(2)`), "retired");
    assert.equal(await page.textContent("#rollback"), `Roll back to ${bundled[1]}`);
    await page.screenshot({ path: join(OUT, "models-promoted.png"), fullPage: true });

    await page.click("#rollback");
    await page.waitForFunction((v) => (document.getElementById("models-status")?.textContent ?? "").startsWith(`${v} is the champion`), bundled[1]);
    await page.waitForFunction((v) => document.querySelector(`#models tbody tr[data-version="${v}"] td:nth-child(2)`)?.textContent === "rolled_back", candidate);
    assert.match(await page.textContent(`${row(bundled[1])} td:nth-child(2)`) ?? "", /^champion · serving here$/);
    assert.equal(await page.isVisible("#rollback"), false);
  } finally {
    await browser.close();
    await server.stop();
  }
});
