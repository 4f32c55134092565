import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './support/cluster.js';

/*
 * The compiled build (`npm run build`, scripts/build.ts): dist/ holds JavaScript and the files the
 * code reads beside itself, never TypeScript, and `node bin/keyplane.js serve` runs it on an
 * embedded data directory. bin/keyplane.js picks dist/ only when the build is newer than src/.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(path.join(tmpdir(), 'keyplane-compiled-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const filesUnder = (dir: string) =>
  readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));

describe('npm run build', () => {
  it('compiles every source file to dist/, copies the SQL files and examples, and leaves no TypeScript there', () => {
    const build = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/build.ts'], { cwd: ROOT, encoding: 'utf8', timeout: 240_000 });
    expect(build.status, build.stderr + build.stdout).toBe(0);
    const dist = filesUnder(path.join(ROOT, 'dist'));
    expect(dist.filter((f) => f.endsWith('.ts'))).toEqual([]);
    const sources = filesUnder(path.join(ROOT, 'src'));
    const expected = sources.map((f) => f.replace(/\.ts$/, '.js'));
    expect(dist.filter((f) => !f.startsWith('.') && !f.endsWith('.map')).sort()).toEqual(expected.sort());
    expect(dist).toContain('cli/index.js.map');
    const stamp = statSync(path.join(ROOT, 'dist', '.built')).mtimeMs;
    expect(Math.max(...sources.map((f) => statSync(path.join(ROOT, 'src', f)).mtimeMs))).toBeLessThanOrEqual(stamp);
  }, 300_000);

  it('`node bin/keyplane.js serve` runs the build on a new embedded data directory: /healthz, /openapi.json, SIGTERM exits 0', async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production', HOST: '127.0.0.1' };
    // No load shedding: a freshly started process on a machine running the other suites may shed the
    // document's request, and what is tested here is the build, not the shedding (it has its own tests).
    Object.assign(env, { PORT: String(port), ADMIN_PORT: String(adminPort), DATA_DIR: path.join(tmp, 'data'), LOG_LEVEL: 'warn', LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: '0' });
    const child = spawn(process.execPath, ['bin/keyplane.js', 'serve'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const base = `http://127.0.0.1:${port}`;
      let health = 0;
      for (let i = 0; i < 300 && health !== 200 && child.exitCode === null; i++) {
        health = await fetch(`${base}/healthz`).then((r) => r.status, () => 0);
        if (health !== 200) await new Promise((r) => setTimeout(r, 200));
      }
      expect(health, output).toBe(200);
      // The OpenAPI document is built from examples.json, read beside the compiled module.
      const doc = (await fetch(`${base}/openapi.json`).then((r) => r.json())) as { openapi: string; paths: object };
      expect(doc.openapi).toMatch(/^3\./);
      expect(Object.keys(doc.paths).length).toBeGreaterThan(3);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, output).toBe(0);
  }, 180_000);
});

describe('bin/keyplane.js', () => {
  /** A copy of bin/ beside a dist/ and a src/ that each print which one ran. */
  function fixture(name: string): string {
    const dir = path.join(tmp, name);
    mkdirSync(path.join(dir, 'dist', 'cli'), { recursive: true });
    mkdirSync(path.join(dir, 'src', 'cli'), { recursive: true });
    cpSync(path.join(ROOT, 'bin'), path.join(dir, 'bin'), { recursive: true });
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
    writeFileSync(path.join(dir, 'dist', 'cli', 'index.js'), "console.log('dist');\n");
    writeFileSync(path.join(dir, 'src', 'cli', 'index.ts'), "const ran: string = 'src';\nconsole.log(ran);\n");
    return dir;
  }
  const run = (dir: string) => spawnSync(process.execPath, [path.join(dir, 'bin', 'keyplane.js')], { encoding: 'utf8', timeout: 60_000 }).stdout.trim();
  const past = new Date(Date.now() - 60_000);

  it('runs dist/ when its build stamp is newer than every source file, else the sources through tsx', () => {
    const dir = fixture('pick');
    expect(run(dir)).toBe('src'); // never built
    writeFileSync(path.join(dir, 'dist', '.built'), 'now\n');
    utimesSync(path.join(dir, 'src', 'cli', 'index.ts'), past, past);
    expect(run(dir)).toBe('dist');
    writeFileSync(path.join(dir, 'src', 'cli', 'index.ts'), "console.log('src');\n"); // edited since the build
    expect(run(dir)).toBe('src');
  }, 120_000);

  it('runs dist/ when there is no src/ at all (the image)', () => {
    const dir = fixture('image');
    rmSync(path.join(dir, 'src'), { recursive: true });
    writeFileSync(path.join(dir, 'dist', '.built'), 'now\n');
    expect(run(dir)).toBe('dist');
  });
});
