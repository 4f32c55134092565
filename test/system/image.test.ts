import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect } from 'vitest';
import { requires } from '../support/requirements.js';
import { copyInto, readDockerfile, type Dockerfile, type Stage } from './support/dockerfile.js';
import { freePort } from './support/cluster.js';

/*
 * The image without a Docker engine: every stage of the Dockerfile performed in a temporary
 * directory (support/dockerfile.ts), its RUN steps as root as Docker runs them, then CMD started as
 * an unprivileged user (`nobody` stands in for the base image's `node`) with the image's ENV, until
 * its HEALTHCHECK command succeeds; then SIGTERM, which the server must answer by exiting 0.
 * npm reads the machine's cache first (npm_config_prefer_offline), so the test needs no network
 * when the cache is warm, as on CI after its own `npm ci`.
 */

const { describe, it } = await requires(['root']);

const ROOT = path.resolve(import.meta.dirname, '../..');
const USERS: Record<string, { user: string; group: string }> = { node: { user: 'nobody', group: 'nogroup' } };
const tmp = mkdtempSync(path.join(tmpdir(), 'keyplane-image-'));
chmodSync(tmp, 0o755);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const idOf = (flag: '-u' | '-g', name: string) => Number(spawnSync('id', [flag, name], { encoding: 'utf8' }).stdout.trim());
const stageRoot = (name: string) => path.join(tmp, name);

/** The image's own top-level directories (WORKDIRs and VOLUMEs): their absolute paths map into a stage's directory. */
function imageDirs(df: Dockerfile): string[] {
  const dirs = df.stages.flatMap((s) => s.steps.flatMap((st) => (st.kind === 'WORKDIR' ? [st.dir] : [])));
  return [...new Set([...dirs, ...df.volumes])];
}

function mapper(df: Dockerfile, root: string): (text: string) => string {
  const dirs = imageDirs(df);
  return (text) => {
    let out = text;
    for (const d of dirs) out = out.replace(new RegExp(`(^|[\\s=:'"])${d}(?=$|[\\s/'":])`, 'g'), `$1${path.join(root, d)}`);
    for (const [name, { user, group }] of Object.entries(USERS)) out = out.replace(new RegExp(`\\b${name}:${name}\\b`, 'g'), `${user}:${group}`);
    return out;
  };
}

const BASE_PATH = `${path.dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

interface StageState {
  workdir: string;
  env: Record<string, string>;
  user?: string;
}

function asUser(user: string | undefined, argv: string[]): string[] {
  if (!user) return argv;
  const u = USERS[user] ?? { user, group: user };
  return ['setpriv', `--reuid=${idOf('-u', u.user)}`, `--regid=${idOf('-g', u.user)}`, '--clear-groups', '--', ...argv];
}

/** Performs a stage's steps; returns its final WORKDIR, ENV and USER. */
function build(df: Dockerfile, stage: Stage): StageState {
  const root = stageRoot(stage.name);
  const map = mapper(df, root);
  const state: StageState = { workdir: '/', env: {} };
  for (const step of stage.steps) {
    const cwd = path.join(root, state.workdir);
    if (step.kind === 'WORKDIR') {
      state.workdir = step.dir;
      mkdirSync(path.join(root, step.dir), { recursive: true });
    } else if (step.kind === 'ENV') {
      for (const [k, v] of Object.entries(step.vars)) state.env[k] = map(v);
    } else if (step.kind === 'USER') {
      state.user = step.user;
    } else if (step.kind === 'COPY') {
      const sources = step.sources.map((s) => (step.from ? path.join(stageRoot(step.from), s) : path.join(ROOT, s)));
      copyInto(sources, path.resolve(cwd, step.dest) + (step.dest.endsWith('/') ? '/' : ''));
    } else {
      const env = { PATH: BASE_PATH, HOME: process.env.HOME ?? '/root', npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false', ...state.env };
      const [cmd, ...args] = asUser(state.user, ['sh', '-c', map(step.command)]);
      const run = spawnSync(cmd!, args, { cwd, env, encoding: 'utf8', timeout: 300_000 });
      expect(run.status, `RUN ${step.command}\n${run.stdout}\n${run.stderr}`).toBe(0);
    }
  }
  return state;
}

const filesUnder = (dir: string) =>
  readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));

describe('the Dockerfile, performed step by step without a Docker engine', () => {
  const df = readDockerfile(path.join(ROOT, 'Dockerfile'));
  const runtime = df.stages.at(-1)!;
  const version = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

  it('a build stage and a runtime stage; OCI labels; a data volume; a healthcheck and CMD in exec form with node first', () => {
    expect(df.stages.length).toBeGreaterThanOrEqual(2);
    expect(df.labels['org.opencontainers.image.title']).toBe('keyplane');
    expect(df.labels['org.opencontainers.image.version']).toBe(version);
    expect(df.labels['org.opencontainers.image.licenses']).toBe('MIT');
    expect(df.labels['org.opencontainers.image.base.name']).toMatch(/^node:(22|24)-/);
    expect(df.volumes).toEqual(['/data']);
    expect(df.exposed).toEqual([8080, 8081]);
    expect(df.healthcheck[0]).toBe('node');
    expect(df.cmd.slice(0, 1).concat(df.cmd.slice(-2))).toEqual(['node', 'bin/keyplane.js', 'serve']);
    expect(runtime.steps.some((s) => s.kind === 'USER' && s.user !== 'root')).toBe(true);
  });

  it('builds, holds production dependencies and compiled code only, and serves embedded as a non-root user until SIGTERM', async () => {
    let state: StageState | undefined;
    for (const stage of df.stages) state = build(df, stage);
    const app = path.join(stageRoot(runtime.name), state!.workdir);

    // Production only: no sources, no TypeScript outside node_modules, no compiler or tsx.
    expect(existsSync(path.join(app, 'src'))).toBe(false);
    expect(filesUnder(app).filter((f) => !f.startsWith('node_modules/') && f.endsWith('.ts'))).toEqual([]);
    for (const dev of ['typescript', 'tsx', 'esbuild', 'vitest']) expect(existsSync(path.join(app, 'node_modules', dev)), dev).toBe(false);
    expect(readdirSync(path.join(app, 'node_modules', '.cache', 'keyplane')).some((f) => f.endsWith('.tar.gz'))).toBe(true);

    const dataDir = state!.env.DATA_DIR!;
    expect(statSync(dataDir).uid).toBe(idOf('-u', 'nobody'));
    const [port, adminPort] = [await freePort(), await freePort()];
    // As `docker run -e PORT=… -e ADMIN_PORT=…` would: free ports on this shared machine.
    const env = { PATH: BASE_PATH, ...state!.env, PORT: String(port), ADMIN_PORT: String(adminPort) };
    const [cmd, ...args] = asUser(state!.user, df.cmd);
    const child = spawn(cmd!, args, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const [hc, ...hcArgs] = asUser(state!.user, df.healthcheck);
      let healthy = false;
      for (let i = 0; i < 240 && !healthy && child.exitCode === null; i++) {
        healthy = spawnSync(hc!, hcArgs, { cwd: app, env, timeout: 10_000 }).status === 0;
        if (!healthy) await new Promise((r) => setTimeout(r, 500));
      }
      expect(healthy, `${output}\nexit code ${child.exitCode}, signal ${child.signalCode}`).toBe(true);
      // setpriv execs: the server's process is node itself, running as the unprivileged user.
      // (Its thread name is no proof: Node 24 names the main thread MainThread; its argv and binary are.)
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      expect(readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').slice(0, 1)).toEqual(['node']);
      expect(path.basename(realpathSync(`/proc/${child.pid}/exe`))).toBe('node');
      expect(Number(/^Uid:\s+(\d+)/m.exec(status)?.[1])).toBe(idOf('-u', 'nobody'));
      const created = filesUnder(dataDir);
      expect(created.length).toBeGreaterThan(10);
      expect(statSync(path.join(dataDir, created[0]!)).uid).toBe(idOf('-u', 'nobody'));
      // argon2's prebuilt binary loads from the pruned node_modules.
      const [an, ...anArgs] = asUser(state!.user, ['node', '-e', "import('argon2').then((a) => a.hash('x')).then((h) => console.log(h.slice(0, 9)))"]);
      expect(spawnSync(an!, anArgs, { cwd: app, env, encoding: 'utf8' }).stdout.trim()).toBe('$argon2id');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, output).toBe(0);
  }, 900_000);
});
