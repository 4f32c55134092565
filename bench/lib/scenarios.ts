import { randomUUID } from 'node:crypto';
import type { Recipe } from './load.js';
import type { Tenant } from './seed.js';

/*
 * What each scenario sends. The targets are the issues' (ratio of throughput to the baseline's,
 * measured in the same run; issue 7's, and issue 9's for verify); `null` means "reported, no target".
 */

type Group = 'small' | 'scale';

export interface Scenario {
  id: string;
  label: string;
  group: Group;
  /** 'admin' = the internal listener (verify). */
  listener: 'public' | 'admin';
  recipe: Recipe;
  target: number | null;
  /** The p99 the scenario must stay under at 50 connections, ms: 50 (issue 7) unless an issue says less. */
  p99TargetMs?: number;
  /**
   * Also measure the response-size floor: the body this scenario answered, served from memory by
   * the baseline app (no auth, no database), for the scenarios whose responses are large pages.
   */
  floor?: boolean;
}

const json = { 'content-type': 'application/json' };
const bearer = (token: string) => ({ ...json, authorization: `Bearer ${token}` });

export interface World {
  read: Tenant;
  readKeyId: string;
  mint: Tenant;
  rotate: Tenant;
  rotatePool: string[];
  scale?: { tenant: Tenant; keyId: string };
  verifyKey?: string;
  /** A depth-3 delegated key (root, 1, 2, 3, all capped at 100M cents); absent in a build without delegation. */
  delegatedKey?: string;
  adminToken: string;
}

/** Reads that are also run at scale (100k keys under one service key, 1M events). */
function reads(group: Group, t: Tenant, keyId: string): Scenario[] {
  const tag = group === 'scale' ? ' (100k keys, 1M events)' : '';
  return [
    {
      id: `${group}.get`,
      label: `GET /v1/keys/{id}${tag}`,
      group,
      listener: 'public',
      recipe: { method: 'GET', path: `/v1/keys/${keyId}`, headers: bearer(t.serviceKey), expect: 200 },
      target: 0.7,
    },
    {
      id: `${group}.list`,
      label: `GET /v1/keys?limit=50${tag}`,
      group,
      listener: 'public',
      recipe: { method: 'GET', path: '/v1/keys?limit=50', headers: bearer(t.serviceKey), expect: 200 },
      target: 0.45,
      floor: group === 'small',
    },
    {
      id: `${group}.list_filtered`,
      label: `GET /v1/keys?limit=50&agent_label=fleet:17${tag}`,
      group,
      listener: 'public',
      // At scale the label names 50 keys (bench/lib/seed.ts): a filtered page of the unfiltered one's size.
      recipe: { method: 'GET', path: '/v1/keys?limit=50&agent_label=fleet:17', headers: bearer(t.serviceKey), expect: 200 },
      target: 0.45,
    },
    {
      id: `${group}.audit`,
      label: `GET /v1/audit?limit=100${tag}`,
      group,
      listener: 'public',
      recipe: { method: 'GET', path: '/v1/audit?limit=100', headers: bearer(t.apiKey), expect: 200 },
      target: 0.4,
      floor: group === 'small',
    },
  ];
}

/** Mint and rotate: each request writes a key (and its event). */
function writes(w: World): Scenario[] {
  let nextRotation = 0;
  return [
    {
      id: 'small.mint',
      label: 'POST /v1/keys',
      group: 'small',
      listener: 'public',
      recipe: {
        method: 'POST',
        path: '/v1/keys',
        headers: bearer(w.mint.serviceKey),
        body: JSON.stringify({ name: 'bench agent', permissions: 'call_only', monthly_cap_cents: 5000 }),
        next: () => ({ headers: { 'idempotency-key': randomUUID() } }),
        expect: 201,
      },
      target: 0.35,
    },
    {
      id: 'small.rotate',
      label: 'POST /v1/keys/{id}/rotate',
      group: 'small',
      listener: 'public',
      recipe: {
        method: 'POST',
        path: `/v1/keys/${w.rotatePool[0]}/rotate`,
        headers: bearer(w.rotate.serviceKey),
        // Each pool key is rotated once; past the end of the pool the answers are 404 (counted as errors).
        next: () => ({
          path: `/v1/keys/${w.rotatePool[nextRotation++ % w.rotatePool.length]}/rotate`,
          headers: { 'idempotency-key': randomUUID() },
        }),
        expect: 201,
      },
      target: null,
    },
  ];
}

export function scenarios(w: World): Scenario[] {
  const list: Scenario[] = [
    ...reads('small', w.read, w.readKeyId),
    ...writes(w),
    {
      id: 'small.unauth',
      label: '401, malformed key',
      group: 'small',
      listener: 'public',
      recipe: { method: 'GET', path: `/v1/keys/${w.readKeyId}`, headers: bearer('sk_svc_test_not-a-key'), expect: 401 },
      target: 1.0,
    },
  ];
  if (w.verifyKey) list.push(...verifies(w, w.verifyKey, ''));
  if (w.delegatedKey) list.push(...verifies(w, w.delegatedKey, '_delegated'));
  if (w.scale) list.push(...reads('scale', w.scale.tenant, w.scale.keyId));
  return list;
}

/**
 * POST /internal/v1/verify (issue 9), without and with a debit: with a key minted by the service key
 * (suffix ''), or with a depth-3 delegated key (suffix '_delegated'), whose verify also reads its
 * three ancestors' live rows and whose debit is held to, and charged to, every ancestor's cap too.
 */
function verifies(w: World, key: string, suffix: '' | '_delegated'): Scenario[] {
  const admin = { ...json, authorization: `Bearer ${w.adminToken}` };
  const through = suffix ? ', depth-3 delegated key' : '';
  return [
    {
      id: `small.verify${suffix}`,
      label: `POST /internal/v1/verify${through}`,
      group: 'small',
      listener: 'admin',
      recipe: { method: 'POST', path: '/internal/v1/verify', headers: admin, body: JSON.stringify({ key, verb: 'read' }), expect: 200 },
      // Issue 9: verify without cost >= 0.8 of the baseline, with a debit >= 0.4, p99 < 20 ms; a
      // delegated key's verify is reported against the same targets.
      target: 0.8,
      p99TargetMs: 20,
    },
    {
      id: `small.verify_debit${suffix}`,
      label: `POST /internal/v1/verify + 1¢ debit${through}`,
      group: 'small',
      listener: 'admin',
      recipe: {
        method: 'POST',
        path: '/internal/v1/verify',
        headers: admin,
        body: '{}',
        next: () => ({ body: JSON.stringify({ key, verb: 'call', cost_cents: 1, request_id: randomUUID() }) }),
        expect: 200,
      },
      target: 0.4,
      p99TargetMs: 20,
    },
  ];
}
