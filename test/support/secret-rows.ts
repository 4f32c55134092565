import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import { queryRows } from '../../src/db/statements.js';
import type { TestApp } from './harness.js';
import type { Ctx, Row } from './hostile-row.js';
import type { RawResponse } from './raw-http.js';

/*
 * The hostile-input table's secret rows (test/integration/hostile-input.test.ts): a careless client
 * puts a live API key in the URL, in X-Request-Id or in User-Agent. The request is answered as it
 * would be without it, and the secret reaches no log line, no response header and no stored event.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Stored events that hold the secret anywhere a request could have put it. */
async function eventsHolding(t: TestApp, secret: string): Promise<number> {
  const like = `%${secret}%`;
  const [row] = await queryRows<{ n: string }>(
    t.database.db,
    sql`select count(*)::text as n from compliance_events
        where request_id like ${like} or user_agent like ${like} or ip like ${like} or data::text like ${like}`,
  );
  return Number(row!.n);
}

/** The rows; `logText()` is every log line of the file's apps so far. */
export function secretRows(logText: () => string): Row[] {
  const nowhere = async (res: RawResponse, c: Ctx) => {
    const secret = c.agent.apiKey;
    expect(JSON.stringify(res.headers), 'a response header').not.toContain(secret);
    expect(res.body, 'the answer').not.toContain(secret);
    expect(logText(), 'a log line').not.toContain(secret);
    expect(await eventsHolding(c.t, secret), 'a stored event').toBe(0);
  };
  const bearer = (c: Ctx): [string, string] => ['authorization', `Bearer ${c.agent.apiKey}`];
  return [
    {
      name: 'public: an API key in the query string',
      listener: 'public',
      request: (c) => ({ method: 'GET', path: `/v1/audit?api_key=${c.agent.apiKey}`, headers: [bearer(c)] }),
      status: 422,
      code: 'validation_error',
      check: nowhere,
    },
    {
      name: 'public: an API key as a path segment',
      listener: 'public',
      request: (c) => ({ method: 'GET', path: `/v1/keys/${c.agent.apiKey}/x`, headers: [bearer(c)] }),
      status: 404,
      code: 'not_found',
      check: nowhere,
    },
    {
      name: 'admin: an API key in the query string of verify',
      listener: 'admin',
      request: (c) => ({
        method: 'POST',
        path: `/internal/v1/verify?key=${c.agent.apiKey}`,
        headers: [
          ['authorization', 'Bearer not-the-operator-token'],
          ['content-type', 'application/json'],
        ],
        body: '{"key":"sk_test_nothing","verb":"call"}',
      }),
      status: 401,
      code: 'invalid_api_key',
      check: nowhere,
    },
    {
      name: 'public: an API key as X-Request-Id is replaced by a generated id',
      listener: 'public',
      request: (c) => ({ method: 'GET', path: '/v1/audit?limit=1', headers: [bearer(c), ['x-request-id', c.agent.apiKey]] }),
      status: 200,
      code: null,
      events: 1,
      check: async (res, c) => {
        expect(res.headers['x-request-id']).toMatch(UUID);
        await nowhere(res, c);
      },
    },
    {
      name: 'public: an API key as User-Agent is not stored',
      listener: 'public',
      request: (c) => ({ method: 'GET', path: '/v1/audit?limit=1', headers: [bearer(c), ['user-agent', `agent/1.0 (${c.agent.apiKey})`]] }),
      status: 200,
      code: null,
      events: 1,
      check: nowhere,
    },
  ];
}
