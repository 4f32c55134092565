import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ACTIVITY_OUTCOMES, type ActivityChart } from '../../domain/verify/activity.js';
import { sendPage, type ConsoleOptions } from './console-common.js';
import { Html, html, when } from './html.js';

const idParams = z.object({ id: z.uuid() });
const rangeQuery = z.object({ range: z.enum(['24h', '30d']).default('24h') });

type Reply = Parameters<typeof sendPage>[1];

/**
 * The chart's data rides in a JSON block (never executed, so the CSP allows it) that
 * assets/console-chart.js draws with uPlot; the same numbers are in a table for screen readers.
 */
function chartHtml(chart: ActivityChart, range: string, base: string): Html {
  const json = JSON.stringify(chart).replace(/</g, '\\u003c');
  const totals = ACTIVITY_OUTCOMES.map((o) => html`<td>${chart.series[o].reduce((a, b) => a + b, 0)}</td>`);
  const tab = (r: string, label: string) => (r === range ? html`<strong aria-current="page">${label}</strong>` : html`<a href="${base}?range=${r}">${label}</a>`);
  return html`<p class="row">${tab('24h', 'Last 24 hours')} · ${tab('30d', 'Last 30 days')}</p>
<figure><div id="chart" class="chart" role="img" aria-label="Verifications by outcome per ${range === '24h' ? 'hour' : 'day'}"></div>
<figcaption class="muted">Verifications per ${range === '24h' ? 'hour' : 'day'} by outcome (UTC). Counts are written every few seconds by each instance.</figcaption></figure>
<script type="application/json" id="chart-data">${new Html(json)}</script>
<div class="scroll"><table id="activity-totals"><caption>Totals over the range</caption><thead><tr>${ACTIVITY_OUTCOMES.map((o) => html`<th scope="col">${o}</th>`)}</tr></thead><tbody><tr>${totals}</tr></tbody></table></div>`;
}

/** Verification activity: per account (with the top keys by refusals) and per key. */
export async function consoleActivityRoutes(app: FastifyInstance, opts: ConsoleOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { services, clock } = opts;

  r.get('/accounts/:id/activity', { schema: { params: idParams, querystring: rangeQuery } }, async (request: FastifyRequest<{ Params: { id: string }; Querystring: { range: '24h' | '30d' } }>, reply: Reply) => {
    const account = await services.portal.getAccount(request.params.id);
    const now = clock.now();
    const chart = await services.activity.chart(account.id, null, request.query.range, now);
    const top = await services.activity.topRefused(account.id, now);
    const rows = top.map((t) => html`<tr><td><a href="/console/keys/${t.keyId}">${t.keyId}</a></td><td>${t.refusals}</td></tr>`);
    return sendPage(request, reply, `Verification activity of ${account.name}`, html`<p><a href="/console/accounts/${account.id}">Back to the account</a> · as of ${when(now)} UTC</p>
${chartHtml(chart, request.query.range, `/console/accounts/${account.id}/activity`)}
<h2>Top keys by refusals (24 hours)</h2><div class="scroll"><table id="top-refused"><thead><tr><th scope="col">Key</th><th scope="col">Refusals</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="2">No refusal.</td></tr>`}</tbody></table></div>`, 200, true);
  });

  r.get('/keys/:id/activity', { schema: { params: idParams, querystring: rangeQuery } }, async (request: FastifyRequest<{ Params: { id: string }; Querystring: { range: '24h' | '30d' } }>, reply: Reply) => {
    const key = await services.operatorKeys.get(request.params.id);
    const chart = await services.activity.chart(key.account_id, key.id, request.query.range, clock.now());
    const back = key.kind === 'service' ? `/console/service-keys/${key.id}` : `/console/keys/${key.id}`;
    return sendPage(request, reply, `Verification activity of ${key.key_prefix}`, html`<p><a href="${back}">Back to the key</a></p>${chartHtml(chart, request.query.range, `/console/keys/${key.id}/activity`)}`, 200, true);
  });
}
