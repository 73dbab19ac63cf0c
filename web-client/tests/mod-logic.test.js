// @ts-check
import { test } from "node:test";
import assert from "node:assert/strict";
import { EMOTIONS, percent } from "../mod-logic.js";

test("percentages are whole and clamped", () => {
  assert.equal(percent(0.374), "37%");
  assert.equal(percent(1.2), "100%");
  assert.equal(percent(-1), "0%");
  assert.equal(percent(Number.NaN), "0%");
  assert.deepEqual(EMOTIONS, ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]);
});
