import { defineConfig } from 'drizzle-kit';

// Migrations are generated from src/db/schema.ts (`npm run db:generate`) and committed; both
// database modes run them through src/db/migrate.ts. SQL functions and triggers are not migrations:
// each lives in its own file under src/db/sql, applied after the migrations.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './migrations',
});
