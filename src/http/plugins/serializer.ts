import fastJson from 'fast-json-stringify';
import type { FastifySerializerCompiler } from 'fastify';
import { serializerCompiler as zodSerializerCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';

/*
 * Response serialisation through compiled serializers: each route's zod response schema is turned
 * into JSON Schema once, at startup, and compiled by fast-json-stringify (what Fastify itself uses
 * for JSON Schema routes). The profile of the audit and list routes showed zod re-checking every
 * field of every item and then JSON.stringify walking the result again at ~20 % of keyplane's CPU;
 * the compiled function writes the declared fields directly.
 *
 * It is still a whitelist: only declared properties are written, so a field added to a row by
 * mistake never reaches a client; a missing required field throws (a 500, never a half object).
 * Shapes are not re-validated here: the test suite checks every response against the OpenAPI
 * document (test/support/openapi-validator.ts). A schema that JSON Schema cannot express falls
 * back to the zod serializer.
 */
type Serializer = (data: unknown) => string;
type JsonSchema = Record<string, unknown>;

/**
 * The JSON Schema as a serializer needs it: validation-only keywords (pattern, format, bounds) are
 * dropped, and zod's nullable form `anyOf: [{type: T}, {type: null}]` becomes `type: [T, 'null']`,
 * which fast-json-stringify writes with a typeof check instead of running a validator per value to
 * pick the branch (that alone made it slower than zod on the list route).
 */
export function forSerialization(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(forSerialization);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(schema as JsonSchema)) {
    if (k === 'pattern' || k === 'format' || k === 'minimum' || k === 'maximum' || k === 'minLength' || k === 'maxLength' || k === '$schema') continue;
    out[k] = k === 'properties' || k === 'definitions' || k === '$defs' ? mapValues(v as JsonSchema) : forSerialization(v);
  }
  const anyOf = out.anyOf as JsonSchema[] | undefined;
  if (anyOf?.length === 2) {
    const nonNull = anyOf.find((b) => b.type !== 'null');
    const scalar = nonNull && typeof nonNull.type === 'string' && !['object', 'array'].includes(nonNull.type) && !nonNull.anyOf;
    if (scalar && anyOf.some((b) => b.type === 'null')) {
      delete out.anyOf;
      return { ...out, ...nonNull, type: [nonNull.type, 'null'] };
    }
  }
  return out;
}

const mapValues = (o: JsonSchema) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, forSerialization(v)]));

export const compiledSerializerCompiler: FastifySerializerCompiler<z.ZodType> = (route) => {
  const schema = route.schema as unknown;
  const zodSchema = schema instanceof z.ZodType ? schema : (schema as { properties?: unknown }).properties;
  if (zodSchema instanceof z.ZodType) {
    try {
      const json = z.toJSONSchema(zodSchema, { io: 'output', target: 'draft-7', unrepresentable: 'throw' });
      const stringify = fastJson(forSerialization(json) as Parameters<typeof fastJson>[0]) as Serializer;
      return stringify;
    } catch {
      // Fall through: the zod serializer handles anything zod can encode.
    }
  }
  return zodSerializerCompiler(route as never) as Serializer;
};
