// The layer rules of src/ (docs: "The folder is the architecture"): Entry → Http → Domain → Db.
// Run with `npm run lint:deps`; CI runs it after the typecheck, and any violation fails the build.
//
//   entry   src/main.ts, src/app.ts, src/services.ts, src/config.ts, src/jobs.ts, src/cli/**
//           (the only code that builds services and wires domain to db)
//   http    src/http/**    routes, plugins, OpenAPI: given services, never the database
//   domain  src/domain/**  the rules: knows no HTTP and writes no SQL
//   db      src/db/**      every statement and the drivers: carries no rules
//
// TypeScript type-only imports count (tsPreCompilationDeps): a type is a dependency too.

const ENTRY = '^src/(main|app|services|config|jobs)\\.ts$|^src/cli/';
const HTTP = '^src/http/';
const DOMAIN = '^src/domain/';
const DB = '^src/db/';

// An npm package by name, wherever it resolves inside node_modules (its own folder, a nested copy,
// or its @types package for type-only imports).
const npm = (...names) =>
  `(^|/)node_modules/(@types/)?(${names.map((n) => n.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|')})(/|$)`;

const HTTP_PACKAGES = npm('fastify') + '|(^|/)node_modules/(fastify-[^/]+|@fastify/[^/]+)/';
const DB_DRIVERS = npm('drizzle-orm', 'pg', '@electric-sql/pglite');

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'domain-not-to-http',
      comment: 'The domain knows no HTTP: no import of src/http or of Fastify (fastify, fastify-*, @fastify/*).',
      severity: 'error',
      from: { path: DOMAIN },
      to: { path: [HTTP, HTTP_PACKAGES] },
    },
    {
      name: 'db-not-to-domain-or-http',
      comment: 'Queries carry no rules: src/db imports neither src/domain nor src/http.',
      severity: 'error',
      from: { path: DB },
      to: { path: [DOMAIN, HTTP] },
    },
    {
      name: 'http-not-to-db',
      comment: 'Routes reach data through services: src/http never imports src/db.',
      severity: 'error',
      from: { path: HTTP },
      to: { path: DB },
    },
    {
      name: 'http-not-to-entry',
      comment: 'Routes are given services, never build them: src/http imports no entry file.',
      severity: 'error',
      from: { path: HTTP },
      to: { path: ENTRY },
    },
    {
      name: 'domain-not-to-entry',
      comment: 'The domain is given its dependencies: src/domain imports no entry file.',
      severity: 'error',
      from: { path: DOMAIN },
      to: { path: ENTRY },
    },
    {
      name: 'db-drivers-only-in-db',
      comment:
        'Every SQL statement lives in src/db: nothing else imports drizzle-orm (or a subpath), pg or ' +
        '@electric-sql/pglite, not even for a type.',
      severity: 'error',
      from: { path: '^src/', pathNot: DB },
      to: { path: DB_DRIVERS },
    },
    {
      name: 'no-circular',
      comment: 'Import cycles hide the layering; break them with a shared module or by passing a dependency in.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-orphans',
      comment: 'A module of src/ that nothing imports and that imports nothing is dead code (the console\'s browser scripts are served, not imported).',
      severity: 'error',
      from: { path: '^src/', orphan: true, pathNot: ['\\.d\\.ts$', '^src/http/console/assets/'] },
      to: {},
    },
    {
      name: 'not-to-dev-dep',
      comment:
        'src/ runs in production, where devDependencies are not installed: move the package to ' +
        '"dependencies" or stop importing it. (@types/* packages are fine: types vanish at run time.)',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], pathNot: '(^|/)node_modules/@types/' },
    },
    {
      name: 'no-non-package-json',
      comment:
        'src/ imports a package that package.json does not list (it is only there as some other ' +
        "package's dependency, and may vanish or change with it): add it to \"dependencies\".",
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import that resolves to nothing would escape every rule above.',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: '(^|/)node_modules/' },
    tsPreCompilationDeps: true,
    // NodeNext: `import './x.js'` names ./x.ts; the tsconfig makes the resolver do the same.
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
