import { keyByTokenHash } from '../../db/queries/keys.queries.js';
import type { ApiKeyRow } from '../../db/schema.js';
import { withEvents, type EventStore, type RequestMeta } from '../audit/events.js';
import { parseToken } from '../auth/credentials.js';
import type { OpContext } from '../context.js';
import { DomainError, invalidApiKey } from '../errors.js';
import { prepareKeyMaterial, rotationSecretMatches, type KeyMaterial } from './key-material.js';
import { keyState } from './key-state.js';
import { rotateKeyTx } from './rotation.js';
import { staleKeyTx } from './stale-pair.js';

/*
 * Agent self-rotation (spec §7). The route authenticates itself rather than through the auth
 * plugin, because it must tell a revoked key whose rotation secret matches (403 agent_revoked, or
 * a retry, or reuse: stale-pair.ts) from an unknown key or a wrong secret (401 invalid_api_key, the
 * one message used everywhere).
 */

export interface SelfRotation {
  apiKey: string;
  rotationSecret: string;
  agentId: string;
  agentName: string;
  successor: ApiKeyRow;
}

/**
 * The key a token and rotation secret name, in any state, once both match; every failure throws
 * (invalid_api_key, rotation_not_configured). The route counts what comes back against the agent
 * and a failure against the client address.
 */
async function matchingKey(store: EventStore, token: string, rotationSecret: string): Promise<ApiKeyRow> {
  const parsed = parseToken(token);
  if (!parsed || parsed.kind !== 'api') throw invalidApiKey();
  // Revoked rows too: a revoked key with a matching secret is a retry, reuse or agent_revoked.
  const row = await keyByTokenHash(store.db, parsed.tokenHash);
  if (!row) throw invalidApiKey();
  if (!row.selfRotation || !row.rotationSecretHash) {
    // Only an active key learns that self-rotation is not configured; a revoked one is just invalid.
    if (row.revokedAt) throw invalidApiKey();
    throw new DomainError('rotation_not_configured');
  }
  // argon2id is slow by design: verify and hash before any transaction opens.
  if (!(await rotationSecretMatches(row.rotationSecretHash, rotationSecret))) throw invalidApiKey();
  return row;
}

function answer(material: KeyMaterial, successor: ApiKeyRow): SelfRotation {
  return {
    apiKey: material.token.plaintext,
    rotationSecret: material.rotationSecret!,
    agentId: successor.agentId,
    agentName: successor.agentLabel ?? successor.name,
    successor,
  };
}

/** A live key rotates; its successor is pending (retryable with this pair) until first used. */
async function rotateLive(store: EventStore, row: ApiKeyRow, material: KeyMaterial, ctx: OpContext, overlapSeconds: number): Promise<SelfRotation> {
  try {
    const { successor } = await withEvents(store, row.accountId, (tx) =>
      rotateKeyTx(tx, { accountId: row.accountId, keyId: row.id }, material, ctx, { eventType: 'agent_key_self_rotated', selfRotationBaseId: row.id, overlapSeconds }),
    );
    return answer(material, successor);
  } catch (err) {
    // A concurrent rotation with the same credentials won: this key is now revoked; or it was
    // suspended (or expired) meanwhile.
    if (err instanceof DomainError && err.code === 'not_found') throw new DomainError('agent_revoked');
    if (err instanceof DomainError && err.code === 'key_suspended') throw new DomainError('agent_suspended');
    throw err;
  }
}

async function selfRotate(store: EventStore, row: ApiKeyRow, meta: RequestMeta, now: Date, overlapSeconds: number): Promise<SelfRotation> {
  // The new pair is made (argon2) before any transaction opens, whichever way the attempt goes.
  const material = await prepareKeyMaterial(row.environment, true);
  const ctx: OpContext = { actor: { kind: 'api_key', keyId: row.id, keyPrefix: row.keyPrefix }, meta, now };
  const state = keyState(row, now);
  if (state === 'suspended') throw new DomainError('agent_suspended');
  // An expired key is refused like a revoked one.
  if (state === 'expired') throw new DomainError('agent_revoked');
  if (state === 'live') return rotateLive(store, row, material, ctx, overlapSeconds);
  // Revoked, or a rotated-away key in its overlap: a stale pair (a retry, reuse or agent_revoked).
  const outcome = await withEvents(store, row.accountId, (tx) => staleKeyTx(tx, row, material, ctx));
  if (outcome.kind === 'retried') return answer(material, outcome.successor);
  // Reuse (its reaction committed with its event) or a key its developer retired: as today.
  throw new DomainError('agent_revoked');
}

/** A key whose token and rotation secret both matched (any state): what rotate acts on. */
export interface MatchedAgentKey {
  agentId: string;
  row: ApiKeyRow;
}

/** POST /v1/agents/self/rotate-key: match the credentials, then (after the route's limit) rotate. */
export function createSelfRotationService(store: EventStore) {
  return {
    async match(token: string, rotationSecret: string): Promise<MatchedAgentKey> {
      const row = await matchingKey(store, token, rotationSecret);
      return { agentId: row.agentId, row };
    },
    /** `overlapSeconds` (0 to MAX_SELF_OVERLAP_SECONDS): the old pair keeps working that long. */
    rotate: (key: MatchedAgentKey, meta: RequestMeta, now: Date, overlapSeconds = 0): Promise<SelfRotation> => selfRotate(store, key.row, meta, now, overlapSeconds),
  };
}

export type SelfRotationService = ReturnType<typeof createSelfRotationService>;
