import { getTableColumns, getTableName, sql, type SQL } from 'drizzle-orm';
import type { PgTable } from 'drizzle-orm/pg-core';

type Fields<T extends PgTable> = readonly (keyof T['$inferInsert'] & string)[];

/**
 * `insert into <table> (<columns>) select <values> from <source>`: the INSERT of one row that happens
 * once for each row of `source`, an earlier CTE of the same statement, so that a write can be gated
 * on an idempotency claim and happen not at all when the claim found its key taken.
 *
 * Built once, with a placeholder `<prefix><field>` per field (db/raw.ts: preparedQuery); fill them
 * with insertSelectValues. Each value is encoded by its column as drizzle's own insert encodes it,
 * and cast to the column's type (in INSERT … SELECT, Postgres types a bare parameter as text).
 * Columns not named take their defaults.
 */
export function insertSelectFrom<T extends PgTable>(table: T, fields: Fields<T>, source: string, prefix: string): SQL {
  const columns = getTableColumns(table);
  const named = fields.map((field) => [field, columns[field]!] as const);
  return sql`insert into ${sql.identifier(getTableName(table))} (${sql.join(
    named.map(([, column]) => sql.identifier(column.name)),
    sql`, `,
  )}) select ${sql.join(
    named.map(([field, column]) => sql`${sql.param(sql.placeholder(prefix + field), column)}::${sql.raw(column.getSQLType())}`),
    sql`, `,
  )} from ${sql.raw(source)}`;
}

/** The placeholder values of insertSelectFrom for one row. */
export function insertSelectValues(values: Record<string, unknown>, prefix: string): Record<string, unknown> {
  const filled: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(values)) filled[prefix + field] = value;
  return filled;
}
