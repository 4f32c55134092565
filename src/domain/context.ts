import type { Actor, RequestMeta } from './audit/events.js';

/** What every domain operation needs to know about who is acting, from where, and when. */
export interface OpContext {
  actor: Actor;
  meta: RequestMeta;
  now: Date;
}
