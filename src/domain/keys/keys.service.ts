import { filteredListPage, type ListFilter } from '../../db/queries/key-list.queries.js';
import { keyById, listPage, preparedKeyReads } from '../../db/queries/keys.queries.js';
import type { ApiKeyRow } from '../../db/schema.js';
import { eventValues, type EventStore, type EventTx } from '../audit/events.js';
import type { ServicePrincipal } from '../auth/auth.service.js';
import type { Environment } from '../auth/credentials.js';
import type { OpContext } from '../context.js';
import { notFound, validationError } from '../errors.js';
import { isUuid } from '../ids.js';
import {
  executeIdempotent,
  type IdempotencyRequest,
  type IdempotencyScope,
  type IdempotentOutcome,
  type StoredResponse,
} from '../idempotency/idempotency.service.js';
import { issueRotationSecretTx, mintChildKeyTx, ownerOf, revokeChildKey, updateChildKey, type KeyPatch, type MintInput } from './child-keys.js';
import { prepareKeyMaterial, prepareRotationSecret, type KeyMaterial } from './key-material.js';
import { toKeyObject, type KeyObject } from './key-object.js';
import { checkExpiry } from './expiry.js';
import { keyState } from './key-state.js';
import { readLineage, type Lineage } from './lineage.js';
import { setSuspension, type SuspensionChange } from './suspension.js';
import { assertRotatable, resetWithoutSelfRotation, rotateKeyTx } from './rotation.js';

/** A page of GET /v1/keys and its filter (none: the active keys). */
export interface ListQuery {
  limit: number;
  offset: number;
  filter?: ListFilter;
}

/**
 * GET /v1/keys: one statement reads the page and the total and records the service_key_list_read
 * event (keys.queries.ts: listPage); the event is then linked into the account's chain and flushed
 * (shared with concurrent requests, audit/linker.ts) before the page is returned.
 */
export async function listChildKeys(store: EventStore, p: ServicePrincipal, page: ListQuery, ctx: OpContext): Promise<{ keys: KeyObject[]; total: number }> {
  const event = eventValues({
    accountId: p.accountId,
    eventType: 'service_key_list_read',
    environment: p.environment,
    actor: ctx.actor,
    meta: ctx.meta,
    createdAt: ctx.now,
  });
  const { filter = { status: 'active' }, limit, offset } = page;
  // The default list keeps its own statement, whose total is read from counters (keys.queries.ts).
  const unfiltered = filter.status === 'active' && Object.keys(filter).length === 1;
  const { rows, total } = unfiltered
    ? await listPage(store.db, { ...ownerOf(p), limit, offset, now: ctx.now }, event)
    : await filteredListPage(store.db, { ...ownerOf(p), limit, offset, now: ctx.now, filter }, event);
  // Linked and durable before disclosed (see audit/linker.ts).
  await store.linker.link(p.accountId);
  return { keys: rows.map((row) => toKeyObject(row, ctx.now)), total };
}

/** The first answer of a mint or rotate: the key, its plaintext, and a rotation secret if one was made. */
function issuedKey(row: ApiKeyRow, m: KeyMaterial, now: Date): StoredResponse {
  const secret = m.rotationSecret ? { rotation_secret: m.rotationSecret } : {};
  return { status: 201, body: { key: { ...toKeyObject(row, now), plaintext_key: m.token.plaintext, ...secret } } };
}

function checkEnvironment(principal: ServicePrincipal, environment: Environment | undefined): void {
  if (!environment || environment === principal.environment) return;
  throw validationError(`environment must be "${principal.environment}", the service key's.`, [
    { field: 'environment', message: `must equal the service key's environment (${principal.environment})` },
  ]);
}

/** A request's idempotency scope: the calling service key (not its chain) and its Idempotency-Key. */
const scopeOf = (p: ServicePrincipal, idem: IdempotencyRequest): IdempotencyScope => ({
  accountId: p.accountId,
  serviceKeyId: p.id,
  key: idem.key,
  fingerprint: idem.fingerprint,
});

/** Issue a rotation secret for an active key: hashed after the claim, stored in the transaction. */
function rotationSecretOperation(principal: ServicePrincipal, id: string, current: () => Promise<ApiKeyRow>, ctx: OpContext) {
  return {
    prepare: async () => {
      const state = keyState(await current(), ctx.now);
      if (state !== 'live' && state !== 'suspended') throw notFound();
      return prepareRotationSecret();
    },
    run: async (tx: EventTx, s: { rotationSecret: string; rotationSecretHash: string }): Promise<StoredResponse> => {
      const row = await issueRotationSecretTx(tx, principal, id, s.rotationSecretHash, ctx);
      return { status: 201, body: { key: toKeyObject(row, ctx.now), rotation_secret: s.rotationSecret } };
    },
  };
}

export interface KeysServiceOptions {
  /** See IDEMPOTENCY_LOCK_TIMEOUT_MS in config.ts; unset = LOCK_TIMEOUT_MS. */
  lockTimeoutMs?: number;
}

/**
 * /v1/keys: a service key's child keys (spec §4). Mint and rotate run under their Idempotency-Key
 * (idempotency.service.ts: claim → one transaction → stored response).
 */
export function createKeysService(store: EventStore, opts: KeysServiceOptions = {}) {
  const reads = preparedKeyReads(store.db);
  /** Any state, revoked too; not a uuid, someone else's or unknown → not_found. */
  const getRow = async (principal: ServicePrincipal, id: string): Promise<ApiKeyRow> => {
    const row = isUuid(id) ? await keyById(reads, ownerOf(principal), id) : undefined;
    if (!row) throw notFound();
    return row;
  };
  return {
    mint(principal: ServicePrincipal, input: MintInput & { environment?: Environment }, idem: IdempotencyRequest, ctx: OpContext): Promise<IdempotentOutcome> {
      checkEnvironment(principal, input.environment);
      // Before the claim: a refused expiry is a 422 with nothing stored.
      if (input.expiresAt) checkExpiry(input.expiresAt, ctx.now);
      return executeIdempotent(
        store,
        scopeOf(principal, idem),
        ctx.now,
        {
          prepare: () => prepareKeyMaterial(principal.environment, input.selfRotation),
          run: async (tx, m) => issuedKey(await mintChildKeyTx(tx, principal, input, m, ctx), m, ctx.now),
        },
        opts,
      );
    },
    list: (principal: ServicePrincipal, page: ListQuery, ctx: OpContext): Promise<{ keys: KeyObject[]; total: number }> => listChildKeys(store, principal, page, ctx),
    async get(principal: ServicePrincipal, id: string, now: Date): Promise<KeyObject> {
      return toKeyObject(await getRow(principal, id), now);
    },
    lineage: (principal: ServicePrincipal, id: string, ctx: OpContext): Promise<Lineage> => readLineage(store, reads, principal, id, ctx),
    async update(principal: ServicePrincipal, id: string, patch: KeyPatch, ctx: OpContext): Promise<KeyObject> {
      return toKeyObject(await updateChildKey(store, principal, id, patch, ctx), ctx.now);
    },
    /** POST /v1/keys/{id}/suspend and /resume. */
    setSuspension: async (principal: ServicePrincipal, id: string, change: SuspensionChange, ctx: OpContext): Promise<KeyObject> =>
      toKeyObject(await setSuspension(store, principal, id, change, ctx), ctx.now),
    async revoke(principal: ServicePrincipal, id: string, ctx: OpContext): Promise<KeyObject> {
      return toKeyObject(await revokeChildKey(store, principal, id, ctx), ctx.now);
    },
    /** `resetSecret`: the successor gets a new rotation secret; `overlapSeconds`: the old key keeps working that long. */
    rotate(principal: ServicePrincipal, id: string, idem: IdempotencyRequest, ctx: OpContext, how: { resetSecret?: boolean; overlapSeconds?: number } = {}): Promise<IdempotentOutcome> {
      const { resetSecret = false, overlapSeconds = 0 } = how;
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
            const current = await getRow(principal, id);
            assertRotatable(current, ctx.now);
            if (resetSecret && !current.selfRotation) throw resetWithoutSelfRotation();
            return prepareKeyMaterial(principal.environment, resetSecret);
          },
          run: async (tx, m) =>
            issuedKey((await rotateKeyTx(tx, target, m, ctx, { secret: resetSecret ? 'new' : 'kept', overlapSeconds })).successor, m, ctx.now),
        },
        opts,
      );
    },
    /** POST /v1/keys/{id}/rotation-secret: the secret in the first 201 only (a replay's body is redacted). */
    issueRotationSecret: (principal: ServicePrincipal, id: string, idem: IdempotencyRequest, ctx: OpContext): Promise<IdempotentOutcome> =>
      executeIdempotent(store, scopeOf(principal, idem), ctx.now, rotationSecretOperation(principal, id, () => getRow(principal, id), ctx), opts),
  };
}

export type KeysService = ReturnType<typeof createKeysService>;
