// @ts-check
import { test } from "node:test";
import assert from "node:assert/strict";
import { matches } from "../contribute-logic.js";

test("my-images filters by label and first day", () => {
  const u = { label: "sad", created_ms: Date.parse("2026-11-26T10:00:00Z") };
  assert.equal(matches(u, { label: "", from: "" }), true);
  assert.equal(matches(u, { label: "sad", from: "" }), true);
  assert.equal(matches(u, { label: "happy", from: "" }), false);
  assert.equal(matches(u, { label: "", from: "2026-11-26" }), true);
  assert.equal(matches(u, { label: "", from: "2026-11-27" }), false);
  assert.equal(matches({ label: null, created_ms: 0 }, { label: "sad", from: "" }), false);
});
