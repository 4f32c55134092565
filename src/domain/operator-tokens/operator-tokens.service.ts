import { driverError } from '../../db/errors.js';
import { BatchedLookup } from '../../db/group-commit.js';
import {
  ensureAccount,
  insertOperatorToken,
  listOperatorTokenRows,
  liveOperatorTokensByHashes,
  operatorTokensByHashes,
  revokeOperatorTokenRow,
  type LiveOperatorToken,
} from '../../db/queries/operator-tokens.queries.js';
import type { OperatorScope, OperatorTokenRow } from '../../db/schema.js';
import type { Db } from '../../db/types.js';
import { recordEvent, withEvents, type EventStore, type EventTx } from '../audit/events.js';
import { generateOperatorToken } from '../auth/credentials.js';
import type { OpContext } from '../context.js';
import { notFound, validationError } from '../errors.js';
import { isUuid, newId } from '../ids.js';

/*
 * Named operator tokens (kpo_…) for the admin listener, beside the bootstrap KEYPLANE_ADMIN_TOKEN.
 * Stored as the SHA-256 of the token (256 random bits: a fast hash is enough, as for API keys);
 * the plaintext is returned once by create and never stored.
 *
 * Their compliance events belong to no tenant, and every event belongs to an account's chain: they
 * go to the operator account (OPERATOR_ACCOUNT_ID), a reserved account created with the first
 * event, whose chain records only what operators do to operator tokens.
 */

/** The reserved account whose compliance chain holds the operator-token events. */
export const OPERATOR_ACCOUNT_ID = '00000000-0000-0000-0000-000000000000';
const OPERATOR_ACCOUNT_NAME = 'keyplane operator';

export type { OperatorScope };

/** Who holds the token of a request on the admin listener. */
export interface OperatorPrincipal {
  /** The token's id; null for the bootstrap token (KEYPLANE_ADMIN_TOKEN), which has no row. */
  id: string | null;
  name: string;
  scope: OperatorScope;
}

export const BOOTSTRAP_OPERATOR: OperatorPrincipal = Object.freeze({ id: null, name: 'bootstrap', scope: 'admin' });

/** What list and revoke show of a token: never its hash, never the secret. */
export interface OperatorTokenView {
  id: string;
  name: string;
  scope: OperatorScope;
  key_prefix: string;
  created_at: string;
  revoked_at: string | null;
}

const view = (r: OperatorTokenRow): OperatorTokenView => ({
  id: r.id,
  name: r.name,
  scope: r.scope,
  key_prefix: r.keyPrefix,
  created_at: r.createdAt.toISOString(),
  revoked_at: r.revokedAt?.toISOString() ?? null,
});

/** A name is what `revoke` takes besides an id, so it is short, plain, and never shaped like an id. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function checkName(name: string): void {
  if (!NAME_RE.test(name) || isUuid(name)) {
    throw validationError('Invalid operator token name.', [
      { field: 'name', message: 'must be 1–64 letters, digits, dots, dashes or underscores, starting with a letter or digit, and not a uuid' },
    ]);
  }
}

async function recordTokenEvent(tx: EventTx, type: 'operator_token_created' | 'operator_token_revoked', row: OperatorTokenRow, ctx: OpContext, extra: object = {}) {
  await ensureAccount(tx, { id: OPERATOR_ACCOUNT_ID, name: OPERATOR_ACCOUNT_NAME, createdAt: ctx.now });
  await recordEvent(tx, {
    accountId: OPERATOR_ACCOUNT_ID,
    eventType: type,
    environment: null,
    actor: ctx.actor,
    meta: ctx.meta,
    data: { operator_token_id: row.id, name: row.name, scope: row.scope, key_prefix: row.keyPrefix, ...extra },
    createdAt: ctx.now,
  });
}

async function create(store: EventStore, input: { name: string; scope: OperatorScope }, ctx: OpContext) {
  checkName(input.name);
  const token = generateOperatorToken();
  const id = newId();
  try {
    const row = await withEvents(store, OPERATOR_ACCOUNT_ID, async (tx) => {
      const inserted = await insertOperatorToken(tx, { id, name: input.name, scope: input.scope, keyPrefix: token.keyPrefix, tokenHash: token.tokenHash, createdAt: ctx.now });
      await recordTokenEvent(tx, 'operator_token_created', inserted, ctx);
      return inserted;
    });
    return { ...view(row), plaintext_key: token.plaintext };
  } catch (err) {
    if (driverError(err).code === '23505') throw validationError('A live operator token already has this name.', [{ field: 'name', message: 'already in use by a live token' }]);
    throw err;
  }
}

/** Revokes the live token with this id, or else this name; not_found when there is none. */
async function revoke(store: EventStore, idOrName: string, ctx: OpContext): Promise<OperatorTokenView> {
  const by = isUuid(idOrName) ? { id: idOrName } : { name: idOrName };
  const row = await withEvents(store, OPERATOR_ACCOUNT_ID, async (tx) => {
    const revoked = await revokeOperatorTokenRow(tx, by, ctx.now);
    if (revoked) await recordTokenEvent(tx, 'operator_token_revoked', revoked, ctx);
    return revoked;
  });
  if (!row) throw notFound();
  return view(row);
}

/** An operator token a leak report named: its id and prefix, and whether this report revoked it. */
export interface LeakedOperatorToken {
  id: string;
  keyPrefix: string;
  revoked: boolean;
}

/**
 * The leak intake's part for operator tokens (domain/operator/operator-revocation.ts): every live
 * token of these hashes is revoked at once, in one transaction of the operator account, each with
 * its event and reason "leaked"; a token revoked already is found and left as it is.
 */
export async function revokeLeakedOperatorTokens(store: EventStore, tokenHashes: string[], ctx: OpContext): Promise<Map<string, LeakedOperatorToken>> {
  const found = tokenHashes.length === 0 ? [] : await operatorTokensByHashes(store.db, tokenHashes);
  const live = found.filter((t) => !t.revoked);
  const revokedNow = new Set<string>();
  if (live.length > 0) {
    await withEvents(store, OPERATOR_ACCOUNT_ID, async (tx) => {
      for (const token of live) {
        const row = await revokeOperatorTokenRow(tx, { id: token.id }, ctx.now);
        if (!row) continue;
        await recordTokenEvent(tx, 'operator_token_revoked', row, ctx, { reason: 'leaked' });
        revokedNow.add(row.id);
      }
    });
  }
  return new Map(found.map((t) => [t.tokenHash, { id: t.id, keyPrefix: t.keyPrefix, revoked: revokedNow.has(t.id) }]));
}

/** The live token of each hash (undefined: unknown or revoked); concurrent lookups share a statement. */
function createLookup(db: Db) {
  return new BatchedLookup<string, LiveOperatorToken | undefined>(async (hashes) => {
    const rows = await liveOperatorTokensByHashes(db, [...new Set(hashes)]);
    const byHash = new Map(rows.map((r) => [r.tokenHash, r]));
    return hashes.map((h) => byHash.get(h));
  });
}

/** Operator tokens: managed by the CLI, looked up by admin-auth on every request that carries one. */
export function createOperatorTokensService(store: EventStore) {
  const lookup = createLookup(store.db);
  return {
    create: (input: { name: string; scope: OperatorScope }, ctx: OpContext) => create(store, input, ctx),
    list: async (): Promise<OperatorTokenView[]> => (await listOperatorTokenRows(store.db)).map(view),
    revoke: (idOrName: string, ctx: OpContext) => revoke(store, idOrName, ctx),
    /**
     * The live token of this hash, read from the database (no cache, ADR 0006: a revoked token
     * fails on the next request). The read starts after the request arrived; concurrent requests
     * share it (db/group-commit.ts), which is what keeps it cheap on verify's hot path.
     */
    async byHash(tokenHash: string): Promise<OperatorPrincipal | undefined> {
      const row = await lookup.lookup(tokenHash);
      return row && { id: row.id, name: row.name, scope: row.scope };
    },
  };
}

export type OperatorTokensService = ReturnType<typeof createOperatorTokensService>;
