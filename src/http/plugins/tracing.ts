import type { Span } from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace-node';
import type { FastifyInstance, FastifyRequest } from 'fastify';

/*
 * Optional OpenTelemetry tracing (config OTEL_EXPORTER_OTLP_ENDPOINT): one server span per request,
 * named by its route template, continuing the caller's W3C `traceparent`. Every OpenTelemetry
 * package is imported inside startTracing, and this file imports only their types, so a process
 * without tracing loads none of them and its hooks are never added.
 */

export interface Tracing {
  /** Adds the span hooks to one app (both listeners get them). */
  register(app: FastifyInstance): void;
  /** Flushes the spans still buffered and stops exporting. */
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  /** The OTLP/HTTP base URL; spans go to `<endpoint>/v1/traces`. */
  endpoint?: string;
  /** Instead of OTLP (tests: an in-memory exporter, spans exported as they end). */
  exporter?: SpanExporter;
  serviceVersion?: string;
}

export async function startTracing(opts: TracingOptions): Promise<Tracing> {
  const [api, sdk, otlp] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace-node'),
    opts.exporter ? null : import('@opentelemetry/exporter-trace-otlp-http'),
  ]);
  const { resourceFromAttributes } = await import('@opentelemetry/resources');
  const processor = opts.exporter
    ? new sdk.SimpleSpanProcessor(opts.exporter)
    : new sdk.BatchSpanProcessor(new otlp!.OTLPTraceExporter({ url: `${opts.endpoint!.replace(/\/+$/, '')}/v1/traces` }));
  const provider = new sdk.NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'keyplane', 'service.version': opts.serviceVersion ?? 'unknown' }),
    spanProcessors: [processor],
  });
  // Installs the W3C trace-context propagator that extract() below reads traceparent with.
  provider.register();
  const tracer = provider.getTracer('keyplane');
  const spans = new WeakMap<FastifyRequest, Span>();

  return {
    register(app) {
      app.addHook('onRequest', (request, _reply, done) => {
        const parent = api.propagation.extract(api.ROOT_CONTEXT, request.headers);
        const route = request.routeOptions.url ?? '(unmatched)';
        const span = tracer.startSpan(
          `${request.method} ${route}`,
          { kind: api.SpanKind.SERVER, attributes: { 'http.request.method': request.method, 'http.route': route, 'keyplane.request_id': request.id } },
          parent,
        );
        spans.set(request, span);
        done();
      });
      app.addHook('onResponse', (request, reply, done) => {
        const span = spans.get(request);
        if (span) {
          span.setAttribute('http.response.status_code', reply.statusCode);
          if (request.errorCode) span.setAttribute('keyplane.error_code', request.errorCode);
          if (reply.statusCode >= 500) span.setStatus({ code: api.SpanStatusCode.ERROR });
          span.end();
        }
        done();
      });
    },
    shutdown: () => provider.shutdown(),
  };
}
