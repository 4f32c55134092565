import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance } from 'fastify';

/**
 * Checks every response a test app sends against the app's own OpenAPI document (the same one
 * `npm run openapi` writes; the drift test keeps them equal): a documented operation must answer a
 * documented status, with a JSON body that validates against that status's schema and the
 * required headers. Responses of undocumented routes (the not-found handler, CORS preflight, /docs)
 * are not checked: the document makes no promise about them.
 */

type Json = Record<string, any>;
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void;

export interface Violation {
  requestId: string;
  message: string;
}

/** "/api/v1/keys/:id" → "/v1/keys/{id}": the twins are documented once, under /v1. */
function documentPath(routeUrl: string): string {
  return routeUrl.replace(/^\/api(?=\/v1\/)/, '').replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

export class ResponseValidator {
  private readonly ajv: Ajv2020;
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(private readonly doc: Json) {
    // strict off: the document carries OpenAPI keywords (example, …) beside JSON Schema ones.
    this.ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(this.ajv);
    this.ajv.addSchema({ ...doc, $id: 'openapi' });
  }

  /** Returns a description of what is wrong, or null when the response matches the document. */
  /** `headers` null: check the body only (an example has no headers). */
  check(method: string, routeUrl: string | undefined, status: number, headers: Record<string, unknown> | null, payload: unknown): string | null {
    if (!routeUrl) return null;
    const path = documentPath(routeUrl);
    const op = this.doc.paths?.[path]?.[method.toLowerCase()];
    if (!op) return null;
    const where = `${method} ${path} → ${status}`;
    const response = op.responses?.[String(status)];
    if (!response) return `${where}: status not documented (documented: ${Object.keys(op.responses ?? {}).join(', ')})`;
    for (const [name, h] of Object.entries<Json>(headers ? (response.headers ?? {}) : {})) {
      const header = h.$ref ? this.doc.components.headers[h.$ref.split('/').pop()] : h;
      if (header?.required && headers?.[name.toLowerCase()] === undefined) return `${where}: required header ${name} missing`;
    }
    const media = response.content?.['application/json'];
    if (!media) return null;
    let body: unknown;
    try {
      body = typeof payload === 'string' ? JSON.parse(payload) : payload;
    } catch {
      return `${where}: body is not JSON`;
    }
    const pointer = ['paths', path, method.toLowerCase(), 'responses', String(status), 'content', 'application/json', 'schema']
      .map((s) => s.replace(/~/g, '~0').replace(/\//g, '~1'))
      .join('/');
    let validate = this.compiled.get(pointer);
    if (!validate) {
      validate = this.ajv.compile({ $ref: `openapi#/${pointer}` });
      this.compiled.set(pointer, validate);
    }
    if (validate(body)) return null;
    return `${where}: body does not match the document: ${this.ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 500)}`;
  }
}

/** Validates every response `app` sends; violations are collected for the harness to report. */
export function validateResponses(app: FastifyInstance, violations: Violation[]): void {
  let validator: ResponseValidator | undefined;
  app.addHook('onSend', async (request, reply, payload) => {
    validator ??= new ResponseValidator(app.swagger() as Json);
    // The operator console's HTML pages are no API operation (docs/console.md): not in the documents.
    if (typeof payload !== 'string' || request.url.startsWith('/console')) return payload;
    const message = validator.check(request.method, request.routeOptions.url, reply.statusCode, reply.getHeaders(), payload);
    if (message) violations.push({ requestId: String(request.id), message });
    return payload;
  });
}
