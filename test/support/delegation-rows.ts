import { expect } from 'vitest';
import { mintAgent, type Agent } from './agents.js';
import type { Ctx, Row } from './hostile-row.js';
import type { RawRequest } from './raw-http.js';

/*
 * The hostile-input table's delegation rows (test/integration/hostile-input.test.ts): bad bodies,
 * queries and ids on /v1/agents/self/keys answer in the envelope, write no event and delegate
 * nothing; a key without can_delegate is refused; an id outside the caller's tree is not found.
 */

const json: [string, string] = ['content-type', 'application/json'];
const bearer = (token: string): [string, string] => ['authorization', `Bearer ${token}`];
const GOOD = { name: 'tool', permissions: 'call_only', budget_cents: 500, ttl_seconds: 3600 };

/** The rows; each makes (once) the delegator it calls with, an agent of the file's tenant. */
export function delegationRows(): Row[] {
  const made: { delegator?: Agent; child?: string } = {};
  const before = async (c: Ctx) => {
    made.delegator ??= await mintAgent(c.t, c.tenant.serviceKey, { canDelegate: true, monthlyCapCents: 10_000, name: 'hostile delegator' });
  };
  /** A POST with the delegator's key: the good body with `patch` over it, or a raw body. */
  const post = (patch: Record<string, unknown> | string, headers: [string, string][] = [['idempotency-key', `hostile-delegate-${Math.random()}`]]) =>
    (): RawRequest => ({
      method: 'POST',
      path: '/v1/agents/self/keys',
      headers: [bearer(made.delegator!.apiKey), json, ...headers],
      body: typeof patch === 'string' ? patch : JSON.stringify({ ...GOOD, ...patch }),
    });
  const list = (query: string) => (): RawRequest => ({ method: 'GET', path: `/v1/agents/self/keys?${query}`, headers: [bearer(made.delegator!.apiKey)] });
  const revoke = (id: (c: Ctx) => string) => (c: Ctx): RawRequest => ({ method: 'DELETE', path: `/v1/agents/self/keys/${id(c)}`, headers: [bearer(made.delegator!.apiKey)] });
  const bad = (name: string, patch: Record<string, unknown> | string): Row => ({ name: `delegate: ${name} is 422`, listener: 'public', before, request: post(patch), status: 422, code: 'validation_error' });
  return [
    { name: 'delegate: no Idempotency-Key', listener: 'public', before, request: post({}, []), status: 400, code: 'missing_idempotency_key' },
    bad('a zero budget', { budget_cents: 0 }),
    bad('a budget over 100,000,000', { budget_cents: 100_000_001 }),
    bad('a budget beyond double range', JSON.stringify(GOOD).replace('"budget_cents":500', '"budget_cents":1e400')),
    bad('a fractional budget', { budget_cents: 1.5 }),
    bad('a budget as a string', { budget_cents: '500' }),
    bad('a ttl under 60 s', { ttl_seconds: 59 }),
    bad('a ttl over 30 days', { ttl_seconds: 2_592_001 }),
    bad('no ttl', { ttl_seconds: undefined }),
    bad('legacy_full permissions', { permissions: 'legacy_full' }),
    bad('can_delegate as a string', { can_delegate: 'yes' }),
    bad('a line that is no uuid', { line_id: "' or 1=1 --" }),
    bad('a lone surrogate in the name', { name: '\ud800' }),
    bad('__proto__ in the body', JSON.stringify(GOOD).replace('{', '{"__proto__":{"can_delegate":true},')),
    bad('a stray monthly_cap_cents', { monthly_cap_cents: 1 }),
    bad('a JSON array', '[1,2,3]'),
    {
      name: 'delegate: a key without can_delegate is 403 agent_permission_denied',
      listener: 'public',
      request: (c) => ({ method: 'POST', path: '/v1/agents/self/keys', headers: [bearer(c.agent.apiKey), json, ['idempotency-key', 'hostile-no-right']], body: JSON.stringify(GOOD) }),
      status: 403,
      code: 'agent_permission_denied',
    },
    {
      name: 'delegate: a budget over what the parent has is 402 agent_cap_exceeded with available_cents',
      listener: 'public',
      before,
      request: post({ budget_cents: 10_001 }),
      status: 402,
      code: 'agent_cap_exceeded',
      check: (res) => expect(JSON.parse(res.body).error.details[0]).toMatchObject({ available_cents: 10_000 }),
    },
    { name: 'list: a depth that is not children or all is 422', listener: 'public', before, request: list('depth=everything'), status: 422, code: 'validation_error' },
    { name: 'list: limit 0 is 422', listener: 'public', before, request: list('limit=0'), status: 422, code: 'validation_error' },
    { name: 'list: a negative offset is 422', listener: 'public', before, request: list('offset=-1'), status: 422, code: 'validation_error' },
    { name: 'list: a stray parameter is 422', listener: 'public', before, request: list('status=revoked'), status: 422, code: 'validation_error' },
    { name: 'list: a read records one agent_self_read', listener: 'public', before, request: list('depth=all'), status: 200, code: null, events: 1 },
    { name: 'revoke: an id that is not a uuid is 404', listener: 'public', before, request: revoke(() => "1'%20or%20'1'='1"), status: 404, code: 'not_found' },
    { name: 'revoke: an id over 100 characters is 404, as on every id route', listener: 'public', before, request: revoke(() => 'a'.repeat(101)), status: 404, code: 'not_found' },
    { name: 'revoke: its own key is no descendant: 404', listener: 'public', before, request: revoke(() => made.delegator!.id), status: 404, code: 'not_found' },
    { name: 'revoke: a sibling agent is no descendant: 404', listener: 'public', before, request: revoke((c) => c.agent.id), status: 404, code: 'not_found' },
  ];
}
