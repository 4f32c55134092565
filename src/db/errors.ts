/** The innermost cause's code and message (drizzle wraps driver errors as "Failed query: <sql> params: …"). */
export function driverError(err: unknown): { code?: string; message?: string } {
  let e = err as { code?: string; message?: string; cause?: unknown };
  for (let depth = 0; e.cause && e.cause !== e && depth < 5; depth++) e = e.cause as typeof e;
  return { code: e.code, message: e.message };
}

/** Whether an error came from the database or its connection (it carries a SQLSTATE or errno code). */
export const isDriverError = (err: unknown): boolean => typeof driverError(err).code === 'string';

/** Errors from pg / PGlite / the pool that mean "the database is not reachable right now". */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: string; message?: string; cause?: unknown } | undefined;
  if (!e) return false;
  const code = e.code ?? '';
  const msg = e.message ?? '';
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH'].includes(code)) return true;
  // 57P01-57P03: admin shutdown, crash shutdown, cannot connect now; 08xxx: connection exceptions.
  if (/^57P0[1-3]$/.test(code) || /^08/.test(code)) return true;
  if (/timeout exceeded when trying to connect|Connection terminated|connect ECONNREFUSED|Client was closed|Client has encountered a connection error|the database system is (starting up|shutting down)|terminating connection/i.test(msg))
    return true;
  // drizzle wraps driver errors; look one level down.
  return e.cause !== undefined && e.cause !== err && isDatabaseUnavailable(e.cause);
}
