// @ts-check
// Pure helpers of the leaderboard page (unit-tested with node --test).

/**
 * How each row of `next` moved since `prev`: "entered" (new in the list),
 * "up" or "down" (rank changed). Unchanged rows are left out.
 * @param {{player: string, rank: number}[]} prev
 * @param {{player: string, rank: number}[]} next
 * @returns {Map<string, "entered" | "up" | "down">}
 */
export function diffRows(prev, next) {
  const before = new Map(prev.map((r) => [r.player, r.rank]));
  /** @type {Map<string, "entered" | "up" | "down">} */
  const out = new Map();
  for (const r of next) {
    const was = before.get(r.player);
    if (was === undefined) out.set(r.player, "entered");
    else if (r.rank < was) out.set(r.player, "up");
    else if (r.rank > was) out.set(r.player, "down");
  }
  return out;
}
