import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DOCUMENT_FILES, ROOT } from '../../scripts/openapi.js';

/**
 * Everything the wire contract (docs/contract.md) names is in openapi.yaml: every public route
 * with its success status, and every error code of §10 under its status.
 */

type Json = Record<string, any>;
const doc = parse(readFileSync(path.join(ROOT, DOCUMENT_FILES.public), 'utf8')) as Json;

/** The contract, kept in the repository beside the rest of the documentation. */
const spec = readFileSync(path.join(ROOT, 'docs', 'contract.md'), 'utf8');

/** "| `POST /v1/keys` | **201** | …" and every other `METHOD /v1/...` the spec names. */
function specRoutes(): Map<string, string> {
  const routes = new Map<string, string>();
  for (const m of spec.matchAll(/`(GET|POST|PATCH|PUT|DELETE) (\/v1\/[^`?\s]*)[^`]*`(?:\s*\|\s*\**(\d{3})\**)?/g)) {
    const key = `${m[1]} ${m[2]}`;
    if (!routes.has(key) || m[3]) routes.set(key, m[3] ?? routes.get(key) ?? '200');
  }
  return routes;
}

/** The §10 table: each code with its status. */
function specErrorCodes(): Map<string, string> {
  const section = spec.slice(spec.indexOf('## 10.'));
  const codes = new Map<string, string>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 4 || !/^\d{3}/.test(cells[2] ?? '')) continue;
    // Backticked names in the first cell, minus what a "(details tier, verb)" note names.
    const first = cells[1]!.replace(/\([^)]*\)/g, '');
    for (const m of first.matchAll(/`([a-z0-9_]+)`/g)) codes.set(m[1]!, cells[2]!.slice(0, 3));
  }
  return codes;
}

/** The error codes a response schema (possibly a $ref or an anyOf of them) can carry. */
function codesOf(schema: Json | undefined): string[] {
  if (!schema) return [];
  if (schema.$ref) return codesOf(doc.components.schemas[schema.$ref.split('/').pop()]);
  if (schema.anyOf || schema.oneOf) return (schema.anyOf ?? schema.oneOf).flatMap(codesOf);
  return schema.properties?.error?.properties?.code?.enum ?? [];
}

/** Codes only the calling/SMS plane produces (spec §2): documented as schemas, on no route here. */
const OUTSIDE_THIS_PLANE = new Set(['agent_permission_denied', 'agent_cap_exceeded', 'm3_fraud_block']);

describe('openapi.yaml covers the wire contract (docs/contract.md)', () => {
  it('the spec parses into the routes and codes it names', () => {
    expect([...specRoutes()].map(([r, s]) => `${r} ${s}`).sort()).toEqual([
      'DELETE /v1/keys/{id} 200',
      'GET /v1/audit 200',
      'GET /v1/keys 200',
      'GET /v1/keys/{id} 200',
      'PATCH /v1/keys/{id} 200',
      'POST /v1/agents/self/rotate-key 200',
      'POST /v1/keys 201',
      'POST /v1/keys/{id}/rotate 201',
    ]);
    expect(specErrorCodes().size).toBeGreaterThanOrEqual(18);
  });

  it('every public route of the spec is documented, with its success status', () => {
    const missing: string[] = [];
    for (const [route, success] of specRoutes()) {
      const [method, p] = route.split(' ') as [string, string];
      const op = doc.paths[p]?.[method.toLowerCase()];
      if (!op) missing.push(route);
      else expect(Object.keys(op.responses), route).toContain(success);
    }
    expect(missing.join(', '), 'spec routes missing from openapi.yaml').toBe('');
  });

  it('every error code of §10 has a named schema under its status', () => {
    const schemas: Json = doc.components.schemas;
    for (const [code, status] of specErrorCodes()) {
      const holders = Object.entries<Json>(schemas).filter(([, s]) => codesOf(s).includes(code));
      const specific = holders.filter(([name]) => name !== 'ErrorEnvelope');
      expect(specific.length, `${code}: no error schema lists it`).toBeGreaterThan(0);
      expect(specific.some(([, s]) => String(s.description).startsWith(status)), `${code}: no schema documents it as ${status}`).toBe(true);
    }
  });

  it('every code a route of this plane can produce is on some route, under its status', () => {
    const onRoutes = new Map<string, Set<string>>();
    for (const item of Object.values<Json>(doc.paths))
      for (const op of Object.values<Json>(item))
        for (const [status, res] of Object.entries<Json>(op.responses))
          for (const code of codesOf(res.content?.['application/json']?.schema)) (onRoutes.get(code) ?? onRoutes.set(code, new Set()).get(code)!).add(status);
    const missing: string[] = [];
    for (const [code, status] of specErrorCodes()) {
      if (OUTSIDE_THIS_PLANE.has(code)) continue;
      if (!onRoutes.get(code)?.has(status)) missing.push(`${code} (${status})`);
    }
    expect(missing.join(', '), 'codes no documented route answers').toBe('');
  });
});
