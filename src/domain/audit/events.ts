import { eventPlaceholders, insertEvent, insertEvents } from '../../db/queries/events.queries.js';
import type { Db, Tx } from '../../db/types.js';
import type { Environment } from '../auth/credentials.js';
import { scrubSecrets } from '../auth/secret-shapes.js';
import { newId } from '../ids.js';
import type { ChainedFields } from './chain-hash.js';
import type { EventLinker } from './linker.js';

export const EVENT_TYPES = [
  'service_key_created',
  'service_key_revoked',
  'service_key_rotated',
  'portal_key_created',
  'portal_key_revoked',
  'agent_key_created',
  'agent_key_updated',
  'agent_key_revoked',
  'agent_key_rotated',
  'agent_key_self_rotated',
  'agent_rotation_secret_issued',
  'agent_key_self_rotation_replaced',
  'agent_key_reuse_detected',
  'agent_key_expired',
  'agent_key_suspended',
  'agent_key_resumed',
  'agent_key_delegated',
  'service_key_list_read',
  'audit_read',
  'agent_self_read',
  'account_created',
  'account_updated',
  'operator_token_created',
  'operator_token_revoked',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export type ActorKind = 'service_key' | 'api_key' | 'portal';

/**
 * Who acted. Operator actions have kind 'portal': on the internal API, keyId is the operator token's
 * id (null for the bootstrap token) and keyPrefix `operator:<token name>`; from the CLI, keyId null
 * and keyPrefix 'cli'.
 */
export interface Actor {
  kind: ActorKind;
  keyId: string | null;
  keyPrefix: string;
}

/** Where the request came from; written on every event. */
export interface RequestMeta {
  requestId: string | null;
  ip: string | null;
  userAgent: string | null;
}

export const NO_REQUEST: RequestMeta = { requestId: null, ip: null, userAgent: null };

export interface EventInput {
  accountId: string;
  eventType: EventType;
  environment: Environment | null;
  actor: Actor;
  meta: RequestMeta;
  subjectKeyId?: string | null;
  relatedKeyId?: string | null;
  /** Event-specific facts. Never a secret: names of changed fields, counts, ids. */
  data: Record<string, unknown>;
  createdAt: Date;
}

// Header values are attacker-controlled: keep them printable and bounded before they are stored, and
// never store a secret a careless client put in one (the account's keys read them in the feed).
const clean = (v: string | null, max: number) =>
  v === null ? null : scrubSecrets(v.replace(/[\u0000-\u001f\u007f]/g, '')).slice(0, max);

function chainedFields(input: Omit<EventInput, 'data'> & { data: unknown }): ChainedFields {
  return {
    id: newId(),
    accountId: input.accountId,
    eventType: input.eventType,
    environment: input.environment,
    actorKind: input.actor.kind,
    actorKeyId: input.actor.keyId,
    actorKeyPrefix: input.actor.keyPrefix,
    subjectKeyId: input.subjectKeyId ?? null,
    relatedKeyId: input.relatedKeyId ?? null,
    requestId: clean(input.meta.requestId, 128),
    ip: clean(input.meta.ip, 64),
    userAgent: clean(input.meta.userAgent, 512),
    // Stored as jsonb and hashed later from the stored row (linker.ts), so no normalising here.
    data: input.data,
    createdAt: input.createdAt,
  };
}

declare const eventTxBrand: unique symbol;
/**
 * A transaction opened by withEvents: the only kind recordEvent takes, so that no write path can
 * record an event and forget to link it after the commit (passing a plain Tx does not compile).
 */
export type EventTx = Tx & { readonly [eventTxBrand]: true };

/** What recording and linking events needs: the database and the account chains' linker. */
export interface EventStore {
  db: Db;
  linker: EventLinker;
}

/**
 * Records one event inside the caller's transaction (the transaction of the change it describes),
 * in one INSERT, without its link: seq, prev_hash and hash are filled in after the commit by the
 * linker (linker.ts), which appends every waiting event of the account in one locked statement.
 * So recording takes no lock shared with other requests; only linking is serial, and it is done in
 * batches. The transaction commits asynchronously: the linker's round ends with the WAL flush that
 * withEvents waits for before the caller answers (db/durability.ts).
 */
export async function recordEvent(tx: EventTx, input: EventInput): Promise<{ id: string }> {
  const f = chainedFields(input);
  await insertEvent(tx, { ...f, actorKind: input.actor.kind, data: f.data as object });
  return { id: f.id };
}

/** Records many events inside the caller's transaction in one INSERT, as recordEvent records one. */
export async function recordEvents(tx: EventTx, inputs: EventInput[]): Promise<void> {
  await insertEvents(
    tx,
    inputs.map((input) => {
      const f = chainedFields(input);
      return { ...f, actorKind: input.actor.kind, data: f.data as object };
    }),
  );
}

/**
 * A transaction that records events of one account (no transaction spans two accounts): runs `fn`,
 * and after the commit links the account's events and waits until they are durable, so that the
 * caller may answer. `account` is the account's id, or how to read it from the result when the
 * transaction is what finds the row.
 */
export async function withEvents<T>(store: EventStore, account: string | ((result: T) => string), fn: (tx: EventTx) => Promise<T>): Promise<T> {
  const result = await store.db.transaction((tx) => fn(tx as EventTx));
  await store.linker.link(typeof account === 'string' ? account : account(result));
  return result;
}

/** The fields of one event as stored (its data comes from the statement that records it). */
export function eventFields(input: Omit<EventInput, 'data'>): Omit<ChainedFields, 'data'> {
  const { data: _none, ...fields } = chainedFields({ ...input, data: null });
  return fields;
}

/** The placeholder values of an event recorded by a statement's eventInsertCte. */
export const eventValues = (input: Omit<EventInput, 'data'>): Record<string, unknown> => eventPlaceholders({ ...eventFields(input), actorKind: input.actor.kind });
