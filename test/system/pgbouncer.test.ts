import pg from 'pg';
import { afterAll, beforeAll, expect } from 'vitest';
import { createFleetDatabase } from '../support/fleet.js';
import { requires } from '../support/requirements.js';
import { bootstrap, http, startServer, type ServerProcess } from './support/server.js';
import { startPgBouncer, type PgBouncer } from './support/pgbouncer.js';

/*
 * keyplane behind PgBouncer in transaction mode (issue 31 item 8): Debian's pgbouncer 1.18, which has
 * no max_prepared_statements, so the mode under test is DATABASE_POOLER=transaction (unnamed
 * statements, settings on the role). PgBouncer has 4 server connections for keyplane's 10 + 2
 * client connections, so consecutive transactions of one client land on different server
 * connections: a named statement or a session setting would show.
 */

const { describe, it } = await requires(['postgres', 'pgbouncer']);

describe('behind PgBouncer in transaction mode', () => {
  let db: Awaited<ReturnType<typeof createFleetDatabase>>;
  let bouncer: PgBouncer;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    db = await createFleetDatabase('pgbouncer');
    bouncer = await startPgBouncer(db.url, 'transaction');
    server = await startServer(bouncer.url, { DATABASE_POOLER: 'transaction' });
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    await bouncer?.stop();
    await db?.drop();
  });

  it('refuses the startup parameters a direct connection sends (why the mode exists)', async () => {
    const c = new pg.Client({ connectionString: bouncer.url, options: '-c jit=off' });
    c.on('error', () => {});
    await expect(c.connect()).rejects.toThrow(/unsupported startup parameter/);
    await c.end().catch(() => {});
  });

  it("gives every server connection keyplane's settings from the role", async () => {
    // Several clients at once, so that more than one server connection answers.
    const clients = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const c = new pg.Client({ connectionString: bouncer.url });
        await c.connect();
        return c;
      }),
    );
    try {
      const rows = await Promise.all(
        clients.map(async (c) => {
          await c.query('begin');
          const r = await c.query(
            "select current_setting('plan_cache_mode') as p, current_setting('enable_seqscan') as s, current_setting('jit') as j, current_setting('statement_timeout') as t",
          );
          await c.query('commit');
          return r.rows[0];
        }),
      );
      for (const r of rows) expect(r).toEqual({ p: 'force_generic_plan', s: 'off', j: 'off', t: '10s' });
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it('answers the main routes: mint, list, get, patch, rotate, revoke, audit, verify with debit, self-rotation', async () => {
    const s = server!;
    const boot = await bootstrap(s);
    const svc = (method: string, url: string, body?: unknown, idem?: string) =>
      http(s.base, method, url, { token: boot.serviceKey, body, headers: idem ? { 'idempotency-key': idem } : {} });

    // Each statement runs many times, on whichever server connection PgBouncer picks.
    const minted: { id: string; plaintext_key: string }[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await svc('POST', '/v1/keys', { name: `bouncer ${i}`, monthly_cap_cents: 1000 }, `bouncer-mint-${i}`);
      expect(r.status, r.raw).toBe(201);
      minted.push(r.body.key);
    }
    const replay = await svc('POST', '/v1/keys', { name: 'bouncer 0', monthly_cap_cents: 1000 }, 'bouncer-mint-0');
    expect(replay.status).toBe(201);
    expect(replay.body.key.id).toBe(minted[0]!.id);

    const list = await svc('GET', '/v1/keys?limit=100');
    expect(list.status).toBe(200);
    expect(list.body.total).toBe(6);
    for (const k of minted) expect((await svc('GET', `/v1/keys/${k.id}`)).body.key.id).toBe(k.id);

    const patched = await svc('PATCH', `/v1/keys/${minted[1]!.id}`, { name: 'renamed', agent_label: 'bot-1' });
    expect(patched.status).toBe(200);
    expect(patched.body.key).toMatchObject({ name: 'renamed', agent_label: 'bot-1' });

    const rotated = await svc('POST', `/v1/keys/${minted[2]!.id}/rotate`, undefined, 'bouncer-rotate');
    expect(rotated.status, rotated.raw).toBe(201);
    expect(rotated.body.key.rotated_from).toBe(minted[2]!.id);

    const revoked = await svc('DELETE', `/v1/keys/${minted[3]!.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.key.revoked_at).not.toBeNull();
    expect((await svc('DELETE', `/v1/keys/${minted[3]!.id}`)).status).toBe(404);

    const audit = await http(s.base, 'GET', '/v1/audit?limit=50', { token: boot.apiKey });
    expect(audit.status).toBe(200);
    const verify = (body: object) => http(s.adminBase, 'POST', '/internal/v1/verify', { token: s.adminToken, body });
    const key = minted[4]!.plaintext_key;
    for (let i = 0; i < 3; i++) {
      const r = await verify({ key, verb: 'call', cost_cents: 100, request_id: `bouncer-debit-${i}` });
      expect(r.status, r.raw).toBe(200);
      expect(r.body.valid).toBe(true);
    }
    const after = await verify({ key, verb: 'read' });
    expect(after.body.key.monthly_spend_cents).toBe(300);
    expect((await verify({ key: minted[3]!.plaintext_key, verb: 'read' })).body.valid).toBe(false);

    const agent = await svc('POST', '/v1/keys', { name: 'agent', self_rotation: true }, 'bouncer-agent');
    expect(agent.status).toBe(201);
    const self = await http(s.base, 'POST', '/v1/agents/self/rotate-key', {
      token: agent.body.key.plaintext_key,
      body: { rotationSecret: agent.body.key.rotation_secret },
    });
    expect(self.status, self.raw).toBe(200);
    expect(self.body.agentId).toBe(agent.body.key.id);
    const selfAudit = await http(s.base, 'GET', '/v1/audit?limit=10', { token: self.body.apiKey });
    expect(selfAudit.status).toBe(200);
    expect(selfAudit.body.events.map((e: { data: { event_type: string } }) => e.data.event_type)).toContain('agent_key_self_rotated');

    // Concurrency through 4 server connections: 30 reads at once all answer.
    const burst = await Promise.all(Array.from({ length: 30 }, () => svc('GET', `/v1/keys/${minted[0]!.id}`)));
    expect(burst.map((r) => r.status)).toEqual(Array(30).fill(200));
  }, 60_000);
});
