import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import { ADMIN_TOKEN, call } from './harness.js';

/** A scrape: each sample line's series (`name{labels}` exactly as written) → its value. */
export type Scrape = Map<string, number>;

/**
 * Parses Prometheus' text exposition format: comments skipped, one `series value` per line. Label
 * values here never hold spaces, so the last space splits series from value.
 */
export function parsePrometheus(text: string): Scrape {
  const samples: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    const text = line.slice(at + 1);
    // prom-client writes NaN as `Nan`; Prometheus parses floats case-insensitively (Go's ParseFloat).
    const value = /^nan$/i.test(text) ? Number.NaN : Number(text);
    expect(Number.isNaN(value) && !/^nan$/i.test(text), `not a sample line: ${line}`).toBe(false);
    samples.set(line.slice(0, at), value);
  }
  return samples;
}

/** `name{a="x",b="y"}` as prom-client writes it (labels in the order given). */
export const series = (name: string, labels: Record<string, string> = {}) => {
  const entries = Object.entries(labels);
  return entries.length === 0 ? name : `${name}{${entries.map(([k, v]) => `${k}="${v}"`).join(',')}}`;
};

/** GET /metrics on the admin listener; fails the test unless it is 200 in the text format. */
export async function scrape(admin: FastifyInstance, token = ADMIN_TOKEN): Promise<Scrape> {
  const res = await call(admin, 'GET', '/metrics', { token });
  expect(res.status, res.raw.slice(0, 300)).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(res.raw);
}

/** How much a series grew between two scrapes (a series absent before counts from 0). */
export const delta = (before: Scrape, after: Scrape, key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
