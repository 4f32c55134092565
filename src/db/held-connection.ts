import type pg from 'pg';

/**
 * A pool connection that one loader (db/batched-lookup.ts) keeps across its back-to-back batches
 * and gives back when it goes idle.
 *
 * Why: a statement sent through the pool leaves only after pg-pool hands over a connection, on
 * process.nextTick, which runs after every promise continuation already queued; after a batch of
 * debits that is the whole burst of answers being written (~1.5 ms for 25 on the bench's host). On a
 * connection already in hand, pg submits the statement synchronously, so the next batch executes in
 * Postgres while the previous one's answers are written.
 *
 * A connection that failed a statement is given back as broken (the pool destroys it), whatever the
 * error: the next batch takes a fresh one.
 */
export class HeldConnection {
  private client: pg.PoolClient | null = null;

  constructor(private readonly pool: pg.Pool) {}

  /** Takes a connection from the pool (waiting as any pool user does) and keeps it. */
  async acquire(): Promise<pg.PoolClient> {
    if (!this.client) {
      const client = await this.pool.connect();
      // A held connection that dies between two statements (server restart, failover) is dropped at
      // once, so that the next batch takes a fresh one instead of failing on it.
      client.on('error', this.onError);
      this.client = client;
    }
    return this.client;
  }

  private readonly onError = (err: Error) => this.release(err);

  /**
   * Runs a statement on the held connection, taking one first if none is held. With a connection in
   * hand, `statement` is called before any await, so pg submits it at once. A failed statement gives
   * the connection back broken.
   */
  async run<T>(statement: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const inHand = this.client;
    try {
      return await statement(inHand ?? (await this.acquire()));
    } catch (err) {
      this.release(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
  }

  /** Gives the connection back: broken (destroyed by the pool) when an error is passed. */
  release(err?: Error): void {
    const client = this.client;
    this.client = null;
    client?.removeListener('error', this.onError);
    client?.release(err);
  }
}
