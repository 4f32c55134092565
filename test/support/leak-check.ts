import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { SECRET_PATTERN } from '../../src/domain/auth/secret-shapes.js';

export interface LeakReport {
  secrets: number;
  lines: number;
  /** Response bodies searched (every answer except the first answer of an issuing route). */
  bodies: number;
  /** Stored idempotency responses searched. */
  storedResponses: number;
  /** Response header sets searched (x-request-id echoes the client's). */
  headers: number;
  /** Stored compliance events searched (request id, user agent, ip, details). */
  events: number;
  /** The first 12 characters of every secret found (never the whole secret). */
  leaks: string[];
  /** Where each leak was found: log, body or idempotency. */
  where: string[];
}

const WHOLE_SECRET = new RegExp(`^(?:${SECRET_PATTERN.source})$`);

/**
 * Looks through a run's directory for leaked secrets. The secrets are every one the run's tests
 * recorded (runDir/secrets: plaintext keys, rotation secrets, operator tokens). None may appear in:
 *   - any log line (runDir/logs, in-process apps and child-process servers), where nothing even
 *     shaped like a secret may appear;
 *   - any response body other than the first answer of an issuing route (runDir/bodies, error
 *     bodies included);
 *   - any stored idempotency response (runDir/idempotency), where nothing shaped like one may appear;
 *   - any response's headers (runDir/headers) and any stored compliance event's request id, user
 *     agent, ip and details (runDir/events), where nothing shaped like one may appear either: a
 *     client's own secret in its URL, X-Request-Id or User-Agent is scrubbed before it gets there.
 */
export function findLeaks(runDir: string): LeakReport {
  const read = (dir: string) => {
    const full = path.join(runDir, dir);
    return existsSync(full) ? readdirSync(full).map((f) => readFileSync(path.join(full, f), 'utf8')).join('\n') : '';
  };
  const texts = { log: read('logs'), body: read('bodies'), idempotency: read('idempotency'), header: read('headers'), event: read('events') };
  const secrets = new Set(read('secrets').split('\n').filter(Boolean));
  const leaks = new Map<string, Set<string>>();
  const add = (secret: string, where: string) => {
    const k = secret.slice(0, 12);
    leaks.set(k, (leaks.get(k) ?? new Set()).add(where));
  };
  // Where nothing secret-shaped may appear at all, issued or not (only a response body may echo a
  // client's own secret-shaped input, in a validation message it is scrubbed from).
  for (const where of ['log', 'idempotency', 'header', 'event'] as const) {
    for (const m of texts[where].matchAll(SECRET_PATTERN)) add(m[0], where);
  }
  // Shaped secrets are found by the pattern and looked up; shapeless ones (operator tokens) by search.
  const shaped = Object.fromEntries(Object.entries(texts).map(([k, v]) => [k, new Set([...v.matchAll(SECRET_PATTERN)].map((m) => m[0]))]));
  for (const s of secrets) {
    for (const [where, text] of Object.entries(texts)) {
      if (WHOLE_SECRET.test(s) ? shaped[where]!.has(s) : text.includes(s)) add(s, where);
    }
  }
  const count = (text: string) => text.split('\n').filter(Boolean).length;
  return {
    secrets: secrets.size,
    lines: count(texts.log),
    bodies: count(texts.body),
    storedResponses: count(texts.idempotency),
    headers: count(texts.header),
    events: count(texts.event),
    leaks: [...leaks.keys()],
    where: [...leaks.values()].map((w) => [...w].join('+')),
  };
}
