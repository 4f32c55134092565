import type { Logger } from 'pino';
import { driverError } from './db/errors.js';
import type { Clock } from './domain/clock.js';
import type { MaintenanceService } from './domain/services.js';

/**
 * Deletes idempotency records past their 12 hours. Every instance runs it; the DELETE uses
 * SKIP LOCKED batches, so instances never contend and a record is deleted once. Expired records
 * are already ignored by the claim logic, so the sweep only bounds the table's size: every 10
 * minutes is plenty.
 */
const SWEEP_INTERVAL_MS = 10 * 60 * 1000;

/**
 * Links compliance events that a crash (between a commit and its linking round) or a failed round
 * left waiting. Requests link their own events before answering, so normally there are none and
 * the check is one probe of an empty partial index.
 */
const LINK_SWEEP_INTERVAL_MS = 2_000;

/**
 * Writes agent_key_expired for keys past their expires_at (domain/keys/expiry.ts). The key is
 * refused from its expiry on without this job; the event is promised within a minute, so every
 * 15 s leaves room for a slow sweep. Every instance runs it; SKIP LOCKED and the marker column make
 * each event once.
 */
export const EXPIRY_SWEEP_INTERVAL_MS = 15_000;

function every(intervalMs: number, runNow: boolean, work: () => Promise<void>): () => void {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      await work();
    } finally {
      running = false;
    }
  };
  if (runNow) void tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** The link-failure report for createServices: the driver's own error, never drizzle's wrapper (its message carries the SQL). */
export function linkFailureLogger(logger: Logger): (accountId: string, err: unknown) => void {
  return (accountId, err) => logger.warn({ accountId, err: driverError(err) }, 'linking compliance events failed; they stay waiting and are retried');
}

/** How often this instance writes its verification counts (VERIFY_ACTIVITY_FLUSH_MS): a crash loses at most this much. */
export const ACTIVITY_FLUSH_MS = 5_000;

export function startJobs(maintenance: MaintenanceService, clock: Clock, logger: Logger, intervalMs = SWEEP_INTERVAL_MS, activityFlushMs = ACTIVITY_FLUSH_MS): () => void {
  const stopIdempotency = every(intervalMs, false, async () => {
    try {
      const deleted = await maintenance.sweepIdempotency(clock.now());
      if (deleted > 0) logger.info({ deleted }, 'swept expired idempotency records');
    } catch (err) {
      logger.warn({ err: driverError(err) }, 'idempotency sweep failed; will retry');
    }
  });
  const stopLinking = every(LINK_SWEEP_INTERVAL_MS, true, async () => {
    try {
      const accounts = await maintenance.linkPending();
      if (accounts > 0) logger.debug({ accounts }, 'linked waiting compliance events');
    } catch (err) {
      logger.warn({ err: driverError(err) }, 'linking waiting compliance events failed; will retry');
    }
  });
  const stopActivity = every(activityFlushMs, false, async () => {
    try {
      await maintenance.flushActivity();
    } catch (err) {
      logger.warn({ err: driverError(err) }, 'writing verification counts failed; they are kept for the next flush');
    }
  });
  const stopConsoleSweeps = every(intervalMs, false, async () => {
    try {
      await maintenance.sweepActivity(clock.now());
      await maintenance.sweepConsoleSessions(clock.now());
    } catch (err) {
      logger.warn({ err: driverError(err) }, 'sweeping verification counts or console sessions failed; will retry');
    }
  });
  const stopExpiry = every(EXPIRY_SWEEP_INTERVAL_MS, true, async () => {
    try {
      const recorded = await maintenance.recordExpiries(clock.now());
      if (recorded > 0) logger.info({ recorded }, 'recorded expired keys');
    } catch (err) {
      logger.warn({ err: driverError(err) }, 'recording expired keys failed; will retry');
    }
  });
  return () => {
    stopIdempotency();
    stopLinking();
    stopActivity();
    stopConsoleSweeps();
    stopExpiry();
  };
}
