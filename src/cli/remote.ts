import { CliError } from './exit-codes.js';

/*
 * --url mode: the CLI as a client of a running server's internal API (the admin listener), with an
 * operator token. The server holds the database (in embedded mode it holds the data directory's
 * lock), and the same domain code answers; an API error comes back with its own code.
 */

type Query = Record<string, string | undefined>;

export class RemoteApi {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async call<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, opts: { body?: object; query?: Query } = {}): Promise<T> {
    const url = new URL(`/internal/v1${path}`, this.baseUrl);
    for (const [name, value] of Object.entries(opts.query ?? {})) if (value !== undefined) url.searchParams.set(name, value);
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (opts.body) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body: opts.body && JSON.stringify(opts.body), signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      const c = (err as { cause?: { code?: string; message?: string; errors?: { code?: string }[] } }).cause;
      const cause = c?.code ?? c?.errors?.[0]?.code ?? c?.message ?? (err as Error).name;
      throw new CliError('server_unreachable', `cannot reach ${this.baseUrl} (${cause}): is the server running, with its admin listener there?`);
    }
    const text = await res.text();
    let body: { error?: { code?: string; message?: string } } & Record<string, unknown>;
    try {
      body = JSON.parse(text);
    } catch {
      throw new CliError('server_unreachable', `${this.baseUrl} answered ${res.status} without JSON: is it keyplane's admin listener?`);
    }
    if (!res.ok) {
      const e = body.error;
      if (res.status === 404 && !e) throw new CliError('not_found', 'not found');
      throw new CliError(e?.code ?? 'internal_error', e?.code === 'not_found' ? 'not found' : (e?.message ?? `HTTP ${res.status}`));
    }
    return body as T;
  }
}
