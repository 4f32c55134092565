/**
 * @keyplane/client: typed clients for keyplane's public API (/v1, a service key or an API key) and
 * its internal API (/internal/v1 on the admin listener, an operator token). The paths, bodies and
 * answers are the types openapi-typescript generates from openapi.yaml and openapi.internal.yaml
 * (public.types.ts, internal.types.ts); the calls are openapi-fetch's.
 */
import createClient, { type Client, type ClientOptions } from 'openapi-fetch';
import type { components as InternalComponents, paths as InternalPaths } from './internal.types.js';
import type { components as PublicComponents, paths as PublicPaths } from './public.types.js';

export { isKeyplaneError, KeyplaneError, UNEXPECTED_RESPONSE, unwrap } from './errors.js';
export type { ErrorCode, ErrorDetail, ErrorEnvelope } from './errors.js';
export type { InternalComponents, InternalPaths, PublicComponents, PublicPaths };

type PublicSchemas = PublicComponents['schemas'];
type InternalSchemas = InternalComponents['schemas'];

/** A child API key as every /v1/keys answer shows it (never a secret). */
export type Key = PublicSchemas['Key'];
/** A key on the first answer of a mint or rotate: `plaintext_key` (and `rotation_secret`) shown once. */
export type IssuedKey = PublicSchemas['IssuedKey'];
/** The body of POST /v1/keys (mint). */
export type CreateKeyRequest = NonNullable<PublicPaths['/v1/keys']['post']['requestBody']>['content']['application/json'];
export type AuditEvent = PublicSchemas['AuditEvent'];
export type SelfRotateResponse = PublicSchemas['SelfRotateResponse'];
/** The answer of POST /internal/v1/verify: always 200, `valid` or the refusal to forward. */
export type VerifyResult = InternalSchemas['VerifyResult'];
export type Account = InternalSchemas['Account'];
export type ServiceKey = InternalSchemas['ServiceKey'];
export type PortalApiKey = InternalSchemas['PortalApiKey'];
/** A key of any kind and account, as the operator routes show it. */
export type OperatorKey = InternalSchemas['OperatorKey'];
export type LeakedTokenResult = InternalSchemas['LeakedTokenResult'];

export type PublicClient = Client<PublicPaths>;
export type InternalClient = Client<InternalPaths>;

interface CommonOptions extends Omit<ClientOptions, 'baseUrl'> {
  /** Where keyplane listens, e.g. `https://keys.example.com` (public) or `http://127.0.0.1:8081` (admin). */
  baseUrl: string;
}

export interface PublicClientOptions extends CommonOptions {
  /** A service key (`sk_svc_…`) for /v1/keys, or an API key (`sk_test_…`, `sk_live_…`) for /v1/audit and /v1/agents. */
  apiKey: string;
}

export interface InternalClientOptions extends CommonOptions {
  /** An operator token: a named `kpo_…` token (scope `admin`, or `verify` for verify only) or KEYPLANE_ADMIN_TOKEN. */
  operatorToken: string;
}

function headersWith(headers: ClientOptions['headers'], token: string): Headers {
  const out = new Headers();
  if (headers instanceof Headers || Array.isArray(headers)) {
    new Headers(headers).forEach((value, name) => out.set(name, value));
  } else {
    for (const [name, value] of Object.entries(headers ?? {})) {
      if (value !== null && value !== undefined) out.set(name, Array.isArray(value) ? value.join(', ') : String(value));
    }
  }
  out.set('Authorization', `Bearer ${token}`);
  // keyplane accepts it on every request, as the Saperly SDKs send it; it requires it with a body.
  if (!out.has('Content-Type')) out.set('Content-Type', 'application/json');
  return out;
}

const trimmed = (baseUrl: string) => baseUrl.replace(/\/+$/, '');

/** A client of the public API, authenticated with a service key or an API key. */
export function createPublicClient({ apiKey, baseUrl, headers, ...options }: PublicClientOptions): PublicClient {
  return createClient<PublicPaths>({ ...options, baseUrl: trimmed(baseUrl), headers: headersWith(headers, apiKey) });
}

/** A client of the internal API (the admin listener), authenticated with an operator token. */
export function createInternalClient({ operatorToken, baseUrl, headers, ...options }: InternalClientOptions): InternalClient {
  return createClient<InternalPaths>({ ...options, baseUrl: trimmed(baseUrl), headers: headersWith(headers, operatorToken) });
}
