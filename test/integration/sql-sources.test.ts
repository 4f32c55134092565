import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase } from '../../src/db/database.js';
import { migratePglite, SQL_FILES } from '../../src/db/migrate.js';
import { createFleetDatabase } from '../support/fleet.js';

/*
 * The SQL functions and triggers of a migrated database are exactly those of src/db/sql: every
 * keyplane function is defined once (no overloads, no leftover of an older version) by a file, with
 * the file's body; every trigger a file creates exists once, on its table, calling its function; and
 * nothing else. Checked on a new database of the run's kind after one migrate().
 */

const SQL_DIR = path.resolve('src/db/sql');

interface FileFunction {
  file: string;
  name: string;
  body: string;
}
interface FileTrigger {
  file: string;
  name: string;
  table: string;
  fn: string;
}

/** The functions (name and the text between their dollar quotes) and triggers the files create. */
function parseFiles(): { functions: FileFunction[]; triggers: FileTrigger[] } {
  const functions: FileFunction[] = [];
  const triggers: FileTrigger[] = [];
  for (const file of SQL_FILES) {
    const text = readFileSync(path.join(SQL_DIR, file), 'utf8');
    for (const m of text.matchAll(/^CREATE OR REPLACE FUNCTION (\w+)\([\s\S]*?\bAS \$\$([\s\S]*?)\$\$;/gm)) {
      functions.push({ file, name: m[1]!, body: m[2]! });
    }
    for (const m of text.matchAll(/^CREATE OR REPLACE TRIGGER (\w+)\s[\s\S]*?\bON (\w+)[\s\S]*?EXECUTE FUNCTION (\w+)\(\);/gm)) {
      triggers.push({ file, name: m[1]!, table: m[2]!, fn: m[3]! });
    }
  }
  return { functions, triggers };
}

let query: <T>(text: string) => Promise<T[]>;
let close: () => Promise<void>;
beforeAll(async () => {
  if (inject('dbMode') === 'postgres') {
    const fresh = await createFleetDatabase('sqlsources');
    const database = await openDatabase({ databaseUrl: fresh.url, poolMax: 1 });
    await database.migrate();
    query = async <T>(text: string) => (await database.pool!.query(text)).rows as T[];
    close = async () => {
      await database.close();
      await fresh.drop();
    };
  } else {
    // From initdb, not from the template (which was made by the same migrate(), but earlier).
    const client = new PGlite();
    await migratePglite(client);
    query = async <T>(text: string) => (await client.query<T>(text)).rows;
    close = () => client.close();
  }
});
afterAll(() => close?.());

const files = parseFiles();

describe('the SQL files', () => {
  it('define each function once, and each trigger once', () => {
    expect(files.functions.map((f) => f.name)).toEqual([...new Set(files.functions.map((f) => f.name))]);
    expect(files.functions.map((f) => f.name).sort()).toEqual([
      'keyplane_audit_item',
      'keyplane_billing_item',
      'keyplane_count_changed_key',
      'keyplane_count_minted_keys',
      'keyplane_link_event_once',
      'keyplane_refuse_event_change',
      'keyplane_verify_debit_batch',
    ]);
    expect(files.triggers.map((t) => t.name).sort()).toEqual([
      'api_keys_count_deleted',
      'api_keys_count_minted',
      'api_keys_count_revoked',
      'compliance_events_append_only',
      'compliance_events_link_once',
      'compliance_events_no_truncate',
      'spend_ledger_append_only',
    ]);
  });
});

describe('a migrated database', () => {
  it('holds each function of the files once, with its file’s body, and no other function', async () => {
    const installed = await query<{ name: string; overloads: number; src: string }>(
      `select proname as name, count(*)::int as overloads, min(prosrc) as src from pg_proc
        where pronamespace = 'public'::regnamespace group by proname order by proname`,
    );
    expect(installed.map((f) => f.name)).toEqual(files.functions.map((f) => f.name).sort());
    for (const fn of installed) {
      expect(fn.overloads, fn.name).toBe(1);
      expect(fn.src, fn.name).toBe(files.functions.find((f) => f.name === fn.name)!.body);
    }
  });

  it('holds each trigger of the files once, on its table, calling its function, and no other trigger', async () => {
    const installed = await query<{ name: string; table: string; fn: string }>(
      `select t.tgname as name, c.relname as "table", p.proname as fn
         from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_proc p on p.oid = t.tgfoid
        where not t.tgisinternal and c.relnamespace = 'public'::regnamespace order by 1`,
    );
    const expected = files.triggers.map(({ name, table, fn }) => ({ name, table, fn })).sort((a, b) => a.name.localeCompare(b.name));
    expect(installed).toEqual(expected);
  });

  it('keeps the debit function’s own planner settings (embedded sessions plan it as server ones do)', async () => {
    const [fn] = await query<{ config: string[] }>(`select proconfig as config from pg_proc where proname = 'keyplane_verify_debit_batch'`);
    expect(fn!.config).toEqual(['enable_seqscan=off', 'plan_cache_mode=force_generic_plan']);
  });
});
