import pg from 'pg';
import { expect } from 'vitest';
import { http, type ServerProcess } from './server.js';

/*
 * Debits through a delegation tree, for the crash test: a capped root minted by the service key with
 * can_delegate, its depth-1 child and that child's depth-2 child (each with its own budget). Workers
 * debit through all three at random (mostly through the delegated keys) with a fresh request_id per
 * debit; a debit cut by a kill stays in flight and is retried after the restart with the same
 * request_id and cost. What the client was answered is checked against the ledger afterwards, and
 * the spend and cap invariants (support/invariants.ts) against every key's row.
 */

/** The tree's caps: small enough that the storm's debits reach them (the root's own debits have 2,000¢ beside its reservations). */
export const ROOT_CAP_CENTS = 4_000;
export const DEPTH1_BUDGET_CENTS = 2_000;
export const DEPTH2_BUDGET_CENTS = 800;

export interface TreeKey {
  id: string;
  plaintext: string;
  depth: number;
}

interface Debit {
  key: number;
  requestId: string;
  cost: number;
  /** What the last answer said: debited (fresh or replayed) or refused (cap); undefined while in flight. */
  outcome?: 'debited' | 'refused';
}

/** The root, its depth-1 child and its depth-2 grandchild, in that order. */
export async function delegationTree(server: ServerProcess, serviceKey: string): Promise<TreeKey[]> {
  const root = await http(server.base, 'POST', '/v1/keys', {
    token: serviceKey,
    headers: { 'idempotency-key': 'crash-delegating-root' },
    body: { name: 'crash delegating root', permissions: 'full', monthly_cap_cents: ROOT_CAP_CENTS, can_delegate: true },
  });
  expect(root.status, root.raw).toBe(201);
  const tree: TreeKey[] = [{ id: root.body.key.id, plaintext: root.body.key.plaintext_key, depth: 0 }];
  for (const [depth, budget] of [[1, DEPTH1_BUDGET_CENTS], [2, DEPTH2_BUDGET_CENTS]] as const) {
    const r = await http(server.base, 'POST', '/v1/agents/self/keys', {
      token: tree.at(-1)!.plaintext,
      headers: { 'idempotency-key': `crash-delegate-${depth}` },
      // A day less at each level: a delegated key never outlives its parent.
      body: { name: `crash delegated depth ${depth}`, permissions: 'full', budget_cents: budget, ttl_seconds: 86_400 * (3 - depth), can_delegate: depth < 2 },
    });
    expect(r.status, r.raw).toBe(201);
    expect(r.body.delegation.depth).toBe(depth);
    tree.push({ id: r.body.key.id, plaintext: r.body.key.plaintext_key, depth });
  }
  return tree;
}

export class DebitLoad {
  readonly debits: Debit[] = [];
  private seq = 0;

  constructor(
    private readonly tree: TreeKey[],
    private readonly server: () => ServerProcess,
  ) {}

  /** One debit's request on the current server's admin listener (its operator token changes per start). */
  private async send(d: Debit) {
    const s = this.server();
    const r = await http(s.adminBase, 'POST', '/internal/v1/verify', {
      token: s.adminToken,
      body: { key: this.tree[d.key]!.plaintext, verb: 'call', cost_cents: d.cost, request_id: d.requestId },
    });
    expect(r.status, r.raw).toBe(200);
    if (r.body.valid) {
      expect(r.body.debit).toMatchObject({ request_id: d.requestId, cost_cents: d.cost });
      d.outcome = 'debited';
    } else {
      // The only refusal a live tree with full permissions answers: a cap (its own or an ancestor's).
      expect(r.body.code, r.raw).toBe('agent_cap_exceeded');
      d.outcome = 'refused';
    }
    return r.body as { debit?: { replayed: boolean } };
  }

  /** Debits until told to stop; a request cut by a kill is left in flight. */
  async worker(stop: { now: boolean }): Promise<void> {
    while (!stop.now) {
      // A quarter through the root (its own debits must leave its children's reservations intact).
      const key = Math.random() < 0.25 ? 0 : 1 + Math.floor(Math.random() * (this.tree.length - 1));
      // Mostly 1-9¢, a fifth 100-300¢: the large ones meet a cap within a few dozen debits (a slow
      // host's storm) while the small ones still fit, so both outcomes happen under the kills.
      const cost = Math.random() < 0.2 ? 100 + Math.floor(Math.random() * 201) : 1 + Math.floor(Math.random() * 9);
      const d: Debit = { key, requestId: `crash-debit-${++this.seq}-${Math.random().toString(36).slice(2)}`, cost };
      this.debits.push(d);
      try {
        await this.send(d);
      } catch (err) {
        if (err instanceof TypeError || (err as Error).name === 'TimeoutError') return;
        throw err;
      }
    }
  }

  /** Retries every debit in flight at the kill, once, with its request_id: returns how many replayed a committed debit. */
  async retryInFlight(): Promise<{ retried: number; replayed: number }> {
    const pending = this.debits.filter((d) => d.outcome === undefined);
    const answers = await Promise.all(pending.map((d) => this.send(d)));
    return { retried: pending.length, replayed: answers.filter((a) => a.debit?.replayed).length };
  }

  /**
   * The client's answers against the ledger: each debit answered valid is exactly one ledger row, of
   * its cost, on the key it was made with; each refused or never answered one has none; the ledger
   * holds no other debit of the tree. Returns the counts for the report.
   */
  async checkLedger(databaseUrl: string): Promise<{ debited: number; refused: number; cents: number[] }> {
    expect(this.debits.filter((d) => d.outcome === undefined)).toEqual([]);
    const c = new pg.Client({ connectionString: databaseUrl });
    await c.connect();
    const { rows } = await c
      .query<{ api_key_id: string; request_id: string; cost_cents: number }>('select api_key_id, request_id, cost_cents from spend_ledger where api_key_id = any($1::uuid[])', [
        this.tree.map((k) => k.id),
      ])
      .finally(() => c.end());
    const ledger = new Map(rows.map((r) => [r.request_id, r]));
    expect(ledger.size).toBe(rows.length);
    const debited = this.debits.filter((d) => d.outcome === 'debited');
    expect(debited.map((d) => ledger.get(d.requestId))).toEqual(debited.map((d) => ({ api_key_id: this.tree[d.key]!.id, request_id: d.requestId, cost_cents: d.cost })));
    expect(this.debits.filter((d) => d.outcome === 'refused' && ledger.has(d.requestId))).toEqual([]);
    expect(rows.length).toBe(debited.length);
    // Per key of the tree, what its debits (its own and its descendants') came to: the client's sum.
    const cents = this.tree.map((_, i) => debited.filter((d) => d.key >= i).reduce((sum, d) => sum + d.cost, 0));
    return { debited: debited.length, refused: this.debits.length - debited.length, cents };
  }
}
