import type { AuditService } from './audit/audit.service.js';
import type { ChainService } from './audit/chain.service.js';
import type { ConsoleService } from './console/console.service.js';
import type { AuthService } from './auth/auth.service.js';
import type { BackupService } from './backup/backup.service.js';
import type { Metrics } from './metrics/metrics.js';
import type { KeysService } from './keys/keys.service.js';
import type { AgentSelfService } from './keys/agent-self.service.js';
import type { DelegationService } from './keys/delegation.service.js';
import type { SelfRotationService } from './keys/self-rotation.service.js';
import type { OperatorTokensService } from './operator-tokens/operator-tokens.service.js';
import type { OperatorKeysService } from './operator/operator.service.js';
import type { PortalService } from './portal/portal.service.js';
import type { VerifyActivity } from './verify/activity.js';
import type { VerifyService } from './verify/verify.service.js';

/** Whether the database answers, and which engine it is (readiness probes). */
export interface HealthService {
  readonly database: 'postgres' | 'pglite';
  ping(): Promise<void>;
}

/** Background work every instance runs (src/jobs.ts). */
export interface MaintenanceService {
  /** Deletes idempotency records past their 12 hours; returns how many. */
  sweepIdempotency(now: Date): Promise<number>;
  /** Links events a crash or a failed round left waiting; returns the accounts seen. */
  linkPending(): Promise<number>;
  /** Writes this instance's verification counts gathered since the last flush; returns how many rows. */
  flushActivity(): Promise<number>;
  /** Deletes verification counts past their 30 days. */
  sweepActivity(now: Date): Promise<number>;
  /** Deletes console sessions past their idle time (the longest idle time: 24 h; each instance checks its own on use). */
  sweepConsoleSessions(now: Date): Promise<number>;
  /** Writes agent_key_expired for keys past their expiry that have none yet; returns how many. */
  recordExpiries(now: Date): Promise<number>;
}

/** Everything the HTTP layer and the CLI are given (built by src/services.ts). */
export interface Services {
  auth: AuthService;
  keys: KeysService;
  agents: SelfRotationService;
  /** An agent's view of its own key, spend and limits. */
  agentSelf: AgentSelfService;
  delegation: DelegationService;
  audit: AuditService;
  chain: ChainService;
  verify: VerifyService;
  /** Verification counts per key, minute and outcome (the console's charts). */
  activity: VerifyActivity;
  portal: PortalService;
  operatorTokens: OperatorTokensService;
  /** Every key of every account, for the operator: find, revoke, leak intake. */
  operatorKeys: OperatorKeysService;
  /** The operator console's sessions and its reads (src/http/console). */
  console: ConsoleService;
  health: HealthService;
  /** The embedded database's online backup (unavailable in server mode). */
  backup: BackupService;
  maintenance: MaintenanceService;
  /** This process's Prometheus registry and series (GET /metrics on the admin listener). */
  metrics: Metrics;
}
