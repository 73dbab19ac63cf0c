// @ts-check
// Pure helpers of the moderator console (unit-tested with node --test).

export const EMOTIONS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"];

/** A share in [0, 1] as a whole percentage ("37%"); out-of-range values are clamped. @param {number} x */
export function percent(x) {
  const v = Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
  return `${Math.round(v * 100)}%`;
}
