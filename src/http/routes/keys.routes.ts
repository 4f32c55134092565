import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Clock } from '../../domain/clock.js';
import type { KeyPatch } from '../../domain/keys/child-keys.js';
import type { KeysService } from '../../domain/keys/keys.service.js';
import { opContext, servicePrincipal } from '../plugins/auth.js';
import { idempotencyOf, sendOutcome } from '../plugins/idempotency-header.js';
import {
  getKeyResponse,
  idempotencyHeaders,
  keyIdParams,
  lineageResponse,
  listKeysQuery,
  listKeysResponse,
  mintKeyBody,
  mintKeyResponse,
  revokeKeyResponse,
  rotateKeyBody,
  rotateKeyQuery,
  rotationSecretBody,
  rotateKeyResponse,
  rotationSecretResponse,
  resumeKeyBody,
  suspendKeyBody,
  suspensionResponse,
  updateKeyBody,
  updateKeyResponse,
} from './keys.schemas.js';
import '../plugins/limits.js';

export interface KeysRoutesOptions {
  keys: KeysService;
  clock: Clock;
}

/** A uuid is stored in its canonical (lowercase) form; answer and record it the same way. */
const canonicalLine = <T extends string | null | undefined>(line: T): T => (typeof line === 'string' ? (line.toLowerCase() as T) : line);

/** /v1/keys: the child keys of the calling service key (spec §4). Handlers stay thin. */
export async function keysRoutes(app: FastifyInstance, opts: KeysRoutesOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { keys, clock } = opts;

  r.post(
    '/keys',
    {
      config: { auth: 'service', limit: 'keys.mint' },
      schema: { body: mintKeyBody, headers: idempotencyHeaders, response: mintKeyResponse },
    },
    async (request, reply) => {
      const b = request.body;
      const input = {
        environment: b.environment,
        name: b.name,
        agentLabel: b.agent_label ?? null,
        lineId: canonicalLine(b.line_id) ?? null,
        permissions: b.permissions,
        monthlyCapCents: b.monthly_cap_cents ?? null,
        selfRotation: b.self_rotation,
        expiresAt: b.expires_at === undefined ? undefined : new Date(b.expires_at),
        ttlSeconds: b.ttl_seconds,
        canDelegate: b.can_delegate,
      };
      const outcome = await keys.mint(servicePrincipal(request), input, idempotencyOf(request), opContext(request, clock));
      return sendOutcome(reply, outcome);
    },
  );

  r.get(
    '/keys',
    { config: { auth: 'service', limit: 'keys.list' }, schema: { querystring: listKeysQuery, response: listKeysResponse } },
    async (request) => {
      const q = request.query;
      const filter = {
        status: q.status,
        agentLabel: q.agent_label,
        agentLabelPrefix: q.agent_label_prefix,
        lineId: canonicalLine(q.line_id),
        permissions: q.permissions,
      };
      const given = Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined)) as typeof filter;
      return keys.list(servicePrincipal(request), { limit: q.limit, offset: q.offset, filter: given }, opContext(request, clock));
    },
  );

  r.get(
    '/keys/:id',
    { config: { auth: 'service', limit: 'keys.get' }, schema: { params: keyIdParams, response: getKeyResponse } },
    async (request) => ({ key: await keys.get(servicePrincipal(request), request.params.id, clock.now()) }),
  );

  r.get(
    '/keys/:id/lineage',
    { config: { auth: 'service', limit: 'keys.get' }, schema: { params: keyIdParams, response: lineageResponse } },
    async (request) => keys.lineage(servicePrincipal(request), request.params.id, opContext(request, clock)),
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
        lineId: canonicalLine(b.line_id),
        permissions: b.permissions,
        monthlyCapCents: b.monthly_cap_cents,
        selfRotation: b.self_rotation,
        expiresAt: b.expires_at === undefined || b.expires_at === null ? b.expires_at : new Date(b.expires_at),
        canDelegate: b.can_delegate,
      };
      return { key: await keys.update(servicePrincipal(request), request.params.id, patch, opContext(request, clock)) };
    },
  );

  r.delete(
    '/keys/:id',
    { config: { auth: 'service', limit: 'keys.revoke' }, schema: { params: keyIdParams, response: revokeKeyResponse } },
    async (request) => ({ key: await keys.revoke(servicePrincipal(request), request.params.id, opContext(request, clock)) }),
  );

  r.post(
    '/keys/:id/suspend',
    { config: { auth: 'service', limit: 'keys.update' }, schema: { params: keyIdParams, body: suspendKeyBody, response: suspensionResponse } },
    async (request) => {
      const change = { suspend: true, reason: request.body?.reason };
      return { key: await keys.setSuspension(servicePrincipal(request), request.params.id, change, opContext(request, clock)) };
    },
  );

  r.post(
    '/keys/:id/resume',
    { config: { auth: 'service', limit: 'keys.update' }, schema: { params: keyIdParams, body: resumeKeyBody, response: suspensionResponse } },
    async (request) => ({ key: await keys.setSuspension(servicePrincipal(request), request.params.id, { suspend: false }, opContext(request, clock)) }),
  );

  r.post(
    '/keys/:id/rotate',
    {
      config: { auth: 'service', limit: 'keys.rotate' },
      schema: { params: keyIdParams, querystring: rotateKeyQuery, body: rotateKeyBody, headers: idempotencyHeaders, response: rotateKeyResponse },
    },
    async (request, reply) => {
      const reset = request.query.rotation_secret === 'reset';
      const idempotency = idempotencyOf(request, reset ? { rotation_secret: 'reset' } : undefined);
      const overlapSeconds = request.body?.overlap_seconds ?? 0;
      const outcome = await keys.rotate(servicePrincipal(request), request.params.id, idempotency, opContext(request, clock), { resetSecret: reset, overlapSeconds });
      return sendOutcome(reply, outcome);
    },
  );

  r.post(
    '/keys/:id/rotation-secret',
    {
      // The rotate route's limit: issuing a secret is as sensitive as rotating.
      config: { auth: 'service', limit: 'keys.rotate' },
      schema: { params: keyIdParams, body: rotationSecretBody, headers: idempotencyHeaders, response: rotationSecretResponse },
    },
    async (request, reply) => {
      const outcome = await keys.issueRotationSecret(servicePrincipal(request), request.params.id, idempotencyOf(request), opContext(request, clock));
      return sendOutcome(reply, outcome);
    },
  );
}
