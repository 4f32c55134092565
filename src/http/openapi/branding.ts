import type { FastifySwaggerUiOptions } from '@fastify/swagger-ui';

/**
 * The /docs page's branding: keyplane's name in the tab and the top bar, and its own icon, in place
 * of Swagger UI's. Inline SVG (served by the page itself or as a data: URL): the page loads nothing
 * from another origin.
 */

const MARK = '<g fill="none" stroke="#7fd1b9" stroke-width="3" stroke-linecap="round"><circle cx="13" cy="20" r="7"/><path d="M20 20h15M29 20v6M34 20v4"/></g>';

const LOGO_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="170" height="40" viewBox="0 0 170 40">' +
  MARK +
  '<text x="44" y="27" font-family="system-ui, -apple-system, \'Segoe UI\', sans-serif" font-size="21" font-weight="600" fill="#ffffff">keyplane</text></svg>';

const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40"><rect width="40" height="40" rx="8" fill="#1b1b1b"/>${MARK}</svg>`;

export const DOCS_TITLE = 'keyplane API reference';

/** @fastify/swagger-ui's `logo` and `theme` options. */
export const DOCS_BRANDING: Pick<FastifySwaggerUiOptions, 'logo' | 'theme'> = {
  logo: { type: 'image/svg+xml', content: Buffer.from(LOGO_SVG) },
  theme: {
    title: DOCS_TITLE,
    favicon: [{ filename: 'favicon.svg', rel: 'icon', sizes: 'any', type: 'image/svg+xml', content: Buffer.from(FAVICON_SVG) }],
  },
};
