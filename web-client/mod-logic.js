// @ts-check
// Pure helpers of the moderator console (unit-tested with node --test).

export const EMOTIONS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"];

/** A share in [0, 1] as a whole percentage ("37%"); out-of-range values are clamped. @param {number} x */
export function percent(x) {
  const v = Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
  return `${Math.round(v * 100)}%`;
}

/** Each count as a share of the largest (for bar lengths); all zero when every count is 0. @param {number[]} counts */
export function shares(counts) {
  const max = Math.max(0, ...counts);
  return counts.map((c) => (max > 0 ? c / max : 0));
}

/** A difference of two shares in percentage points, signed ("+3.5 pp"). @param {number} x */
function points(x) {
  const v = Number.isFinite(x) ? x * 100 : 0;
  return `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(1)} pp`;
}

/**
 * Why the gate refused a candidate, in words.
 * @param {{reason: string, [k: string]: any}} r a refusal as the registry stores it
 */
export function refusalText(r) {
  switch (r.reason) {
    case "too_few_test_images": return `only ${r.images} test faces (needs ${r.needed})`;
    case "not_better": return `gain ${points(r.gain)} (needs ${points(r.needed)})`;
    case "not_significant": return `McNemar p = ${Number(r.p_value).toFixed(3)} (needs < ${r.alpha})`;
    case "recall_dropped": return `${r.class} recall fell ${percent(r.champion)} → ${percent(r.candidate)}`;
    case "worse_on_reference": return `worse on the reference set: ${percent(r.champion)} → ${percent(r.candidate)}`;
    default: return String(r.reason);
  }
}

/**
 * The gate's decision on one version, in words.
 * @param {any} gate `null` for an installed model
 */
export function gateText(gate) {
  if (!gate) return "installed (no gate)";
  const wins = `${gate.candidate_only} faces only it got right, ${gate.champion_only} only its parent did, p = ${Number(gate.p_value).toFixed(3)}`;
  if (gate.promote) return `passed: ${wins}`;
  return `refused: ${(gate.refusals ?? []).map(refusalText).join("; ")} (${wins})`;
}

/**
 * Each version's accuracy on the test split when it was judged, oldest
 * first; a version judged only as a parent (an installed model) takes the
 * accuracy its child's gate measured for it. Versions never measured are
 * left out.
 * @param {any[]} models the registry's rows, newest first
 * @returns {{version: string, accuracy: number}[]}
 */
export function accuracyByVersion(models) {
  /** @type {Map<string, number>} */
  const asParent = new Map();
  for (const m of models) {
    if (m.parent && m.parent_test_accuracy != null && !asParent.has(m.parent)) asParent.set(m.parent, m.parent_test_accuracy);
  }
  return [...models].reverse().flatMap((m) => {
    const accuracy = m.test_accuracy ?? asParent.get(m.version);
    return accuracy == null ? [] : [{ version: m.version, accuracy }];
  });
}

/**
 * Whether promoting a version needs the admin to overrule the registry (a
 * candidate the gate refused, or a version taken back); `null` when it
 * cannot be promoted at all (it is the champion).
 * @param {{state: string, gate_passed: boolean}} m
 */
export function promotion(m) {
  if (m.state === "champion") return null;
  return { force: m.state === "rolled_back" || (m.state === "candidate" && !m.gate_passed) };
}
