/*
 * Every import the bench makes from keyplane's own source, in one place: the bench drives keyplane
 * over HTTP and seeds it with plain SQL, and needs only these few pieces of its code. When a source
 * file moves, this is the file to update.
 *
 *  - openDatabase: the baseline app (bench/baseline.server.ts) runs its one SELECT on the same
 *    database client keyplane uses, and migrates its embedded (PGlite) database with it.
 *  - canonicalEvent, chainHash, ChainedFields: the compliance chain's link format, to check the
 *    history bench/lib/seed.ts writes in SQL against the app's own definition.
 */
export { openDatabase } from '../../src/db/client.js';
export { canonicalEvent, chainHash, type ChainedFields } from '../../src/domain/events.js';
