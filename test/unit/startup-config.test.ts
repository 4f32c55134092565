import { describe, expect, it } from 'vitest';
import { configSchema, listenHost, parseConfig } from '../../src/config.js';

/* Start-up configuration (issue 31, item 7): a database URL has its scheme, the listener its default per mode. */

describe('DATABASE_URL', () => {
  it.each(['postgres://u@db:5432/keyplane', 'postgresql://u:p@10.0.0.1/keyplane?sslmode=require', 'POSTGRES://db/k'])('accepts %s', (url) => {
    expect(parseConfig({ DATABASE_URL: url }).DATABASE_URL).toBe(url);
  });

  it.each(['localhost:5432/keyplane', 'db/keyplane', 'mysql://db/keyplane', 'http://db:5432/keyplane', 'postgres:/db', ''])('refuses %j, naming the schemes', (url) => {
    expect(() => parseConfig({ DATABASE_URL: url })).toThrow(/invalid configuration:\n\s+DATABASE_URL: /);
    const issue = configSchema.safeParse({ DATABASE_URL: url });
    expect(issue.success).toBe(false);
  });

  it('says which schemes it takes', () => {
    expect(() => parseConfig({ DATABASE_URL: 'mysql://db/keyplane' })).toThrow('DATABASE_URL: must start with postgres:// or postgresql://');
  });
});

describe('listenHost', () => {
  it('binds loopback in embedded mode and every interface in server mode unless HOST is set', () => {
    expect(listenHost(parseConfig({}))).toBe('127.0.0.1');
    expect(listenHost(parseConfig({ DATA_DIR: '/srv/keyplane' }))).toBe('127.0.0.1');
    expect(listenHost(parseConfig({ DATABASE_URL: 'postgres://db/keyplane' }))).toBe('0.0.0.0');
    expect(listenHost(parseConfig({ HOST: '0.0.0.0' }))).toBe('0.0.0.0');
    expect(listenHost(parseConfig({ HOST: '10.1.2.3', DATABASE_URL: 'postgres://db/keyplane' }))).toBe('10.1.2.3');
  });

  it('refuses an empty HOST', () => {
    expect(() => parseConfig({ HOST: '' })).toThrow(/HOST/);
  });
});

describe('connection retries', () => {
  it('default to 8 attempts from 500 ms, and are bounded', () => {
    expect(parseConfig({})).toMatchObject({ DATABASE_CONNECT_ATTEMPTS: 8, DATABASE_CONNECT_BACKOFF_MS: 500 });
    expect(parseConfig({ DATABASE_CONNECT_ATTEMPTS: '1' }).DATABASE_CONNECT_ATTEMPTS).toBe(1);
    for (const bad of [{ DATABASE_CONNECT_ATTEMPTS: '0' }, { DATABASE_CONNECT_ATTEMPTS: '1000' }, { DATABASE_CONNECT_BACKOFF_MS: '1' }, { DATABASE_CONNECT_ATTEMPTS: 'many' }]) {
      expect(() => parseConfig(bad)).toThrow(/invalid configuration/);
    }
  });
});
