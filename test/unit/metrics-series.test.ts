import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CounterFamily, HistogramFamily } from '../../src/domain/metrics/series.js';

/* The plain-number series (src/domain/metrics/series.ts) written in prom-client's exposition format. */

describe('plain-number metric families', () => {
  it('write counters and cumulative histogram buckets as prom-client does', async () => {
    const registry = new Registry();
    const counter = new CounterFamily(registry, 'x_total', 'a counter');
    const histogram = new HistogramFamily(registry, 'x_seconds', 'a histogram', [0.1, 1]);
    const a = counter.bind({ route: '/a' });
    a.inc();
    a.inc(2);
    expect(counter.bind({ route: '/a' })).toBe(a);
    const h = histogram.bind({ route: '/a' });
    for (const v of [0.05, 0.1, 0.5, 3]) h.observe(v);

    const text = await registry.metrics();
    expect(text).toContain('# TYPE x_total counter\nx_total{route="/a"} 3');
    expect(text).toContain(
      [
        '# TYPE x_seconds histogram',
        'x_seconds_bucket{route="/a",le="0.1"} 2',
        'x_seconds_bucket{route="/a",le="1"} 3',
        'x_seconds_bucket{route="/a",le="+Inf"} 4',
        'x_seconds_sum{route="/a"} 3.65',
        'x_seconds_count{route="/a"} 4',
      ].join('\n'),
    );
  });
});
