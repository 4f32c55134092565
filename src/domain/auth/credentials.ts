import { hash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

/**
 * Token format (spec §2), after GitHub's: <kind prefix><43 base62 random><6 base62 CRC32>.
 * 43 base62 characters carry 43·log2(62) = 256.03 bits. The CRC32 of prefix+random lets a
 * mistyped or truncated token be rejected with no database work, and the fixed shape lets secret
 * scanners find leaked keys.
 */
export type Environment = 'test' | 'live';
export type TokenKind = 'service' | 'api';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const RANDOM_LENGTH = 43;
export const CHECKSUM_LENGTH = 6;
/** How many random characters key_prefix shows after the kind prefix. */
export const KEY_PREFIX_RANDOM_CHARS = 8;

export function kindPrefix(kind: TokenKind, environment: Environment): string {
  return kind === 'service' ? `sk_svc_${environment}_` : `sk_${environment}_`;
}

/** Uniform base62 via rejection sampling (bytes ≥ 248 would bias the modulo). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += ALPHABET[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

export function base62Checksum(body: string): string {
  let n = crc32(Buffer.from(body, 'utf8')) >>> 0;
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** One-shot hash: half the cost of a createHash object, on every authenticated request. */
export function sha256Hex(value: string): string {
  return hash('sha256', value, 'hex');
}

export interface NewToken {
  /** Shown once to the caller; never stored, never logged. */
  plaintext: string;
  tokenHash: string;
  keyPrefix: string;
}

export function generateToken(kind: TokenKind, environment: Environment): NewToken {
  const prefix = kindPrefix(kind, environment);
  const random = randomBase62(RANDOM_LENGTH);
  const body = prefix + random;
  const plaintext = body + base62Checksum(body);
  return {
    plaintext,
    tokenHash: sha256Hex(plaintext),
    keyPrefix: prefix + random.slice(0, KEY_PREFIX_RANDOM_CHARS),
  };
}

export interface ParsedToken {
  kind: TokenKind;
  environment: Environment;
  tokenHash: string;
}

const TOKEN_RE = /^sk_(svc_)?(test|live)_([0-9A-Za-z]{43})([0-9A-Za-z]{6})$/;

/**
 * Shape and checksum check, no I/O. Returns null for anything that cannot be a token we issued,
 * so callers answer invalid_api_key without touching the database.
 */
export function parseToken(token: string): ParsedToken | null {
  if (token.length > 80) return null;
  const m = TOKEN_RE.exec(token);
  if (!m) return null;
  const body = token.slice(0, token.length - CHECKSUM_LENGTH);
  if (base62Checksum(body) !== m[4]) return null;
  return { kind: m[1] ? 'service' : 'api', environment: m[2] as Environment, tokenHash: sha256Hex(token) };
}

/** Rotation secrets: a distinct, scanner-recognisable prefix; 256 bits; stored only as argon2id. */
export const ROTATION_SECRET_PREFIX = 'rs_';
export function generateRotationSecret(): string {
  return ROTATION_SECRET_PREFIX + randomBase62(RANDOM_LENGTH);
}

/**
 * Operator tokens (the admin listener's named tokens): kpo_<43 base62><6 base62 CRC32>, the API
 * keys' shape under a prefix of their own, so that no API key is mistaken for one (or the reverse)
 * and scanners can tell a leaked operator token from a leaked key.
 */
export const OPERATOR_TOKEN_PREFIX = 'kpo_';
const OPERATOR_TOKEN_RE = /^kpo_([0-9A-Za-z]{43})([0-9A-Za-z]{6})$/;

export function generateOperatorToken(): NewToken {
  const random = randomBase62(RANDOM_LENGTH);
  const body = OPERATOR_TOKEN_PREFIX + random;
  const plaintext = body + base62Checksum(body);
  return { plaintext, tokenHash: sha256Hex(plaintext), keyPrefix: OPERATOR_TOKEN_PREFIX + random.slice(0, KEY_PREFIX_RANDOM_CHARS) };
}

/** The hash of an operator token of the right shape and checksum; null (no I/O) for anything else. */
export function operatorTokenHash(token: string): string | null {
  const m = token.length === 53 ? OPERATOR_TOKEN_RE.exec(token) : null;
  if (!m || base62Checksum(token.slice(0, token.length - CHECKSUM_LENGTH)) !== m[2]) return null;
  return sha256Hex(token);
}

const KIND_PREFIX_RE = /^(?:sk_(?:svc_)?(?:test|live)_|kpo_)/;
/**
 * What of a token may be shown: its kind prefix and up to KEY_PREFIX_RANDOM_CHARS random characters
 * after it (for a well-formed token, exactly its key_prefix). null for a string that does not start
 * like a keyplane token, since it may be someone else's secret.
 */
export function visiblePrefix(token: string): string | null {
  const kind = KIND_PREFIX_RE.exec(token)?.[0];
  if (!kind) return null;
  const random = /^[0-9A-Za-z]*/.exec(token.slice(kind.length))![0];
  return kind + random.slice(0, KEY_PREFIX_RANDOM_CHARS);
}
