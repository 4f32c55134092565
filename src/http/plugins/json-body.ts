import type { FastifyInstance } from 'fastify';

/**
 * Saperly's SDKs send Content-Type: application/json on every request, also on GET, DELETE and
 * the body-less rotate POST, often with an empty body. Fastify rejects an empty JSON body; this
 * parser treats it as "no body" and parses everything else with Fastify's own (prototype-poisoning
 * safe) JSON parser.
 */
export function registerJsonParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(null, undefined);
    parseJson(request, text, done);
  });
}
