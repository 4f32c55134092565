import { findAccount, insertAccount } from '../../db/queries/portal.queries.js';
import { setReuseReaction } from '../../db/queries/self-rotation.queries.js';
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

export const REUSE_REACTIONS = ['revoke_chain', 'report'] as const;
export type ReuseReaction = (typeof REUSE_REACTIONS)[number];

/** What a copied self-rotation pair coming back does in this account (keys/stale-pair.ts). */
export async function setAccountReuseReaction(store: EventStore, accountId: string, reaction: ReuseReaction, ctx: OpContext): Promise<AccountRow> {
  return withEvents(store, accountId, async (tx) => {
    const row = await setReuseReaction(tx, accountId, reaction);
    if (!row) throw notFound();
    await recordEvent(tx, {
      accountId,
      eventType: 'account_updated',
      environment: null,
      actor: ctx.actor,
      meta: ctx.meta,
      data: { changed_fields: ['reuse_reaction'], reuse_reaction: reaction },
      createdAt: ctx.now,
    });
    return row;
  });
}
