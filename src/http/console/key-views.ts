import { keyStatus, KEY_STATUSES, type KeyStatus } from '../../domain/keys/key-state.js';
import { html, when, type Html } from './html.js';

/*
 * How the console shows a key's state. keyStatusOf is the one place a key's status is derived, from
 * the domain's one state rule (key-state.ts: live, expiring, overlapping, suspended, expired,
 * revoked); the table filters and badges follow from KEY_STATUSES.
 */

export { KEY_STATUSES, type KeyStatus };

/** The fields of any key view the status is derived from (a service key has only revoked_at). */
export interface StatusFields {
  revoked_at: string | null;
  expires_at?: string | null;
  suspended_at?: string | null;
}

const date = (iso: string | null | undefined) => (iso ? new Date(iso) : null);

export const keyStatusOf = (k: StatusFields, now: Date): KeyStatus =>
  keyStatus({ revokedAt: date(k.revoked_at), suspendedAt: date(k.suspended_at), expiresAt: date(k.expires_at) }, now);

/** Whether the operator can still act on the key (suspend, resume, rotate, revoke): neither revoked nor expired. */
export const actionable = (s: KeyStatus): boolean => s !== 'revoked' && s !== 'expired';

export function statusBadge(k: StatusFields, now: Date): Html {
  const s = keyStatusOf(k, now);
  const until = s === 'overlapping' ? ` until ${when(k.revoked_at)} UTC` : s === 'expiring' ? ` on ${when(k.expires_at ?? null)} UTC` : '';
  return html`<span class="badge badge-${s}"${until ? html` title="${s}${until}"` : ''}>${s}</span>`;
}

const dollars = (cents: number) => `$${(cents / 100).toFixed(2)}`;

/** Spend in the current 30-day cycle against the cap, as a bar (a meter) and as text. */
export function spendBar(spent: number, cap: number | null): Html {
  if (cap === null) return html`<span>${dollars(spent)} <span class="muted">(no cap)</span></span>`;
  const ratio = Math.min(1, spent / cap);
  return html`<span class="spend"><meter min="0" max="${cap}" value="${Math.min(spent, cap)}" low="${Math.round(cap * 0.7)}" high="${Math.round(cap * 0.9)}" optimum="0" aria-label="Spend against cap">${Math.round(ratio * 100)}%</meter> ${dollars(spent)} / ${dollars(cap)}</span>`;
}
