/*
 * The Postgres-bound ceiling of a scenario: the ratio it would reach if keyplane's own process (and
 * the load generator) cost no more per request than the bare baseline app answering the same body
 * (the floor), while Postgres kept doing what it does for keyplane now.
 *
 * The bench saturates the machine, so a run's throughput is the machine's CPU over the CPU one
 * request costs, all processes together. One baseline request costs T_B = cores / baseline req/s.
 * The baseline route answering the scenario's body (the floor run) costs T_F = T_B / floor ratio
 * (T_B when the scenario has no page floor). Swapping the baseline's Postgres work for the scenario's
 * gives T_F - pg_B + pg_S per request, so the ratio is T_B / (T_F - pg_B + pg_S).
 *
 * It errs upward: T_B counts every core as busy during the baseline (an idle share makes T_B, and
 * so the ceiling, larger than the truth), and keyplane's process does more than the bare app. A
 * target above the ceiling cannot be met by work in keyplane's process at all, only by asking less
 * of Postgres; `dbUsForTarget` says how little Postgres would have to spend per request.
 */

export interface CeilingInput {
  cores: number;
  baselineRps: number;
  /** Postgres' CPU per baseline request, µs (its one primary-key SELECT). */
  baselineDbUs: number;
  /** Postgres' CPU per scenario request, µs (every Postgres process, as the bench samples them). */
  scenarioDbUs: number;
  /** The floor ratio when the scenario answers a page (bench/run.ts), else undefined. */
  floorRatio?: number;
  target: number;
}

export interface Ceiling {
  /** µs of machine CPU per baseline request. */
  baselineUs: number;
  ratio: number;
  /** Postgres' CPU per request at which the target would just be reached; 0 when even none would do. */
  dbUsForTarget: number;
}

export function postgresBoundCeiling(i: CeilingInput): Ceiling {
  const baselineUs = (i.cores * 1e6) / i.baselineRps;
  const floorUs = baselineUs / (i.floorRatio ?? 1);
  const ratio = baselineUs / (floorUs - i.baselineDbUs + i.scenarioDbUs);
  const dbUsForTarget = Math.max(0, baselineUs / i.target - floorUs + i.baselineDbUs);
  return { baselineUs, ratio, dbUsForTarget };
}
