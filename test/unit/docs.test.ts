import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config.js';

/*
 * The documentation is part of the product: its links must lead somewhere, the configuration table
 * must match the code that parses the configuration, and the README must stay a front door.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function markdownUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return markdownUnder(full);
    return name.endsWith('.md') ? [full] : [];
  });
}

const DOCS = [
  ...['README.md', 'CONTRIBUTING.md', 'CHANGELOG.md'].map((f) => path.join(ROOT, f)),
  ...markdownUnder(path.join(ROOT, 'docs')),
];

/** Link targets of inline links and images, `[text](target)`, outside fenced code blocks. */
function linkTargets(markdown: string): string[] {
  const prose = markdown.replace(/^```[^\n]*\n[\s\S]*?^```/gm, '');
  const targets: string[] = [];
  for (const m of prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) targets.push(m[1]!);
  return targets;
}

/** GitHub's anchors for a document's headings: lower case, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  const prose = markdown.replace(/^```[^\n]*\n[\s\S]*?^```/gm, '');
  const slugs = [...prose.matchAll(/^#{1,6}\s+(.+?)\s*#*$/gm)].map((m) =>
    m[1]!
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-'),
  );
  return new Set(slugs);
}

/** A target inside the repository: not a URL, not mailto, and not a bare #anchor of the same page. */
function isRelative(target: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:/i.test(target) && !target.startsWith('#');
}

describe('documentation links', () => {
  it('finds the documents it checks', () => {
    expect(DOCS.length).toBeGreaterThanOrEqual(10);
    for (const f of DOCS) expect(existsSync(f), path.relative(ROOT, f)).toBe(true);
  });

  it('extracts inline links and images, and skips code blocks', () => {
    const md = 'See [a](docs/a.md#x) and ![img](b.png "t").\n```sh\n[c](nowhere.md)\n```\n[mail](mailto:x@y) [web](https://e.org)';
    expect(linkTargets(md)).toEqual(['docs/a.md#x', 'b.png', 'mailto:x@y', 'https://e.org']);
    expect(linkTargets(md).filter(isRelative)).toEqual(['docs/a.md#x', 'b.png']);
    expect(anchors('# Audit verify, export and retention\n## A/B against `main`\n```\n# not a heading\n```')).toEqual(
      new Set(['audit-verify-export-and-retention', 'ab-against-main']),
    );
  });

  it.each(DOCS.map((f) => [path.relative(ROOT, f), f]))('every relative link in %s resolves to a file (and heading) in the repository', (_name, file) => {
    const broken: string[] = [];
    for (const target of linkTargets(readFileSync(file, 'utf8')).filter(isRelative)) {
      const withoutAnchor = decodeURI(target.split('#')[0]!);
      const resolved = path.resolve(path.dirname(file), withoutAnchor);
      if (!resolved.startsWith(ROOT + path.sep) || !existsSync(resolved)) broken.push(target);
      else {
        // An anchor into another Markdown document must name one of its headings.
        const anchor = target.split('#')[1];
        if (anchor && resolved.endsWith('.md') && !anchors(readFileSync(resolved, 'utf8')).has(anchor)) broken.push(target);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('docs/operations.md configuration table', () => {
  const operations = readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8');
  /** Rows of a table whose first cell is an environment variable's name in backticks. */
  const rows = [...operations.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map((m) => m[1]!);
  const keys = Object.keys(configSchema.shape);

  it('lists every key of configSchema exactly once', () => {
    const counts = new Map<string, number>();
    for (const name of rows) counts.set(name, (counts.get(name) ?? 0) + 1);
    const wrong = keys.filter((k) => counts.get(k) !== 1).map((k) => `${k}: ${counts.get(k) ?? 0} rows`);
    expect(wrong).toEqual([]);
  });

  it('names no variable that configSchema does not have', () => {
    expect(rows.filter((name) => !keys.includes(name))).toEqual([]);
  });
});

describe('README.md', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

  it('is at most 200 lines', () => {
    expect(readme.split('\n').length - (readme.endsWith('\n') ? 1 : 0)).toBeLessThanOrEqual(200);
  });

  it('holds no commit hash', () => {
    // 7 to 40 hex digits with at least one letter and one digit: a hash, not a number or a word.
    const hash = /\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b/g;
    expect('the run of 943252a, 1000000 keys, a defaced page'.match(hash)).toEqual(['943252a']);
    expect(readme.match(hash) ?? []).toEqual([]);
  });
});
