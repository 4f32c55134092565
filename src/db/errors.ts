/** The innermost cause's code and message (drizzle wraps driver errors as "Failed query: <sql> params: …"). */
export function driverError(err: unknown): { code?: string; message?: string } {
  let e = err as { code?: string; message?: string; cause?: unknown };
  for (let depth = 0; e.cause && e.cause !== e && depth < 5; depth++) e = e.cause as typeof e;
  return { code: e.code, message: e.message };
}

/** Whether an error came from the database or its connection (it carries a SQLSTATE or errno code). */
export const isDriverError = (err: unknown): boolean => typeof driverError(err).code === 'string';
