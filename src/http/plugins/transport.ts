import { randomUUID } from 'node:crypto';
import type { ServerOptions } from 'node:http';
import { isIP, type Socket } from 'node:net';
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { ErrorCode } from '../../domain/errors.js';
import { errorBody } from './error-handler.js';
import { statusOf } from './error-status.js';

/*
 * What happens below the router: sockets, timeouts and the client's address. Node answers a request
 * it cannot parse, one whose headers overflow and one not received in time on its own (the
 * 'clientError' event); these answers must be the envelope like every other.
 */

/**
 * Node's own timers for one listener. requestTimeout covers headers and body, but Node only checks
 * it every connectionsCheckingInterval (30 s by default), so a held body outlived a 15 s limit by up
 * to 30 s; checking a few times per timeout keeps the overshoot under a second. headersTimeout
 * (60 s by default) gets the same limit: a request whose headers never end is no better.
 */
export function connectionOptions(requestTimeoutMs: number): ServerOptions {
  return {
    requestTimeout: requestTimeoutMs,
    headersTimeout: requestTimeoutMs,
    connectionsCheckingInterval: Math.min(1_000, Math.max(25, Math.floor(requestTimeoutMs / 4))),
  };
}

/**
 * TRUST_PROXY as Fastify takes it. A hop count becomes proxy-addr's "the first n hops are proxies"
 * (Fastify itself trusts no hop for a bare number, so X-Forwarded-For would be ignored behind a load
 * balancer and every client would share the balancer's buckets).
 */
export function proxyTrust(trustProxy: boolean | number | string[] | undefined): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof trustProxy !== 'number') return trustProxy ?? false;
  return trustProxy === 0 ? false : (_address, hop) => hop < trustProxy;
}

/** The status and code Node's client errors answer: a timeout, an overflow, else an unreadable request. */
function clientErrorCode(code: string | undefined): ErrorCode {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'request_timeout';
  if (code === 'HPE_HEADER_OVERFLOW') return 'headers_too_large';
  return 'bad_request';
}

/** A whole HTTP/1.1 response with the envelope, written straight to the socket (no request exists yet). */
export function rawErrorResponse(code: ErrorCode): string {
  const body = JSON.stringify(errorBody(code));
  const status = statusOf(code);
  return [
    `HTTP/1.1 ${status} ${status === 408 ? 'Request Timeout' : status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}`,
    'content-type: application/json; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    `x-request-id: ${randomUUID()}`,
    'connection: close',
    '',
    body,
  ].join('\r\n');
}

/**
 * Fastify's `clientErrorHandler`: the envelope instead of Fastify's own JSON, logged at info (a
 * client's malformed request is not the server's error), then the socket closed.
 */
export function clientErrorHandler(this: { log: FastifyBaseLogger }, err: Error & { code?: string }, socket: Socket): void {
  // A reset connection is already gone: nothing to answer, nothing worth a log line.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const code = clientErrorCode(err.code);
  this.log.info({ err: { code: err.code }, status: statusOf(code), remoteAddress: socket.remoteAddress }, 'client error');
  // Never inside a response already under way on this socket (Node's own handler has the same care).
  const current = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (socket.writable && !current?.headersSent) socket.write(rawErrorResponse(code));
  socket.destroy();
}

/**
 * The client's address for rate-limit buckets and the compliance log. With TRUST_PROXY the address
 * comes from X-Forwarded-For, where a client can write anything; what is not an IP address is never
 * used: the socket's own address (the proxy's) stands in for it.
 */
export function clientAddress(request: FastifyRequest): string | null {
  const ip = request.ip;
  if (typeof ip === 'string' && isIP(ip) !== 0) return ip;
  const socketAddress = request.socket?.remoteAddress;
  return typeof socketAddress === 'string' && isIP(socketAddress) !== 0 ? socketAddress : null;
}
