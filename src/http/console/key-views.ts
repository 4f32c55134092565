import { html, type Html } from './html.js';

/*
 * How the console shows a key's state. keyStatusOf is the one place a key's status is derived:
 * today a key is live or revoked (revoked_at); the states of key expiry and suspension (live,
 * overlapping, suspended, expiring, revoked) are added here, and the table filters and badges
 * follow from KEY_STATUSES.
 */

export const KEY_STATUSES = ['live', 'revoked'] as const;
export type KeyStatus = (typeof KEY_STATUSES)[number];

/** The fields of any key view the status is derived from. */
export interface StatusFields {
  revoked_at: string | null;
}

export const keyStatusOf = (k: StatusFields): KeyStatus => (k.revoked_at ? 'revoked' : 'live');

export function statusBadge(k: StatusFields): Html {
  const s = keyStatusOf(k);
  return html`<span class="badge badge-${s}">${s}</span>`;
}

const dollars = (cents: number) => `$${(cents / 100).toFixed(2)}`;

/** Spend in the current 30-day cycle against the cap, as a bar (a meter) and as text. */
export function spendBar(spent: number, cap: number | null): Html {
  if (cap === null) return html`<span>${dollars(spent)} <span class="muted">(no cap)</span></span>`;
  const ratio = Math.min(1, spent / cap);
  return html`<span class="spend"><meter min="0" max="${cap}" value="${Math.min(spent, cap)}" low="${Math.round(cap * 0.7)}" high="${Math.round(cap * 0.9)}" optimum="0" aria-label="Spend against cap">${Math.round(ratio * 100)}%</meter> ${dollars(spent)} / ${dollars(cap)}</span>`;
}
