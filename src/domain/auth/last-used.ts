import { touchApiKey, touchServiceKey } from '../../db/queries/auth.queries.js';
import type { ServiceKeyRow } from '../../db/schema.js';
import type { Db } from '../../db/types.js';

/**
 * last_used_at is written at most once per second per key: a use that finds it fresher than this
 * skips the write, so a hot key costs one row write per second, not one per request.
 */
export const LAST_USED_RESOLUTION_MS = 1_000;

/** Bounds the service-key write memo however many service keys call one instance. */
const SERVICE_KEY_WRITES_MAX = 10_000;

/** Whether a key used at `lastUsedAt` needs no new stamp at `now`. */
export function lastUsedIsFresh(lastUsedAt: Date | null, now: Date): boolean {
  return lastUsedAt !== null && now.getTime() - lastUsedAt.getTime() < LAST_USED_RESOLUTION_MS;
}

const staleBefore = (now: Date) => new Date(now.getTime() - LAST_USED_RESOLUTION_MS);

/**
 * The last_used_at writes of one process, shared by authentication and verification (src/services.ts
 * builds one): the API-key writes in flight, and when this instance last wrote each service key.
 */
export function createLastUsed(db: Db) {
  // Verifies of a hot key read its row together (batched), so once a second dozens of them find it
  // stale at once: they share the one write already in flight for the key instead of each sending
  // an UPDATE that would find nothing left to do.
  const inFlight = new Map<string, Promise<Date | null>>();
  // Service-key reads may be served from the 5-second row cache (service-key-cache.ts), whose
  // last_used_at is stale, so the instance remembers when it last wrote each key (bounded) rather
  // than sending a no-op UPDATE on every request.
  const serviceKeyWrites = new Map<string, number>();

  return {
    /**
     * Sets an API key's last_used_at to `now` unless it was set within the last second (or the key
     * was revoked meanwhile). Resolves to the stamp written, shared by the callers of one write;
     * null when nothing was written. Callers skip it when the row they read is fresh.
     */
    touchApiKey(keyId: string, accountId: string, now: Date): Promise<Date | null> {
      const pending = inFlight.get(keyId);
      if (pending) return pending;
      const touch = touchApiKey(db, accountId, { id: keyId, now, staleBefore: staleBefore(now) })
        .then((written) => (written ? now : null))
        .finally(() => inFlight.delete(keyId));
      inFlight.set(keyId, touch);
      return touch;
    },

    /** A service key's last_used_at: at most one write per second per key and instance. */
    async noteServiceKeyUse(row: ServiceKeyRow, now: Date): Promise<void> {
      const last = serviceKeyWrites.get(row.id) ?? row.lastUsedAt?.getTime() ?? Number.NEGATIVE_INFINITY;
      if (now.getTime() - last < LAST_USED_RESOLUTION_MS && now.getTime() >= last) return;
      // Map keeps insertion order: re-inserting moves the key last, so the first key is the oldest.
      serviceKeyWrites.delete(row.id);
      if (serviceKeyWrites.size >= SERVICE_KEY_WRITES_MAX) serviceKeyWrites.delete(serviceKeyWrites.keys().next().value!);
      serviceKeyWrites.set(row.id, now.getTime());
      await touchServiceKey(db, { id: row.id, now, staleBefore: staleBefore(now) });
    },
  };
}

export type LastUsed = ReturnType<typeof createLastUsed>;
