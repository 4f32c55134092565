import { and, desc, eq, isNull } from 'drizzle-orm';
import type { Db } from '../../db/types.js';
import { accounts, apiKeys, serviceKeys, type AccountRow, type ApiKeyRow, type ServiceKeyRow } from '../../db/schema.js';
import type { OpContext } from '../context.js';
import { generateToken, type Environment } from '../auth/credentials.js';
import { newId } from '../ids.js';
import { notFound } from '../errors.js';
import { recordEvent, withEvents, type EventStore } from '../audit/events.js';
import { accountView, portalKeyView, serviceKeyView, type IssuedView } from './portal-views.js';

/*
 * What the portal backend does (spec §9), shared by the internal HTTP API and the CLI: accounts,
 * service keys, and portal API keys (permissions legacy_full). Each write records its compliance
 * event in the same transaction. Plaintexts are generated before the transaction opens and
 * returned once; only their hashes are stored.
 */

export interface Issued<T> {
  row: T;
  plaintext: string;
}

export async function createAccount(store: EventStore, name: string, ctx: OpContext): Promise<AccountRow> {
  const id = newId();
  return withEvents(store, id, async (tx) => {
    const [row] = await tx.insert(accounts).values({ id, name, createdAt: ctx.now }).returning();
    await recordEvent(tx, {
      accountId: id,
      eventType: 'account_created',
      environment: null,
      actor: ctx.actor,
      meta: ctx.meta,
      data: { name },
      createdAt: ctx.now,
    });
    return row!;
  });
}

export async function getAccount(db: Db, accountId: string): Promise<AccountRow> {
  const [row] = await db.select().from(accounts).where(eq(accounts.id, accountId));
  if (!row) throw notFound();
  return row;
}

export async function createServiceKey(
  store: EventStore,
  input: { accountId: string; environment: Environment; name: string },
  ctx: OpContext,
): Promise<Issued<ServiceKeyRow>> {
  await getAccount(store.db, input.accountId);
  const token = generateToken('service', input.environment);
  const id = newId();
  const row = await withEvents(store, input.accountId, async (tx) => {
    const [inserted] = await tx
      .insert(serviceKeys)
      .values({
        id,
        accountId: input.accountId,
        environment: input.environment,
        name: input.name,
        keyPrefix: token.keyPrefix,
        tokenHash: token.tokenHash,
        createdAt: ctx.now,
        lineageId: id,
      })
      .returning();
    await recordEvent(tx, {
      accountId: input.accountId,
      eventType: 'service_key_created',
      environment: input.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: id,
      data: { key_prefix: token.keyPrefix, name: input.name },
      createdAt: ctx.now,
    });
    return inserted!;
  });
  return { row, plaintext: token.plaintext };
}

export async function listServiceKeys(db: Db, accountId: string): Promise<ServiceKeyRow[]> {
  await getAccount(db, accountId);
  return db
    .select()
    .from(serviceKeys)
    .where(eq(serviceKeys.accountId, accountId))
    .orderBy(desc(serviceKeys.createdAt), desc(serviceKeys.id));
}

export async function getServiceKey(db: Db, id: string): Promise<ServiceKeyRow> {
  const [row] = await db.select().from(serviceKeys).where(eq(serviceKeys.id, id));
  if (!row) throw notFound();
  return row;
}

/** Atomic: locks the old key, revokes it, inserts its successor and records the event, or nothing. */
export async function rotateServiceKey(store: EventStore, id: string, ctx: OpContext): Promise<Issued<ServiceKeyRow>> {
  const current = await getServiceKey(store.db, id);
  const token = generateToken('service', current.environment);
  const newKeyId = newId();
  const row = await withEvents(store, current.accountId, async (tx) => {
    const [old] = await tx
      .update(serviceKeys)
      .set({ revokedAt: ctx.now })
      .where(and(eq(serviceKeys.id, id), isNull(serviceKeys.revokedAt)))
      .returning();
    if (!old) throw notFound();
    const [inserted] = await tx
      .insert(serviceKeys)
      .values({
        id: newKeyId,
        accountId: old.accountId,
        environment: old.environment,
        name: old.name,
        keyPrefix: token.keyPrefix,
        tokenHash: token.tokenHash,
        createdAt: ctx.now,
        rotatedFrom: old.id,
        // The successor manages the child keys of the whole chain (auth.service.ts: ownerId).
        lineageId: old.lineageId,
      })
      .returning();
    await recordEvent(tx, {
      accountId: old.accountId,
      eventType: 'service_key_rotated',
      environment: old.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: old.id,
      relatedKeyId: newKeyId,
      data: { key_prefix: old.keyPrefix, new_key_prefix: token.keyPrefix },
      createdAt: ctx.now,
    });
    return inserted!;
  });
  return { row, plaintext: token.plaintext };
}

export async function revokeServiceKey(store: EventStore, id: string, ctx: OpContext): Promise<ServiceKeyRow> {
  return withEvents(store, (row) => row.accountId, async (tx) => {
    const [row] = await tx
      .update(serviceKeys)
      .set({ revokedAt: ctx.now })
      .where(and(eq(serviceKeys.id, id), isNull(serviceKeys.revokedAt)))
      .returning();
    if (!row) throw notFound();
    await recordEvent(tx, {
      accountId: row.accountId,
      eventType: 'service_key_revoked',
      environment: row.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: row.id,
      data: { key_prefix: row.keyPrefix },
      createdAt: ctx.now,
    });
    return row;
  });
}

/** A portal API key: permissions legacy_full, no creating service key, no cap. */
export async function createPortalApiKey(
  store: EventStore,
  input: { accountId: string; environment: Environment; name: string },
  ctx: OpContext,
): Promise<Issued<ApiKeyRow>> {
  await getAccount(store.db, input.accountId);
  const token = generateToken('api', input.environment);
  const id = newId();
  const row = await withEvents(store, input.accountId, async (tx) => {
    const [inserted] = await tx
      .insert(apiKeys)
      .values({
        id,
        accountId: input.accountId,
        environment: input.environment,
        name: input.name,
        permissions: 'legacy_full',
        keyPrefix: token.keyPrefix,
        tokenHash: token.tokenHash,
        createdAt: ctx.now,
        cycleAnchor: ctx.now,
        agentId: id,
      })
      .returning();
    await recordEvent(tx, {
      accountId: input.accountId,
      eventType: 'portal_key_created',
      environment: input.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: id,
      data: { key_prefix: token.keyPrefix, name: input.name, permissions: 'legacy_full' },
      createdAt: ctx.now,
    });
    return inserted!;
  });
  return { row, plaintext: token.plaintext };
}

export async function revokePortalApiKey(store: EventStore, id: string, ctx: OpContext): Promise<ApiKeyRow> {
  return withEvents(store, (row) => row.accountId, async (tx) => {
    const [row] = await tx
      .update(apiKeys)
      .set({ revokedAt: ctx.now })
      .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt), isNull(apiKeys.createdByServiceKeyId)))
      .returning();
    if (!row) throw notFound();
    await recordEvent(tx, {
      accountId: row.accountId,
      eventType: 'portal_key_revoked',
      environment: row.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: row.id,
      data: { key_prefix: row.keyPrefix },
      createdAt: ctx.now,
    });
    return row;
  });
}

export interface Bootstrap {
  account: AccountRow;
  serviceKey: Issued<ServiceKeyRow>;
  apiKey: Issued<ApiKeyRow>;
}

/** A ready-to-use test account for a smoke test: one test service key, one test portal API key. */
export async function bootstrap(store: EventStore, ctx: OpContext, name = 'bootstrap'): Promise<Bootstrap> {
  const account = await createAccount(store, name, ctx);
  const serviceKey = await createServiceKey(
    store,
    { accountId: account.id, environment: 'test', name: 'bootstrap service key' },
    ctx,
  );
  const apiKey = await createPortalApiKey(store, { accountId: account.id, environment: 'test', name: 'bootstrap api key' }, ctx);
  return { account, serviceKey, apiKey };
}

/** The portal backend's operations (internal API and CLI), answering with the views they show. */
export function createPortalService(store: EventStore) {
  const issued = <R, V>(i: Issued<R>, view: (row: R) => V): IssuedView<V> => ({ ...view(i.row), plaintext_key: i.plaintext });
  return {
    createAccount: async (name: string, ctx: OpContext) => accountView(await createAccount(store, name, ctx)),
    getAccount: async (accountId: string) => accountView(await getAccount(store.db, accountId)),
    createServiceKey: async (input: { accountId: string; environment: Environment; name: string }, ctx: OpContext) =>
      issued(await createServiceKey(store, input, ctx), serviceKeyView),
    listServiceKeys: async (accountId: string) => (await listServiceKeys(store.db, accountId)).map(serviceKeyView),
    rotateServiceKey: async (id: string, ctx: OpContext) => issued(await rotateServiceKey(store, id, ctx), serviceKeyView),
    revokeServiceKey: async (id: string, ctx: OpContext) => serviceKeyView(await revokeServiceKey(store, id, ctx)),
    createPortalApiKey: async (input: { accountId: string; environment: Environment; name: string }, ctx: OpContext) =>
      issued(await createPortalApiKey(store, input, ctx), portalKeyView),
    revokePortalApiKey: async (id: string, ctx: OpContext) => portalKeyView(await revokePortalApiKey(store, id, ctx)),
    async bootstrap(ctx: OpContext, name?: string) {
      const b = await bootstrap(store, ctx, name);
      return { account_id: b.account.id, environment: 'test' as const, service_key: b.serviceKey.plaintext, api_key: b.apiKey.plaintext };
    },
  };
}

export type PortalService = ReturnType<typeof createPortalService>;
