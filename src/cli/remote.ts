import { CliError } from './exit-codes.js';

/*
 * --url mode: the CLI as a client of a running server's internal API (the admin listener), with an
 * operator token. The server holds the database (in embedded mode it holds the data directory's
 * lock), and the same domain code answers; an API error comes back with its own code.
 */

type Query = Record<string, string | undefined>;
type Body = { error?: { code?: string; message?: string } } & Record<string, unknown>;

export class RemoteApi {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async call<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, opts: { body?: object; query?: Query } = {}): Promise<T> {
    const res = await this.send(method, path, opts, 30_000);
    const body = await this.json(res);
    if (!res.ok) throw this.failure(res, body);
    return body as T;
  }

  /** A binary answer (GET /internal/v1/backup), given time to be made: a dump of a large database takes a while. */
  async download(path: string, timeoutMs = 600_000): Promise<Uint8Array> {
    const res = await this.send('GET', path, {}, timeoutMs);
    if (!res.ok) throw this.failure(res, await this.json(res));
    return new Uint8Array(await res.arrayBuffer());
  }

  private async send(method: string, path: string, opts: { body?: object; query?: Query }, timeoutMs: number): Promise<Response> {
    const url = new URL(`/internal/v1${path}`, this.baseUrl);
    for (const [name, value] of Object.entries(opts.query ?? {})) if (value !== undefined) url.searchParams.set(name, value);
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (opts.body) headers['content-type'] = 'application/json';
    try {
      return await fetch(url, { method, headers, body: opts.body && JSON.stringify(opts.body), signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const c = (err as { cause?: { code?: string; message?: string; errors?: { code?: string }[] } }).cause;
      const cause = c?.code ?? c?.errors?.[0]?.code ?? c?.message ?? (err as Error).name;
      throw new CliError('server_unreachable', `cannot reach ${this.baseUrl} (${cause}): is the server running, with its admin listener there?`);
    }
  }

  private async json(res: Response): Promise<Body> {
    const text = await res.text();
    try {
      return JSON.parse(text) as Body;
    } catch {
      throw new CliError('server_unreachable', `${this.baseUrl} answered ${res.status} without JSON: is it keyplane's admin listener?`);
    }
  }

  private failure(res: Response, body: Body): CliError {
    const e = body.error;
    if (res.status === 404 && !e) return new CliError('not_found', 'not found');
    return new CliError(e?.code ?? 'internal_error', e?.code === 'not_found' ? 'not found' : (e?.message ?? `HTTP ${res.status}`));
  }
}
