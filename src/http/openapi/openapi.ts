import swagger, { type FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import type { OperatorAuth } from '../../domain/operator-tokens/operator-auth.js';
import { registerAdminAuth } from '../plugins/admin-auth.js';
import { DOCS_BRANDING } from './branding.js';
import { INTERNAL_INFO, PUBLIC_INFO } from './catalog.js';
import { finalizeDocument, type DocumentExamples, type DocumentKind, type ExamplesByKind, type OperationMeta, OPERATION_META } from './document.js';
import recorded from './examples.json' with { type: 'json' };

/**
 * The OpenAPI 3.1 documents, generated from the routes' zod schemas by @fastify/swagger and
 * fastify-type-provider-zod: nothing here describes a shape by hand. Registered before the routes,
 * so that swagger's onRoute hook sees every one of them. The public document lists each route once,
 * under /v1: the /api/v1 twins are hidden (the document's second server entry is the /api base).
 */

/** The version of the API contract, not of the package: documents stay byte-stable across releases. */
const API_VERSION = '1.0.0';

/** The examples committed with the code (`npm run openapi` records them from real responses). */
const RECORDED_EXAMPLES = recorded as unknown as ExamplesByKind;

export interface OpenapiOptions {
  /** The bodies that illustrate the document; the recorded ones unless given (the generator records fresh ones). */
  examples?: DocumentExamples;
}

/** Routes that describe the API rather than belong to it, and the operator console's HTML pages. */
const isDocsRoute = (url: string) => url === '/openapi.json' || url === '/internal/openapi.json' || url.startsWith('/docs') || url.startsWith('/console');

type TransformInput = Parameters<typeof jsonSchemaTransform>[0];

const transform = (input: TransformInput) => {
  const { schema, url } = input;
  if (!schema || url.startsWith('/api/') || isDocsRoute(url)) return { schema: { ...schema, hide: true }, url };
  const out = jsonSchemaTransform(input);
  const route = (input as { route?: { config?: { auth?: string; limit?: string } } }).route;
  // x- keys ride along into the operation; finalizeDocument reads and removes them.
  const meta: OperationMeta = { auth: route?.config?.auth ?? null, limit: route?.config?.limit ?? null };
  return { schema: { ...out.schema, [OPERATION_META]: meta }, url };
};

function swaggerOptions(kind: DocumentKind, examples: DocumentExamples = RECORDED_EXAMPLES[kind]): FastifyDynamicSwaggerOptions {
  const info = kind === 'public' ? PUBLIC_INFO : INTERNAL_INFO;
  const scheme = kind === 'public' ? 'bearerAuth' : 'operatorToken';
  return {
    openapi: {
      openapi: '3.1.0',
      info: { ...info, version: API_VERSION, license: { name: 'MIT', identifier: 'MIT' } },
      servers:
        kind === 'public'
          ? [
              { url: '/', description: 'Paths as documented: /v1/...' },
              { url: '/api', description: 'The same routes under /api/v1/... (the SDKs use this base)' },
            ]
          : [{ url: '/', description: 'The admin listener (ADMIN_HOST:ADMIN_PORT)' }],
      components: {
        securitySchemes: {
          [scheme]:
            kind === 'public'
              ? { type: 'http', scheme: 'bearer', description: 'A service key (sk_svc_…) on /v1/keys; an API key (sk_test_…, sk_live_…) on /v1/audit and /v1/agents.' }
              : {
                type: 'http',
                scheme: 'bearer',
                description:
                  'An operator token: the bootstrap token (KEYPLANE_ADMIN_TOKEN, scope admin) or a named token (kpo_…, `keyplane operator-tokens create`). ' +
                  'Scope `admin` may call every route; scope `verify` only POST /internal/v1/verify, and any other route answers it 403 insufficient_scope.',
              },
        },
      },
    },
    transform: transform as FastifyDynamicSwaggerOptions['transform'],
    transformObject: (doc) => finalizeDocument(jsonSchemaTransformObject(doc) as Record<string, unknown>, kind, examples) as never,
  };
}

/** Public listener: the document at /openapi.json and a self-contained Swagger UI at /docs. */
export const publicOpenapi = fp<OpenapiOptions>(
  async (app: FastifyInstance, opts) => {
    await app.register(swagger, swaggerOptions('public', opts.examples));
    // Assets come from the installed package (no CDN); the document from /docs/json.
    await app.register(swaggerUi, {
      routePrefix: '/docs',
      ...DOCS_BRANDING,
      uiConfig: { docExpansion: 'list', deepLinking: true, defaultModelsExpandDepth: 0, validatorUrl: null },
    });
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  },
  { name: 'keyplane-openapi-public' },
);

/** Admin listener: the internal document at /internal/openapi.json, behind the operator token. */
export const internalOpenapi = fp<OpenapiOptions & { operatorAuth: OperatorAuth }>(
  async (app: FastifyInstance, opts) => {
    await app.register(swagger, swaggerOptions('internal', opts.examples));
    await app.register(async (guarded) => {
      registerAdminAuth(guarded, opts.operatorAuth);
      guarded.get('/internal/openapi.json', { schema: { hide: true } }, async () => app.swagger());
    });
  },
  { name: 'keyplane-openapi-internal' },
);
