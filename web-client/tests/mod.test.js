// @ts-check
// A moderator signs in to the console, sees a disputed face with its vote
// and probability charts, and overrides its label.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, launchBrowser, createModerator, dataDir, OUT } from "./harness.js";

test("a moderator overrides a disputed label", async () => {
  const data = dataDir();
  await createModerator(data, "mod.e2e", "a long enough secret");
  const server = await startServer(
    { EMOFY_DEMO__IMAGES: "1", EMOFY_GAME__MIN_LABELS: "3", EMOFY_GAME__MAX_LABELS: "3" },
    data,
  );
  const browser = await launchBrowser();
  try {
    // Three guests disagree about the only face: it becomes disputed.
    let image = "";
    for (const [name, emotion] of [["Ann", "angry"], ["Ben", "fear"], ["Cy", "sad"]]) {
      const page = await (await browser.newContext()).newPage();
      await page.goto(server.url);
      await page.fill("#name", name);
      await page.click("button[type=submit]");
      await page.waitForFunction(() => (document.getElementById("prompt")?.textContent ?? "").includes("predicted"));
      image = (await page.getAttribute("#face", "src") ?? "").split("/").pop() ?? "";
      await page.click(`#buttons button[data-emotion=${emotion}]`);
      await page.waitForFunction(() => (document.getElementById("feedback")?.textContent ?? "") !== "");
    }
    const meta = await (await fetch(`${server.url}/api/images/${image}`)).json();
    assert.equal(meta.status, "disputed");

    const mod = await (await browser.newContext()).newPage();
    await mod.goto(`${server.url}/mod.html`);
    await mod.fill("#username", "mod.e2e");
    await mod.fill("#password", "wrong password!!");
    await mod.click("#signin-form button[type=submit]");
    await mod.waitForFunction(() => (document.getElementById("signin-error")?.textContent ?? "") !== "");
    await mod.fill("#password", "a long enough secret");
    await mod.click("#signin-form button[type=submit]");
    await mod.waitForSelector(`#queue li[data-image="${image}"]`);
    const head = await mod.textContent(`#queue li[data-image="${image}"] p`);
    assert.match(head ?? "", /^disputed · crowd: \w+ · model: \w+ · 3 labels$/);
    assert.equal(await mod.$$eval(`#queue li[data-image="${image}"] figure`, (f) => f.length), 3, "votes, posterior, model");
    // The reliability table lists the three players, by name, as text.
    await mod.waitForFunction(() => document.querySelectorAll("#players tbody tr").length === 3);
    // Dataset charts: 3 labels today, one disputed image, no retired class yet.
    await mod.waitForFunction(() => document.querySelectorAll("#stats figure").length === 3);
    const stats = await mod.$$eval("#stats figure", (fs) => fs.map((f) => f.textContent ?? ""));
    assert.match(stats[0], /Labels per day \(UTC\)\d{4}-\d{2}-\d{2}.*3$/);
    assert.match(stats[1], /disputed.*1/);
    // The model registry: the installed model serves; a moderator sees it but promotes nothing.
    await mod.waitForSelector("#models tbody tr");
    assert.equal(await mod.$$eval("#models tbody tr", (r) => r.length), 1);
    assert.match(await mod.textContent("#models tbody tr") ?? "", /^mini-xception-fer2013-\w+champion · serving here.*installed \(no gate\)$/);
    assert.equal(await mod.$$eval("#models button", (b) => b.length), 0, "moderators do not promote");
    assert.equal(await mod.isVisible("#rollback"), false);
    await mod.screenshot({ path: join(OUT, "mod-queue.png"), fullPage: true });

    await mod.selectOption(`#queue li[data-image="${image}"] select`, "sad");
    await mod.click(`#queue li[data-image="${image}"] button:text("Override")`);
    await mod.waitForFunction(() => (document.getElementById("status")?.textContent ?? "").includes("verified: sad"));
    await mod.waitForFunction(() => document.getElementById("queue-empty")?.hidden === false);
    // The class balance now counts the verified image.
    await mod.waitForFunction(() => /sad1(?!\d)/.test(document.querySelectorAll("#stats figure")[2]?.textContent ?? ""));
    await mod.screenshot({ path: join(OUT, "mod-done.png"), fullPage: true });
    const after = await (await fetch(`${server.url}/api/images/${image}`)).json();
    assert.equal(after.status, "retired");
    assert.equal(after.label, "sad");
  } finally {
    await browser.close();
    await server.stop();
  }
});
