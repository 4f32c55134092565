import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

/*
 * Every installed package must run on the Node.js this project says it needs. A package whose
 * `engines` asks for a newer Node may still install (npm only warns) and then fail at import:
 * testcontainers 12.0 pulled in undici 8 (Node >= 22.19), and `@testcontainers/postgresql` threw
 * on import under Node 20, which is where `npm test` goes on a machine with a Docker engine.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { version?: string; engines?: { node?: string } | string[] }>;
};
const ownRange = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;

/** Installed packages (optional platform bindings for other systems are in the lockfile, not on disk) and their Node range. */
const installed = Object.entries(lock.packages)
  .filter(([dir]) => dir.startsWith('node_modules/') && existsSync(path.join(ROOT, dir, 'package.json')))
  .flatMap(([dir, p]) => {
    const node = !Array.isArray(p.engines) ? p.engines?.node : undefined;
    return node ? [{ name: `${dir.slice('node_modules/'.length)}@${p.version}`, node }] : [];
  });

describe('Node.js engines', () => {
  it('every installed package accepts the running Node', () => {
    expect(installed.length).toBeGreaterThan(50);
    const refusing = installed.filter((p) => !semver.satisfies(process.version, p.node)).map((p) => `${p.name} needs ${p.node}`);
    expect(refusing).toEqual([]);
  });

  it("the oldest Node package.json admits is one every installed package accepts", () => {
    const oldest = semver.minVersion(ownRange)!;
    const refusing = installed.filter((p) => !semver.satisfies(oldest, p.node)).map((p) => `${p.name} needs ${p.node}`);
    expect(refusing, `package.json engines.node is ${ownRange}`).toEqual([]);
  });

  it('the testcontainers database, used where a Docker engine runs, loads on this Node', async () => {
    const mod = await import('@testcontainers/postgresql');
    expect(typeof mod.PostgreSqlContainer).toBe('function');
  });
});
