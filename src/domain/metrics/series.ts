import type { Metric, Registry } from 'prom-client';

/*
 * Hot-path series as plain numbers, read into the exposition only when scraped. prom-client's own
 * label children hash their label set on every inc/observe (about as much work as the rest of the
 * hook); a series bound here once is a property add. Families register with prom-client's
 * registry as ordinary metrics (its get() is what a scrape calls), so the text format, the
 * content type and the default series all stay prom-client's.
 */

type Labels = Record<string, string>;

export class CounterSeries {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

export class HistogramSeries {
  /** Observations per bucket, not cumulative (made cumulative when scraped). */
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(private readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) {
      if (value <= this.bounds[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

interface Sample {
  labels: Labels;
  value: number;
  metricName?: string;
}

abstract class Family<S> {
  private readonly bound = new Map<string, { labels: Labels; series: S }>();
  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  /** The series of this label set, made on first use; bind once and keep it, it is not a hot-path call. */
  bind(labels: Labels): S {
    const key = JSON.stringify(labels);
    let entry = this.bound.get(key);
    if (!entry) this.bound.set(key, (entry = { labels, series: this.create() }));
    return entry.series;
  }

  protected abstract create(): S;
  protected abstract samples(labels: Labels, series: S): Sample[];

  /** What prom-client's registry reads when scraped. */
  get() {
    const values = [...this.bound.values()].flatMap((e) => this.samples(e.labels, e.series));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' as const };
  }

  abstract readonly type: 'counter' | 'histogram';
}

export class CounterFamily extends Family<CounterSeries> {
  readonly type = 'counter' as const;
  protected create() {
    return new CounterSeries();
  }
  protected samples(labels: Labels, series: CounterSeries): Sample[] {
    return [{ labels, value: series.value }];
  }
}

export class HistogramFamily extends Family<HistogramSeries> {
  readonly type = 'histogram' as const;
  constructor(
    registry: Registry,
    name: string,
    help: string,
    private readonly bounds: readonly number[],
  ) {
    super(registry, name, help);
  }
  protected create() {
    return new HistogramSeries(this.bounds);
  }
  protected samples(labels: Labels, series: HistogramSeries): Sample[] {
    let cumulative = 0;
    const buckets = this.bounds.map((le, i) => {
      cumulative += series.counts[i]!;
      return { labels: { ...labels, le: String(le) }, value: cumulative, metricName: `${this.name}_bucket` };
    });
    return [
      ...buckets,
      { labels: { ...labels, le: '+Inf' }, value: series.count, metricName: `${this.name}_bucket` },
      { labels, value: series.sum, metricName: `${this.name}_sum` },
      { labels, value: series.count, metricName: `${this.name}_count` },
    ];
  }
}
