/*
 * Group commit: concurrent requests share one statement (or one run of idempotent work), as a
 * database shares one WAL flush among the commits waiting for it. Two shapes:
 *  - BatchedLookup: each caller brings an input and gets its own output; the inputs that arrive
 *    while a statement runs all go out together in the next one (verify's key reads, the debits).
 *  - CoalescedRun: callers bring nothing and share the run (a WAL flush, an account's linking round).
 *
 * Freshness, the same argument for both: a caller never joins a statement or run that has already
 * started, since it may have begun before the caller's own request (or commit). So every answer
 * comes from work that began after the caller arrived: a key revoked (committed) before a
 * verification starts is seen revoked by it, exactly as with a statement of its own.
 */

/**
 * At most one statement in flight; lookups that arrive meanwhile wait and all go out together in
 * the next one, which starts as soon as the running one ends. An idle loader sends a lookup at once,
 * so under light load nothing waits.
 *
 * Why: on verify's hot path the round trip itself (the pool hand-off, Bind/Execute, parsing the
 * answer, the socket writes and the wakeups on both sides) costs keyplane's process about as much
 * CPU as the rest of a verify; fifty verifies in flight share one.
 */
export class BatchedLookup<I, O> {
  private waiting: Pending<I, O>[] = [];
  private running = false;

  /**
   * @param load answers a batch of inputs, one output per input, in the same order.
   * @param maxBatch the most inputs one statement carries; more wait for the next.
   * @param onBatch told each statement's size and seconds taken (the metrics), after it ends.
   */
  constructor(
    private readonly load: (inputs: I[]) => Promise<O[]>,
    private readonly maxBatch = 256,
    private readonly onBatch?: (size: number, seconds: number) => void,
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
        const started = this.onBatch ? performance.now() : 0;
        try {
          const outputs = await this.load(batch.map((p) => p.input));
          this.onBatch?.(batch.length, (performance.now() - started) / 1000);
          if (outputs.length !== batch.length) throw new Error(`batched lookup answered ${outputs.length} of ${batch.length} inputs`);
          batch.forEach((p, i) => p.resolve(outputs[i]!));
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.running = false;
    }
  }
}

interface Pending<I, O> {
  input: I;
  resolve: (output: O) => void;
  reject: (err: unknown) => void;
}

/**
 * At most one run in flight and one queued behind it. Callers arriving while a run is in flight all
 * share the queued run, which starts when the running one ends.
 */
export class CoalescedRun {
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;

  constructor(private readonly run: () => Promise<void>) {}

  /** Nothing running or queued. */
  get idle(): boolean {
    return this.running === null && this.queued === null;
  }

  /** Resolves (or rejects) with a run that starts after this call. */
  request(): Promise<void> {
    if (this.queued) return this.queued;
    if (!this.running) return this.start();
    const queued = this.running
      .then(noop, noop)
      .then(() => {
        this.queued = null;
        return this.start();
      });
    this.queued = queued;
    return queued;
  }

  private start(): Promise<void> {
    const running = this.run().finally(() => {
      if (this.running === running) this.running = null;
    });
    this.running = running;
    return running;
  }
}

const noop = () => {};
