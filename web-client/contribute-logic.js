// @ts-check
// Pure helpers of the contribute page (unit-tested with node --test).

/**
 * Whether an upload passes the "My images" filters: its own label (empty:
 * any) and a first day (YYYY-MM-DD, UTC; empty: any).
 * @param {{label: string|null, created_ms: number}} u
 * @param {{label: string, from: string}} f
 */
export function matches(u, f) {
  if (f.label && u.label !== f.label) return false;
  if (f.from) {
    const start = Date.parse(`${f.from}T00:00:00Z`);
    if (Number.isFinite(start) && u.created_ms < start) return false;
  }
  return true;
}
