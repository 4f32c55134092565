import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import {
  getChildKey,
  getChildKeyJson,
  listChildKeys,
  mintChildKeyOnce,
  rotateChildKeyOnce,
  type KeyMaterial,
  mintChildKeyTx,
  prepareKeyMaterial,
  revokeChildKey,
  rotateKeyTx,
  updateChildKey,
  type KeyPatch,
} from '../../domain/keys/keys.service.js';
import type { Clock } from '../../domain/clock.js';
import { DomainError } from '../../domain/errors.js';
import { toKeyObject, type KeyObject } from '../../domain/keys/key-object.js';
import type { Db } from '../../db/database.js';
import { opContext, servicePrincipal } from '../plugins/auth.js';
import { sendIdempotent } from '../plugins/idempotency-header.js';
import { sendJson } from '../plugins/prebuilt-json.js';
import {
  getKeyResponse,
  idempotencyHeaders,
  keyIdParams,
  listKeysQuery,
  listKeysResponse,
  mintKeyBody,
  mintKeyResponse,
  revokeKeyResponse,
  rotateKeyBody,
  rotateKeyResponse,
  updateKeyBody,
  updateKeyResponse,
} from './keys.schemas.js';
import '../plugins/limits.js';

export interface KeysRoutesOptions {
  db: Db;
  clock: Clock;
  /** See IDEMPOTENCY_LOCK_TIMEOUT_MS in config.ts; unset = LOCK_TIMEOUT_MS. */
  idempotencyLockTimeoutMs?: number;
}

/** The first answer of a mint or rotate: the key, its plaintext, and a rotation secret if one was made. */
function issuedKey(key: KeyObject, m: KeyMaterial) {
  return {
    status: 201,
    body: { key: { ...key, plaintext_key: m.token.plaintext, ...(m.rotationSecret ? { rotation_secret: m.rotationSecret } : {}) } },
  };
}

/** /v1/keys: the child keys of the calling service key (spec §4). Handlers stay thin. */
export async function keysRoutes(app: FastifyInstance, opts: KeysRoutesOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { db, clock } = opts;
  const idem = { lockTimeoutMs: opts.idempotencyLockTimeoutMs };

  r.post(
    '/keys',
    {
      config: { auth: 'service', limit: 'keys.mint' },
      schema: { body: mintKeyBody, headers: idempotencyHeaders, response: mintKeyResponse },
    },
    async (request, reply) => {
      const principal = servicePrincipal(request);
      const ctx = opContext(request, clock);
      const body = request.body;
      if (body.environment && body.environment !== principal.environment) {
        throw new DomainError('validation_error', `environment must be "${principal.environment}", the service key's.`, [
          { field: 'environment', message: `must equal the service key's environment (${principal.environment})` },
        ]);
      }
      const input = {
        name: body.name,
        agentLabel: body.agent_label ?? null,
        // A uuid is stored in its canonical (lowercase) form; answer and record it the same way.
        lineId: body.line_id?.toLowerCase() ?? null,
        permissions: body.permissions,
        monthlyCapCents: body.monthly_cap_cents ?? null,
        selfRotation: body.self_rotation,
      };
      // Made once: a request whose one-statement mint found its key taken reuses it on the general path.
      let material: Promise<KeyMaterial> | undefined;
      const prepare = () => (material ??= prepareKeyMaterial(principal.environment, input.selfRotation));
      return sendIdempotent(request, reply, db, principal, ctx.now, {
        prepare,
        run: async (tx, m) => issuedKey(toKeyObject(await mintChildKeyTx(tx, principal, input, m, ctx), ctx.now), m),
        runOnce: async (claim) => {
          const m = await prepare();
          return mintChildKeyOnce(db, principal, input, m, ctx, (row) => issuedKey(toKeyObject(row, ctx.now), m), claim);
        },
      }, idem);
    },
  );

  r.get(
    '/keys',
    { config: { auth: 'service', limit: 'keys.list' }, schema: { querystring: listKeysQuery, response: listKeysResponse } },
    async (request, reply) => {
      const ctx = opContext(request, clock);
      const { keysJson, total } = await listChildKeys(db, servicePrincipal(request), request.query, ctx);
      return sendJson(reply, `{"keys":[${keysJson}],"total":${total}}`);
    },
  );

  r.get(
    '/keys/:id',
    { config: { auth: 'service', limit: 'keys.get' }, schema: { params: keyIdParams, response: getKeyResponse } },
    async (request, reply) => {
      const key = await getChildKeyJson(db, servicePrincipal(request), request.params.id, clock.now());
      return sendJson(reply, `{"key":${key}}`);
    },
  );

  r.patch(
    '/keys/:id',
    {
      config: { auth: 'service', limit: 'keys.update' },
      schema: { params: keyIdParams, body: updateKeyBody, response: updateKeyResponse },
    },
    async (request) => {
      const b = request.body;
      const patch: KeyPatch = {
        name: b.name,
        agentLabel: b.agent_label,
        lineId: typeof b.line_id === 'string' ? b.line_id.toLowerCase() : b.line_id,
        permissions: b.permissions,
        monthlyCapCents: b.monthly_cap_cents,
      };
      const ctx = opContext(request, clock);
      const row = await updateChildKey(db, servicePrincipal(request), request.params.id, patch, ctx);
      return { key: toKeyObject(row, ctx.now) };
    },
  );

  r.delete(
    '/keys/:id',
    { config: { auth: 'service', limit: 'keys.revoke' }, schema: { params: keyIdParams, response: revokeKeyResponse } },
    async (request) => {
      const ctx = opContext(request, clock);
      const row = await revokeChildKey(db, servicePrincipal(request), request.params.id, ctx);
      return { key: toKeyObject(row, ctx.now) };
    },
  );

  r.post(
    '/keys/:id/rotate',
    {
      config: { auth: 'service', limit: 'keys.rotate' },
      schema: { params: keyIdParams, body: rotateKeyBody, headers: idempotencyHeaders, response: rotateKeyResponse },
    },
    async (request, reply) => {
      const principal = servicePrincipal(request);
      const ctx = opContext(request, clock);
      const target = { accountId: principal.accountId, keyId: request.params.id, createdByServiceKeyId: principal.ownerId };
      return sendIdempotent(request, reply, db, principal, ctx.now, {
        // After the claim (so a retry of a finished rotation replays instead of finding the old key
        // revoked) and before the transaction: whether the successor needs a rotation secret
        // depends on the key, and its argon2 hash must not run inside the transaction.
        prepare: async () => {
          const current = await getChildKey(db, principal, request.params.id);
          if (current.revokedAt) throw new DomainError('not_found');
          return prepareKeyMaterial(principal.environment, current.selfRotation);
        },
        run: async (tx, m) => {
          const { successor } = await rotateKeyTx(tx, target, m, ctx);
          return issuedKey(toKeyObject(successor, ctx.now), m);
        },
        // Before any claim: an unknown key is not_found either way; a revoked one may be this
        // request's own finished rotation, so the general path (claim first) answers it.
        runOnce: async (claim) => {
          const current = await getChildKey(db, principal, request.params.id);
          if (current.revokedAt) return null;
          const m = await prepareKeyMaterial(principal.environment, current.selfRotation);
          const keyJson = await rotateChildKeyOnce(db, target, current, m, ctx, claim(201));
          return keyJson === null ? null : issuedKey(JSON.parse(keyJson) as KeyObject, m);
        },
      }, idem);
    },
  );
}
