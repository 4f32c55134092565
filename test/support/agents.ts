import type { MintInput } from '../../src/domain/keys/child-keys.js';
import { mintChild } from './child-keys.js';
import type { TestApp } from './harness.js';

export interface Agent {
  id: string;
  apiKey: string;
  rotationSecret: string | null;
}

/**
 * Mints a child key through the domain (the same code the mint route runs), so these tests do not
 * depend on the mint route. The agent-shaped view of child-keys.ts's mintChild.
 */
export async function mintAgent(t: TestApp, serviceKey: string, input: Partial<MintInput> = {}): Promise<Agent> {
  const child = await mintChild(t, { serviceKey }, input);
  return { id: child.id, apiKey: child.plaintext, rotationSecret: child.rotationSecret };
}
