import type { FastifyReply } from 'fastify';

/**
 * Sends a body whose JSON is already built (its rows by Postgres, see db/json-sql.ts). Fastify
 * passes a string with a JSON content type through as is, so the route's compiled serializer does
 * not run; the route keeps its response schema for the OpenAPI document and the suite's response
 * validation. The envelope around the prebuilt parts is written by the route, in the schema's order.
 */
export function sendJson(reply: FastifyReply, json: string): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(json as never);
}
