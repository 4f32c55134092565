import { sql, type SQL } from 'drizzle-orm';
import { asyncCommitCte } from '../durability.js';
import type { ApiKeyRow, Permission } from '../schema.js';
import { preparedQuery, type PreparedQuery } from '../statements.js';
import type { Db } from '../types.js';
import { apiKeyRowOf, type ApiKeyColumns } from './api-key-rows.js';
import { eventInsertCte } from './events.queries.js';

/*
 * GET /v1/keys with filters: a page of a service key's keys that match, the number that match, and
 * the service_key_list_read event recording the filter, in ONE statement (as the unfiltered list in
 * keys.queries.ts). Each filter leads an index of its own (tables/api-keys.ts: api_keys_creator_*),
 * so a page reads the keys it shows and the count reads only the matching index entries.
 */

/** Which keys a list shows, by state at the request's instant (see docs/api-behaviour.md). */
export const LIST_STATUSES = ['active', 'suspended', 'expiring', 'revoked', 'all'] as const;
export type ListStatus = (typeof LIST_STATUSES)[number];

export interface ListFilter {
  status: ListStatus;
  agentLabel?: string;
  agentLabelPrefix?: string;
  lineId?: string;
  permissions?: Permission;
}

export interface FilteredListPage {
  accountId: string;
  serviceKeyId: string;
  limit: number;
  offset: number;
  now: Date;
  filter: ListFilter;
}

/** `expiring`: an expiry or an overlap's end within this window (the longest overlap is 7 days). */
const EXPIRING_WINDOW = sql.raw(`interval '7 days'`);

const p = (name: string) => sql.placeholder(name);
const now = sql`${p('now')}::timestamptz`;
const unexpired = sql`(expires_at is null or expires_at > ${now})`;

function statusCondition(status: ListStatus): SQL[] {
  switch (status) {
    case 'active':
      return [sql`revoked_at is null`, unexpired];
    case 'suspended':
      return [sql`suspended_at is not null`, sql`revoked_at is null`, unexpired];
    case 'expiring': {
      const ending = sql`least(expires_at, revoked_at)`;
      return [sql`(expires_at is not null or revoked_at is not null)`, sql`${ending} > ${now}`, sql`${ending} <= ${now} + ${EXPIRING_WINDOW}`];
    }
    case 'revoked':
      return [sql`revoked_at is not null`, sql`revoked_at <= ${now}`];
    case 'all':
      return [];
  }
}

function conditions(f: ListFilter): SQL {
  const c = [sql`account_id = ${p('account_id')}`, sql`created_by_service_key_id = ${p('service_key_id')}`, ...statusCondition(f.status)];
  if (f.agentLabel !== undefined) c.push(sql`agent_label collate "C" = ${p('agent_label')}`);
  // A prefix is the range [prefix, prefix with its last character incremented) in the C collation.
  if (f.agentLabelPrefix !== undefined) c.push(sql`agent_label collate "C" >= ${p('label_from')} and agent_label collate "C" < ${p('label_to')}`);
  if (f.lineId !== undefined) c.push(sql`line_id = ${p('line_id')}::uuid`);
  if (f.permissions !== undefined) c.push(sql`permissions = ${p('permissions')}`);
  return sql.join(c, sql` and `);
}

type ListRow = { total: number; recorded: number; id: string | null } & Record<string, unknown>;

function buildStatement(f: ListFilter): PreparedQuery<ListRow> {
  const where = conditions(f);
  return preparedQuery<ListRow>(
    sql`with page as (
          select * from api_keys where ${where}
           order by created_at desc, id desc
           limit ${p('limit')} offset ${p('offset')}),
        counts as (
          select (select count(*) from page)::int as page_count,
                 (select count(*) from api_keys where ${where})::int as total),
        ${eventInsertCte('ev', {
          json: sql`'{"count":' || counts.page_count || ',"filter":' || ${p('filter')}::text || ',"limit":' || ${p('limit')}::int
                    || ',"offset":' || ${p('offset')}::int || ',"total":' || counts.total || '}'`,
          from: sql`counts`,
        })},
        ${asyncCommitCte}
        select counts.total, (select count(*) from ev)::int as recorded, page.*
          from counts cross join async_commit left join page on true
         order by page.created_at desc, page.id desc`,
  );
}

/** One statement per shape (which filters are present), built on first use: at most 5 × 2⁴. */
const statements = new Map<string, PreparedQuery<ListRow>>();
function statementFor(f: ListFilter): PreparedQuery<ListRow> {
  const shape = [f.status, f.agentLabel, f.agentLabelPrefix, f.lineId, f.permissions].map((v) => (v === undefined ? '-' : v === f.status ? v : '+')).join('');
  let statement = statements.get(shape);
  if (!statement) statements.set(shape, (statement = buildStatement(f)));
  return statement;
}

const nextCharacter = (s: string) => s.slice(0, -1) + String.fromCharCode(s.charCodeAt(s.length - 1) + 1);

/** The filter as the event records it: the wire names of the filters given. */
function recordedFilter(f: ListFilter): string {
  return JSON.stringify({
    status: f.status,
    ...(f.agentLabel !== undefined && { agent_label: f.agentLabel }),
    ...(f.agentLabelPrefix !== undefined && { agent_label_prefix: f.agentLabelPrefix }),
    ...(f.lineId !== undefined && { line_id: f.lineId }),
    ...(f.permissions !== undefined && { permissions: f.permissions }),
  });
}

/** The statement's values: the page, the filter's and the event's (`event`: the eventInsertCte values, ev_*). */
function valuesOf(page: FilteredListPage, event: Record<string, unknown>): Record<string, unknown> {
  const f = page.filter;
  return {
    account_id: page.accountId,
    service_key_id: page.serviceKeyId,
    limit: page.limit,
    offset: page.offset,
    now: page.now.toISOString(),
    filter: recordedFilter(f),
    agent_label: f.agentLabel,
    label_from: f.agentLabelPrefix,
    label_to: f.agentLabelPrefix === undefined ? undefined : nextCharacter(f.agentLabelPrefix),
    line_id: f.lineId,
    permissions: f.permissions,
    ...event,
  };
}

/** A filtered page, its total and its recorded event. */
export async function filteredListPage(db: Db, page: FilteredListPage, event: Record<string, unknown>): Promise<{ rows: ApiKeyRow[]; total: number }> {
  const result = await statementFor(page.filter)(db, valuesOf(page, event));
  const first = result[0];
  if (!first || first.recorded !== 1) throw new Error(`account ${page.accountId}: list event not recorded`);
  const rows = result.filter((r) => r.id !== null).map((r) => apiKeyRowOf(r as unknown as ApiKeyColumns));
  return { rows, total: first.total };
}

/** The plan of a filtered page (for the tests that pin which index each filter uses). */
export function explainFilteredList(db: Db, page: FilteredListPage, event: Record<string, unknown>): Promise<string> {
  return statementFor(page.filter).explain(db, valuesOf(page, event));
}
