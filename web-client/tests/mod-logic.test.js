// @ts-check
import { test } from "node:test";
import assert from "node:assert/strict";
import { EMOTIONS, accuracyByVersion, gateText, percent, promotion, refusalText, shares } from "../mod-logic.js";

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

test("gate decisions read as sentences", () => {
  assert.equal(gateText(null), "installed (no gate)");
  const wins = { candidate_only: 12, champion_only: 3, p_value: 0.0176 };
  assert.equal(gateText({ ...wins, promote: true, refusals: [] }),
    "passed: 12 faces only it got right, 3 only its parent did, p = 0.018");
  assert.equal(gateText({ ...wins, promote: false, refusals: [
    { reason: "not_better", gain: 0.004, needed: 0.01 },
    { reason: "recall_dropped", class: "fear", champion: 0.5, candidate: 0.25 },
  ] }), "refused: gain +0.4 pp (needs +1.0 pp); fear recall fell 50% → 25% (12 faces only it got right, 3 only its parent did, p = 0.018)");
  assert.equal(refusalText({ reason: "too_few_test_images", images: 4, needed: 20 }), "only 4 test faces (needs 20)");
  assert.equal(refusalText({ reason: "not_better", gain: -0.125, needed: 0.01 }), "gain −12.5 pp (needs +1.0 pp)");
  assert.equal(refusalText({ reason: "not_significant", p_value: 0.2, alpha: 0.05 }), "McNemar p = 0.200 (needs < 0.05)");
  assert.equal(refusalText({ reason: "worse_on_reference", champion: 0.6, candidate: 0.55 }), "worse on the reference set: 60% → 55%");
  assert.equal(refusalText({ reason: "something_new" }), "something_new");
});

test("accuracy per version runs oldest first and fills an installed parent from its child's gate", () => {
  const models = [
    { version: "c", parent: "b", test_accuracy: 0.8, parent_test_accuracy: 0.7 },
    { version: "b", parent: "a", test_accuracy: 0.7, parent_test_accuracy: 0.3 },
    { version: "a", parent: null, test_accuracy: null, parent_test_accuracy: null },
    { version: "z", parent: null, test_accuracy: null, parent_test_accuracy: null },
  ];
  assert.deepEqual(accuracyByVersion(models), [
    { version: "a", accuracy: 0.3 },
    { version: "b", accuracy: 0.7 },
    { version: "c", accuracy: 0.8 },
  ]);
  assert.deepEqual(accuracyByVersion([]), []);
});

test("which versions an admin may promote, and which need overruling", () => {
  assert.equal(promotion({ state: "champion", gate_passed: true }), null);
  assert.deepEqual(promotion({ state: "candidate", gate_passed: true }), { force: false });
  assert.deepEqual(promotion({ state: "candidate", gate_passed: false }), { force: true });
  assert.deepEqual(promotion({ state: "retired", gate_passed: false }), { force: false });
  assert.deepEqual(promotion({ state: "rolled_back", gate_passed: true }), { force: true });
});
