// @ts-check
import { test } from "node:test";
import assert from "node:assert/strict";
import { EMOTIONS, percent, shares } from "../mod-logic.js";

test("percentages are whole and clamped", () => {
  assert.equal(percent(0.374), "37%");
  assert.equal(percent(1.2), "100%");
  assert.equal(percent(-1), "0%");
  assert.equal(percent(Number.NaN), "0%");
  assert.deepEqual(EMOTIONS, ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]);
});

test("bar shares are relative to the largest count", () => {
  assert.deepEqual(shares([2, 4, 0]), [0.5, 1, 0]);
  assert.deepEqual(shares([0, 0]), [0, 0]);
  assert.deepEqual(shares([]), []);
});
