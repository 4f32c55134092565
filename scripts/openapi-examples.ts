/**
 * Examples for the OpenAPI documents, taken from real responses: a fixed scenario drives the apps
 * (in-memory database) through each documented operation, and the bodies it sees are recorded
 * with ids, times and secrets replaced by stable stand-ins, so the same code records the same
 * bytes. Steps whose route is not in the document are left out.
 */
import type { FastifyInstance } from 'fastify';
import type { DocumentExamples, OperationExamples } from '../src/http/openapi/document.js';

type Json = Record<string, any>;

interface Recorder {
  public: DocumentExamples;
  internal: DocumentExamples;
}

function documentPath(doc: Json, url: string): string | null {
  const bare = url.split('?')[0]!;
  for (const p of Object.keys(doc.paths)) {
    const re = new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+')}$`);
    if (re.test(bare)) return p;
  }
  return null;
}

async function step(
  app: FastifyInstance,
  into: DocumentExamples,
  method: string,
  url: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Json | undefined> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const res = await app.inject({ method: method as 'GET', url, headers, payload: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const body = res.body ? (JSON.parse(res.body) as Json) : undefined;
  const p = documentPath(app.swagger() as Json, url);
  const op = p ? (app.swagger() as Json).paths[p][method.toLowerCase()] : undefined;
  if (!p || !op || !op.responses[String(res.statusCode)]) return body;
  const key = `${method} ${p}`;
  const entry: OperationExamples = (into[key] ??= { responses: {} });
  if (opts.body !== undefined && res.statusCode < 300) entry.request ??= opts.body;
  entry.responses[String(res.statusCode)] ??= body;
  return body;
}

/** Runs the scenario; returns raw (not yet normalized) examples. */
export async function recordScenario(app: FastifyInstance, admin: FastifyInstance, adminToken: string): Promise<Recorder> {
  const pub: DocumentExamples = {};
  const int: DocumentExamples = {};
  await step(app, pub, 'GET', '/healthz');
  await step(app, pub, 'GET', '/readyz');
  await step(admin, int, 'GET', '/healthz');
  await step(admin, int, 'GET', '/readyz');
  await step(admin, int, 'POST', '/internal/v1/accounts', { body: { name: 'Acme agents' } });
  await step(admin, int, 'POST', '/internal/v1/accounts', { token: adminToken, body: { name: '' } });
  const account = await step(admin, int, 'POST', '/internal/v1/accounts', { token: adminToken, body: { name: 'Acme agents' } });
  const accountId = account?.account?.id as string;
  const sk = await step(admin, int, 'POST', `/internal/v1/accounts/${accountId}/service-keys`, { token: adminToken, body: { environment: 'test', name: 'fleet manager' } });
  await step(admin, int, 'GET', `/internal/v1/accounts/${accountId}/service-keys`, { token: adminToken });
  await step(admin, int, 'PATCH', `/internal/v1/accounts/${accountId}`, { token: adminToken, body: { reuse_reaction: 'revoke_chain' } });
  const ak = await step(admin, int, 'POST', `/internal/v1/accounts/${accountId}/api-keys`, { token: adminToken, body: { environment: 'test', name: 'portal' } });
  const spare = await step(admin, int, 'POST', `/internal/v1/accounts/${accountId}/service-keys`, { token: adminToken, body: { name: 'spare' } });
  const successor = await step(admin, int, 'POST', `/internal/v1/service-keys/${spare?.service_key?.id}/rotate`, { token: adminToken });
  await step(admin, int, 'DELETE', `/internal/v1/service-keys/${successor?.service_key?.id}`, { token: adminToken });
  const portalSpare = await step(admin, int, 'POST', `/internal/v1/accounts/${accountId}/api-keys`, { token: adminToken, body: { name: 'spare portal key' } });
  await step(admin, int, 'DELETE', `/internal/v1/api-keys/${portalSpare?.api_key?.id}`, { token: adminToken });
  await step(admin, int, 'DELETE', `/internal/v1/service-keys/00000000-0000-4000-8000-000000000000`, { token: adminToken });
  await step(admin, int, 'POST', '/internal/v1/bootstrap', { token: adminToken, body: { name: 'smoke test' } });
  const service = sk?.service_key?.plaintext_key as string;
  const apiKey = ak?.api_key?.plaintext_key as string;

  await step(app, pub, 'GET', '/v1/keys', {});
  await step(app, pub, 'GET', '/v1/keys?limit=0', { token: service });
  const mintBody = { name: 'support agent', agent_label: 'support:eu-1', permissions: 'call_only', monthly_cap_cents: 5000, self_rotation: true };
  const minted = await step(app, pub, 'POST', '/v1/keys', { token: service, body: mintBody, headers: { 'idempotency-key': 'mint-support-agent-1' } });
  await step(app, pub, 'POST', '/v1/keys', { token: service, body: { name: 'other' }, headers: { 'idempotency-key': 'mint-support-agent-1' } });
  await step(app, pub, 'POST', '/v1/keys', { token: service, body: { name: 'no key' } });
  const key = minted?.key as Json | undefined;
  await step(app, pub, 'GET', '/v1/keys?limit=10', { token: service });
  await step(app, pub, 'GET', `/v1/keys/${key?.id}`, { token: service });
  await step(app, pub, 'GET', '/v1/keys/00000000-0000-4000-8000-000000000000', { token: service });
  await step(app, pub, 'PATCH', `/v1/keys/${key?.id}`, { token: service, body: { name: 'support agent (EU)', monthly_cap_cents: 10000 } });
  await step(admin, int, 'POST', '/internal/v1/verify', { token: adminToken, body: { key: key?.plaintext_key, verb: 'call' } });
  await step(admin, int, 'POST', '/internal/v1/verify', { token: adminToken, body: { key: key?.plaintext_key, verb: 'call', cost_cents: 250, request_id: 'call-2026-01-15-0001' } });
  await step(app, pub, 'GET', '/v1/agents/self', { token: key?.plaintext_key });
  await step(app, pub, 'POST', '/v1/agents/self/check', { token: key?.plaintext_key, body: { verb: 'call', cost_cents: 400 } });
  await step(app, pub, 'POST', '/v1/agents/self/check', { token: key?.plaintext_key, body: { verb: 'sms' } });
  await step(app, pub, 'GET', '/v1/audit?limit=5', { token: key?.plaintext_key });
  await step(app, pub, 'GET', '/v1/audit?limit=5&exclude=audit_read,agent_self_read', { token: key?.plaintext_key });
  const self = await step(app, pub, 'POST', '/v1/agents/self/rotate-key', { token: key?.plaintext_key, body: { rotationSecret: key?.rotation_secret } });
  await step(app, pub, 'GET', '/v1/audit', { token: (self?.apiKey as string | undefined) ?? apiKey });
  const other = await step(app, pub, 'POST', '/v1/keys', { token: service, body: { name: 'billing agent' }, headers: { 'idempotency-key': 'mint-billing-agent-1' } });
  await step(app, pub, 'POST', `/v1/keys/${other?.key?.id}/rotation-secret`, { token: service, headers: { 'idempotency-key': 'secret-billing-agent-1' } });
  await step(app, pub, 'POST', `/v1/keys/${other?.key?.id}/suspend`, { token: service, body: { reason: 'paused while its task is reviewed' } });
  await step(app, pub, 'POST', `/v1/keys/${other?.key?.id}/resume`, { token: service });
  await step(admin, int, 'POST', `/internal/v1/keys/${other?.key?.id}/suspend`, { token: adminToken, body: { reason: 'abuse report' } });
  await step(admin, int, 'POST', `/internal/v1/keys/${other?.key?.id}/resume`, { token: adminToken });
  const rotated = await step(app, pub, 'POST', `/v1/keys/${other?.key?.id}/rotate`, { token: service, headers: { 'idempotency-key': 'rotate-billing-agent-1' } });
  await step(app, pub, 'GET', `/v1/keys/${rotated?.key?.id}/lineage`, { token: service });
  await step(app, pub, 'DELETE', `/v1/keys/${rotated?.key?.id}`, { token: service });

  // The operator's reach over every key (kill switch, leak intake), once the fleet above exists.
  const serviceKeyId = sk?.service_key?.id as string;
  await step(admin, int, 'GET', `/internal/v1/accounts/${accountId}/keys?kind=child&status=active`, { token: adminToken });
  await step(admin, int, 'GET', '/internal/v1/accounts/00000000-0000-4000-8000-000000000000/keys', { token: adminToken });
  await step(admin, int, 'GET', `/internal/v1/keys/${other?.key?.id}`, { token: adminToken });
  await step(admin, int, 'GET', '/internal/v1/keys/00000000-0000-4000-8000-000000000000', { token: adminToken });
  await step(admin, int, 'DELETE', `/internal/v1/keys/${serviceKeyId}`, { token: adminToken });
  await step(admin, int, 'DELETE', `/internal/v1/keys/${serviceKeyId}?children=revoke`, { token: adminToken });
  await step(admin, int, 'POST', '/internal/v1/keys/revoke-leaked', { token: adminToken, body: { tokens: [apiKey, 'sk_live_mistyped'] } });
  // The operator rotates a child key with an overlap, then revokes the successor as leaked (last, so the examples above keep their ids and times).
  const sk2 = await step(admin, int, 'POST', `/internal/v1/accounts/${accountId}/service-keys`, { token: adminToken, body: { environment: 'test', name: 'fleet manager 2' } });
  const report = await step(app, pub, 'POST', '/v1/keys', { token: sk2?.service_key?.plaintext_key, body: { name: 'report agent' }, headers: { 'idempotency-key': 'mint-report-agent-1' } });
  const opRotated = await step(admin, int, 'POST', `/internal/v1/keys/${report?.key?.id}/rotate`, { token: adminToken, body: { overlap_seconds: 3600 } });
  await step(admin, int, 'POST', `/internal/v1/keys/${opRotated?.key?.id}/revoke-leaked`, { token: adminToken });
  await delegationScenario(app, pub, sk2?.service_key?.plaintext_key as string);
  return { public: pub, internal: int };
}

/** Delegation (after everything else, so the examples above keep their ids and times): docs/delegation.md's orchestrator. */
async function delegationScenario(app: FastifyInstance, pub: DocumentExamples, service: string): Promise<void> {
  const mintBody = { name: 'orchestrator', permissions: 'call_only', monthly_cap_cents: 5000, can_delegate: true };
  const orchestrator = await step(app, pub, 'POST', '/v1/keys', { token: service, body: mintBody, headers: { 'idempotency-key': 'mint-orchestrator-1' } });
  const token = orchestrator?.key?.plaintext_key as string;
  const tool = { name: 'search tool', agent_label: 'tool:search', permissions: 'call_only', budget_cents: 500, ttl_seconds: 3600 };
  const child = await step(app, pub, 'POST', '/v1/agents/self/keys', { token, body: tool, headers: { 'idempotency-key': 'delegate-search-tool-1' } });
  await step(app, pub, 'POST', '/v1/agents/self/keys', { token, body: { ...tool, budget_cents: 9000 }, headers: { 'idempotency-key': 'delegate-search-tool-2' } });
  await step(app, pub, 'GET', '/v1/agents/self/keys', { token });
  await step(app, pub, 'DELETE', `/v1/agents/self/keys/${child?.key?.id}`, { token });
  await step(app, pub, 'DELETE', '/v1/agents/self/keys/00000000-0000-4000-8000-000000000000', { token });
}

const TOKEN = /sk_(?:svc_)?(?:test|live)_[0-9A-Za-z]{49}|rs_[0-9A-Za-z]{43}/g;
const KEY_PREFIX = /\b(sk_(?:svc_)?(?:test|live)_)([0-9A-Za-z]{8})\b/g;
const UUID = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g;
/** sha256 hex digests (the audit feed's hash chain): they hash random ids, so differ per run. */
const DIGEST = /\b[0-9a-f]{64}\b/g;
const TIME = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z\b/g;
/** The examples' clock: times keep their order, one second apart from this instant. */
const EXAMPLE_EPOCH = Date.parse('2026-01-15T09:00:00.000Z');

/** Replaces ids, times and secrets by stand-ins in order of first appearance (the same run → the same text). */
export function normalizeExamples(raw: Recorder): Recorder {
  let text = JSON.stringify(raw);
  const seq = <T>(map: Map<string, T>, value: string, make: (n: number) => T) => (map.get(value) ?? map.set(value, make(map.size + 1)).get(value)!);
  const tokens = new Map<string, string>();
  text = text.replace(TOKEN, (t) =>
    seq(tokens, t, (n) => {
      const prefix = t.startsWith('rs_') ? 'rs_' : t.slice(0, t.indexOf('_', t.startsWith('sk_svc_') ? 7 : 3) + 1);
      // Shorter than a real token, so no scanner (or the suite's leak check) mistakes it for one.
      return `${prefix}EXAMPLE${String(n).padStart(2, '0')}notarealkey`;
    }),
  );
  const prefixes = new Map<string, string>();
  text = text.replace(KEY_PREFIX, (whole, kind: string) => seq(prefixes, whole, (n) => `${kind}EX${String(n).padStart(2, '0')}xxxx`));
  const digests = new Map<string, string>();
  text = text.replace(DIGEST, (d) => seq(digests, d, (n) => String(n).padStart(64, '0')));
  const uuids = new Map<string, string>();
  text = text.replace(UUID, (u) => seq(uuids, u, (n) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`));
  const times = new Map<string, string>();
  const ordered = [...new Set(text.match(TIME) ?? [])].sort();
  for (const t of ordered) seq(times, t, (n) => new Date(EXAMPLE_EPOCH + n * 1000).toISOString());
  text = text.replace(TIME, (t) => times.get(t)!);
  return JSON.parse(text) as Recorder;
}
