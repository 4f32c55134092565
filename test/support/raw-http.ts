import { connect, type AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';

/*
 * HTTP/1.1 over a plain TCP socket, byte for byte: for what app.inject and fetch cannot send (a
 * malformed request line, a body that never completes, a spoofed X-Forwarded-For from a real peer)
 * and to see what happens to the socket itself.
 */

export interface RawRequest {
  method: string;
  path: string;
  /** In order, duplicates allowed; `host` and `connection: close` are added unless given. */
  headers?: [string, string][];
  body?: string;
  /** Content-Length announced when more than `body` is: the rest never comes (a held body). */
  announce?: number;
  /** The exact bytes to send instead of building a request (malformed ones). */
  raw?: string;
}

export interface RawResponse {
  /** 0 when nothing came back. */
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Whether the server closed the socket within the wait. */
  closed: boolean;
  /** From the first byte sent to the socket's close (or the end of the wait). */
  ms: number;
}

export const portOf = (app: FastifyInstance): number => (app.server.address() as AddressInfo).port;

export function requestText(req: RawRequest): string {
  if (req.raw !== undefined) return req.raw;
  const headers = [...(req.headers ?? [])];
  const has = (name: string) => headers.some(([n]) => n.toLowerCase() === name);
  if (!has('host')) headers.unshift(['host', '127.0.0.1']);
  if (!has('connection')) headers.push(['connection', 'close']);
  const body = req.body ?? '';
  if (!has('content-length') && (body !== '' || req.announce !== undefined)) headers.push(['content-length', String(req.announce ?? Buffer.byteLength(body))]);
  return `${req.method} ${req.path} HTTP/1.1\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n${body}`;
}

function parse(text: string): Pick<RawResponse, 'status' | 'headers' | 'body'> {
  const split = text.indexOf('\r\n\r\n');
  const head = split < 0 ? text : text.slice(0, split);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  return { status, headers, body: split < 0 ? '' : text.slice(split + 4) };
}

/**
 * Sends one request and waits for the server to close the socket, at most `waitMs`; with
 * `abortAfterMs` the client itself gives up after that long (a client that leaves mid-body).
 */
export function sendRaw(port: number, req: RawRequest, waitMs = 5_000, abortAfterMs?: number): Promise<RawResponse> {
  return new Promise((resolve) => {
    const started = Date.now();
    let received = '';
    const socket = connect(port, '127.0.0.1', () => socket.write(requestText(req)));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    // A reset after the answer (the server closing a socket with unread bytes) is still a close.
    socket.on('error', () => {});
    const done = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parse(received), closed, ms: Date.now() - started });
    };
    const timer = setTimeout(() => done(false), waitMs);
    socket.on('close', () => done(true));
    if (abortAfterMs !== undefined) setTimeout(() => socket.destroy(), abortAfterMs);
  });
}

/** Opens a socket and sends `text` without waiting for anything: a connection the test holds open. */
export function holdSocket(port: number, text: string) {
  const socket = connect(port, '127.0.0.1', () => socket.write(text));
  socket.on('error', () => {});
  // Read (and drop) the answer: a paused socket never sees the server's FIN, so never closes.
  socket.resume();
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return { socket, closed };
}
