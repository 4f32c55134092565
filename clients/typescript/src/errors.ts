import type { components as InternalComponents } from './internal.types.js';
import type { components as PublicComponents } from './public.types.js';

/** The error envelope every keyplane error answers: `{"error": {"code", "message", "details"}}`. */
export type ErrorEnvelope = PublicComponents['schemas']['ErrorEnvelope'] | InternalComponents['schemas']['ErrorEnvelope'];
/** Every error code either API can answer (`insufficient_scope` comes from the internal API only). */
export type ErrorCode = ErrorEnvelope['error']['code'];
export type ErrorDetail = ErrorEnvelope['error']['details'][number];

/** Given to a KeyplaneError whose body is not keyplane's envelope (a proxy's error page, say). */
export const UNEXPECTED_RESPONSE = 'unexpected_response';

function isEnvelope(body: unknown): body is ErrorEnvelope {
  const error = (body as { error?: unknown } | null)?.error as Record<string, unknown> | undefined;
  return typeof error === 'object' && error !== null && typeof error.code === 'string' && typeof error.message === 'string';
}

/** A non-2xx answer, as thrown by `unwrap`: the status, the envelope's code, message and details. */
export class KeyplaneError extends Error {
  override readonly name = 'KeyplaneError';
  readonly status: number;
  readonly code: ErrorCode | typeof UNEXPECTED_RESPONSE;
  readonly details: ErrorDetail[];
  /** The X-Request-Id of the answer: quote it when asking an operator to look at the logs. */
  readonly requestId: string | null;
  /** Seconds to wait before retrying (429, 503 and idempotency_in_progress), when the server says. */
  readonly retryAfter: number | null;

  constructor(response: Response, body: unknown) {
    const envelope = isEnvelope(body) ? body.error : null;
    super(envelope?.message ?? `keyplane answered ${response.status} without an error envelope`);
    this.status = response.status;
    this.code = envelope?.code ?? UNEXPECTED_RESPONSE;
    this.details = envelope?.details ?? [];
    this.requestId = response.headers.get('x-request-id');
    const retryAfter = response.headers.get('retry-after');
    this.retryAfter = retryAfter !== null && /^\d+$/.test(retryAfter) ? Number(retryAfter) : null;
  }
}

export const isKeyplaneError = (err: unknown): err is KeyplaneError => err instanceof KeyplaneError;

/** What an openapi-fetch call resolves to: `data` on success, `error` (the typed envelope) otherwise. */
interface CallResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/**
 * The body of a successful call, or a KeyplaneError for any other status:
 * `const { key } = await unwrap(client.GET('/v1/keys/{id}', { params: { path: { id } } }))`.
 */
export async function unwrap<T>(call: Promise<CallResult<T>> | CallResult<T>): Promise<Exclude<T, undefined>> {
  const { data, error, response } = await call;
  if (!response.ok || error !== undefined) throw new KeyplaneError(response, error);
  return data as Exclude<T, undefined>;
}
