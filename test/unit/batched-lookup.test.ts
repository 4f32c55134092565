import { describe, expect, it } from 'vitest';
import { BatchedLookup } from '../../src/db/group-commit.js';

/** A load whose statements the test finishes by hand, recording what each carried. */
function manualLoad() {
  const statements: { inputs: number[]; finish: (outputs?: string[]) => void; fail: (err: Error) => void }[] = [];
  const load = (inputs: number[]) =>
    new Promise<string[]>((resolve, reject) => {
      statements.push({ inputs, finish: (outputs) => resolve(outputs ?? inputs.map((i) => `v${i}`)), fail: reject });
    });
  return { statements, load };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('BatchedLookup', () => {
  it('sends a lookup at once when idle, and answers each input with its own output', async () => {
    const { statements, load } = manualLoad();
    const loader = new BatchedLookup(load);
    const a = loader.lookup(1);
    expect(statements.map((s) => s.inputs)).toEqual([[1]]);
    statements[0]!.finish();
    expect(await a).toBe('v1');
  });

  it('never adds a lookup to a statement already sent: those arriving meanwhile share the next one', async () => {
    const { statements, load } = manualLoad();
    const loader = new BatchedLookup(load);
    const first = loader.lookup(1);
    const later = [loader.lookup(2), loader.lookup(3), loader.lookup(2)];
    await tick();
    // The first statement carries only what had arrived when it started.
    expect(statements.map((s) => s.inputs)).toEqual([[1]]);
    statements[0]!.finish();
    expect(await first).toBe('v1');
    await tick();
    expect(statements.map((s) => s.inputs)).toEqual([[1], [2, 3, 2]]);
    statements[1]!.finish(['b', 'c', 'b2']);
    expect(await Promise.all(later)).toEqual(['b', 'c', 'b2']);
  });

  it('carries at most maxBatch inputs per statement', async () => {
    const { statements, load } = manualLoad();
    const loader = new BatchedLookup(load, 2);
    const all = [loader.lookup(1), loader.lookup(2), loader.lookup(3), loader.lookup(4), loader.lookup(5)];
    for (let i = 0; i < 3; i++) {
      await tick();
      statements[i]!.finish();
    }
    expect(await Promise.all(all)).toEqual(['v1', 'v2', 'v3', 'v4', 'v5']);
    expect(statements.map((s) => s.inputs)).toEqual([[1], [2, 3], [4, 5]]);
  });

  it('a failed statement rejects its own lookups only; the next statement still runs', async () => {
    const { statements, load } = manualLoad();
    const loader = new BatchedLookup(load);
    const failed = loader.lookup(1);
    const next = loader.lookup(2);
    statements[0]!.fail(new Error('connection lost'));
    await expect(failed).rejects.toThrow('connection lost');
    await tick();
    statements[1]!.finish();
    expect(await next).toBe('v2');
  });

  it('rejects, rather than misattributes, when a load answers the wrong number of outputs', async () => {
    const { statements, load } = manualLoad();
    const loader = new BatchedLookup(load);
    const a = loader.lookup(1);
    statements[0]!.finish(['x', 'y']);
    await expect(a).rejects.toThrow('answered 2 of 1 inputs');
  });
});
