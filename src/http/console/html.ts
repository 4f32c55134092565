/*
 * The console's HTML: a tagged template that escapes every interpolated value unless it is
 * already Html (built by this template), so user data (account names, labels, event data) can never
 * become markup. No inline script or style anywhere: the CSP allows only files under /console/assets.
 */

export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

type Value = Html | string | number | boolean | null | undefined | Value[];

function render(v: Value): string {
  if (v === null || v === undefined || v === false) return '';
  if (Array.isArray(v)) return v.map(render).join('');
  if (v instanceof Html) return v.text;
  return escapeHtml(String(v));
}

export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new Html(out);
}

export interface LayoutOptions {
  title: string;
  /** Null on the sign-in page: no navigation, no sign-out form. */
  csrfToken: string | null;
  operatorName?: string;
  /** Loads uPlot and the chart script (the activity pages). */
  chart?: boolean;
}

/** The hidden field every state-changing form carries (the session's synchronizer token). */
export const csrfField = (token: string) => html`<input type="hidden" name="_csrf" value="${token}">`;

/** A small POST form with one button (revoke, rotate, sign out). */
export function actionForm(action: string, csrfToken: string, label: string, opts: { extra?: Html; danger?: boolean; confirm?: string } = {}): Html {
  const confirm = opts.confirm ? html` data-confirm="${opts.confirm}"` : '';
  return html`<form method="post" action="${action}" class="inline"${confirm}>${csrfField(csrfToken)}${opts.extra}<button type="submit"${opts.danger ? html` class="danger"` : ''}>${label}</button></form>`;
}

export function layout(opts: LayoutOptions, body: Html): string {
  const nav = opts.csrfToken
    ? html`<nav aria-label="Console"><a href="/console/accounts">Accounts</a><a href="/console/leaks">Leaked tokens</a>
        <span class="who">Signed in as ${opts.operatorName}</span>${actionForm('/console/sign-out', opts.csrfToken, 'Sign out')}</nav>`
    : '';
  return `<!doctype html>${html`<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${opts.title} · keyplane console</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/console/assets/console.css"><script src="/console/assets/console.js" defer></script>
${opts.chart ? html`<link rel="stylesheet" href="/console/vendor/uPlot.min.css"><script src="/console/vendor/uPlot.iife.min.js" defer></script><script src="/console/assets/console-chart.js" defer></script>` : ''}</head>
<body><header><a class="brand" href="/console">keyplane console</a>${nav}</header><main id="main"><h1>${opts.title}</h1>${body}</main></body></html>`}`;
}

const pad = (n: number) => String(n).padStart(2, '0');
/** A timestamp as UTC `YYYY-MM-DD HH:MM:SS`, or an em dash. */
export function when(iso: string | Date | null): string {
  if (!iso) return '—';
  const d = typeof iso === 'string' ? new Date(iso) : iso;
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}
