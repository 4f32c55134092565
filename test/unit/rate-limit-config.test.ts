import { describe, expect, it } from 'vitest';
import { parseConfig, RATE_LIMIT_VARIABLES } from '../../src/config.js';
import { ManualClock } from '../../src/domain/clock.js';
import { MemoryCounterStore } from '../../src/http/plugins/counter-stores.js';
import { LIMIT_NAMES } from '../../src/http/plugins/limits.js';
import { rateLimitOptions } from '../../src/main.js';

describe('rate-limit configuration', () => {
  it('one RATE_LIMIT_* entry per policy, as <max>/<window seconds>', () => {
    const env: Record<string, string> = {};
    LIMIT_NAMES.forEach((name, i) => (env[RATE_LIMIT_VARIABLES[name]] = `${i + 1}/${10 * (i + 1)}`));
    const opts = rateLimitOptions(parseConfig({ ...env, RATE_LIMIT_AUTH_FAILURES: '7/30' }));
    expect(Object.keys(opts.limits ?? {}).sort()).toEqual([...LIMIT_NAMES].sort());
    LIMIT_NAMES.forEach((name, i) => expect(opts.limits?.[name]).toEqual({ max: i + 1, windowSeconds: 10 * (i + 1) }));
    expect(opts.authFailures).toEqual({ max: 7, windowSeconds: 30 });
    expect(env).toHaveProperty('RATE_LIMIT_AGENTS_SELF_ROTATE');
  });

  it("unset entries leave the contract's values; no REDIS_URL keeps counters in the process", () => {
    const opts = rateLimitOptions(parseConfig({}));
    expect(opts).toEqual({ limits: {}, authFailures: undefined, redis: undefined });
  });

  it('REDIS_URL brings the prefix and the short timeouts', () => {
    const opts = rateLimitOptions(parseConfig({ REDIS_URL: 'redis://127.0.0.1:6379/3' }));
    expect(opts.redis).toEqual({ url: 'redis://127.0.0.1:6379/3', keyPrefix: 'keyplane:rl:', connectTimeoutMs: 500, commandTimeoutMs: 250 });
  });

  it.each(['60', '60/', '/60', '0/60', '60/0', '-1/60', '1.5/60', 'abc'])('rejects %j', (value) => {
    expect(() => parseConfig({ RATE_LIMIT_KEYS_MINT: value })).toThrow(/RATE_LIMIT_KEYS_MINT/);
  });
});

describe('in-process counters', () => {
  const incr = (s: MemoryCounterStore, key: string, windowMs = 1000) =>
    new Promise<{ current: number; ttl: number }>((resolve) => s.incr(key, (_e, r) => resolve(r!), windowMs));

  it('a fixed window per key on the injected clock', async () => {
    const clock = new ManualClock();
    const s = new MemoryCounterStore(clock);
    expect(await incr(s, 'a')).toMatchObject({ current: 1 });
    expect(await incr(s, 'a')).toMatchObject({ current: 2 });
    expect(await incr(s, 'b')).toMatchObject({ current: 1 });
    clock.advance(1000);
    expect(await incr(s, 'a')).toMatchObject({ current: 1 });
  });

  it('stays bounded: expired windows are swept, then the oldest dropped', async () => {
    const clock = new ManualClock();
    const s = new MemoryCounterStore(clock, 100);
    for (let i = 0; i < 100; i++) await incr(s, `k${i}`);
    clock.advance(1000);
    await incr(s, 'fresh');
    expect(s.size).toBe(1);
    for (let i = 0; i < 250; i++) await incr(s, `n${i}`, 60_000);
    expect(s.size).toBeLessThanOrEqual(100);
    expect((await incr(s, 'n249', 60_000)).current).toBe(2);
  });
});
