import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { BatchedLookup } from '../../src/db/batched-lookup.js';
import { HeldConnection } from '../../src/db/held-connection.js';

/** A pool of fake connections whose statements the test finishes by hand. */
function fakePool() {
  const log: string[] = [];
  const statements: { conn: number; inputs: number[]; finish: () => void; fail: (err: Error) => void }[] = [];
  const released: { conn: number; broken: boolean }[] = [];
  let made = 0;
  const connect = async () => {
    const conn = ++made;
    const client = Object.assign(new EventEmitter(), {
      conn,
      query: (inputs: number[]) =>
        new Promise<string[]>((resolve, reject) => {
          log.push(`submit ${inputs.join(',')}`);
          statements.push({ conn, inputs, finish: () => resolve(inputs.map((i) => `v${i}`)), fail: reject });
        }),
      release: (err?: Error) => released.push({ conn, broken: err !== undefined }),
    });
    return client as unknown as pg.PoolClient;
  };
  return { pool: { connect } as unknown as pg.Pool, log, statements, released, made: () => made };
}

type FakeClient = pg.PoolClient & { query(inputs: number[]): Promise<string[]> };

function debitLikeLoader(held: HeldConnection) {
  return new BatchedLookup<number, string>(
    (inputs) => held.run((client) => (client as FakeClient).query(inputs)),
    256,
    () => held.release(),
  );
}

const tick = () => new Promise((r) => setImmediate(r));

describe('HeldConnection', () => {
  it("submits the next batch's statement before the previous batch's answers run", async () => {
    const { pool, log, statements } = fakePool();
    const held = new HeldConnection(pool);
    const loader = debitLikeLoader(held);
    const first = loader.lookup(1).then((v) => log.push(`answer ${v}`));
    await tick();
    const second = loader.lookup(2).then((v) => log.push(`answer ${v}`));
    statements[0]!.finish();
    await first;
    // Through the pool, the second statement would leave after pg-pool's nextTick, behind every
    // answer's continuation; on the held connection it is already submitted.
    expect(log).toEqual(['submit 1', 'submit 2', 'answer v1']);
    statements[1]!.finish();
    await second;
  });

  it('keeps one connection across back-to-back batches and gives it back when idle', async () => {
    const { pool, statements, released, made } = fakePool();
    const held = new HeldConnection(pool);
    const loader = debitLikeLoader(held);
    const all = [loader.lookup(1)];
    await tick();
    all.push(loader.lookup(2), loader.lookup(3));
    statements[0]!.finish();
    await tick();
    statements[1]!.finish();
    expect(await Promise.all(all)).toEqual(['v1', 'v2', 'v3']);
    expect(statements.map((s) => s.conn)).toEqual([1, 1]);
    expect(made()).toBe(1);
    expect(released).toEqual([{ conn: 1, broken: false }]);
  });

  it('gives a connection whose statement failed back broken, and the next batch takes a fresh one', async () => {
    const { pool, statements, released } = fakePool();
    const held = new HeldConnection(pool);
    const loader = debitLikeLoader(held);
    const failed = loader.lookup(1);
    await tick();
    const next = loader.lookup(2);
    statements[0]!.fail(new Error('terminating connection due to administrator command'));
    await expect(failed).rejects.toThrow('administrator command');
    await tick();
    statements[1]!.finish();
    expect(await next).toBe('v2');
    expect(statements.map((s) => s.conn)).toEqual([1, 2]);
    expect(released).toEqual([
      { conn: 1, broken: true },
      { conn: 2, broken: false },
    ]);
  });

  it('a held connection that errors between statements is given back broken, so the next batch takes a fresh one', async () => {
    const { pool, released } = fakePool();
    const held = new HeldConnection(pool);
    const client = await held.acquire();
    client.emit('error', new Error('Connection terminated unexpectedly'));
    expect(released).toEqual([{ conn: 1, broken: true }]);
    expect(client.listenerCount('error')).toBe(0);
    held.release();
    expect(released).toHaveLength(1);
  });
});
