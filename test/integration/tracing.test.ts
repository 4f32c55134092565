import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-node';
import { describe, expect, it } from 'vitest';
import { startTracing } from '../../src/http/plugins/tracing.js';
import { call, createTestApp } from '../support/harness.js';

/* Optional tracing (src/http/plugins/tracing.ts): a server span per request, continuing traceparent. */

describe('OpenTelemetry tracing', () => {
  it('records a server span per request, named by its route template, in the caller\'s trace', async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = await startTracing({ exporter });
    const t = await createTestApp({ tracing });
    try {
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const parentId = '00f067aa0ba902b7';
      const res = await call(t.app, 'GET', '/v1/keys', { headers: { traceparent: `00-${traceId}-${parentId}-01` } });
      expect(res.status).toBe(401);
      await call(t.app, 'GET', '/healthz');

      const [denied, probe] = exporter.getFinishedSpans();
      expect(denied!.name).toBe('GET /v1/keys');
      expect(denied!.spanContext().traceId).toBe(traceId);
      expect(denied!.parentSpanContext?.spanId).toBe(parentId);
      expect(denied!.attributes).toMatchObject({ 'http.route': '/v1/keys', 'http.response.status_code': 401, 'keyplane.error_code': 'unauthorized' });
      expect(probe!.name).toBe('GET /healthz');
      expect(probe!.spanContext().traceId).not.toBe(traceId);
      expect(probe!.parentSpanContext).toBeUndefined();
    } finally {
      await t.close();
      await tracing.shutdown();
    }
  });
});
