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
