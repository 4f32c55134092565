import argon2 from 'argon2';
import { generateRotationSecret, generateToken, type Environment, type NewToken } from '../auth/credentials.js';
import { newId } from '../ids.js';

/** argon2id cost for rotation secrets: OWASP's second recommended profile (19 MiB, t=2, p=1). */
const ROTATION_SECRET_ARGON2 = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** Secrets for a new key, generated and hashed before any transaction opens (hashing is slow). */
export interface KeyMaterial {
  id: string;
  token: NewToken;
  rotationSecret: string | null;
  rotationSecretHash: string | null;
}

export async function prepareKeyMaterial(environment: Environment, selfRotation: boolean): Promise<KeyMaterial> {
  const token = generateToken('api', environment);
  if (!selfRotation) return { id: newId(), token, rotationSecret: null, rotationSecretHash: null };
  const rotationSecret = generateRotationSecret();
  const rotationSecretHash = await argon2.hash(rotationSecret, ROTATION_SECRET_ARGON2);
  return { id: newId(), token, rotationSecret, rotationSecretHash };
}

/** A new rotation secret and its argon2id hash, for a key that keeps its token. */
export async function prepareRotationSecret(): Promise<{ rotationSecret: string; rotationSecretHash: string }> {
  const rotationSecret = generateRotationSecret();
  return { rotationSecret, rotationSecretHash: await argon2.hash(rotationSecret, ROTATION_SECRET_ARGON2) };
}

/** Whether a rotation secret matches its stored hash; a malformed stored hash verifies nothing. */
export async function rotationSecretMatches(hash: string, secret: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, secret);
  } catch {
    return false;
  }
}
