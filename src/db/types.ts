import type { ExtractTablesWithRelations } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import type { Schema } from './schema.js';

/** Either driver's drizzle database: the queries are written once against this type. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
/** A transaction handle. Steps that must run inside a transaction take this, never a Db. */
export type Tx = PgTransaction<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;
