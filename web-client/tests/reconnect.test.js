// @ts-check
// The network drops (the server restarts): the play page reconnects with its
// token by itself and the streak is still there.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, launchBrowser, dataDir, freePort, playRound, OUT } from "./harness.js";


test("the page reconnects after the connection drops and the streak is kept", async () => {
  const data = dataDir();
  const port = await freePort();
  const env = { EMOFY_DEMO__IMAGES: "6" };
  let server = await startServer(env, data, port);
  const browser = await launchBrowser();
  try {
    // Someone labels every face first, so agreeing answers build a streak.
    const seed = await (await browser.newContext()).newPage();
    await seed.goto(server.url);
    await seed.fill("#name", "Seed");
    await seed.click("button[type=submit]");
    for (let i = 0; i < 6; i++) {
      await playRound(seed, "happy");
      await seed.click("#next");
    }
    const page = await (await browser.newContext()).newPage();
    await page.goto(server.url);
    await page.fill("#name", "Rita");
    await page.click("button[type=submit]");
    for (let i = 0; i < 3; i++) {
      await playRound(page, "happy");
      if (i < 2) await page.click("#next");
    }
    assert.equal(await page.textContent("#streak"), "3");
    const score = await page.textContent("#score");

    // The connection drops: the server goes away and comes back on the same address.
    await server.stop();
    await page.waitForFunction(() => /restarting|Disconnected/.test(document.getElementById("feedback")?.textContent ?? ""));
    server = await startServer(env, data, port);
    // The page resumes by itself: same player, same score, same streak.
    await page.waitForFunction(() => (document.getElementById("feedback")?.textContent ?? "") === "" ||
      (document.getElementById("prompt")?.textContent ?? "").includes("predicted"), undefined, { timeout: 20_000 });
    await page.waitForFunction((s) => document.getElementById("score")?.textContent === s, score);
    assert.equal(await page.textContent("#me"), "Rita");
    assert.equal(await page.textContent("#streak"), "3");
    await page.click("#next");
    await playRound(page, "happy");
    assert.equal(await page.textContent("#streak"), "4");
    await page.screenshot({ path: join(OUT, "play-reconnected.png") });
  } finally {
    await browser.close();
    await server.stop();
  }
});
