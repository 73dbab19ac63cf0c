// @ts-check
// A guest saves their progress as an account, then signs in from a second
// browser context and plays on as the same player with the same score.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, launchBrowser, playRound, OUT } from "./harness.js";

test("a guest becomes an account and signs in elsewhere with the same score", async () => {
  const server = await startServer({ EMOFY_DEMO__IMAGES: "4" });
  const browser = await launchBrowser();
  try {
    // Someone labelled the faces first, so the guest's matching answers score.
    const first = await (await browser.newContext()).newPage();
    await first.goto(server.url);
    await first.fill("#name", "Bo");
    await first.click("#join-form button[type=submit]");
    for (let i = 0; i < 4; i++) {
      await playRound(first, "happy");
      if (i < 3) await first.click("#next");
    }

    const home = await (await browser.newContext()).newPage();
    await home.goto(server.url);
    await home.fill("#name", "Ada");
    await home.click("#join-form button[type=submit]");
    await playRound(home, "happy");
    const score = await home.textContent("#score");
    assert.notEqual(score, "0");

    // Save progress: a weak password is refused with the rule, a good one works.
    await home.click("#account summary");
    await home.fill("#account-user", "Ada_1");
    await home.fill("#account-pass", "password123");
    await home.click("#account-form button[type=submit]");
    await home.waitForFunction(() => /common/.test(document.getElementById("account-status")?.textContent ?? ""));
    await home.fill("#account-pass", "a phrase only ada knows");
    await home.click("#account-form button[type=submit]");
    await home.waitForFunction(() => /Signed in as ada_1/.test(document.getElementById("account-status")?.textContent ?? ""));
    await home.screenshot({ path: join(OUT, "account-saved.png") });

    // Another device: a wrong password is told apart from nothing, the right one resumes.
    const away = await (await browser.newContext()).newPage();
    await away.goto(server.url);
    await away.fill("#signin-user", "ADA_1");
    await away.fill("#signin-pass", "not the password");
    await away.click("#signin-form button[type=submit]");
    await away.waitForFunction(() => /Wrong username or password/.test(document.getElementById("signin-error")?.textContent ?? ""));
    await away.fill("#signin-pass", "a phrase only ada knows");
    await away.click("#signin-form button[type=submit]");
    await away.waitForSelector("#game:not([hidden])");
    assert.equal(await away.textContent("#me"), "Ada");
    assert.equal(await away.textContent("#score"), score);
    assert.match(await away.textContent("#account-status") ?? "", /Signed in as ada_1/);
    await playRound(away, "happy");
    await away.screenshot({ path: join(OUT, "account-elsewhere.png") });

    // A new password, proven with the current one.
    await away.click("#account summary");
    await away.fill("#password-current", "a phrase only ada knows");
    await away.fill("#password-new", "an even longer phrase now");
    await away.click("#password-form button[type=submit]");
    await away.waitForFunction(() => document.getElementById("account-status")?.textContent === "Password changed.");

    // Everything held about her, downloaded: both devices' labels are one player's.
    const [download] = await Promise.all([away.waitForEvent("download"), away.click("#export")]);
    const file = await download.path();
    const data = JSON.parse(await import("node:fs").then((fs) => fs.readFileSync(file, "utf8")));
    assert.equal(data.format, "emofy-export-v1");
    assert.equal(data.username, "ada_1");
    assert.equal(data.labels.length, 2);
  } finally {
    await browser.close();
    await server.stop();
  }
});
