// @ts-check
// A contributor gives consent, uploads a face photo, sees the crop and the
// model's guess, corrects it, finds it under "My images", and deletes it
// (revoking consent): it disappears.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, launchBrowser, OUT } from "./harness.js";

test("a contributor uploads with consent, corrects the guess, and revokes it", async () => {
  const server = await startServer({ EMOFY_DEMO__IMAGES: "2" });
  const browser = await launchBrowser();
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(server.url);
    await page.fill("#name", "Zoe");
    await page.click("button[type=submit]");
    await page.waitForFunction(() => (document.getElementById("prompt")?.textContent ?? "").includes("predicted"));
    // A "photo": one of the synthetic demo faces, drawn into a bigger scene.
    const faceUrl = await page.getAttribute("#face", "src");
    const photo = await page.evaluate(async (src) => {
      const img = new Image();
      img.src = /** @type {string} */ (src);
      await img.decode();
      const c = document.createElement("canvas");
      c.width = 800;
      c.height = 600;
      const g = /** @type {CanvasRenderingContext2D} */ (c.getContext("2d"));
      g.fillStyle = "#6d8a5a";
      g.fillRect(0, 0, 800, 600);
      g.drawImage(img, 250, 140, 288, 288);
      return c.toDataURL("image/png").split(",")[1];
    }, faceUrl);

    page.on("dialog", (d) => d.accept());
    await page.goto(`${server.url}/contribute.html`);
    await page.waitForSelector("#consent-step:not([hidden])");
    assert.notEqual(await page.textContent("#consent-text"), "");
    // Consent to nothing is refused, with a reason.
    await page.click("#agree");
    assert.notEqual(await page.textContent("#consent-error"), "");
    await page.check("#show_to_players");
    await page.check("#use_for_training");
    await page.click("#agree");
    await page.waitForSelector("#photo-step:not([hidden])");
    await page.screenshot({ path: join(OUT, "contribute-consent.png"), fullPage: true });
    await page.setInputFiles("#file", { name: "me.png", mimeType: "image/png", buffer: Buffer.from(photo, "base64") });
    // Filters, previewed by the server, chained: mirror then sepia; then one removed.
    await page.waitForSelector("#edit:not([hidden])");
    const before = await page.getAttribute("#preview", "src");
    await page.selectOption("#filter", "mirror");
    await page.click("#add-filter");
    await page.selectOption("#filter", "sepia");
    await page.click("#add-filter");
    await page.waitForFunction(() => document.querySelectorAll("#chain li").length === 2);
    await page.waitForFunction(() => document.getElementById("preview")?.dataset.chain === "mirror,sepia");
    assert.notEqual(await page.getAttribute("#preview", "src"), before);
    await page.waitForFunction(() => {
      const img = /** @type {HTMLImageElement} */ (document.getElementById("preview"));
      return img.complete && img.naturalWidth > 0;
    });
    // Sepia: the preview's pixels are warm (red ≥ blue everywhere).
    const warm = await page.evaluate(() => {
      const img = /** @type {HTMLImageElement} */ (document.getElementById("preview"));
      const c = document.createElement("canvas");
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const g = /** @type {CanvasRenderingContext2D} */ (c.getContext("2d"));
      g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 4) if (d[i] < d[i + 2]) return false;
      return true;
    });
    assert.equal(warm, true);
    await page.screenshot({ path: join(OUT, "contribute-filters.png"), fullPage: true });
    await page.click("#chain li:nth-child(2) button");
    await page.waitForFunction(() => document.getElementById("preview")?.dataset.chain === "mirror");
    // The detected face crop is shown before anything is sent.
    await page.waitForFunction(() => (document.getElementById("face-status")?.textContent ?? "") === "Face found.");
    await page.waitForFunction(() => /** @type {HTMLImageElement} */ (document.getElementById("face-crop")).naturalWidth > 0);
    assert.equal(await page.isEnabled("#send"), true);
    const before_send = await (await fetch(`${server.url}/api/stats`)).json();
    assert.equal(before_send.images, 2, "nothing stored by the preview");
    await page.click("#send");
    await page.waitForSelector("#result-step:not([hidden])");
    const prediction = await page.textContent("#prediction");
    assert.match(prediction ?? "", /^The model thinks: (angry|disgust|fear|happy|neutral|sad|surprise) \(\d+%\)\.$/);
    await page.waitForFunction(() => /** @type {HTMLImageElement} */ (document.getElementById("crop")).naturalWidth > 0);
    await page.screenshot({ path: join(OUT, "contribute-result.png"), fullPage: true });
    // The contributor's own label.
    await page.click("#label-buttons button[data-emotion=surprise]");
    await page.waitForFunction(() => (document.getElementById("label-status")?.textContent ?? "").startsWith("Thanks"));
    await page.waitForFunction(() => (document.querySelector("#mine li span")?.textContent ?? "").includes("your label: surprise"));
    assert.equal(await page.$$eval("#mine li", (l) => l.length), 1);
    // Filters: another label hides it.
    // The list is fetched again for each filter: wait for it to be redrawn.
    await page.selectOption("#filter-label", "happy");
    await page.waitForFunction(() => document.querySelectorAll("#mine li").length === 0);
    assert.equal(await page.$$eval("#mine li", (l) => l.length), 0);
    await page.selectOption("#filter-label", "surprise");
    await page.waitForFunction(() => document.querySelectorAll("#mine li").length === 1);
    assert.equal(await page.$$eval("#mine li", (l) => l.length), 1);
    await page.screenshot({ path: join(OUT, "contribute-mine.png"), fullPage: true });
    const id = await page.getAttribute("#mine li", "data-image");
    // Delete: consent revoked, gone from the list and from the server.
    await page.click("#mine li button.danger");
    await page.waitForFunction(() => (document.getElementById("mine-status")?.textContent ?? "").startsWith("Deleted"));
    assert.equal(await page.$$eval("#mine li", (l) => l.length), 0);
    const gone = await fetch(`${server.url}/images/${id}`);
    assert.equal(gone.status, 404);
  } finally {
    await browser.close();
    await server.stop();
  }
});
