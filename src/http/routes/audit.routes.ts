import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { AuditService } from '../../domain/audit/audit.service.js';
import type { Clock } from '../../domain/clock.js';
import { apiPrincipal, opContext } from '../plugins/auth.js';
import { auditQuery, auditResponse } from './audit.schemas.js';
import { sendRawJson } from '../plugins/prebuilt-json.js';
import '../plugins/limits.js';

export interface AuditRoutesOptions {
  audit: AuditService;
  clock: Clock;
}

/** /v1/audit: an API key's compliance feed (spec §6); every read records an audit_read event. */
export async function auditRoutes(app: FastifyInstance, opts: AuditRoutesOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/audit',
    { config: { auth: 'api', limit: 'audit.read' }, schema: { querystring: auditQuery, response: auditResponse } },
    async (request, reply) => {
      const principal = apiPrincipal(request);
      const ctx = opContext(request, opts.clock);
      const q = request.query;
      const page = await opts.audit.read(
        principal,
        { apiKeyId: q.api_key_id, limit: q.limit, eventTypes: q.event_types ?? null, before: q.before ?? null, exclude: q.exclude ?? null },
        ctx,
      );
      // The items come as JSON printed at link time (keyplane_audit_item); ids are uuids (no escaping).
      const nextBefore = page.nextBefore === null ? 'null' : `"${page.nextBefore}"`;
      const body = `{"events":[${page.eventsJson}],"limit":${page.limit},"api_key_id":"${page.apiKeyId}","next_before":${nextBefore}}`;
      return sendRawJson(reply, body);
    },
  );
}
