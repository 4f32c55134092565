import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { adminQuery, databaseUrlFor } from './admin-db.js';
import type { AbResults, AbRun, AbScenario } from './ab-report.js';
import { checkoutRef, type RefCheckout } from './ab-worktree.js';
import { benchTmp, coldStartMs } from './embedded.js';
import { CONNECTIONS, once } from './load.js';
import { gitCommit, log, ROOT, type Options } from './options.js';
import { memoryOf } from './proc.js';
import { writeAbResults } from './report.js';
import { scenarios, type Scenario, type World } from './scenarios.js';
import { ADMIN_TOKEN, measure, startKeyplane, type Keyplane } from './servers.js';
import { buildWorld } from './world.js';

/*
 * The A/B mode: the build of a git ref (A, checked out in a temporary worktree) against the working
 * tree's (B). Both run in server mode for the whole run, each from its own checkout's src/main.ts
 * on its own database of the same Postgres (migrated by its own code at start), with the same
 * environment, seeded the same way through their own API and plain SQL. Each scenario runs
 * A B A B … (--pairs), so that whatever the host does meanwhile hits both sides. Then the embedded
 * cold start of each checkout, interleaved too.
 */

interface Side {
  key: 'a' | 'b';
  name: string;
  root: string;
  dbName: string;
  url: string;
  kp?: Keyplane;
  world?: World;
  seedSeconds?: number;
}

/** Undo steps run once, in reverse, at the end, on failure, or on SIGINT/SIGTERM. */
class Cleanup {
  private steps: (() => Promise<void> | void)[] = [];
  add(step: () => Promise<void> | void): void {
    this.steps.push(step);
  }
  async run(): Promise<void> {
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await step();
      } catch (err) {
        log(`cleanup: ${(err as Error).message}`);
      }
    }
  }
}

const toRun = (r: Awaited<ReturnType<typeof measure>>): AbRun => ({
  rps: r.rps,
  p50: r.p50,
  p99: r.p99,
  errors: r.errors,
  serverCpu: r.serverCpu,
  serverUsPerRequest: r.serverUsPerRequest,
  dbUsPerRequest: r.dbUsPerRequest,
});

/** Rotations: each pool key is rotated once; room for 2,000 rotations/s over every run of a side. */
const rotatePool = (o: Options) => Math.max(2_000, Math.ceil(o.pairs * (o.seconds + o.warmup) * 2_000));

async function startSide(o: Options, side: Side, cleanup: Cleanup): Promise<void> {
  await adminQuery(`create database ${side.dbName}`);
  cleanup.add(() => adminQuery(`drop database if exists ${side.dbName} with (force)`));
  side.kp = await startKeyplane(`keyplane ${side.name}`, side.root, side.url);
  const child = side.kp.child;
  cleanup.add(() => child.stop());
  const scale = o.scale ? { keys: o.smoke ? 1_000 : 100_000, events: o.smoke ? 10_000 : 1_000_000 } : undefined;
  const built = await buildWorld({ origins: side.kp.origins, databaseUrl: side.url, adminToken: ADMIN_TOKEN, smallKeys: 60, rotatePool: rotatePool(o), scale, log });
  side.world = built.world;
  side.seedSeconds = built.seedSeconds;
  log(`${side.name}: seeded in ${built.seedSeconds.toFixed(1)} s`);
}

/** Whether a side's build answers the scenario's route (a 404 from a route it does not have). */
async function available(side: Side, s: Scenario): Promise<boolean> {
  const probe = await once(side.kp!.origins[s.listener], s.recipe.method, s.recipe.path, s.recipe.headers, s.recipe.body ?? s.recipe.next?.().body);
  return !(probe.status === 404 && s.recipe.expect !== 404 && !s.id.endsWith('rotate'));
}

async function runPairs(o: Options, a: Side, b: Side, sa: Scenario, sb: Scenario): Promise<AbScenario> {
  const result: AbScenario = { id: sa.id, label: sa.label, available: true, a: [], b: [] };
  for (let i = 0; i < o.pairs; i++) {
    for (const [side, s, runs] of [[a, sa, result.a], [b, sb, result.b]] as const) {
      const kp = side.kp!;
      const m = await measure(kp.origins[s.listener], s.recipe, kp.child.pid, o.seconds, o.warmup);
      runs.push(toRun(m));
      if (Object.keys(m.statusCounts).some((code) => code.startsWith('5'))) log(`${s.id} ${side.name} answered 5xx; server log tail:\n${kp.child.output().slice(-3000)}`);
      log(
        `${s.id} ${side.name} ${i + 1}/${o.pairs}: ${m.rps.toFixed(0)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms, errors ${m.errors}; ` +
          `CPU µs/request keyplane ${m.serverUsPerRequest.toFixed(0)}, Postgres ${m.dbUsPerRequest.toFixed(0)}`,
      );
    }
  }
  return result;
}

async function runScenarios(o: Options, a: Side, b: Side): Promise<AbScenario[]> {
  const listA = scenarios(a.world!);
  const listB = scenarios(b.world!);
  const ids = [...new Set([...listA, ...listB].map((s) => s.id))].filter((id) => !o.only || o.only.includes(id));
  const out: AbScenario[] = [];
  for (const id of ids) {
    const sa = listA.find((s) => s.id === id);
    const sb = listB.find((s) => s.id === id);
    const missing = [!sa || !(await available(a, sa)) ? 'A' : '', !sb || !(await available(b, sb)) ? 'B' : ''].filter(Boolean);
    if (missing.length) {
      log(`${id}: not available in ${missing.join(' and ')}`);
      out.push({ id, label: (sa ?? sb)!.label, available: false, note: `not in ${missing.join(' and ')}'s build`, a: [], b: [] });
      continue;
    }
    out.push(await runPairs(o, a, b, sa!, sb!));
  }
  return out;
}

/** Cold starts of both checkouts, A B A B …, each on a new data directory. */
async function coldStarts(runs: number, a: Side, b: Side): Promise<{ a: number[]; b: number[] }> {
  const tmp = benchTmp(ROOT, 'ab-cold-');
  const out = { a: [] as number[], b: [] as number[] };
  try {
    for (let i = 0; i < runs; i++) {
      for (const side of [a, b]) {
        const dataDir = path.join(tmp, `${side.key}${i}`);
        const ms = await coldStartMs(side.root, dataDir);
        rmSync(dataDir, { recursive: true, force: true });
        out[side.key].push(ms);
        log(`cold start ${side.name} ${i + 1}/${runs}: ${ms.toFixed(0)} ms`);
      }
    }
    return out;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function notesOf(ref: RefCheckout): string[] {
  const notes: string[] = [];
  if (ref.modules === 'npm ci') notes.push(`A's package-lock.json differs from B's: A ran on its own \`npm ci\`.`);
  if (!ref.sameMigrations)
    notes.push(
      "A's migrations differ from B's: both share one node_modules, whose embedded-database template matches at most one of them; the other side's cold start initialises its data directory without it.",
    );
  return notes;
}

async function measureAb(o: Options, ref: RefCheckout, cleanup: Cleanup, t0: number): Promise<AbResults> {
  const loadBefore = os.loadavg();
  const stamp = `${Date.now().toString(36)}_${process.pid}`;
  const side = (key: 'a' | 'b', root: string): Side => ({ key, name: key.toUpperCase(), root, dbName: `keyplane_ab_${key}_${stamp}`, url: databaseUrlFor(`keyplane_ab_${key}_${stamp}`) });
  const a = side('a', ref.dir);
  const b = side('b', ROOT);
  await startSide(o, a, cleanup);
  await startSide(o, b, cleanup);
  const results = await runScenarios(o, a, b);
  const peakRssMb = { a: memoryOf(a.kp!.child.pid).peakMb, b: memoryOf(b.kp!.child.pid).peakMb };
  await a.kp!.child.stop();
  await b.kp!.child.stop();
  const coldStartMs = o.embedded ? await coldStarts(o.smoke ? 1 : 3, a, b) : undefined;
  return {
    meta: {
      date: new Date().toISOString(),
      host: os.hostname(),
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      cpus: os.cpus().length,
      node: process.version,
      a: { ref: ref.ref, commit: ref.commit, modules: ref.modules },
      b: { commit: gitCommit(ROOT) },
      pairs: o.pairs,
      seconds: o.seconds,
      warmupSeconds: o.warmup,
      connections: CONNECTIONS,
      smoke: o.smoke,
      loadAverageBefore: loadBefore,
      loadAverageAfter: os.loadavg(),
      seedSeconds: { a: a.seedSeconds ?? 0, b: b.seedSeconds ?? 0 },
      wallSeconds: (performance.now() - t0) / 1000,
      notes: notesOf(ref),
    },
    scenarios: results,
    peakRssMb,
    coldStartMs,
  };
}

export async function runAb(o: Options): Promise<void> {
  const t0 = performance.now();
  const cleanup = new Cleanup();
  // The children run in their own process groups (a Ctrl-C does not reach them): end them, drop the
  // databases and remove the worktree here, then exit as interrupted.
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: cleaning up`);
    void cleanup.run().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const ref = checkoutRef(ROOT, o.against!, log);
    cleanup.add(() => ref.remove());
    const ab = await measureAb(o, ref, cleanup, t0);
    // A smoke run proves the mode works; its numbers must not overwrite the committed results.
    const dir = o.out ?? (o.smoke ? path.join(os.tmpdir(), 'keyplane-bench-ab-smoke') : path.join(ROOT, 'bench'));
    mkdirSync(dir, { recursive: true });
    writeAbResults(dir, ab);
    log(`wrote the A/B section of ${dir}/results.{json,md} (${Math.round((performance.now() - t0) / 1000)} s)`);
  } finally {
    await cleanup.run();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
