import underPressure from '@fastify/under-pressure';
import type { FastifyInstance } from 'fastify';
import { DomainError } from '../../domain/errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** false: answered even when the process sheds load (liveness, the metrics scrape). */
    shed?: boolean;
  }
}

export interface LoadShedOptions {
  /** Mean event-loop delay, ms, over which new requests are refused 503; 0 turns shedding off. */
  maxEventLoopDelayMs: number;
  /** How often the delay is sampled, ms (under-pressure's default 1 s; tests shorten it). */
  sampleIntervalMs?: number;
}

/** Seconds a shed client is told to wait: one sample interval is usually enough to recover. */
const SHED_RETRY_AFTER_S = 1;

/**
 * Load shedding (@fastify/under-pressure): while the event loop's mean delay over the last sample
 * is above the threshold, every new request is answered 503 service_unavailable in the envelope,
 * with Retry-After, before authentication or parsing, so a saturated instance stops taking work it
 * would answer too late anyway and the load balancer retries elsewhere. Registered first, so a shed
 * request costs almost nothing. Liveness (/healthz) and /metrics are exempt: an overloaded process
 * is alive, and its metrics matter most then. Readiness (/readyz) is shed, taking it out of rotation.
 */
export async function registerLoadShedding(app: FastifyInstance, opts: LoadShedOptions, onShed: () => void): Promise<void> {
  if (opts.maxEventLoopDelayMs <= 0) return;
  await app.register(underPressure, {
    maxEventLoopDelay: opts.maxEventLoopDelayMs,
    sampleInterval: opts.sampleIntervalMs,
    pressureHandler: (request) => {
      if (request.routeOptions.config.shed === false) return undefined;
      onShed();
      return Promise.reject(
        new DomainError('service_unavailable', 'The server is overloaded; retry shortly.', [], { retryAfterSeconds: SHED_RETRY_AFTER_S }),
      );
    },
  });
}
