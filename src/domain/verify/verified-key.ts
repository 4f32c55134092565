import type { ApiKeyRow } from '../../db/schema.js';
import { toKeyObject, type KeyObject } from '../keys/key-object.js';

/** The key object of a verify answer: the 14 fields plus account_id. */
export type VerifiedKey = KeyObject & { account_id: string };

/** The key as verify answers it at `now`: toKeyObject, the one mapper of keys, plus account_id. */
export function verifiedKey(row: ApiKeyRow, now: Date): VerifiedKey {
  return { ...toKeyObject(row, now), account_id: row.accountId };
}
