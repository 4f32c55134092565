// ESLint checks structure, not formatting: file and function size, unused code, and that SQL and the
// database drivers stay in src/db. No stylistic rules; no type-aware rules (kept fast; `tsc` does types).
// The import layering itself is dependency-cruiser's job (.dependency-cruiser.cjs, `npm run lint:deps`).
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

const TS = ['**/*.ts'];

// Drivers and the query builder belong to src/db; type-only imports count too.
const DB_PACKAGES = ['drizzle-orm', 'drizzle-orm/*', 'pg', 'pg/*', '@electric-sql/pglite', '@electric-sql/pglite/*'];

export default defineConfig(
  {
    ignores: [
      'node_modules/',
      'dist/',
      'migrations/',
      '.test-runs/',
      // Generated: openapi-typescript output and the examples printed by `npm run openapi`.
      'clients/typescript/src/*.types.ts',
      'clients/typescript/dist/',
      'src/http/**/*examples.json',
    ],
  },
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  {
    files: TS,
    languageOptions: { parser: tseslint.parser, ecmaVersion: 2023, sourceType: 'module' },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          args: 'after-used',
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrors: 'all',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
    },
  },

  // File size: equal to `wc -l` (blank lines and comments count).
  {
    files: ['src/**/*.ts'],
    rules: { 'max-lines': ['error', { max: 300, skipBlankLines: false, skipComments: false }] },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: { 'max-lines': ['error', { max: 400, skipBlankLines: false, skipComments: false }] },
  },

  // The client package keeps the server's limits.
  {
    files: ['clients/typescript/src/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 300, skipBlankLines: false, skipComments: false }],
      'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true, IIFEs: true }],
    },
  },

  // Function size in src/ (tests and bench are exempt: describe blocks are long by nature).
  {
    files: ['src/**/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true, IIFEs: true }],
    },
  },
  {
    // Registrars list their routes or commands one after another; each handler stays small.
    files: ['src/http/routes/*.routes.ts', 'src/cli/*.commands.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 130, skipBlankLines: true, skipComments: true, IIFEs: true }],
    },
  },

  // SQL lives in src/db only (tests and bench may use the drivers directly).
  {
    files: ['src/**/*.ts'],
    ignores: ['src/db/**'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "TaggedTemplateExpression[tag.type='Identifier'][tag.name='sql']",
          message: 'SQL belongs in src/db (a query function in src/db/queries); call that instead.',
        },
        {
          // sql.raw, sql.join, sql.identifier, …: SQL composed by hand, even with a re-exported `sql`.
          selector: "MemberExpression[object.type='Identifier'][object.name='sql']",
          message: 'SQL belongs in src/db (a query function in src/db/queries); call that instead.',
        },
      ],
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: DB_PACKAGES,
              allowTypeImports: false,
              message: 'Only src/db talks to the database: import a query function or a src/db type instead.',
            },
          ],
        },
      ],
    },
  },
);
