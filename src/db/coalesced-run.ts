/**
 * Group commit for an idempotent piece of work (a WAL flush, an account's linking round): at most
 * one run in flight and one queued behind it. A caller may join only a run that starts after its
 * call, since the running one may have begun before the caller's own commit; so callers arriving
 * while a run is in flight all share the queued run, which starts when the running one ends.
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
