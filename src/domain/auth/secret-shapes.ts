import { CHECKSUM_LENGTH, OPERATOR_TOKEN_PREFIX, RANDOM_LENGTH, ROTATION_SECRET_PREFIX } from './credentials.js';

/**
 * Every kind of secret keyplane issues, by shape: the one list the log scrubber, the request-id
 * check, the compliance log's request metadata, the error envelope and the test leak check all
 * read. A new kind of secret (an operator token format) is one more line here.
 *
 * - `marker`: a plain substring every such secret contains, tested with `includes` before any
 *   regex runs, so text without one (nearly every URL and user agent) costs a few string scans;
 * - `prefix`: the regex of the secret's non-secret prefix, kept in the scrubbed text;
 * - `random`: how many base62 characters follow the prefix in an issued secret.
 */
interface SecretShape {
  marker: string;
  prefix: string;
  random: number;
}

const SHAPES: readonly SecretShape[] = [
  // Service keys (sk_svc_…), child and portal API keys (sk_…): credentials.ts generateToken.
  { marker: 'sk_', prefix: 'sk_(?:svc_)?(?:test|live)_', random: RANDOM_LENGTH + CHECKSUM_LENGTH },
  // Rotation secrets: credentials.ts generateRotationSecret.
  { marker: ROTATION_SECRET_PREFIX, prefix: ROTATION_SECRET_PREFIX, random: RANDOM_LENGTH },
  // Named operator tokens: credentials.ts generateOperatorToken.
  { marker: OPERATOR_TOKEN_PREFIX, prefix: OPERATOR_TOKEN_PREFIX, random: RANDOM_LENGTH + CHECKSUM_LENGTH },
];

/** Matches any whole secret keyplane issues (global): used by the leak checks and the error envelope. */
export const SECRET_PATTERN = new RegExp(SHAPES.map((s) => `${s.prefix}[0-9A-Za-z]{${s.random}}`).join('|'), 'g');

/**
 * What is scrubbed is wider than an issued secret: a prefix followed by 16 or more base62
 * characters, so a truncated or overlong paste goes too. A key's display prefix (key_prefix: the
 * kind prefix and 8 random characters) stays readable.
 */
const MIN_SCRUBBED = 16;
const SCRUB = new RegExp(`(${SHAPES.map((s) => s.prefix).join('|')})[0-9A-Za-z]{${MIN_SCRUBBED},}`, 'g');
const SCRUB_ONE = new RegExp(SCRUB.source);
const MARKERS = SHAPES.map((s) => s.marker);
// `_` percent-encoded (%5F) in a URL is still the same secret to the server that decodes it.
const ENCODED_UNDERSCORE = /%5f/gi;

function hasMarker(text: string): boolean {
  for (const m of MARKERS) if (text.includes(m)) return true;
  return false;
}

function decodedUnderscores(text: string): string {
  return text.includes('%5') ? text.replace(ENCODED_UNDERSCORE, '_') : text;
}

/** Whether the text holds anything shaped like a secret keyplane issues (also %5F-encoded). */
export function isSecretShaped(text: string): boolean {
  const t = decodedUnderscores(text);
  return hasMarker(t) && SCRUB_ONE.test(t);
}

/**
 * The text with every secret-shaped run replaced by `[redacted:<prefix>]` (the prefix says which
 * kind of secret it was, and is not secret), and every literal of `known` (the operator token) by
 * `[redacted]`. Text without a marker and without a known literal is returned as is.
 */
export function scrubSecrets(text: string, known: readonly string[] = []): string {
  let out = text;
  for (const k of known) if (k && out.includes(k)) out = out.split(k).join('[redacted]');
  const t = decodedUnderscores(out);
  if (!hasMarker(t)) return out;
  return SCRUB_ONE.test(t) ? t.replace(SCRUB, '[redacted:$1]') : out;
}
