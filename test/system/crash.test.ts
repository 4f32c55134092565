import pg from 'pg';
import { afterAll, beforeAll, expect } from 'vitest';
import { createCluster, type Cluster } from './support/cluster.js';
import { DebitLoad, delegationTree } from './support/delegated-debits.js';
import { checkInvariants, missingKeys } from './support/invariants.js';
import { bootstrap, http, startServer, type ServerProcess } from './support/server.js';
import { requires } from '../support/requirements.js';

const { describe, it } = await requires(['initdb', 'pg_ctl']);

/*
 * Crash safety (issue 8, point 1): a storm of mints, rotations and agent self-rotations against
 * keyplane as a child process on its own Postgres cluster, SIGKILLed at random moments, restarted,
 * and every request that was in flight retried: with its Idempotency-Key, or (a self-rotation) with
 * the same old key and secret. Afterwards: no partial rotation, one live key per chain, every 201
 * the client saw is in the database, every retry got the stored answer or one fresh effect, every
 * agent's last pair works, and the compliance chains verify.
 *
 * Meanwhile debits through a delegation tree (a capped root, its depth-1 and depth-2 keys; support/
 * delegated-debits.ts), retried after each kill with their request_id: each key's spend is exactly the
 * ledger of its own and its descendants' debits, no cap is exceeded, and what the client was
 * answered is what the ledger holds.
 */

/** Kills per run: the issue asks for several; each costs about a server start (2-3 s). */
const KILLS = 5;
/** Concurrent clients in the storm: enough to have several requests in flight at any kill. */
const WORKERS = 8;
/** Concurrent debit clients beside them: a debit batch in flight at most kills. */
const DEBIT_WORKERS = 2;
/** The dead claim's lock expires after this (default 15 s); 3 s outlasts a restart a little, so retries meet 409 in_progress first. */
const LOCK_TIMEOUT_MS = 3_000;

interface Sent {
  kind: 'mint' | 'rotate' | 'self_rotate';
  idem: string;
  url: string;
  body: unknown;
  /** A self-rotation: the agent's key as Bearer (else the service key), and its index in `agents`. */
  agentKey?: string;
  agent?: number;
  /** The chain a rotation belongs to (worker-local), to update its head on success. */
  chain?: number;
  /** The key id of the first 201, or of the answer to the retry. */
  keyId?: string;
  inFlight: boolean;
}

let cluster: Cluster;
let server: ServerProcess | undefined;

beforeAll(async () => {
  cluster = await createCluster();
}, 90_000);

afterAll(async () => {
  await server?.kill();
  await cluster?.destroy();
});

interface AgentPair {
  apiKey: string;
  rotationSecret: string;
}

describe('crash safety: SIGKILL during a storm of mints, rotations, self-rotations and delegated debits', () => {
  it(`survives ${KILLS} kills with nothing lost, nothing doubled and the chain intact`, async () => {
    // Load shedding off: on a busy host a restarted process's first second can exceed the event-loop
    // threshold, and a shed 503 is not what this test is about (test/integration/metrics.test.ts covers it).
    const env = { IDEMPOTENCY_LOCK_TIMEOUT_MS: String(LOCK_TIMEOUT_MS), LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: '0' };
    server = await startServer(cluster.url, env);
    const tenant = await bootstrap(server);
    const token = tenant.serviceKey;
    const tree = await delegationTree(server, token);
    const debits = new DebitLoad(tree, () => server!);
    let debitsRetried = 0;
    let debitsReplayed = 0;
    const sent: Sent[] = [];
    // Per worker: the current head (active key id) of each of its rotation chains.
    const chains: string[][] = Array.from({ length: WORKERS }, () => []);
    // Per worker: the current pair of each self-rotating agent it minted (rotated only by itself).
    const agents: AgentPair[][] = Array.from({ length: WORKERS }, () => []);
    const statuses = new Map<number, number>();
    let seq = 0;

    const send = async (s: Sent) => {
      const method = 'POST';
      const headers: Record<string, string> = s.agentKey ? {} : { 'idempotency-key': s.idem };
      const r = await http(server!.base, method, s.url, { token: s.agentKey ?? token, body: s.body, headers });
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      return r;
    };

    /** What a worker sends next: a self-rotation of one of its agents, a rotation or a mint. */
    const nextRequest = (w: number): Sent => {
      const mine = chains[w]!;
      const idem = `crash-${w}-${++seq}-${Math.random().toString(36).slice(2)}`;
      if (agents[w]!.length > 0 && Math.random() < 0.3) {
        const agent = Math.floor(Math.random() * agents[w]!.length);
        const pair = agents[w]![agent]!;
        return { kind: 'self_rotate', idem, url: '/v1/agents/self/rotate-key', body: { rotationSecret: pair.rotationSecret }, agentKey: pair.apiKey, agent, inFlight: true };
      }
      if (mine.length > 0 && Math.random() < 0.6) {
        const chain = Math.floor(Math.random() * mine.length);
        // Half the rotations keep the old key working for an hour (issue 29): a crash must still leave
        // no chain with more than two working keys, or an overlapping key without its live one.
        const body = Math.random() < 0.5 ? { overlap_seconds: 3600 } : undefined;
        return { kind: 'rotate', idem, url: `/v1/keys/${mine[chain]}/rotate`, body, chain, inFlight: true };
      }
      // A self-rotating key is its agent's own: only the agent rotates it (no chain index).
      const selfRotation = Math.random() < 0.3;
      return { kind: 'mint', idem, url: '/v1/keys', body: { name: idem, self_rotation: selfRotation }, chain: selfRotation ? undefined : mine.length, inFlight: true };
    };

    /** A 200 or 201 answered: the agent's new pair, or the chain's new head. */
    const settle = (w: number, s: Sent, body: any, fresh: boolean) => {
      if (s.kind === 'self_rotate') {
        agents[w]![s.agent!] = { apiKey: body.apiKey, rotationSecret: body.rotationSecret };
        return;
      }
      s.keyId = body.key.id;
      if (s.chain !== undefined) chains[w]![s.chain] = s.keyId!;
      else if (fresh) agents[w]!.push({ apiKey: body.key.plaintext_key, rotationSecret: body.key.rotation_secret });
    };

    const worker = async (w: number, stop: { now: boolean }) => {
      while (!stop.now) {
        const s = nextRequest(w);
        sent.push(s);
        let r;
        try {
          r = await send(s);
        } catch (err) {
          // The server died under this request: it stays in flight, to be retried after the restart.
          if (err instanceof TypeError || (err as Error).name === 'TimeoutError') return;
          throw err;
        }
        s.inFlight = false;
        expect(r.status, r.raw).toBe(s.kind === 'self_rotate' ? 200 : 201);
        settle(w, s, r.body, true);
      }
    };

    let kills = 0;
    let inFlightRetried = 0;
    let freshAfterRetry = 0;
    let replayedAfterRetry = 0;
    let selfRotationsRetried = 0;
    for (let cycle = 0; cycle < KILLS; cycle++) {
      const stop = { now: false };
      const running = [...Array.from({ length: WORKERS }, (_, w) => worker(w, stop)), ...Array.from({ length: DEBIT_WORKERS }, () => debits.worker(stop))];
      // A random moment: 300-1500 ms into the storm.
      await new Promise((r) => setTimeout(r, 300 + Math.random() * 1200));
      stop.now = true;
      await server.kill();
      kills++;
      await Promise.all(running);

      server = await startServer(cluster.url, env);
      const retried = await debits.retryInFlight();
      debitsRetried += retried.retried;
      debitsReplayed += retried.replayed;
      // Retry every in-flight request with its Idempotency-Key until it is no longer in progress
      // (the dead claim's lock expires after LOCK_TIMEOUT_MS); a self-rotation with its old pair,
      // which replaces the successor its lost answer named, if that committed.
      const pending = sent.filter((s) => s.inFlight);
      await Promise.all(
        pending.map(async (s) => {
          const deadline = Date.now() + LOCK_TIMEOUT_MS + 10_000;
          for (;;) {
            const r = await send(s);
            if (r.status === 409 && r.body?.error?.code === 'idempotency_in_progress') {
              expect(r.headers.get('retry-after')).toBe('1');
              expect(Date.now()).toBeLessThan(deadline);
              await new Promise((res) => setTimeout(res, 200));
              continue;
            }
            const w = Number(s.idem.split('-')[1]);
            if (s.kind === 'self_rotate') {
              expect(r.status, r.raw).toBe(200);
              settle(w, s, r.body, true);
              s.inFlight = false;
              inFlightRetried++;
              selfRotationsRetried++;
              return;
            }
            expect(r.status, r.raw).toBe(201);
            const replayed = r.headers.get('idempotent-replayed') === 'true';
            if (replayed) {
              replayedAfterRetry++;
              // The stored answer never re-discloses the secret.
              expect(r.body.key.plaintext_key).toBeUndefined();
              expect(r.body.key.rotation_secret).toBeUndefined();
            } else {
              freshAfterRetry++;
              expect(r.body.key.plaintext_key).toMatch(/^sk_test_/);
            }
            settle(w, s, r.body, !replayed);
            s.inFlight = false;
            inFlightRetried++;
            return;
          }
        }),
      );
    }

    // A completed request retried replays its stored answer: the same key, no second effect.
    const completed = sent.filter((s) => s.keyId && s.kind !== 'self_rotate').slice(-20);
    for (const s of completed) {
      const r = await send(s);
      expect(r.status).toBe(201);
      expect(r.headers.get('idempotent-replayed')).toBe('true');
      expect(r.body.key.id).toBe(s.keyId);
    }

    // The delegated debits: the ledger holds what the client was answered, and each key of the tree
    // was charged its own and its descendants' debits (the root all of them, the depth-2 key its own).
    const ledger = await debits.checkLedger(cluster.url);
    const c0 = new pg.Client({ connectionString: cluster.url });
    await c0.connect();
    const spent = await c0
      .query<{ id: string; spend: number }>('select id, monthly_spend_cents::int as spend from api_keys where id = any($1::uuid[])', [tree.map((k) => k.id)])
      .finally(() => c0.end());
    expect(tree.map((k) => spent.rows.find((r) => r.id === k.id)?.spend)).toEqual(ledger.cents);
    expect(ledger.debited).toBeGreaterThan(0);

    const report = await checkInvariants(cluster.url);
    expect(report.violations).toEqual([]);
    // Every 201 the client received is in the database.
    expect(await missingKeys(cluster.url, sent.map((s) => s.keyId!).filter(Boolean))).toEqual([]);
    // One effect per request: one key per mint name (the name is the Idempotency-Key).
    const mints = sent.filter((s) => s.kind === 'mint');
    const c = new pg.Client({ connectionString: cluster.url });
    await c.connect();
    const { rows } = await c
      .query('select name, count(*)::int as n from api_keys where rotated_from is null group by name having count(*) > 1')
      .finally(() => c.end());
    expect(rows).toEqual([]);
    expect(sent.every((s) => !s.inFlight && (s.kind === 'self_rotate' || s.keyId))).toBe(true);
    // No agent was stranded: the last pair each one was answered works.
    const pairs = agents.flat();
    const working = await Promise.all(pairs.map(async (p) => (await http(server!.base, 'GET', '/v1/audit?limit=1', { token: p.apiKey })).status));
    expect(working.filter((s) => s !== 200)).toEqual([]);
    const selfRotations = sent.filter((s) => s.kind === 'self_rotate').length;
    expect([...statuses.keys()].filter((s) => s >= 500)).toEqual([]);
    process.stdout.write(
      `[crash] kills survived: ${kills}; requests: ${sent.length} (${mints.length} mints, ${sent.length - mints.length - selfRotations} rotations, ` +
        `${selfRotations} self-rotations, ${selfRotationsRetried} retried with the old pair after a kill, ${pairs.length} agents all working); ` +
        `in flight at a kill and retried: ${inFlightRetried} (${replayedAfterRetry} replayed the stored answer, ${freshAfterRetry} fresh single effect); ` +
        `delegated debits: ${ledger.debited} debited, ${ledger.refused} refused at a cap, ${debitsRetried} in flight at a kill and retried ` +
        `(${debitsReplayed} replayed); spend root/depth 1/depth 2 ${ledger.cents.join('/')} cents; ` +
        `keys ${report.keys}, rotations ${report.rotations}, events ${report.events}; statuses ${JSON.stringify(Object.fromEntries(statuses))}\n`,
    );
  }, 150_000);
});
