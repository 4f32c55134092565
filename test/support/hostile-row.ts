import type { ErrorCode } from '../../src/domain/errors.js';
import type { Agent } from './agents.js';
import type { Tenant, TestApp } from './harness.js';
import type { RawRequest, RawResponse } from './raw-http.js';

/* One row of the hostile-input table (test/integration/hostile-input.test.ts) and what it may use. */

/** What a row may use: the file's tenant, one of its agents, and the ports. */
export interface Ctx {
  t: TestApp;
  tenant: Tenant;
  agent: Agent;
  port: { public: number; admin: number };
}

export interface Row {
  name: string;
  listener: 'public' | 'admin';
  request(c: Ctx): RawRequest;
  /** 0: no answer at all (the client left first). */
  status: number;
  /** The envelope's code; null where the answer has no body (HEAD, a success, no answer). */
  code: ErrorCode | null;
  /** Compliance events the request writes (default none). */
  events?: number;
  /** The server must close the socket (a timeout, an unreadable request). */
  closes?: boolean;
  /** The client gives up after this many ms (a client abort). */
  abortAfterMs?: number;
  /** Requests sent first, untimed by the row's checks (a bucket to fill, a key to claim). */
  before?(c: Ctx): Promise<void>;
  /** Further assertions on the answer. */
  check?(res: RawResponse, c: Ctx): Promise<void> | void;
}

