/*
 * Every import the bench makes from keyplane's own source, in one place. When a source file moves,
 * this is the file to update.
 *
 * `npm run bench` (bench/run.ts, both modes) drives keyplane over HTTP, seeds it with plain SQL on
 * the stable tables, and its baseline app (bench/baseline.server.ts) loads none of keyplane's code.
 * Of this file it uses only canonicalEvent and chainHash: the compliance chain's link format, to
 * check the history bench/lib/seed.ts writes in SQL against the app's own definition.
 *
 * The one-off probes (chain-cost.ts, cpu-probe.ts, rate-limit-store.ts, scrub-cost.ts,
 * verify-scale.ts, verify-server.ts) call keyplane's code in-process, and use the rest.
 */
export { openDatabase, type Database, type Db } from '../../src/db/database.js';
export { canonicalEvent, chainHash, type ChainedFields } from '../../src/domain/audit/chain-hash.js';
export { eventFields, recordEvent, withEvents, type EventInput } from '../../src/domain/audit/events.js';

export { buildAdminApp, buildApp } from '../../src/app.js';
export { queryRows } from '../../src/db/statements.js';
export { apiKeys } from '../../src/db/schema.js';
export { EventLinker } from '../../src/domain/audit/linker.js';
export { actorOf, authenticate, type ServicePrincipal } from '../../src/domain/auth/auth.service.js';
export { explainAuditFeed } from '../../src/domain/audit/audit.service.js';
export { createServices } from '../../src/services.js';
export { verifyChains } from '../../src/domain/audit/chain.service.js';
export { listChildKeys } from '../../src/domain/keys/keys.service.js';
export { mintChildKeyTx } from '../../src/domain/keys/child-keys.js';
export { prepareKeyMaterial } from '../../src/domain/keys/key-material.js';
export { systemClock } from '../../src/domain/clock.js';
export type { OpContext } from '../../src/domain/context.js';
export { newId } from '../../src/domain/ids.js';
export * as portal from '../../src/domain/portal/portal.service.js';
export { MemoryCounterStore, RedisCounterStore, type CounterStore } from '../../src/http/plugins/counter-stores.js';
export { LIMIT_NAMES } from '../../src/http/plugins/limits.js';
export { loggerOptions } from '../../src/http/plugins/logger.js';
export { isSecretShaped, scrubSecrets } from '../../src/domain/auth/secret-shapes.js';
export { generateToken } from '../../src/domain/auth/credentials.js';

/** A database's services and an event store, as the probes drive keyplane in-process. */
export async function probeWorld(database: import('../../src/db/database.js').Database, opts: import('../../src/services.js').ServicesOptions = {}) {
  const { createServices: create } = await import('../../src/services.js');
  const { EventLinker: Linker } = await import('../../src/domain/audit/linker.js');
  return { services: create(database, opts), store: { db: database.db, linker: new Linker(database.linkerDb) } };
}
