/*
 * Every import the bench makes from keyplane's own source, in one place. When a source file moves,
 * this is the file to update.
 *
 * `npm run bench` (bench/run.ts, both modes) drives keyplane over HTTP, seeds it with plain SQL on
 * the stable tables, and its baseline app (bench/baseline.server.ts) loads none of keyplane's code.
 * Of this file it uses only canonicalEvent and chainHash: the compliance chain's link format, to
 * check the history bench/lib/seed.ts writes in SQL against the app's own definition.
 *
 * The one-off probes (chain-cost.ts, cpu-probe.ts, rate-limit-store.ts, verify-scale.ts,
 * verify-server.ts) call keyplane's code in-process, and use the rest.
 */
export { openDatabase, type Db } from '../../src/db/client.js';
export { canonicalEvent, chainHash, recordEvent, type ChainedFields, type EventInput } from '../../src/domain/events.js';

export { buildAdminApp, buildApp } from '../../src/app.js';
export { queryRows } from '../../src/db/raw.js';
export { apiKeys } from '../../src/db/schema.js';
export { authenticate, type ServicePrincipal } from '../../src/domain/auth.service.js';
export { verifyChains } from '../../src/domain/chain-verify.service.js';
export { listChildKeys, mintChildKeyTx, prepareKeyMaterial } from '../../src/domain/child-keys.service.js';
export { systemClock } from '../../src/domain/clock.js';
export type { OpContext } from '../../src/domain/context.js';
export { newId } from '../../src/domain/credentials.js';
export { withEvents } from '../../src/domain/event-linker.js';
export * as portal from '../../src/domain/portal.service.js';
export { MemoryCounterStore, RedisCounterStore, type CounterStore } from '../../src/http/counter-stores.js';
export { LIMIT_NAMES } from '../../src/http/limits.js';
