// @ts-check
// A guest plays five rounds in a real browser and sees the score and the
// leaderboard change; a wall display sees it live; a hostile display name
// shows as text everywhere.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, launchBrowser, playRound, OUT } from "./harness.js";

const NAME = "<img src=x onerror=alert(1)>";

test("a guest plays 5 rounds and sees the score and leaderboard change", async () => {
  const server = await startServer({ EMOFY_DEMO__IMAGES: "5" });
  const browser = await launchBrowser();
  try {
    // Someone labelled every face before: the guest's matching answers earn points.
    const first = await browser.newPage();
    await first.goto(server.url);
    await first.fill("#name", "Ada_1");
    await first.click("button[type=submit]");
    for (let i = 0; i < 5; i++) {
      await playRound(first, "happy", true);
      await first.click("#next");
    }

    // A wall display in another browser context, watching the board live.
    const wall = await (await browser.newContext()).newPage();
    await wall.goto(`${server.url}/board.html`);
    await wall.waitForFunction(() => document.getElementById("empty")?.hidden === false);
    assert.equal(await wall.$$eval("#rows li", (l) => l.length), 0);

    const gail = await browser.newContext();
    const page = await gail.newPage();
    /** @type {string[]} */
    const dialogs = [];
    page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
    await page.goto(server.url);
    await page.screenshot({ path: join(OUT, "play-join.png") });
    await page.fill("#name", NAME);
    await page.click("button[type=submit]");
    await page.waitForSelector("#game:not([hidden])");
    assert.equal(await page.textContent("#me"), NAME);
    assert.equal(await page.textContent("#score"), "0");
    // The serving model, and how this player compares with it (nothing settled yet).
    await page.waitForFunction(() => !document.getElementById("versus")?.hidden);
    assert.match(await page.textContent("#versus") ?? "",
      /^Model mini-xception-fer2013-\w+\. Once the crowd settles faces you labelled, you will see how you compare with it\.$/);
    // Nobody has points yet: the board says so.
    assert.equal(await page.isVisible("#board-empty"), true);
    for (let i = 0; i < 5; i++) {
      await playRound(page, "happy");
      const prompt = await page.textContent("#prompt");
      assert.match(prompt ?? "", /^The predicted emotion is \w+\. Select the correct one!$/);
      if (i === 0) await page.screenshot({ path: join(OUT, "play-result.png") });
      if (i < 4) await page.click("#next");
    }
    await page.waitForFunction(() => Number(document.getElementById("score")?.textContent) > 0);
    // The board now shows the guest at the top, with the score the page shows.
    await page.click("#next");
    await page.waitForFunction(() =>
      [...document.querySelectorAll("#board li")].some((li) => li.textContent?.startsWith("<img")));
    const score = await page.textContent("#score");
    const board = await page.$$eval("#board li", (lis) => lis.map((li) => li.textContent ?? ""));
    assert.equal(board[0], `${NAME} — ${score}`, JSON.stringify(board));
    assert.equal(await page.$$eval("img:not(#face):not(#notice-face)", (imgs) => imgs.length), 0, "the name is never markup");
    assert.equal(await page.isVisible("#board-empty"), false);
    assert.match(await page.textContent("#you") ?? "", /^You: #1 with \d+ points$/);
    assert.deepEqual(dialogs, []);
    await page.screenshot({ path: join(OUT, "play-board.png"), fullPage: true });

    // The wall saw the guest enter at rank 1, live, with the same score; no reload.
    await wall.waitForFunction(([s, n]) => {
      const li = document.querySelector("#rows li");
      return li?.querySelector(".name")?.textContent === n && li?.querySelector(".score")?.textContent === s;
    }, [score, NAME]);
    assert.equal(await wall.$$eval("img", (imgs) => imgs.length), 0, "the name is never markup");
    assert.equal(await wall.isVisible("#empty"), false);
    await wall.screenshot({ path: join(OUT, "board-live.png") });
    // Tabs by keyboard: today's board has the guest too.
    await wall.focus("#tab-all_time");
    await wall.keyboard.press("ArrowRight");
    assert.equal(await wall.getAttribute("#tab-daily", "aria-selected"), "true");
    await wall.waitForFunction((n) => document.querySelector("#rows li .name")?.textContent === n, NAME);
    // A signed-in player's own board shows where they stand.
    const mine = await gail.newPage();
    await mine.goto(`${server.url}/board.html`);
    await mine.waitForFunction(() => (document.getElementById("you")?.textContent ?? "").startsWith("You: #1"));
    await mine.waitForFunction(() => document.querySelectorAll("#around li.me").length === 1);
    await mine.screenshot({ path: join(OUT, "board-mine.png") });
    assert.equal(await mine.$$eval("img", (imgs) => imgs.length), 0, "the name is never markup");
    let alerted = false;
    for (const p of [wall, mine]) p.on("dialog", () => { alerted = true; });
    await wall.waitForTimeout(300);
    assert.equal(alerted, false);
  } finally {
    await browser.close();
    await server.stop();
  }
});

test("on a fresh server the first answer is checked against the face's drawn emotion", async () => {
  const server = await startServer({ EMOFY_DEMO__IMAGES: "3", EMOFY_TRUTH__TRUST__KNOWN_LABELS: "true" });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.fill("#name", "Newbie");
    await page.click("button[type=submit]");
    await playRound(page, "happy");
    const text = (await page.textContent("#feedback")) ?? "";
    assert.match(text, /This face was drawn as (angry|disgust|fear|happy|neutral|sad|surprise)\./);
    assert.doesNotMatch(text, /First opinion/);
  } finally {
    await browser.close();
    await server.stop();
  }
});
