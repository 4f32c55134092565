import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { KeyplaneError, unwrap } from '../../clients/typescript/src/index.js';
import { CLIENT_TYPE_FILES, generateClientPackageTypes } from '../../scripts/client-generate.js';
import { ROOT } from '../../scripts/openapi.js';

/*
 * The client package without a server: its committed types against a fresh generation from the
 * committed documents (a route added or changed without `npm run openapi` fails here; re-run with
 * `npx vitest run --project unit test/unit/typescript-client.test.ts`), and how `unwrap` reads answers.
 */

const answer = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });

describe('@keyplane/client without a server', () => {
  it('its committed types are what `npm run client:generate` writes from the committed documents', async () => {
    const generated = await generateClientPackageTypes();
    expect(Object.keys(generated).sort()).toEqual(Object.values(CLIENT_TYPE_FILES).sort());
    for (const [file, text] of Object.entries(generated)) {
      expect(readFileSync(path.join(ROOT, file), 'utf8'), `${file}: run \`npm run client:generate\` (or \`npm run openapi\`)`).toBe(text);
    }
  }, 60_000);

  it('unwrap answers the data of a success and throws a KeyplaneError with the envelope otherwise', async () => {
    expect(await unwrap({ data: { ok: 1 }, response: answer(200, { ok: 1 }) })).toEqual({ ok: 1 });

    const envelope = { error: { code: 'rate_limited', message: 'Too many requests.', details: [{ message: 'policy keys.mint' }] } };
    const limited = answer(429, envelope, { 'x-request-id': 'req-1', 'retry-after': '60' });
    const err = await unwrap({ error: envelope, response: limited }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyplaneError);
    expect(err).toMatchObject({ name: 'KeyplaneError', status: 429, code: 'rate_limited', message: 'Too many requests.', requestId: 'req-1', retryAfter: 60 });
    expect((err as KeyplaneError).details).toEqual([{ message: 'policy keys.mint' }]);
  });

  it('a body that is not the envelope (a proxy page) is an unexpected_response, never a crash', async () => {
    const err = await unwrap({ error: '<html>Bad Gateway</html>', response: answer(502, '<html>Bad Gateway</html>', { 'retry-after': 'soon' }) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 502, code: 'unexpected_response', details: [], requestId: null, retryAfter: null });
  });
});
