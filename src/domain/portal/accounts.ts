import { findAccount, insertAccount } from '../../db/queries/portal.queries.js';
import type { AccountRow } from '../../db/schema.js';
import type { Db } from '../../db/types.js';
import { recordEvent, withEvents, type EventStore } from '../audit/events.js';
import type { OpContext } from '../context.js';
import { notFound } from '../errors.js';
import { newId } from '../ids.js';

/** A new account, with its account_created event (the first link of its chain). */
export async function createAccount(store: EventStore, name: string, ctx: OpContext): Promise<AccountRow> {
  const id = newId();
  return withEvents(store, id, async (tx) => {
    const row = await insertAccount(tx, { id, name, createdAt: ctx.now });
    await recordEvent(tx, {
      accountId: id,
      eventType: 'account_created',
      environment: null,
      actor: ctx.actor,
      meta: ctx.meta,
      data: { name },
      createdAt: ctx.now,
    });
    return row;
  });
}

export async function getAccount(db: Db, accountId: string): Promise<AccountRow> {
  const row = await findAccount(db, accountId);
  if (!row) throw notFound();
  return row;
}
