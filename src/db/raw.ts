import type { SQL } from 'drizzle-orm';
import type { Db, Tx } from './client.js';

/** Runs raw SQL on either driver and returns its rows (both drivers' results carry `.rows`). */
export async function queryRows<T>(db: Db | Tx, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown as { rows: T[] };
  return result.rows;
}
