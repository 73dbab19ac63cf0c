// @ts-check
// Every page, on a laptop and on a phone: every image has a text
// alternative, every form control a label, every button a name; nothing
// overflows the phone's width; nothing is loaded from another host.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, launchBrowser, OUT } from "./harness.js";

test("pages are labelled, fit a phone, and load nothing from elsewhere", async () => {
  const server = await startServer({ EMOFY_DEMO__IMAGES: "3" });
  const browser = await launchBrowser();
  try {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await ctx.newPage();
    /** @type {string[]} */
    const foreign = [];
    page.on("request", (r) => { if (!r.url().startsWith(server.url) && !r.url().startsWith("blob:") && !r.url().startsWith("data:")) foreign.push(r.url()); });
    await page.goto(server.url);
    await page.fill("#name", "Phone");
    await page.click("button[type=submit]");
    await page.waitForFunction(() => (document.getElementById("prompt")?.textContent ?? "").includes("predicted"));
    for (const path of ["/", "/board.html", "/contribute.html", "/mod.html"]) {
      await page.goto(server.url + path);
      await page.waitForLoadState("networkidle");
      const problems = await page.evaluate(() => {
        /** @type {string[]} */
        const out = [];
        for (const img of document.querySelectorAll("img")) if (!img.hasAttribute("alt")) out.push(`img without alt: ${img.id}`);
        for (const el of document.querySelectorAll("input, select")) {
          const id = el.id;
          const labelled = (id && document.querySelector(`label[for="${id}"]`)) || el.closest("label") || el.getAttribute("aria-label");
          if (!labelled) out.push(`control without a label: ${id || el.outerHTML}`);
        }
        for (const b of document.querySelectorAll("button")) {
          if (!(b.textContent ?? "").trim() && !b.getAttribute("aria-label")) out.push(`button without a name: ${b.outerHTML}`);
        }
        if (document.documentElement.scrollWidth > window.innerWidth + 1) out.push(`wider than the phone: ${document.documentElement.scrollWidth}px`);
        if (!document.documentElement.lang) out.push("no lang");
        return out;
      });
      assert.deepEqual(problems, [], path);
      const name = path === "/" ? "index" : path.slice(1).replace(".html", "");
      await page.screenshot({ path: join(OUT, `phone-${name}.png`), fullPage: true });
    }
    assert.deepEqual(foreign, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
