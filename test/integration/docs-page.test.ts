import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { DOCS_TITLE } from '../../src/http/openapi/branding.js';
import { DOCUMENT_FILES, ROOT } from '../../scripts/openapi.js';
import { it } from '../support/fixtures.js';

/*
 * What a reader of /docs and of the OpenAPI documents sees: keyplane's name and icon (not Swagger
 * UI's), and text that stands on its own, citing no section of a contract the reader does not have.
 * `npm run check:docs` checks the same in a real browser.
 */

describe('the docs page and the documents', () => {
  it('/docs is branded keyplane: tab title, top-bar logo and favicon', async ({ app: t }) => {
    const page = await t.app.inject({ method: 'GET', url: '/docs/' });
    expect(page.body).toContain(`<title>${DOCS_TITLE}</title>`);
    const favicon = page.body.match(/<link rel="icon" type="image\/svg\+xml" href="([^"]+)"/)?.[1];
    expect(favicon).toBeDefined();
    const icon = await t.app.inject({ method: 'GET', url: new URL(favicon!, 'http://local/docs/').pathname });
    expect(icon.statusCode).toBe(200);
    expect(icon.body).toContain('<svg');

    const init = await t.app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
    const logo = init.body.match(/img\.src = 'data:image\/svg\+xml;base64,([A-Za-z0-9+/=]+)'/)?.[1];
    expect(logo).toBeDefined();
    expect(Buffer.from(logo!, 'base64').toString()).toContain('>keyplane</text>');
  });

  it('neither document cites a section of the contract ("spec §5")', () => {
    for (const file of Object.values(DOCUMENT_FILES)) {
      const cited = readFileSync(path.join(ROOT, file), 'utf8').match(/.{0,40}§.{0,10}/g) ?? [];
      expect(cited, file).toEqual([]);
    }
  });
});
