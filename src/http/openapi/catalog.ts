/**
 * The prose of the OpenAPI documents: titles, summaries, tags. Shapes come from the routes' zod
 * schemas (openapi.ts); this file only names and explains them, keyed by "METHOD /path" as the
 * document spells it. A route missing here is still documented, with a summary derived from its
 * path, so a new route never needs this file to appear in the document.
 */

export interface OperationDoc {
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  /** Mint and rotate take an Idempotency-Key header. */
  idempotencyKey?: boolean;
}

export const PUBLIC_INFO = {
  title: 'keyplane public API',
  description: [
    'keyplane speaks the Saperly v1 key API: service keys (`sk_svc_test_…`, `sk_svc_live_…`) manage child API keys',
    'under `/v1/keys`; API keys (`sk_test_…`, `sk_live_…`) read their audit feed and rotate themselves.',
    '',
    '**Every path is also served under `/api/v1/...`** (the SDKs use that form; behaviour is identical).',
    'This document lists each route once, under `/v1`; the second server entry is the `/api` base.',
    '',
    'Authenticate with `Authorization: Bearer <key>`. Every error is `{"error": {"code", "message", "details": []}}`;',
    'each status has its own schema listing the codes it can carry. Every response carries `X-Request-Id`.',
  ].join('\n'),
};

export const INTERNAL_INFO = {
  title: 'keyplane internal portal API',
  description: [
    "keyplane's internal API: the portal backend's accounts and keys, the operator's routes over every key, and",
    "key verification for the data plane. Served only on the admin listener (loopback by default), never on",
    'the public port. Authenticate with `Authorization: Bearer <operator token>`: a named `kpo_…` token',
    '(scope `admin`, or `verify` for verification only) or the bootstrap `KEYPLANE_ADMIN_TOKEN`.',
  ].join('\n'),
};

export const TAGS: Record<string, string> = {
  keys: 'Child API keys, managed with the service key that minted them; mint and rotate take an Idempotency-Key.',
  audit: "An API key's compliance feed, with the debits made with it: the events where it is the actor or a subject; every read is itself recorded.",
  agents:
    'Agent self-rotation (an API key replaces itself, proving it holds its rotation secret), what an agent can see of itself (its key, spend and limits), and delegation: narrower keys with budgets for its sub-agents.',
  health: 'Liveness and readiness probes for load balancers; no authentication.',
  portal: 'Accounts, service keys and portal API keys, for the portal backend.',
  verify: 'Key verification for the calling plane.',
  operator: "The operator's reach over every key of every account: find, revoke (the kill switch), leak intake.",
  metrics: 'Prometheus metrics of this process, for an operator token of scope metrics or admin.',
  backup: 'The online backup of an embedded (PGlite) server: its database dump, for an operator token of scope admin.',
};

export const OPERATIONS: Record<string, OperationDoc> = {
  'GET /healthz': { operationId: 'liveness', summary: 'Liveness probe', tag: 'health' },
  'GET /readyz': { operationId: 'readiness', summary: 'Readiness probe (the database answers)', tag: 'health' },

  'POST /v1/keys': {
    operationId: 'createKey',
    summary: 'Mint a child API key',
    description: 'Returns the key with `plaintext_key` (and `rotation_secret` when `self_rotation` is true) on the first response only; a replay omits both.',
    tag: 'keys',
    idempotencyKey: true,
  },
  'GET /v1/keys': {
    operationId: 'listKeys',
    summary: 'List the active child keys this service key minted',
    description: 'Newest first, ties by id. Revoked and expired keys are excluded; `total` counts what the filter matches.',
    tag: 'keys',
  },
  'GET /v1/keys/{id}': { operationId: 'getKey', summary: 'Read one child key (revoked keys too)', tag: 'keys' },
  'PATCH /v1/keys/{id}': { operationId: 'updateKey', summary: 'Update an active child key', tag: 'keys' },
  'DELETE /v1/keys/{id}': { operationId: 'revokeKey', summary: 'Revoke a child key (soft; it stays readable)', tag: 'keys' },
  'POST /v1/keys/{id}/suspend': {
    operationId: 'suspendKey',
    summary: 'Suspend a child key (keyplane extension)',
    description:
      'The key is refused from the next request on, on every instance (401 `invalid_api_key`; verify `reason: "suspended"`), until resumed. Optional body `{"reason"}`, kept in the `agent_key_suspended` event. PATCH and DELETE still work; rotate answers 409 `key_suspended`. Suspending a suspended key changes nothing.',
    tag: 'keys',
  },
  'POST /v1/keys/{id}/resume': {
    operationId: 'resumeKey',
    summary: 'Resume a suspended child key (keyplane extension)',
    description: 'The key works again from the next request on; records `agent_key_resumed`. Resuming a key that is not suspended changes nothing.',
    tag: 'keys',
  },
  'POST /internal/v1/keys/{id}/suspend': {
    operationId: 'operatorSuspendKey',
    summary: 'Suspend an API key of any account (keyplane extension)',
    description:
      'A child or portal key is refused from the next request on, until resumed; records `agent_key_suspended` (optional body `{"reason"}`). A service key is 422. Answers the key and whether this request changed it.',
    tag: 'operator',
  },
  'POST /internal/v1/keys/{id}/resume': {
    operationId: 'operatorResumeKey',
    summary: 'Resume a suspended API key of any account (keyplane extension)',
    description: 'Records `agent_key_resumed`. Answers the key and whether this request changed it.',
    tag: 'operator',
  },
  'POST /internal/v1/keys/{id}/rotate': {
    operationId: 'operatorRotateKey',
    summary: 'Rotate a child key on behalf of its service key (keyplane extension)',
    description:
      'The atomic rotation of `POST /v1/keys/{id}/rotate` with an optional `{"overlap_seconds": 0..604800}`; records `agent_key_rotated` with the operator as actor (the lineage then says `rotated_by: "portal"`). A suspended key is 409 `key_suspended`; a portal or service key is 422. Answers the successor with its plaintext (this answer only) and the rotated key.',
    tag: 'operator',
  },
  'POST /internal/v1/keys/{id}/revoke-leaked': {
    operationId: 'operatorRevokeKeyAsLeaked',
    summary: 'Revoke one key by id as leaked (keyplane extension)',
    description:
      'The leak intake for a key named by id: revokes a key of any kind that still works (an overlapping one too) with reason `leaked`, as `POST /internal/v1/keys/revoke-leaked` does for a plaintext. A revoked key is answered as it is (`revoked: false`).',
    tag: 'operator',
  },
  'POST /v1/keys/{id}/rotate': {
    operationId: 'rotateKey',
    summary: 'Rotate a child key atomically',
    description:
      'Revokes the key and mints its successor in one transaction; the successor carries `plaintext_key` on the first response only. A self-rotating key\'s successor keeps the agent\'s rotation secret; `?rotation_secret=reset` issues a new one, in the first response only.',
    tag: 'keys',
    idempotencyKey: true,
  },
  'POST /v1/keys/{id}/rotation-secret': {
    operationId: 'issueRotationSecret',
    summary: 'Issue (or replace) a rotation secret and turn self-rotation on',
    description:
      'The key keeps its token. Answers `{"key", "rotation_secret"}`; the secret is in the first response only, a replay omits it. Records `agent_rotation_secret_issued`. `PATCH {"self_rotation": false}` turns it off.',
    tag: 'keys',
    idempotencyKey: true,
  },
  'GET /v1/audit': {
    operationId: 'listAuditEvents',
    summary: "Read an API key's compliance feed",
    description:
      'Every successful read records an `audit_read` event in the same transaction. Items are `compliance_event`s and, from the spend ledger, `billing_transaction`s (the debits made with the key, and for the newest key of a rotation chain with its predecessor), merged newest first under one cursor (`before` takes the id of either). Extension: `exclude` leaves out compliance event types (e.g. `exclude=audit_read,agent_self_read`); the `audit_read` record keeps the filter.',
    tag: 'audit',
  },
  'POST /v1/agents/self/rotate-key': {
    operationId: 'selfRotateKey',
    summary: 'Rotate the calling agent key with its rotation secret',
    description:
      'Authentication: the agent\'s current API key (Bearer) and its rotation secret in the body. The old key and secret stop working at once; `agentId` stays the same across rotations. Rate limits: 3 attempts per 15 minutes per agent once the key and secret match (`agents.self_rotate`), and 10 failed attempts per 15 minutes per client address, an IPv6 client by its /64 (`agents.self_rotate.failures`); a 429 names the policy that tripped.',
    tag: 'agents',
  },
  'GET /v1/agents/self': {
    operationId: 'getAgentSelf',
    summary: "The calling agent's key, agent id, spend this cycle and self-rotation (extension)",
    description:
      '`cap_cents` and `remaining_cents` are null when the key has no cap. `delegation` is the agent\'s place in its delegation tree: `can_delegate`, `depth`, `parent_key_id`, `reserved_cents` (what its live delegated keys hold back) and `available_cents` (what it may still delegate or spend). Records an `agent_self_read` event before answering. Rate limit: 600 per hour per API key (`agents.self_read`).',
    tag: 'agents',
  },
  'POST /v1/agents/self/check': {
    operationId: 'checkAgentSelf',
    summary: 'Would verify allow the calling agent this verb, line and cost? (extension)',
    description:
      'Answers `{"allowed", "code", "details"}` by exactly the rules of verify (tier × verb, line scope, cap with `cost_cents`), without debiting and without touching `last_used_at`. Rate limit: 600 per hour per API key (`agents.self_check`).',
    tag: 'agents',
  },

  'POST /v1/agents/self/keys': {
    operationId: 'delegateKey',
    summary: 'Delegate a narrower key to a sub-agent (extension)',
    description:
      'For an API key whose service key set `can_delegate`. The child is never broader than the caller: its `permissions` allow no verb the caller\'s do not (read_only ⊂ call_only, sms_only ⊂ full), it keeps a line-scoped caller\'s line, lives `ttl_seconds` (60 s to 30 days, never past the caller\'s expiry) and may spend `budget_cents` for its whole life, reserved out of the caller\'s available amount (cap − spend − live children\'s unspent budgets) until it is revoked or expires. At most three levels below a service key\'s key. Answers the key with `plaintext_key` (this answer only; a replay omits it) and its `delegation`; records `agent_key_delegated`. Errors: 403 `agent_permission_denied` (no `can_delegate`, or a broader tier), 403 `agent_scope_error` (another line), 403 `delegation_depth_exceeded`, 402 `agent_cap_exceeded` (details name `available_cents`), 422 `validation_error` (a ttl past the caller\'s expiry). Rate limit: 60 per hour per agent (`agents.delegate`).',
    tag: 'agents',
    idempotencyKey: true,
  },
  'GET /v1/agents/self/keys': {
    operationId: 'listDelegatedKeys',
    summary: 'List the keys the calling agent delegated (extension)',
    description:
      'Unrevoked keys only (expired ones too, until revoked), newest first: the direct children by default, the whole subtree with `depth=all`. Each carries its `delegation` with `spent_cents`. Records an `agent_self_read` event before answering. Rate limit: 600 per hour per agent (`agents.delegated_keys`).',
    tag: 'agents',
  },
  'DELETE /v1/agents/self/keys/{id}': {
    operationId: 'revokeDelegatedKey',
    summary: 'Revoke a key delegated below the calling agent, with its subtree (extension)',
    description:
      'A key at any depth below the caller; its own delegated keys are revoked in the same transaction (`agent_key_revoked`, reason `parent_revoked`) and their unspent budgets return to the caller\'s available amount. A key that is no descendant of the caller is 404 `not_found`. Rate limit: 600 per hour per agent (`agents.delegated_keys`).',
    tag: 'agents',
  },

  'POST /internal/v1/accounts': { operationId: 'createAccount', summary: 'Create an account', tag: 'portal' },
  'PATCH /internal/v1/accounts/{id}': {
    operationId: 'updateAccount',
    summary: "Set an account's reaction to a reused self-rotation pair",
    description:
      '`reuse_reaction`: `revoke_chain` (the default) revokes the agent\'s live key when an old self-rotation pair comes back after its successor was used; `report` only records `agent_key_reuse_detected`. Records `account_updated`.',
    tag: 'portal',
  },
  'POST /internal/v1/accounts/{id}/service-keys': { operationId: 'createServiceKey', summary: 'Issue a service key', tag: 'portal' },
  'GET /internal/v1/accounts/{id}/service-keys': { operationId: 'listServiceKeys', summary: "List an account's service keys", tag: 'portal' },
  'POST /internal/v1/service-keys/{id}/rotate': { operationId: 'rotateServiceKey', summary: 'Rotate a service key', tag: 'portal' },
  'DELETE /internal/v1/service-keys/{id}': { operationId: 'revokeServiceKey', summary: 'Revoke a service key', tag: 'portal' },
  'POST /internal/v1/accounts/{id}/api-keys': { operationId: 'createPortalApiKey', summary: 'Issue a portal API key', tag: 'portal' },
  'DELETE /internal/v1/api-keys/{id}': { operationId: 'revokePortalApiKey', summary: 'Revoke a portal API key', tag: 'portal' },
  'POST /internal/v1/bootstrap': {
    operationId: 'bootstrap',
    summary: 'Create an account with a service key and an API key (smoke tests)',
    tag: 'portal',
  },
  'POST /internal/v1/verify': { operationId: 'verifyKey', summary: 'Verify an API key', tag: 'verify' },
  'GET /metrics': {
    operationId: 'metrics',
    summary: 'Prometheus metrics (text exposition format)',
    description: 'Requests by route template and status, latency, verify outcomes, group-commit batches, idempotency, rate limits, pools, database errors, load shedding; docs/operations.md lists every series. Scope `metrics` (a scraper\'s token, good for nothing else) or `admin`.',
    tag: 'metrics',
  },

  'GET /internal/v1/accounts/{id}/keys': {
    operationId: 'listAccountKeys',
    summary: "List an account's keys of every kind",
    description:
      'Service keys, child keys and portal keys, newest first (ties by id), filtered by `status` (default `all`), `kind` and the start of `key_prefix`. Pages are cursors: pass `next_cursor` as `cursor` while `has_more` is true.',
    tag: 'operator',
  },
  'GET /internal/v1/keys/{id}': { operationId: 'getAnyKey', summary: 'Read a key of any kind and account', tag: 'operator' },
  'DELETE /internal/v1/keys/{id}': {
    operationId: 'revokeAnyKey',
    summary: 'Revoke a key of any kind (the kill switch)',
    description:
      "A service key whose rotation chain has live child keys needs `children`: `keep` leaves them valid, `revoke` revokes them in the same transaction, each with its own event (also when the service key was revoked earlier). An already revoked key answers 200 with `revoked: false`.",
    tag: 'operator',
  },
  'POST /internal/v1/keys/revoke-leaked': {
    operationId: 'revokeLeakedKeys',
    summary: 'Revoke leaked keys by their tokens (leak intake)',
    description:
      'Up to 1,000 tokens; each that names a live key of any kind and account is revoked at once (event reason `leaked`). Malformed or checksum-failing tokens are not found, without a lookup. The answer never holds a whole token. Idempotent: a token already revoked answers `found: true, revoked: false`.',
    tag: 'operator',
  },
  'GET /internal/v1/backup': {
    operationId: 'backupDatabase',
    summary: 'Back up the embedded database while it serves',
    description:
      'A gzipped tarball of the data directory (PGlite\'s dump, after a CHECKPOINT), what `keyplane backup --url` saves and `keyplane restore` loads with the server stopped. Statements wait while the dump is read. One at a time per process: a second request is 409 `backup_in_progress` with Retry-After. A server on Postgres answers 409 `not_embedded`: back it up with pg_dump or point-in-time recovery.',
    tag: 'backup',
  },
};

/** A readable fallback for a route not listed above: "POST /v1/foo/{id}/bar" → postFooIdBar. */
export function fallbackOperation(method: string, path: string): OperationDoc {
  const words = path
    .split('/')
    .filter((s) => s && s !== 'v1' && s !== 'internal')
    .map((s) => s.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : '')));
  const operationId = [method.toLowerCase(), ...words.map((w) => w.charAt(0).toUpperCase() + w.slice(1))].join('');
  const segments = path.split('/').filter(Boolean);
  const tag = segments[0] === 'internal' ? 'portal' : segments[0] === 'v1' ? (segments[1] ?? 'keys') : 'health';
  return { operationId, summary: `${method} ${path}`, tag };
}
