import autocannon from 'autocannon';

type RequestSpec = autocannon.Request;

/*
 * One load run: a warm-up (not recorded: JIT, pool connections, Postgres' plan cache), then the
 * measured run, with the same request recipe and connection count.
 */

/** 50 concurrent connections: the load level (a busy fleet behind one instance). */
export const CONNECTIONS = 50;

export interface Recipe {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** Builds each request afresh (a new Idempotency-Key, the next key of a rotation pool). */
  next?: () => { path?: string; headers?: Record<string, string>; body?: string };
  /** The status every response should have; any other counts as an error. */
  expect: number;
}

export interface Measured {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  errors: number;
  statusCounts: Record<string, number>;
  /** CPU the load generator (this process) used during the run, in cores: near 1.0 means it, not the server, was the limit. */
  loadGenCpu: number;
}

function requestsOf(recipe: Recipe): RequestSpec[] {
  const base: RequestSpec = { method: recipe.method, path: recipe.path, headers: recipe.headers, body: recipe.body };
  if (!recipe.next) return [base];
  const next = recipe.next;
  return [
    {
      ...base,
      setupRequest: (req: RequestSpec) => {
        const n = next();
        return { ...req, path: n.path ?? req.path, headers: { ...req.headers, ...n.headers }, body: n.body ?? req.body };
      },
    },
  ];
}

export async function drive(origin: string, recipe: Recipe, seconds: number, connections = CONNECTIONS): Promise<Measured> {
  const cpu0 = process.cpuUsage();
  const r = await autocannon({
    url: origin,
    connections,
    duration: seconds,
    // 10 s: a request that takes this long is a failure, not a latency sample.
    timeout: 10,
    requests: requestsOf(recipe),
  });
  const statusCounts: Record<string, number> = {};
  let unexpected = 0;
  for (const [code, stat] of Object.entries(r.statusCodeStats ?? {})) {
    const count = stat.count ?? 0;
    statusCounts[code] = count;
    if (Number(code) !== recipe.expect) unexpected += count;
  }
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    requests: r.requests.total,
    errors: r.errors + r.timeouts + unexpected,
    statusCounts,
    loadGenCpu: (() => {
      const u = process.cpuUsage(cpu0);
      return (u.user + u.system) / 1e6 / seconds;
    })(),
  };
}

/** A single request, for probes and setup (is the route there? what does it answer?). */
export async function once(origin: string, method: string, path: string, headers: Record<string, string>, body?: string) {
  const res = await fetch(origin + path, { method, headers, body });
  const text = await res.text();
  return { status: res.status, text };
}
