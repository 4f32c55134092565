import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { proxyTrust } from '../../src/http/plugins/transport.js';

const trustProxy = (value: string) => parseConfig({ TRUST_PROXY: value }).TRUST_PROXY;

describe('TRUST_PROXY', () => {
  it('is off unless set', () => {
    expect(parseConfig({}).TRUST_PROXY).toBe(false);
    expect(trustProxy('false')).toBe(false);
  });

  it('reads a number as a hop count, never as a boolean (1 is one hop, 0 none)', () => {
    expect(trustProxy('1')).toBe(1);
    expect(trustProxy('0')).toBe(0);
    expect(trustProxy(' 2 ')).toBe(2);
  });

  it('reads a list of proxy addresses, CIDRs and proxy-addr ranges', () => {
    expect(trustProxy('10.0.0.0/8, 192.0.2.7')).toEqual(['10.0.0.0/8', '192.0.2.7']);
    expect(trustProxy('loopback,fd00::/8')).toEqual(['loopback', 'fd00::/8']);
  });

  it('takes true (every hop) as given; app.ts warns at start', () => {
    expect(trustProxy('true')).toBe(true);
  });

  it.each(['yes', '1.5', 'proxy.example', '10.0.0.0/33', '10.0.0.1,', '<img src=x>', '-1'])('refuses %j at start', (value) => {
    expect(() => trustProxy(value)).toThrow(/TRUST_PROXY/);
  });

  it('a hop count trusts exactly that many hops from the socket', () => {
    const one = proxyTrust(1) as (address: string, hop: number) => boolean;
    expect([0, 1, 2].map((hop) => one('192.0.2.1', hop))).toEqual([true, false, false]);
    expect(proxyTrust(0)).toBe(false);
    expect(proxyTrust(['10.0.0.0/8'])).toEqual(['10.0.0.0/8']);
  });
});
