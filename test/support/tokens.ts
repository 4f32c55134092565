/**
 * The token with its last character replaced by a different one: a near miss that is certainly not
 * the token (replacing it with a fixed character would leave a token that already ends in it unchanged).
 */
export function withLastCharChanged(token: string): string {
  return token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
}
