import type { ServiceKeyRow } from '../../db/schema.js';

/*
 * Service-key rows seen by recent authentications, used on GET routes only.
 *
 * Why this is within the contract: spec §2 lets a revoked service key keep reading for 60 s; writes
 * must be refused at once. An entry is at most SERVICE_KEY_READ_CACHE_MS old, so a read served from
 * it after a revocation happens well inside that grace, and the grace itself is still evaluated on
 * every use against the cached revoked_at. Writes always read the row from the database (and
 * refresh the entry). Unknown tokens are never cached, so a new key works on its first request.
 * API keys (child keys) are never cached: their revocation must take effect on the next request.
 */

/** 5 s: a twelfth of the 60 s read grace; at 1,000 reads/s per key it saves 4,999 of 5,000 lookups. */
export const SERVICE_KEY_READ_CACHE_MS = 5_000;
/** Bounds memory (~1 KB per entry) however many service keys call one instance. */
export const SERVICE_KEY_CACHE_MAX_ENTRIES = 10_000;

interface Entry {
  row: ServiceKeyRow;
  fetchedAt: number;
}

export class ServiceKeyReadCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly ttlMs = SERVICE_KEY_READ_CACHE_MS,
    private readonly maxEntries = SERVICE_KEY_CACHE_MAX_ENTRIES,
  ) {}

  /** The row for a token hash if it was read from the database less than ttlMs ago (by `now`). */
  get(tokenHash: string, now: Date): ServiceKeyRow | undefined {
    const e = this.entries.get(tokenHash);
    if (!e) return undefined;
    const age = now.getTime() - e.fetchedAt;
    // A clock that moved backwards (tests, NTP) also invalidates: never trust an entry from the future.
    if (age >= this.ttlMs || age < 0) {
      this.entries.delete(tokenHash);
      return undefined;
    }
    return e.row;
  }

  set(tokenHash: string, row: ServiceKeyRow, now: Date): void {
    // Map keeps insertion order: re-inserting moves the key last, so the first key is the oldest.
    this.entries.delete(tokenHash);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(tokenHash, { row, fetchedAt: now.getTime() });
  }
}
