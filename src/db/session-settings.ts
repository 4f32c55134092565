import pg from 'pg';

/*
 * The settings of every keyplane session in server mode (docs/decisions/0004-planner-settings.md),
 * and how they reach a session. Connected directly, each connection sends them as startup
 * parameters. Behind a pooler in transaction mode (DATABASE_POOLER=transaction) a client's session
 * is not the server's: PgBouncer refuses startup parameters it does not track (`options`,
 * `statement_timeout`), and a named prepared statement lives on one server connection while the next
 * transaction may run on another. There, migrate stores the settings on keyplane's role in its own
 * database (ALTER ROLE ... IN DATABASE ... SET), which every server connection the pooler opens
 * starts with, and statements go unnamed.
 */

/** Statements are short; anything running 10 s is stuck on a lock or a dead server. */
export const STATEMENT_TIMEOUT_MS = 10_000;

/*
 * Planner settings (measurements: docs/performance/journal.md). plan_cache_mode: keyplane's
 * statements look rows up by key and walk indexes in their own order, so their plans do not depend on
 * the values: plan each prepared statement once per connection instead of re-planning it (planning
 * was a third of Postgres's CPU per request). enable_seqscan/enable_bitmapscan off: a plan made once
 * must hold as the tables grow, and made while a table fits in a page or two the cheapest plan is a
 * sequential (or bitmap) scan, kept until the next ANALYZE. Every statement has an index that matches
 * it, so pricing those scans out loses nothing (a statement with no other path still runs one). jit
 * off: an OLTP statement never repays a compile, and a priced-out scan's cost is over any JIT threshold.
 */
export const PLANNER_SETTINGS: Readonly<Record<string, string>> = {
  plan_cache_mode: 'force_generic_plan',
  enable_seqscan: 'off',
  enable_bitmapscan: 'off',
  jit: 'off',
};

/** The planner settings as the `options` startup parameter of a direct connection. */
export const startupOptions = (): string =>
  Object.entries(PLANNER_SETTINGS)
    .map(([name, value]) => `-c ${name}=${value}`)
    .join(' ');

/** Every setting, statement_timeout included, as role-level settings store them. */
const ROLE_SETTINGS: Readonly<Record<string, string>> = { ...PLANNER_SETTINGS, statement_timeout: String(STATEMENT_TIMEOUT_MS) };

/**
 * The statements that store the settings on the current role in the current database, and set them
 * on this session too: the server connection migrate ran on was opened before they were stored, and
 * the pooler hands it to the next transactions. Names and values are this file's constants.
 */
export function roleSettingStatements(): string[] {
  return Object.entries(ROLE_SETTINGS).flatMap(([name, value]) => [
    `do $$ begin execute format('alter role current_user in database %I set ${name} = %L', current_database(), '${value}'); end $$`,
    `set ${name} = '${value}'`,
  ]);
}

/**
 * A pg client whose statements are all unnamed, for a pooler in transaction mode: a named statement
 * (`{ name, text }`, as preparedQuery and drizzle's .prepare() send them) would be parsed on one
 * server connection and executed on another that never saw it. Unnamed, each statement is parsed,
 * bound and run in one round trip, on one server connection.
 */
export class UnnamedStatementClient extends pg.Client {}

// Set on the prototype rather than overridden in the class: Client.query has a dozen overloads.
const baseQuery = pg.Client.prototype.query as (...args: unknown[]) => unknown;
(UnnamedStatementClient.prototype as unknown as { query: typeof baseQuery }).query = function (this: pg.Client, ...args: unknown[]) {
  const config = args[0];
  if (config && typeof config === 'object' && 'name' in config && config.name && !('submit' in config)) {
    args[0] = { ...config, name: undefined };
  }
  return baseQuery.apply(this, args);
};
