import { describe, expect, it } from 'vitest';
import { postgresBoundCeiling } from '../../bench/lib/ceiling.js';

// The arithmetic behind the bench's "Postgres-bound ceiling" table (bench/lib/ceiling.ts).
describe('postgresBoundCeiling', () => {
  const base = { cores: 2, baselineRps: 20_000, baselineDbUs: 20, target: 0.45 };

  it('is 1 for a scenario asking Postgres what the baseline asks, with no page', () => {
    const c = postgresBoundCeiling({ ...base, scenarioDbUs: 20 });
    expect(c.baselineUs).toBe(100);
    expect(c.ratio).toBeCloseTo(1, 10);
  });

  it('is the floor ratio when only the page differs', () => {
    expect(postgresBoundCeiling({ ...base, scenarioDbUs: 20, floorRatio: 0.67 }).ratio).toBeCloseTo(0.67, 10);
  });

  it('falls as Postgres does more per request', () => {
    const ratios = [20, 100, 300, 600].map((db) => postgresBoundCeiling({ ...base, scenarioDbUs: db, floorRatio: 0.7 }).ratio);
    for (let i = 1; i < ratios.length; i++) expect(ratios[i]!).toBeLessThan(ratios[i - 1]!);
    // 100 µs per baseline request; the page makes it 100 / 0.7; 600 µs of Postgres instead of 20:
    expect(ratios[3]).toBeCloseTo(100 / (100 / 0.7 - 20 + 600), 10);
  });

  it('names the Postgres CPU per request at which the target is just reached', () => {
    const c = postgresBoundCeiling({ ...base, scenarioDbUs: 266, floorRatio: 0.67 });
    expect(c.ratio).toBeLessThan(0.45);
    const atTarget = postgresBoundCeiling({ ...base, scenarioDbUs: c.dbUsForTarget, floorRatio: 0.67 });
    expect(atTarget.ratio).toBeCloseTo(0.45, 10);
  });

  it('says none when the page alone rules the target out', () => {
    expect(postgresBoundCeiling({ ...base, scenarioDbUs: 20, floorRatio: 0.3 }).dbUsForTarget).toBe(0);
  });

  it("reproduces the README's list row of commit 28c255d's run", () => {
    // baseline 21,443 req/s around the list run, Postgres 17 µs vs 266 µs, floor 0.67 (bench/results.json then)
    const c = postgresBoundCeiling({ cores: 2, baselineRps: 21_443, baselineDbUs: 17, scenarioDbUs: 266, floorRatio: 0.674, target: 0.45 });
    expect(c.ratio).toBeCloseTo(0.24, 2);
    expect(Math.round(c.dbUsForTarget)).toBeGreaterThan(80);
    expect(Math.round(c.dbUsForTarget)).toBeLessThan(90);
  });
});
