import argon2 from 'argon2';
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Db, Tx } from '../../db/types.js';
import { asyncCommitCte } from '../../db/durability.js';
import { prepared } from '../../db/prepared.js';
import { insertSelectFrom, insertSelectValues } from '../../db/insert-select.js';
import { preparedQuery } from '../../db/statements.js';
import { apiKeys, type ApiKeyRow, type Permission } from '../../db/schema.js';
import type { ServicePrincipal } from '../auth/auth.service.js';
import type { OpContext } from '../context.js';
import { generateRotationSecret, generateToken, type Environment, type NewToken } from '../auth/credentials.js';
import { isUuid, newId } from '../ids.js';
import { notFound, validationError } from '../errors.js';
import { eventInsertCte } from '../../db/queries/events.queries.js';
import { eventValues, recordEvent, withEvents, type EventStore, type EventTx, type EventType } from '../audit/events.js';
import {
  COMPLETED_CLAIM_CTE,
  completedRecordCte,
  executeIdempotent,
  UNCLAIMED,
  type IdempotencyRequest,
  type IdempotencyScope,
  type IdempotentOutcome,
  type StoredResponse,
} from '../idempotency/idempotency.service.js';
import { keyObjectJson, toKeyObject, type KeyObject } from './key-object.js';

/*
 * Child API keys minted by a service key (spec §3–§4). A service key sees only the keys it minted;
 * every other id is not_found. Functions ending in Tx run inside a transaction the caller owns, so
 * that the idempotency layer can commit the effect, its event and the stored response together.
 */

/** argon2id cost for rotation secrets: OWASP's second recommended profile (19 MiB, t=2, p=1). */
export const ROTATION_SECRET_ARGON2 = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** Secrets for a new key, generated and hashed before any transaction opens (hashing is slow). */
export interface KeyMaterial {
  id: string;
  token: NewToken;
  rotationSecret: string | null;
  rotationSecretHash: string | null;
}

export async function prepareKeyMaterial(environment: Environment, selfRotation: boolean): Promise<KeyMaterial> {
  const token = generateToken('api', environment);
  if (!selfRotation) return { id: newId(), token, rotationSecret: null, rotationSecretHash: null };
  const rotationSecret = generateRotationSecret();
  const rotationSecretHash = await argon2.hash(rotationSecret, ROTATION_SECRET_ARGON2);
  return { id: newId(), token, rotationSecret, rotationSecretHash };
}

export interface MintInput {
  name: string;
  agentLabel: string | null;
  lineId: string | null;
  permissions: Exclude<Permission, 'legacy_full'>;
  monthlyCapCents: number | null;
  selfRotation: boolean;
}

/** The row of a new child key, as drizzle's insert takes it. */
function mintValues(principal: ServicePrincipal, input: MintInput, material: KeyMaterial, now: Date) {
  return {
    id: material.id,
    accountId: principal.accountId,
    environment: principal.environment,
    name: input.name,
    agentLabel: input.agentLabel,
    lineId: input.lineId,
    permissions: input.permissions,
    monthlyCapCents: input.monthlyCapCents,
    keyPrefix: material.token.keyPrefix,
    tokenHash: material.token.tokenHash,
    createdAt: now,
    cycleAnchor: now,
    agentId: material.id,
    createdByServiceKeyId: principal.ownerId,
    selfRotation: input.selfRotation,
    rotationSecretHash: material.rotationSecretHash,
  } satisfies typeof apiKeys.$inferInsert;
}

/** The agent_key_created event of a mint. */
function mintEvent(principal: ServicePrincipal, input: MintInput, material: KeyMaterial, ctx: OpContext) {
  return {
    accountId: principal.accountId,
    eventType: 'agent_key_created' as const,
    environment: principal.environment,
    actor: ctx.actor,
    meta: ctx.meta,
    subjectKeyId: material.id,
    data: {
      key_prefix: material.token.keyPrefix,
      name: input.name,
      permissions: input.permissions,
      self_rotation: input.selfRotation,
    },
    createdAt: ctx.now,
  };
}

export async function mintChildKeyTx(
  tx: EventTx,
  principal: ServicePrincipal,
  input: MintInput,
  material: KeyMaterial,
  ctx: OpContext,
): Promise<ApiKeyRow> {
  const [row] = await tx.insert(apiKeys).values(mintValues(principal, input, material, ctx.now)).returning();
  await recordEvent(tx, mintEvent(principal, input, material, ctx));
  return row!;
}

/**
 * A mint in ONE statement, gated on its idempotency claim (idempotency.service.ts: runOnce): `claim`
 * inserts the completed idempotency record unless the key is taken, and the key and its
 * agent_key_created event are inserted only if it did, in the statement's own implicit transaction
 * (committed asynchronously; the caller links and flushes). So a first mint is one round trip
 * instead of seven. Returns the response `respond` made of the row, or null when the claim found
 * the key taken and nothing was written.
 *
 * The response is stored in the same statement, so it is made before the row exists, from the
 * values inserted plus the table's defaults (mintedRow); test/integration/keys.test.ts checks it
 * against the stored row.
 */
export async function mintChildKeyOnce(
  db: Db,
  principal: ServicePrincipal,
  input: MintInput,
  material: KeyMaterial,
  ctx: OpContext,
  respond: (row: ApiKeyRow) => StoredResponse,
  claim: (status: number, body: unknown) => Record<string, unknown>,
): Promise<StoredResponse | null> {
  const values = mintValues(principal, input, material, ctx.now);
  const response = respond(mintedRow(values));
  const { data, ...event } = mintEvent(principal, input, material, ctx);
  const [result] = await mintStatement(db, {
    ...claim(response.status, response.body),
    ...insertSelectValues(values, 'key_'),
    ...eventValues(event),
    ev_data: JSON.stringify(data),
  });
  return result?.recorded === 1 ? response : null;
}

const MINT_FIELDS = [
  'id', 'accountId', 'environment', 'name', 'agentLabel', 'lineId', 'permissions', 'monthlyCapCents', 'keyPrefix',
  'tokenHash', 'createdAt', 'cycleAnchor', 'agentId', 'createdByServiceKeyId', 'selfRotation', 'rotationSecretHash',
] as const satisfies readonly (keyof ReturnType<typeof mintValues>)[];

const mintStatement = preparedQuery<{ recorded: number }>(
  sql`with ${COMPLETED_CLAIM_CTE},
      created as (${insertSelectFrom(apiKeys, MINT_FIELDS, 'claim', 'key_')} returning id),
      ${eventInsertCte('ev', { json: sql`${sql.placeholder('ev_data')}::text`, from: sql`created` })},
      ${asyncCommitCte}
      select (select count(*) from ev)::int as recorded from async_commit`,
);

/** A new key's row as Postgres stores it: the values inserted, the other columns at their defaults. */
function mintedRow(values: ReturnType<typeof mintValues>): ApiKeyRow {
  return {
    monthlySpendCents: 0,
    spendCycleStart: null,
    revokedAt: null,
    lastUsedAt: null,
    rotatedFrom: null,
    ...values,
  };
}


/** The scope a service key may act in: its account and the keys its rotation chain minted. */
const ownedBy = (p: ServicePrincipal, id: string) =>
  and(eq(apiKeys.id, id), eq(apiKeys.accountId, p.accountId), eq(apiKeys.createdByServiceKeyId, p.ownerId));

/**
 * GET /v1/keys in ONE statement (one round trip, its own implicit transaction): the page, the
 * total, and the service_key_list_read event whose data (count, total) Postgres fills in; committed
 * asynchronously, then linked into the account's chain and flushed (shared with concurrent requests,
 * domain/event-linker.ts) before returning. The page uses the partial index
 * api_keys_creator_active_idx; the total sums the service key's child_key_counts shards (≤ 16 rows)
 * instead of counting its keys, so it costs the same at 100,000 keys as at 10. The page comes back
 * as JSON text built by Postgres (key-view.ts: keyObjectJson), the elements of the `keys` array.
 */
export async function listChildKeys(
  store: EventStore,
  principal: ServicePrincipal,
  page: { limit: number; offset: number },
  ctx: OpContext,
): Promise<{ keysJson: string; total: number }> {
  const [result] = await listStatement(store.db, {
    account_id: principal.accountId,
    service_key_id: principal.ownerId,
    limit: page.limit,
    offset: page.offset,
    now: ctx.now.toISOString(),
    ...eventValues({
      accountId: principal.accountId,
      eventType: 'service_key_list_read',
      environment: principal.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      createdAt: ctx.now,
    }),
  });
  if (!result || result.recorded !== 1) throw new Error(`account ${principal.accountId}: list event not recorded`);
  // Linked and durable before disclosed (see domain/event-linker.ts).
  await store.linker.link(principal.accountId);
  return { keysJson: result.items ?? '', total: result.total };
}

const listStatement = (() => {
  const p = (name: string) => sql.placeholder(name);
  return preparedQuery<{ total: number; recorded: number; items: string | null }>(
    sql`with page as (
          select * from api_keys
           where account_id = ${p('account_id')} and created_by_service_key_id = ${p('service_key_id')} and revoked_at is null
           order by created_at desc, id desc
           limit ${p('limit')} offset ${p('offset')}),
        counts as (
          select (select count(*) from page)::int as page_count,
                 (select coalesce(sum(active), 0) from child_key_counts where service_key_id = ${p('service_key_id')})::int as total),
        ${eventInsertCte('ev', {
          json: sql`'{"count":' || counts.page_count || ',"limit":' || ${p('limit')}::int || ',"offset":' || ${p('offset')}::int || ',"total":' || counts.total || '}'`,
          from: sql`counts`,
        })},
        ${asyncCommitCte}
        select counts.total, (select count(*) from ev)::int as recorded,
               (select string_agg(${keyObjectJson('p', p('now'))}, ',' order by p.created_at desc, p.id desc) from page p) as items
          from counts cross join async_commit`,
  );
})();

/**
 * GET /v1/keys/{id}: the key object as JSON built by Postgres (key-view.ts: keyObjectJson), one
 * prepared statement by primary key with the ownership check. Any state, revoked too; not a uuid,
 * someone else's or unknown → not_found.
 */
export async function getChildKeyJson(db: Db, principal: ServicePrincipal, id: string, now: Date): Promise<string> {
  if (!isUuid(id)) throw notFound();
  const [row] = await childKeyJsonById(db, { id, accountId: principal.accountId, serviceKeyId: principal.ownerId, now: now.toISOString() });
  if (!row) throw notFound();
  return row.key;
}

const childKeyJsonById = preparedQuery<{ key: string }>(
  sql`select ${keyObjectJson('k', sql.placeholder('now'))} as key from api_keys k
       where k.id = ${sql.placeholder('id')} and k.account_id = ${sql.placeholder('accountId')}
         and k.created_by_service_key_id = ${sql.placeholder('serviceKeyId')}`,
);

/** Any state, revoked too; not a uuid, someone else's or unknown → not_found. */
export async function getChildKey(db: Db | Tx, principal: ServicePrincipal, id: string): Promise<ApiKeyRow> {
  if (!isUuid(id)) throw notFound();
  // Outside a transaction, the prepared statement; inside one, the caller's transaction handle.
  const [row] =
    'rollback' in db
      ? await db.select().from(apiKeys).where(ownedBy(principal, id))
      : await prepared(db).childKeyById.execute({ id, accountId: principal.accountId, serviceKeyId: principal.ownerId });
  if (!row) throw notFound();
  return row;
}

export interface KeyPatch {
  name?: string;
  agentLabel?: string | null;
  lineId?: string | null;
  permissions?: Exclude<Permission, 'legacy_full'>;
  monthlyCapCents?: number | null;
}

export async function updateChildKey(
  store: EventStore,
  principal: ServicePrincipal,
  id: string,
  patch: KeyPatch,
  ctx: OpContext,
): Promise<ApiKeyRow> {
  if (!isUuid(id)) throw notFound();
  const changed = Object.entries(patch)
    .filter(([, v]) => v !== undefined)
    .map(([k]) => k);
  return withEvents(store, principal.accountId, async (tx) => {
    const [row] = await tx
      .update(apiKeys)
      .set(patch)
      .where(and(ownedBy(principal, id), isNull(apiKeys.revokedAt)))
      .returning();
    if (!row) throw notFound();
    await recordEvent(tx, {
      accountId: principal.accountId,
      eventType: 'agent_key_updated',
      environment: principal.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: id,
      data: { key_prefix: row.keyPrefix, changed_fields: changed.map(toSnake) },
      createdAt: ctx.now,
    });
    return row;
  });
}

const toSnake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export async function revokeChildKey(store: EventStore, principal: ServicePrincipal, id: string, ctx: OpContext): Promise<ApiKeyRow> {
  if (!isUuid(id)) throw notFound();
  return withEvents(store, principal.accountId, async (tx) => {
    const [row] = await tx
      .update(apiKeys)
      .set({ revokedAt: ctx.now })
      .where(and(ownedBy(principal, id), isNull(apiKeys.revokedAt)))
      .returning();
    if (!row) throw notFound();
    await recordEvent(tx, {
      accountId: principal.accountId,
      eventType: 'agent_key_revoked',
      environment: principal.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: id,
      data: { key_prefix: row.keyPrefix },
      createdAt: ctx.now,
    });
    return row;
  });
}

/** Which active key to rotate: a service key's child, or (self-rotation) the key itself. */
export interface RotationTarget {
  accountId: string;
  keyId: string;
  /** When set, the key must have been minted by this service key. */
  createdByServiceKeyId?: string;
}

/**
 * The atomic rotation (spec §4): lock the old row, revoke it, insert the successor with the same
 * settings and rotated_from = old id, record the event. All or nothing; of concurrent rotations of
 * one key, the first to lock wins and the others find no active row (not_found). The unique index
 * on rotated_from makes a second successor impossible even if this code were wrong.
 */
export async function rotateKeyTx(
  tx: EventTx,
  target: RotationTarget,
  material: KeyMaterial,
  ctx: OpContext,
  eventType: Extract<EventType, 'agent_key_rotated' | 'agent_key_self_rotated'> = 'agent_key_rotated',
): Promise<{ old: ApiKeyRow; successor: ApiKeyRow }> {
  if (!isUuid(target.keyId)) throw notFound();
  const conditions = [eq(apiKeys.id, target.keyId), eq(apiKeys.accountId, target.accountId), isNull(apiKeys.revokedAt)];
  if (target.createdByServiceKeyId) conditions.push(eq(apiKeys.createdByServiceKeyId, target.createdByServiceKeyId));
  const [locked] = await tx
    .select()
    .from(apiKeys)
    .where(and(...conditions))
    .for('update');
  if (!locked) throw notFound();
  const [old] = await tx.update(apiKeys).set({ revokedAt: ctx.now }).where(eq(apiKeys.id, locked.id)).returning();
  const [successor] = await tx
    .insert(apiKeys)
    .values({
      id: material.id,
      accountId: locked.accountId,
      environment: locked.environment,
      name: locked.name,
      agentLabel: locked.agentLabel,
      lineId: locked.lineId,
      permissions: locked.permissions,
      monthlyCapCents: locked.monthlyCapCents,
      // Spend follows the agent: a rotation must not reset the monthly cap.
      monthlySpendCents: locked.monthlySpendCents,
      spendCycleStart: locked.spendCycleStart,
      cycleAnchor: locked.cycleAnchor,
      keyPrefix: material.token.keyPrefix,
      tokenHash: material.token.tokenHash,
      createdAt: ctx.now,
      rotatedFrom: locked.id,
      agentId: locked.agentId,
      createdByServiceKeyId: locked.createdByServiceKeyId,
      selfRotation: locked.selfRotation,
      rotationSecretHash: locked.selfRotation ? material.rotationSecretHash : null,
    })
    .returning();
  await recordEvent(tx, {
    accountId: locked.accountId,
    eventType,
    environment: locked.environment,
    actor: ctx.actor,
    meta: ctx.meta,
    subjectKeyId: locked.id,
    relatedKeyId: material.id,
    data: { key_prefix: locked.keyPrefix, new_key_id: material.id, new_key_prefix: material.token.keyPrefix },
    createdAt: ctx.now,
  });
  return { old: old!, successor: successor! };
}

/**
 * rotateKeyTx in ONE statement with its idempotency record (idempotency.service.ts: runOnce, the
 * record made by the statement): revoke the old row if it is still active and the request's key
 * unclaimed, insert the successor from that locked row, store the response built from the
 * successor, record the event; its own implicit transaction, committed asynchronously (the caller
 * links and flushes). Of concurrent rotations of one key the first to lock the row wins; the others
 * re-check `revoked_at is null` after its commit, write nothing and return null, and so does a
 * retry of a finished rotation (its old key is revoked): the general path then answers them
 * (replay or not_found). Returns the successor's key object as JSON text.
 */
export async function rotateChildKeyOnce(
  db: Db,
  target: RotationTarget & { createdByServiceKeyId: string },
  current: ApiKeyRow,
  material: KeyMaterial,
  ctx: OpContext,
  claim: Record<string, unknown>,
): Promise<string | null> {
  const [result] = await rotateStatement(db, {
    ...claim,
    id: current.id,
    account_id: target.accountId,
    service_key_id: target.createdByServiceKeyId,
    now: ctx.now.toISOString(),
    new_id: material.id,
    new_prefix: material.token.keyPrefix,
    new_token_hash: material.token.tokenHash,
    new_rotation_secret_hash: material.rotationSecretHash,
    ...eventValues({
      accountId: target.accountId,
      eventType: 'agent_key_rotated',
      environment: current.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: current.id,
      relatedKeyId: material.id,
      createdAt: ctx.now,
    }),
  });
  return result?.key ?? null;
}

const rotateStatement = (() => {
  const p = (name: string) => sql.placeholder(name);
  return preparedQuery<{ key: string | null }>(
    sql`with old as (
          update api_keys set revoked_at = ${p('now')}::timestamptz
           where id = ${p('id')}::uuid and account_id = ${p('account_id')}::uuid
             and created_by_service_key_id = ${p('service_key_id')}::uuid and revoked_at is null
             and ${UNCLAIMED}
          returning *),
        successor as (
          insert into api_keys
            (id, account_id, environment, name, agent_label, line_id, permissions, monthly_cap_cents,
             monthly_spend_cents, spend_cycle_start, cycle_anchor, key_prefix, token_hash, created_at,
             rotated_from, agent_id, created_by_service_key_id, self_rotation, rotation_secret_hash)
          select ${p('new_id')}::uuid, o.account_id, o.environment, o.name, o.agent_label, o.line_id, o.permissions,
                 o.monthly_cap_cents,
                 -- Spend follows the agent: a rotation must not reset the monthly cap.
                 o.monthly_spend_cents, o.spend_cycle_start, o.cycle_anchor,
                 ${p('new_prefix')}::text, ${p('new_token_hash')}::text, ${p('now')}::timestamptz,
                 o.id, o.agent_id, o.created_by_service_key_id, o.self_rotation,
                 case when o.self_rotation then ${p('new_rotation_secret_hash')}::text end
            from old o
          returning *),
        issued as (select ${keyObjectJson('s', p('now'))} as key from successor s),
        ${completedRecordCte('record', sql`jsonb_build_object('key', issued.key::jsonb)`, sql`issued`)},
        ${eventInsertCte('ev', {
          json: sql`jsonb_build_object('key_prefix', old.key_prefix, 'new_key_id', ${p('new_id')}::text,
                                       'new_key_prefix', ${p('new_prefix')}::text)::text`,
          from: sql`old`,
        })},
        ${asyncCommitCte}
        select issued.key from issued cross join async_commit`,
  );
})();

/** The first answer of a mint or rotate: the key, its plaintext, and a rotation secret if one was made. */
function issuedKey(key: KeyObject, m: KeyMaterial): StoredResponse {
  return {
    status: 201,
    body: { key: { ...key, plaintext_key: m.token.plaintext, ...(m.rotationSecret ? { rotation_secret: m.rotationSecret } : {}) } },
  };
}

export interface KeysServiceOptions {
  /** See IDEMPOTENCY_LOCK_TIMEOUT_MS in config.ts; unset = LOCK_TIMEOUT_MS. */
  lockTimeoutMs?: number;
}

/** /v1/keys: a service key's child keys (spec §4). Mint and rotate run under their Idempotency-Key. */
export function createKeysService(store: EventStore, opts: KeysServiceOptions = {}) {
  const scopeOf = (p: ServicePrincipal, idem: IdempotencyRequest): IdempotencyScope => ({
    accountId: p.accountId,
    serviceKeyId: p.id,
    key: idem.key,
    fingerprint: idem.fingerprint,
  });
  return {
    mint(principal: ServicePrincipal, input: MintInput & { environment?: Environment }, idem: IdempotencyRequest, ctx: OpContext): Promise<IdempotentOutcome> {
      if (input.environment && input.environment !== principal.environment) {
        throw validationError(`environment must be "${principal.environment}", the service key's.`, [
          { field: 'environment', message: `must equal the service key's environment (${principal.environment})` },
        ]);
      }
      return executeIdempotent(
        store,
        scopeOf(principal, idem),
        ctx.now,
        {
          prepare: () => prepareKeyMaterial(principal.environment, input.selfRotation),
          run: async (tx, m) => issuedKey(toKeyObject(await mintChildKeyTx(tx, principal, input, m, ctx), ctx.now), m),
        },
        opts,
      );
    },
    async list(principal: ServicePrincipal, page: { limit: number; offset: number }, ctx: OpContext): Promise<{ keys: KeyObject[]; total: number }> {
      const { keysJson, total } = await listChildKeys(store, principal, page, ctx);
      return { keys: JSON.parse(`[${keysJson}]`) as KeyObject[], total };
    },
    async get(principal: ServicePrincipal, id: string, now: Date): Promise<KeyObject> {
      return JSON.parse(await getChildKeyJson(store.db, principal, id, now)) as KeyObject;
    },
    async update(principal: ServicePrincipal, id: string, patch: KeyPatch, ctx: OpContext): Promise<KeyObject> {
      return toKeyObject(await updateChildKey(store, principal, id, patch, ctx), ctx.now);
    },
    async revoke(principal: ServicePrincipal, id: string, ctx: OpContext): Promise<KeyObject> {
      return toKeyObject(await revokeChildKey(store, principal, id, ctx), ctx.now);
    },
    rotate(principal: ServicePrincipal, id: string, idem: IdempotencyRequest, ctx: OpContext): Promise<IdempotentOutcome> {
      const target = { accountId: principal.accountId, keyId: id, createdByServiceKeyId: principal.ownerId };
      return executeIdempotent(
        store,
        scopeOf(principal, idem),
        ctx.now,
        {
          // After the claim (so a retry of a finished rotation replays instead of finding the old key
          // revoked) and before the transaction: whether the successor needs a rotation secret
          // depends on the key, and its argon2 hash must not run inside the transaction.
          prepare: async () => {
            const current = await getChildKey(store.db, principal, id);
            if (current.revokedAt) throw notFound();
            return prepareKeyMaterial(principal.environment, current.selfRotation);
          },
          run: async (tx, m) => {
            const { successor } = await rotateKeyTx(tx, target, m, ctx);
            return issuedKey(toKeyObject(successor, ctx.now), m);
          },
        },
        opts,
      );
    },
  };
}

export type KeysService = ReturnType<typeof createKeysService>;
