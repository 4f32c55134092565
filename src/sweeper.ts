import type { Logger } from 'pino';
import type { Db } from './db/client.js';
import type { Clock } from './domain/clock.js';
import { sweepIdempotencyKeys } from './domain/idempotency.service.js';

/**
 * Deletes idempotency records past their 12 hours. Every instance runs it; the DELETE uses
 * SKIP LOCKED batches, so instances never contend and a record is deleted once. Expired records
 * are already ignored by the claim logic, so the sweep only bounds the table's size: every 10
 * minutes is plenty.
 */
export const SWEEP_INTERVAL_MS = 10 * 60 * 1000;

export function startSweeper(db: Db, clock: Clock, logger: Logger, intervalMs = SWEEP_INTERVAL_MS): () => void {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      const deleted = await sweepIdempotencyKeys(db, clock.now());
      if (deleted > 0) logger.info({ deleted }, 'swept expired idempotency records');
    } catch (err) {
      logger.warn({ err: { message: (err as Error).message } }, 'idempotency sweep failed; will retry');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
