/**
 * Coalesces concurrent lookups (or writes: the debits) into one statement per round, as group
 * commit coalesces flushes:
 * at most one statement in flight; lookups that arrive meanwhile wait and all go out together in the
 * next one, which starts as soon as the running one ends. An idle loader sends a lookup at once, so
 * under light load nothing waits.
 *
 * Why: on verify's hot path the round trip itself (the pool hand-off, Bind/Execute, parsing the
 * answer, the socket writes and the wakeups on both sides) cost keyplane's process ~75-90 µs of CPU
 * per statement, about half of a whole verify; fifty verifies in flight now share one.
 *
 * Freshness: a lookup never joins a statement that has already started, so every answer comes from
 * a statement that began after its request did. A key revoked (committed) before a verification
 * starts is therefore seen revoked by it, exactly as with a statement of its own.
 */
export class BatchedLookup<I, O> {
  private waiting: Pending<I, O>[] = [];
  private running = false;

  /**
   * @param load answers a batch of inputs, one output per input, in the same order.
   * @param maxBatch the most inputs one statement carries; more wait for the next.
   * @param onIdle called once the last waiting batch has been answered: a loader that keeps a
   *   connection across its back-to-back batches gives it back here (db/held-connection.ts).
   */
  constructor(
    private readonly load: (inputs: I[]) => Promise<O[]>,
    private readonly maxBatch = 256,
    private readonly onIdle?: () => void,
  ) {}

  lookup(input: I): Promise<O> {
    const answer = new Promise<O>((resolve, reject) => this.waiting.push({ input, resolve, reject }));
    if (!this.running) void this.drain();
    return answer;
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting.splice(0, this.maxBatch);
        try {
          const outputs = await this.load(batch.map((p) => p.input));
          if (outputs.length !== batch.length) throw new Error(`batched lookup answered ${outputs.length} of ${batch.length} inputs`);
          // Resolving only queues the waiting requests' continuations; the next load below is
          // called before any of them runs, so a load that submits its statement synchronously (on
          // a held connection) has it executing while they write their answers.
          batch.forEach((p, i) => p.resolve(outputs[i]!));
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.running = false;
      this.onIdle?.();
    }
  }
}

interface Pending<I, O> {
  input: I;
  resolve: (output: O) => void;
  reject: (err: unknown) => void;
}

/** One loader per database handle (and so per pool), built on first use. */
export function perDatabase<D extends object, L>(make: (db: D) => L): (db: D) => L {
  const loaders = new WeakMap<D, L>();
  return (db) => {
    let loader = loaders.get(db);
    if (!loader) loaders.set(db, (loader = make(db)));
    return loader;
  };
}
