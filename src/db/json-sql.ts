/*
 * Building a response's JSON in Postgres, for the routes that return many rows (the key list, the
 * audit feed) and the hottest single read (GET /v1/keys/{id}). The profile put 20–37 µs of
 * keyplane CPU on every row those routes returned (parsing each column of the DataRow, a Date per
 * timestamp, the objects and their garbage, then serialising them again); as JSON text built by
 * Postgres a page arrives as one string that is written out as is.
 *
 * These fragments are whitelists like the compiled serializers they replace: a response carries
 * exactly the fields named in its fragment, in the wire schema's order. The suite validates every
 * response against the OpenAPI document generated from those schemas, and test/integration/
 * json-sql.test.ts checks each fragment against the JavaScript mapping it stands in for.
 */

/** A nullable text column as a JSON value: to_json escapes exactly what JSON requires. */
export const jsonText = (column: string) => `coalesce(to_json(${column})::text, 'null')`;

/** A nullable uuid column as a JSON value (the text form of a uuid needs no escaping). */
export const jsonUuid = (column: string) => `coalesce('"' || ${column}::text || '"', 'null')`;

/** A nullable number column as a JSON value. */
export const jsonNumber = (column: string) => `coalesce(${column}::text, 'null')`;

/**
 * A timestamptz as JavaScript's Date#toISOString writes it: UTC, milliseconds (truncated, as pg's
 * date parser truncates the microseconds Postgres stores).
 */
export const isoText = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** A nullable timestamptz as a JSON value: an ISO string or null. */
export const jsonIso = (column: string) => `coalesce('"' || ${isoText(column)} || '"', 'null')`;
