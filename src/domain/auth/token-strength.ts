/*
 * The rule a configured operator token (KEYPLANE_ADMIN_TOKEN) must meet, checked at start. It
 * cannot measure how a token was made, only refuse what was plainly not made at random:
 *
 *   1. at least 32 characters;
 *   2. not a placeholder: none of PLACEHOLDER_WORDS in it (case and separators ignored), so
 *      `change-me-to-a-long-random-operator-token` and its kin are refused;
 *   3. at least 10 distinct characters (refuses `aaaa…`, `abab…`, `0000…1`);
 *   4. an estimated entropy of at least 128 bits: the Shannon entropy of its own character
 *      frequencies (bits per character) times the number of its characters that do not merely
 *      continue a run (the third and later characters of `aaaa`, `0123`, `dcba`). For a random
 *      token this underestimates a little: a 64-character hex token scores about 240 bits of its
 *      256, a 44-character base64 token about 215, and in 100,000 draws of each never below 200
 *      and 180, so `openssl rand -hex 32` and `openssl rand -base64 32` always pass; a run or a
 *      repetition scores nothing, and a sentence far less than its length suggests.
 */

export const MIN_TOKEN_LENGTH = 32;
const MIN_DISTINCT = 10;
export const MIN_ENTROPY_BITS = 128;
const PLACEHOLDER_WORDS = ['changeme', 'replaceme', 'placeholder', 'example', 'yourtoken', 'yoursecret', 'notasecret', 'insertsecret', 'password'];

/** Rule 4's estimate: bits per character (Shannon, own frequencies) times the characters not continuing a run. */
export function estimatedEntropyBits(token: string): number {
  const chars = [...token];
  const counts = new Map<string, number>();
  for (const c of chars) counts.set(c, (counts.get(c) ?? 0) + 1);
  let perChar = 0;
  for (const n of counts.values()) {
    const p = n / chars.length;
    perChar -= p * Math.log2(p);
  }
  const code = chars.map((c) => c.codePointAt(0)!);
  let counted = Math.min(chars.length, 2);
  for (let i = 2; i < code.length; i++) {
    const step = code[i]! - code[i - 1]!;
    if (!(Math.abs(step) <= 1 && step === code[i - 1]! - code[i - 2]!)) counted++;
  }
  return perChar * counted;
}

/** Why the token is refused (never quoting it), or null when it meets the rule. */
export function operatorTokenProblem(token: string): string | null {
  const advice = 'generate one with `openssl rand -hex 32`';
  if ([...token].length < MIN_TOKEN_LENGTH) return `must be at least ${MIN_TOKEN_LENGTH} characters; ${advice}`;
  const folded = token.toLowerCase().replace(/[^a-z0-9]/g, '');
  const word = PLACEHOLDER_WORDS.find((w) => folded.includes(w));
  if (word) return `looks like a placeholder (it contains "${word}"); ${advice}`;
  if (new Set(token).size < MIN_DISTINCT) return `has fewer than ${MIN_DISTINCT} distinct characters; ${advice}`;
  const bits = estimatedEntropyBits(token);
  if (bits < MIN_ENTROPY_BITS) return `has too little entropy (about ${Math.floor(bits)} bits, at least ${MIN_ENTROPY_BITS} needed); ${advice}`;
  return null;
}
