import type { FastifyReply } from 'fastify';

/**
 * Sends a body whose JSON is already built. Fastify passes a string with a JSON content type through
 * as is, so the route's compiled serializer does not run; the route keeps its response schema for
 * the OpenAPI document and the suite's response validation, and writes the envelope around the
 * prebuilt parts itself, in the schema's order.
 *
 * Only audit pages are sent this way. Every other response goes through the compiled serializer,
 * whose schema is the whitelist of what leaves the server. An audit item is different: it is printed
 * once, when its event is linked (item_json, keyplane_audit_item), from the event's own stored
 * fields, and never changes afterwards, while it is read on every page that reaches it; parsing it
 * back into an object only to serialize it again would redo that work on each read.
 */
export function sendRawJson(reply: FastifyReply, json: string): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(json as never);
}
