import { ERROR_COMPONENTS } from '../routes/error.schemas.js';
import { fallbackOperation, OPERATIONS, TAGS, type OperationDoc } from './catalog.js';

/**
 * Turns what @fastify/swagger generated into the published document: names and tags each
 * operation, adds its security and the response headers the server really sends, drops components
 * no operation uses, and fixes the order of everything, so that generating twice gives the same
 * bytes (the drift test compares them).
 */

export type DocumentKind = 'public' | 'internal';
export const OPERATION_META = 'x-keyplane-route';
export interface OperationMeta {
  auth: string | null;
  limit: string | null;
}

type Json = Record<string, any>;

/** Bodies seen by scripts/openapi-examples.ts, per "METHOD /path": the request and one per status. */
export interface OperationExamples {
  request?: unknown;
  responses: Record<string, unknown>;
}
export type DocumentExamples = Record<string, OperationExamples>;
/** The examples of both documents, as examples.json holds them. */
export type ExamplesByKind = Record<DocumentKind, DocumentExamples>;

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
const OPERATION_KEYS = ['operationId', 'summary', 'description', 'tags', 'security', 'parameters', 'requestBody', 'responses'];
const TOP_KEYS = ['openapi', 'info', 'servers', 'tags', 'paths', 'components'];

/** Response headers, as components: each operation refers to the ones its responses carry. */
const HEADERS: Record<string, Json> = {
  RequestId: { description: 'The request id: a well-formed X-Request-Id sent by the caller, else a new uuid.', schema: { type: 'string' } },
  RetryAfter: { description: 'Seconds to wait before retrying.', required: true, schema: { type: 'string', pattern: '^[0-9]+$' } },
  RetryAfterInProgress: { description: 'Sent with idempotency_in_progress: seconds to wait before retrying.', schema: { type: 'string', pattern: '^[0-9]+$' } },
  RateLimit: { description: 'Remaining quota of the route\'s policy (IETF RateLimit header fields).', schema: { type: 'string' } },
  RateLimitPolicy: { description: 'The rate-limit policy of this route (IETF RateLimit header fields).', schema: { type: 'string' } },
  IdempotentReplayed: { description: '`true` when this is a stored replay of an earlier request with the same Idempotency-Key.', schema: { type: 'string' } },
};
const headerRef = (name: keyof typeof HEADERS) => ({ $ref: `#/components/headers/${name}` });

const IDEMPOTENCY_PARAMETER = {
  name: 'Idempotency-Key',
  in: 'header',
  required: true,
  description:
    'Required: 1–255 characters, no whitespace, one per operation. Kept 12 hours per service key: a retry with the same key and body answers the stored response (`Idempotent-Replayed: true`); the same key with another body answers 409 `idempotency_key_reused`.',
  schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^\\S+$' },
};

const SUCCESS_TEXT: Record<string, string> = { '200': 'OK', '201': 'Created', '204': 'No content' };
const STATUS_TEXT: Record<string, string> = {
  '403': '403: the credentials match but the action is not allowed (the agent envelopes, agent_revoked, rotation_not_configured).',
};

function ordered(obj: Json, first: readonly string[]): Json {
  const out: Json = {};
  for (const k of first) if (k in obj) out[k] = obj[k];
  for (const k of Object.keys(obj).sort()) if (!(k in out)) out[k] = obj[k];
  return out;
}

/** Names the operation, tags it and describes it (the catalog's text and its authentication). */
function describeOperation(op: Json, meta: OperationMeta, docs: OperationDoc): void {
  op.operationId ??= docs.operationId;
  op.summary ??= docs.summary;
  const authNote =
    meta.auth === 'service'
      ? 'Authentication: a service key (`sk_svc_test_…`, `sk_svc_live_…`).'
      : meta.auth === 'api'
        ? 'Authentication: an API key (`sk_test_…`, `sk_live_…`).'
        : null;
  const description = [docs.description, authNote].filter(Boolean).join('\n\n');
  if (description && !op.description) op.description = description;
  op.tags ??= [docs.tag];
}

/** What a response's decoration depends on besides the response itself. */
interface ResponseContext {
  meta: OperationMeta;
  docs: OperationDoc;
  seen: OperationExamples | undefined;
  schemas: Json;
}

/** The responses in status order, each with its description, its headers and its recorded example. */
function decorateResponses(responses: Json, { meta, docs, seen, schemas }: ResponseContext): Json {
  const sorted: Json = {};
  for (const status of Object.keys(responses).sort()) {
    const res = responses[status] as Json;
    const media = res.content?.['application/json'];
    if (media && seen?.responses[status] !== undefined) media.example = seen.responses[status];
    const schemaRef: string | undefined = res.content?.['application/json']?.schema?.$ref;
    if (!res.description || res.description === 'Default Response') {
      const described = schemaRef ? schemas[schemaRef.split('/').pop()!]?.description : undefined;
      res.description = SUCCESS_TEXT[status] ?? described ?? STATUS_TEXT[status] ?? `Status ${status}`;
    }
    const headers: Json = { 'X-Request-Id': headerRef('RequestId') };
    if (status === '429' || status === '503') headers['Retry-After'] = headerRef('RetryAfter');
    if (status === '409') headers['Retry-After'] = headerRef('RetryAfterInProgress');
    if (meta.limit) {
      headers.RateLimit = headerRef('RateLimit');
      headers['RateLimit-Policy'] = headerRef('RateLimitPolicy');
    }
    if (docs.idempotencyKey && status.startsWith('2')) headers['Idempotent-Replayed'] = headerRef('IdempotentReplayed');
    res.headers = { ...headers, ...res.headers };
    sorted[status] = ordered(res, ['description', 'headers', 'content']);
  }
  return sorted;
}

function decorateOperation(op: Json, method: string, path: string, kind: DocumentKind, schemas: Json, examples: DocumentExamples): Json {
  const meta = (op[OPERATION_META] ?? { auth: null, limit: null }) as OperationMeta;
  delete op[OPERATION_META];
  const docs = OPERATIONS[`${method.toUpperCase()} ${path}`] ?? fallbackOperation(method.toUpperCase(), path);
  describeOperation(op, meta, docs);

  // @fastify/swagger marks every body required; one whose schema accepts null (rotate: "no body")
  // may be left out, and Content-Type: application/json with an empty body is accepted.
  const bodySchema = op.requestBody?.content?.['application/json']?.schema;
  if (bodySchema?.anyOf?.some((s: Json) => s.type === 'null')) op.requestBody.required = false;

  const responses: Json = op.responses ?? {};
  // Any route answers an unexpected fault (a bug, a failed write) with the generic 500 envelope of
  // the one error handler; no route declares it in its zod schemas, so it is added here for all.
  responses['500'] ??= { content: { 'application/json': { schema: { $ref: '#/components/schemas/InternalError' } } } };
  // The admin listener's guard covers /internal/... only; its health probes are open like the public ones.
  const secured = meta.auth !== null || '401' in responses || (kind === 'internal' && path.startsWith('/internal/'));
  op.security = secured ? [{ [kind === 'public' ? 'bearerAuth' : 'operatorToken']: [] }] : [];

  if (docs.idempotencyKey) {
    // The route's zod schema has it optional (a missing key is a 400 `missing_idempotency_key`, not a 422); it is required.
    const params: Json[] = (op.parameters ?? []).filter((p: Json) => !(p.in === 'header' && String(p.name).toLowerCase() === 'idempotency-key'));
    op.parameters = [IDEMPOTENCY_PARAMETER, ...params];
  }

  const seen = examples[`${method.toUpperCase()} ${path}`];
  const requestMedia = op.requestBody?.content?.['application/json'];
  if (seen?.request !== undefined && requestMedia) requestMedia.example = seen.request;
  op.responses = decorateResponses(responses, { meta, docs, seen, schemas });
  return ordered(op, OPERATION_KEYS);
}

/** Names of the components a value refers to, directly. */
function refsIn(value: unknown, into: Set<string>, prefix = '#/components/schemas/'): void {
  if (Array.isArray(value)) for (const v of value) refsIn(v, into, prefix);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string' && v.startsWith(prefix)) into.add(v.slice(prefix.length));
      else refsIn(v, into, prefix);
    }
  }
}

/** The components reachable from the paths (and, in the public document, every error schema). */
function reachable(paths: Json, schemas: Json, keep: readonly string[]): string[] {
  const seen = new Set<string>();
  const queue = new Set<string>(keep.filter((k) => k in schemas));
  refsIn(paths, queue);
  while (queue.size > 0) {
    const [name] = queue;
    queue.delete(name!);
    if (seen.has(name!)) continue;
    seen.add(name!);
    const next = new Set<string>();
    refsIn(schemas[name!], next);
    for (const n of next) if (!seen.has(n)) queue.add(n);
  }
  return [...seen].sort();
}

/** The published document of `kind`, its bodies illustrated by `examples` (recorded responses). */
export function finalizeDocument(doc: Json, kind: DocumentKind, examples: DocumentExamples): Json {
  const schemas: Json = doc.components?.schemas ?? {};
  const paths: Json = {};
  const usedTags = new Set<string>();
  for (const path of Object.keys(doc.paths ?? {}).sort()) {
    const item = doc.paths[path] as Json;
    const out: Json = {};
    for (const method of METHODS) {
      if (!item[method]) continue;
      out[method] = decorateOperation(item[method], method, path, kind, schemas, examples);
      for (const t of out[method].tags as string[]) usedTags.add(t);
    }
    paths[path] = out;
  }
  const keep = kind === 'public' ? ERROR_COMPONENTS : [];
  const components: Json = { ...doc.components, schemas: {} };
  for (const name of reachable(paths, schemas, keep)) components.schemas[name] = schemas[name];
  const usedHeaders = new Set<string>();
  refsIn(paths, usedHeaders, '#/components/headers/');
  components.headers = Object.fromEntries([...usedHeaders].sort().map((h) => [h, HEADERS[h]]));
  const tags = [...usedTags].sort().map((name) => ({ name, description: TAGS[name] ?? name }));
  return ordered({ ...doc, tags, paths, components: ordered(components, ['securitySchemes', 'headers', 'schemas']) }, TOP_KEYS);
}
