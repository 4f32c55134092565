import pg from 'pg';

/** The Postgres server the bench scripts create their own databases on. */
export const BENCH_SERVER_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** One statement on the server's maintenance database (create or drop a bench's own database). */
export async function adminQuery(text: string, serverUrl = BENCH_SERVER_URL): Promise<void> {
  const c = new pg.Client({ connectionString: serverUrl });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

/** The URL of database `name` on the same server. */
export function databaseUrlFor(name: string, serverUrl = BENCH_SERVER_URL): string {
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}
