import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { eventWireFields } from '../../domain/audit/chain-hash.js';
import { csrfOf, sendPage, type ConsoleOptions } from './console-common.js';
import { actionForm, html, when, type Html } from './html.js';

const idParams = z.object({ id: z.uuid() });
const eventParams = z.object({ id: z.uuid(), eventId: z.uuid() });
const auditQuery = z.object({ type: z.string().max(100).optional(), key: z.string().max(64).optional(), before: z.string().max(200).optional() });
const csrfBody = z.object({ _csrf: z.string().max(200) });

type Reply = Parameters<typeof sendPage>[1];

/** An account's audit trail: events newest first with filters and cursor pages, one event, verify now. */
export async function consoleAuditRoutes(app: FastifyInstance, opts: ConsoleOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/accounts/:id/audit', { schema: { params: idParams, querystring: auditQuery } }, (request, reply) =>
    auditPage(opts, request, reply, request.params.id, request.query, null),
  );

  r.post('/accounts/:id/audit/verify', { schema: { params: idParams, body: csrfBody } }, async (request, reply) => {
    const account = await opts.services.portal.getAccount(request.params.id);
    const v = await opts.services.chain.verify({ accountId: account.id });
    const b = v.firstBreak;
    const result = b
      ? html`<section class="card broken" role="status" id="chain-result"><h2>Chain broken</h2><p>First broken link: seq ${b.seq}${b.eventId ? html`, event <a href="/console/accounts/${account.id}/audit/${b.eventId}">${b.eventId}</a>` : ''} — ${b.problem}: ${b.message}</p></section>`
      : html`<section class="card intact" role="status" id="chain-result"><h2>Chain intact</h2><p>Intact through seq ${v.events}${v.linkedFirst ? ` (${v.linkedFirst} waiting event(s) linked first)` : ''}.</p></section>`;
    return auditPage(opts, request, reply, account.id, {}, result);
  });

  r.get('/accounts/:id/audit/:eventId', { schema: { params: eventParams } }, async (request, reply) => {
    const e = await opts.services.console.event(request.params.id, request.params.eventId);
    const link = e.seq === null ? 'not linked yet' : `seq ${e.seq}`;
    return sendPage(request, reply, `Event ${e.eventType}`, html`
<p><a href="/console/accounts/${e.accountId}/audit">Back to the audit trail</a></p>
<dl class="facts"><dt>Id</dt><dd><code>${e.id}</code></dd><dt>Chain</dt><dd>${link}</dd><dt>Hash</dt><dd><code class="wrap">${e.hash ?? '—'}</code></dd>
<dt>Previous hash</dt><dd><code class="wrap">${e.prevHash ?? '—'}</code></dd></dl>
<h2>Event</h2><pre class="json">${JSON.stringify(eventWireFields(e), null, 2)}</pre>`);
  });
}

async function auditPage(opts: ConsoleOptions, request: FastifyRequest, reply: Reply, accountId: string, q: z.infer<typeof auditQuery>, result: Html | null) {
  const account = await opts.services.portal.getAccount(accountId);
  const page = await opts.services.console.accountEvents(account.id, { eventType: q.type ?? null, keyId: q.key ?? null, before: q.before ?? null });
  const rows = page.events.map(
    (e) => html`<tr><td>${e.seq ?? '…'}</td><td><a href="/console/accounts/${account.id}/audit/${e.id}">${e.eventType}</a></td><td>${when(e.createdAt)}</td>
<td>${e.actorKind}${e.actorKeyPrefix ? html` <code>${e.actorKeyPrefix}</code>` : ''}</td><td>${e.subjectKeyId ? html`<a href="/console/keys/${e.subjectKeyId}">${e.subjectKeyId.slice(0, 8)}…</a>` : '—'}</td></tr>`,
  );
  const filters = new URLSearchParams();
  if (q.type) filters.set('type', q.type);
  if (q.key) filters.set('key', q.key);
  if (page.nextBefore) filters.set('before', page.nextBefore);
  return sendPage(request, reply, `Audit trail of ${account.name}`, html`${result}
<p><a href="/console/accounts/${account.id}">Back to the account</a></p>
${actionForm(`/console/accounts/${account.id}/audit/verify`, csrfOf(request), 'Verify now')}
<form method="get" class="row" role="search"><label for="type">Event type</label><input id="type" name="type" value="${q.type ?? ''}" placeholder="e.g. agent_key_revoked">
<label for="key">Key id</label><input id="key" name="key" value="${q.key ?? ''}"><button type="submit">Filter</button></form>
<div class="scroll"><table><caption>Compliance events, newest first</caption><thead><tr><th scope="col">Seq</th><th scope="col">Type</th><th scope="col">At (UTC)</th><th scope="col">Actor</th><th scope="col">Subject key</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="5">No event matches.</td></tr>`}</tbody></table></div>
${page.nextBefore ? html`<p><a rel="next" href="/console/accounts/${account.id}/audit?${filters.toString()}">Older events</a></p>` : ''}`);
}
