import type { Database } from './db/database.js';
import { createAuditService } from './domain/audit/audit.service.js';
import { createChainService } from './domain/audit/chain.service.js';
import { EventLinker } from './domain/audit/linker.js';
import { createConsoleService } from './domain/console/console.service.js';
import { createAuthService } from './domain/auth/auth.service.js';
import { createBackupService } from './domain/backup/backup.service.js';
import { createLastUsed } from './domain/auth/last-used.js';
import { sweepIdempotencyKeys } from './domain/idempotency/idempotency.service.js';
import { recordExpiries } from './domain/keys/expiry.js';
import { createKeysService } from './domain/keys/keys.service.js';
import { createAgentSelfService } from './domain/keys/agent-self.service.js';
import { createDelegationService } from './domain/keys/delegation.service.js';
import { createSelfRotationService } from './domain/keys/self-rotation.service.js';
import { createOperatorTokensService } from './domain/operator-tokens/operator-tokens.service.js';
import { createOperatorKeysService } from './domain/operator/operator.service.js';
import { createPortalService } from './domain/portal/portal.service.js';
import type { Services } from './domain/services.js';
import { createVerifyActivity } from './domain/verify/activity.js';
import { createMetrics, type Metrics } from './domain/metrics/metrics.js';
import { createVerifyService } from './domain/verify/verify.service.js';

export interface ServicesOptions {
  /** How long an Idempotency-Key claim blocks retries before it is presumed dead (config). */
  idempotencyLockTimeoutMs?: number;
  /** How long requests wait for a linking round before answering 503 (tests shorten it). */
  linkRoundTimeoutMs?: number;
  /** Where a failed linking round is reported (the server's logger); its events are retried. */
  onLinkFailure?: (accountId: string, err: unknown) => void;
  /** Count verify answers for the console's charts (default true; bench/verify-activity.ts compares). */
  recordVerifyActivity?: boolean;
  /** The process's metrics (main.ts makes them before opening the database, to time pool waits); else fresh ones. */
  metrics?: Metrics;
}

/** The scrape-time gauges that read the database's pools and the linker's queue. */
function watchDatabase(metrics: Metrics, database: Database, linker: EventLinker): void {
  const pools = database.pools;
  if (pools) {
    metrics.sources.pools = Object.fromEntries(
      Object.entries(pools).map(([name, p]) => [name, () => ({ total: p.totalCount, idle: p.idleCount, waiting: p.waitingCount })]),
    );
  }
  metrics.sources.eventsWaitingLink = () => linker.countWaiting();
}

/** The one place the domain meets the database: every service, built once per process. */
export function createServices(database: Database, opts: ServicesOptions = {}): Services {
  const linker = new EventLinker(database.linkerDb, { roundTimeoutMs: opts.linkRoundTimeoutMs, onFailure: opts.onLinkFailure });
  const store = { db: database.db, linker };
  const lastUsed = createLastUsed(database.db);
  const activity = createVerifyActivity(database.db);
  const consoleService = createConsoleService(database.db);
  const metrics = opts.metrics ?? createMetrics();
  watchDatabase(metrics, database, linker);
  return {
    auth: createAuthService(database.db, lastUsed),
    keys: createKeysService(store, { lockTimeoutMs: opts.idempotencyLockTimeoutMs }),
    agents: createSelfRotationService(store),
    agentSelf: createAgentSelfService(store),
    delegation: createDelegationService(store, { lockTimeoutMs: opts.idempotencyLockTimeoutMs }),
    audit: createAuditService(store),
    chain: createChainService(store),
    verify: createVerifyService(database.db, lastUsed, metrics, opts.recordVerifyActivity === false ? undefined : activity.record),
    activity,
    portal: createPortalService(store),
    operatorTokens: createOperatorTokensService(store),
    operatorKeys: createOperatorKeysService(store),
    console: consoleService,
    health: { database: database.kind, ping: () => database.ping() },
    backup: createBackupService(database.dump),
    maintenance: {
      sweepIdempotency: (now) => sweepIdempotencyKeys(database.db, now),
      linkPending: () => linker.linkPending(),
      flushActivity: () => activity.flush(),
      sweepActivity: (now) => activity.sweep(now),
      sweepConsoleSessions: (now) => consoleService.sweepSessions(now),
      recordExpiries: (now) => recordExpiries(store, now),
    },
    metrics,
  };
}
