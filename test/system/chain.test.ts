import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/database.js';
import { queryRows } from '../../src/db/statements.js';
import { authenticate, type ServicePrincipal } from '../../src/domain/auth/auth.service.js';
import { verifyAccountChain, verifyChains, type ChainBreak } from '../../src/domain/audit/chain.service.js';
import { listChildKeys } from '../../src/domain/keys/keys.service.js';
import type { OpContext } from '../../src/domain/context.js';
import * as portal from '../../src/domain/portal/portal.service.js';
import { storeOf, testDatabase } from '../support/harness.js';

/*
 * Tamper evidence. In Postgres mode this works on the run's shared database (each test touches only
 * its own accounts). In embedded mode the CLI runs in another process, so the accounts live in a
 * PGlite data directory of this file's own, closed before the CLI opens it.
 */

const run = promisify(execFile);
const BIN = path.resolve('bin/keyplane.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'keyplane-chain-'));
const dataDir = path.join(tmp, 'data');
const url = inject('databaseUrl');

let database: Database;
const ctx = (): OpContext => ({ actor: { kind: 'portal', keyId: null, keyPrefix: 'test' }, meta: { requestId: 'r1', ip: '10.0.0.1', userAgent: 'vitest' }, now: new Date() });

async function openOwn(): Promise<Database> {
  if (url) return testDatabase();
  const db = await openDatabase({ dataDir });
  await db.migrate();
  return db;
}

/** An account with 8 events: created, a service key, a portal key, five list reads. */
async function account(db: Database): Promise<string> {
  const a = await portal.createAccount(storeOf(db), `chain-${Math.random().toString(36).slice(2)}`, ctx());
  const sk = await portal.createServiceKey(storeOf(db), { accountId: a.id, environment: 'test', name: 's' }, ctx());
  await portal.createPortalApiKey(storeOf(db), { accountId: a.id, environment: 'test', name: 'p' }, ctx());
  const principal = (await authenticate(db.db, sk.plaintext, 'service', { readOnly: true, now: new Date() })) as ServicePrincipal;
  for (let i = 0; i < 5; i++) await listChildKeys(storeOf(db), principal, { limit: 10, offset: 0 }, ctx());
  return a.id;
}

/** Changes rows of an append-only table the only way one can: as a superuser, with triggers off. */
async function tamper(db: Database, statements: ReturnType<typeof sql>[]): Promise<void> {
  await db.db.transaction(async (tx) => {
    await tx.execute(sql`set local session_replication_role = replica`);
    for (const s of statements) await tx.execute(s);
  });
}

const idAt = async (db: Database, accountId: string, seq: number) =>
  (await queryRows<{ id: string }>(db.db, sql`select id from compliance_events where account_id = ${accountId} and seq = ${seq}`))[0]!.id;

async function cli(args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'silent' };
  delete env.DATABASE_URL;
  if (url) env.DATABASE_URL = url;
  else env.DATA_DIR = dataDir;
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env, timeout: 150_000, maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

interface Case {
  accountId: string;
  expected: Omit<ChainBreak, 'message' | 'accountId'> | null;
}
const cases: Record<string, Case> = {};

beforeAll(async () => {
  database = await openOwn();
  const db = database;
  const [clean, modified, deleted, reordered, truncated] = await Promise.all([1, 2, 3, 4, 5].map(() => account(db)));

  cases.untouched = { accountId: clean!, expected: null };

  const modifiedId = await idAt(db, modified!, 3);
  await tamper(db, [sql`update compliance_events set data = data || '{"name":"someone else"}'::jsonb where id = ${modifiedId}`]);
  cases.modified = { accountId: modified!, expected: { seq: 3, eventId: modifiedId, problem: 'hash_mismatch' } };

  const afterDeleted = await idAt(db, deleted!, 5);
  await tamper(db, [sql`delete from compliance_events where account_id = ${deleted} and seq = 4`]);
  cases.deleted = { accountId: deleted!, expected: { seq: 4, eventId: afterDeleted, problem: 'seq_gap' } };

  // Swap the positions of events 2 and 6 (three steps: (account_id, seq) is unique).
  const sixth = await idAt(db, reordered!, 6);
  await tamper(db, [
    sql`update compliance_events set seq = -1 where account_id = ${reordered} and seq = 2`,
    sql`update compliance_events set seq = 2 where account_id = ${reordered} and seq = 6`,
    sql`update compliance_events set seq = 6 where account_id = ${reordered} and seq = -1`,
  ]);
  cases.reordered = { accountId: reordered!, expected: { seq: 2, eventId: sixth, problem: 'prev_hash_mismatch' } };

  await tamper(db, [sql`delete from compliance_events where account_id = ${truncated} and seq = 8`]);
  cases['last event deleted'] = { accountId: truncated!, expected: { seq: 8, eventId: null, problem: 'head_mismatch' } };
  // Embedded mode opens a file-backed PGlite here, which is slow on a loaded machine.
}, 180_000);

afterAll(async () => {
  if (!url && database) await database.close().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
});

describe('the compliance log is append-only', () => {
  it("the app's connection can neither UPDATE nor DELETE an event", async () => {
    const accountId = cases.untouched!.accountId;
    await expect(database.db.execute(sql`update compliance_events set data = '{}'::jsonb where account_id = ${accountId}`)).rejects.toThrow();
    await expect(database.db.execute(sql`delete from compliance_events where account_id = ${accountId}`)).rejects.toThrow();
    const rows = await queryRows<{ n: string }>(database.db, sql`select count(*) as n from compliance_events where account_id = ${accountId}`);
    expect(Number(rows[0]!.n)).toBe(8);
    expect((await verifyAccountChain(database.db, accountId)).firstBreak).toBeNull();
  });
});

describe('verification names the first broken link', () => {
  it('through the service: modified, deleted, reordered and truncated chains break where expected; untouched is clean', async () => {
    for (const [name, c] of Object.entries(cases)) {
      const v = await verifyAccountChain(database.db, c.accountId);
      if (c.expected === null) {
        expect(v.firstBreak, name).toBeNull();
        expect(v.events).toBe(8);
      } else {
        expect(v.firstBreak, name).toMatchObject({ accountId: c.accountId, ...c.expected });
        expect(v.firstBreak!.message.length).toBeGreaterThan(10);
      }
    }
    const one = await verifyChains(database.db, { accountId: cases.modified!.accountId });
    expect(one.firstBreak?.seq).toBe(3);
    // Every account, in id order: the first broken one is the tampered account with the lowest id
    // (no other test breaks a chain; accounts that other tests are writing to verify clean).
    const all = await verifyChains(database.db);
    const tampered = Object.values(cases).filter((c) => c.expected).map((c) => c.accountId).sort();
    expect(all.firstBreak?.accountId).toBe(tampered[0]);
    expect(all.accounts).toBeGreaterThanOrEqual(1);
  });

  it('through `keyplane audit verify --account`: exit 0 when clean, 3 and the broken link otherwise', async () => {
    // Embedded mode: the data directory belongs to one process at a time.
    if (!url) await database.close();
    try {
      for (const [name, c] of Object.entries(cases)) {
        // One case in human form, the rest as JSON (each CLI start costs seconds in embedded mode).
        if (name === 'deleted') {
          const human = await cli(['audit', 'verify', '--account', c.accountId]);
          expect(human.code).toBe(3);
          expect(human.stdout).toContain(`chain broken: account ${c.accountId}, seq 4, event ${c.expected!.eventId}: seq_gap`);
          continue;
        }
        const res = await cli(['audit', 'verify', '--account', c.accountId, '--json']);
        const out = JSON.parse(res.stdout);
        if (c.expected === null) {
          expect(res.code, name).toBe(0);
          expect(out).toMatchObject({ ok: true, accounts: 1, events: 8, first_break: null });
        } else {
          expect(res.code, name).toBe(3);
          expect(out.ok).toBe(false);
          expect(out.first_break).toMatchObject({ account_id: c.accountId, seq: c.expected.seq, event_id: c.expected.eventId, problem: c.expected.problem });
        }
      }
      // An export is the stored rows in seq order: 8 lines, each carrying its link.
      const exported = await cli(['audit', 'export', '--account', cases.untouched!.accountId]);
      expect(exported.code).toBe(0);
      const lines = exported.stdout.trim().split('\n').map((l) => JSON.parse(l));
      expect(lines.map((l) => l.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(lines[0].prev_hash).toBe('0'.repeat(64));
      for (let i = 1; i < lines.length; i++) expect(lines[i].prev_hash).toBe(lines[i - 1].hash);
    } finally {
      if (!url) database = await openOwn();
    }
  }, 180_000);
});
