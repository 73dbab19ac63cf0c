// @ts-check
import { test } from "node:test";
import assert from "node:assert/strict";
import { diffRows } from "../board-logic.js";

test("rank changes are classified", () => {
  const prev = [{ player: "a", rank: 1 }, { player: "b", rank: 2 }, { player: "c", rank: 3 }];
  const next = [{ player: "b", rank: 1 }, { player: "a", rank: 2 }, { player: "d", rank: 3 }];
  assert.deepEqual([...diffRows(prev, next)], [["b", "up"], ["a", "down"], ["d", "entered"]]);
  assert.equal(diffRows(next, next).size, 0);
  assert.deepEqual([...diffRows([], [{ player: "x", rank: 1 }])], [["x", "entered"]]);
});
