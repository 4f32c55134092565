/*
 * What scrubbing secrets out of URLs, request ids and log lines adds to a request, in-process.
 *
 *   npx tsx bench/scrub-cost.ts        (SCRUB_ROUNDS, default 9; SCRUB_N requests a round, default 200000)
 *
 * A request at LOG_LEVEL=info writes two lines (Fastify's "incoming request" with the request
 * serialized, and "request completed"). Scrubbing adds to it: the shape check of its X-Request-Id
 * (request-id.ts), the scrub of its URL (the logger's request serializer) and the scan of each of
 * the two lines as written (the logger's streamWrite hook, with the operator token as a literal).
 * This times exactly that work, on the lines keyplane's logger writes for POST /internal/v1/verify,
 * and, for scale, the whole logging of the request with the scrubbing logger. Median of the rounds.
 */
import pino from 'pino';
import { generateToken, isSecretShaped, loggerOptions, scrubSecrets } from './lib/keyplane.js';

const rounds = Number(process.env.SCRUB_ROUNDS ?? 9);
const n = Number(process.env.SCRUB_N ?? 200_000);
const operatorToken = 'f3a9c0d1e2b4a5968778695a4b3c2d1e0f9e8d7c6b5a49382716051f2e3d4c5b';
const requestId = '9f0c2c1e-0d5e-4a37-9d8a-54f4d2d1c0aa';

function requestOf(url: string) {
  return { method: 'POST', url, host: '127.0.0.1:8081', ip: '10.1.2.3', socket: { remotePort: 51234 } };
}

/** The two lines the logger writes for a request to `url` (as pino hands them to streamWrite). */
function linesFor(url: string): string[] {
  const lines: string[] = [];
  const logger = pino({ ...loggerOptions('info'), hooks: {} }, { write: (l: string) => void lines.push(l) });
  const child = logger.child({ reqId: requestId });
  child.info({ req: requestOf(url) }, 'incoming request');
  child.info({ res: { statusCode: 200 }, responseTime: 0.42 }, 'request completed');
  return lines;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function nsPerRequest(work: () => unknown): number {
  const samples: number[] = [];
  for (let r = 0; r < rounds + 1; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) work();
    if (r > 0) samples.push(Number(process.hrtime.bigint() - t0) / n); // round 0 warms up
  }
  return median(samples);
}

function measure(label: string, url: string) {
  const [incoming, completed] = linesFor(url) as [string, string];
  const known = [operatorToken];
  let sink = 0;
  const added = nsPerRequest(() => {
    sink += Number(isSecretShaped(requestId));
    sink += scrubSecrets(url).length + scrubSecrets(incoming, known).length + scrubSecrets(completed, known).length;
  });
  const logger = pino(loggerOptions('info', known), { write: () => {} });
  const req = requestOf(url);
  const logging = nsPerRequest(() => {
    const child = logger.child({ reqId: requestId });
    child.info({ req }, 'incoming request');
    child.info({ res: { statusCode: 200 }, responseTime: 0.42 }, 'request completed');
  });
  console.log(`${label}: scrubbing adds ${(added / 1000).toFixed(2)} µs a request (the request's whole logging: ${(logging / 1000).toFixed(1)} µs)${sink < 0 ? '' : ''}`);
}

measure('POST /internal/v1/verify, nothing to scrub', '/internal/v1/verify');
measure('a secret in the query string', `/internal/v1/verify?key=${generateToken('api', 'live').plaintext}`);
