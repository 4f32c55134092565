/**
 * Rate-limit policy names (spec §4 table, §6, §7). A route names its policy in its config
 * (`config: { limit: 'keys.mint' }`); rate-limit.ts turns the name into a limit keyed after
 * authentication (per service key, per API key) or per client IP (self-rotation).
 */
export const LIMIT_NAMES = [
  'keys.mint',
  'keys.list',
  'keys.get',
  'keys.update',
  'keys.revoke',
  'keys.rotate',
  'audit.read',
  'agents.self_rotate',
  'agents.self_read',
  'agents.self_check',
  'agents.delegate',
  'agents.delegated_keys',
] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The rate-limit policy of this route, if any. */
    limit?: LimitName;
  }
}
