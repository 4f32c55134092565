import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { z } from 'zod';
import { replayRevocations, type ExportedEvent, type ReplayResult } from '../domain/operator/replay-revocations.js';
import { cliContext, print, readStdin, withServices } from './runtime.js';

/*
 * keyplane keys replay-revocations: after a restore, revoke again what the audit export says was
 * revoked (domain/operator/replay-revocations.ts). Safe to run with any export, any number of times.
 */

/** The fields of an exported event the replay reads; the export's other fields are ignored. */
const exportedEvent = z.object({
  id: z.string().uuid(),
  event_type: z.string(),
  subject_key_id: z.string().uuid().nullable(),
  data: z.record(z.string(), z.unknown()).nullable(),
  created_at: z.string(),
});

/** The export's events, one JSON object a line (blank lines ignored); the problem of the first bad line otherwise. */
function parseExport(text: string): { events: ExportedEvent[] } | { problem: string } {
  const events: ExportedEvent[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, line] of lines.entries()) {
    if (!line.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return { problem: `line ${i + 1} is not JSON` };
    }
    const parsed = exportedEvent.safeParse(value);
    if (!parsed.success) return { problem: `line ${i + 1} is not an event of \`keyplane audit export\`` };
    events.push(parsed.data);
  }
  return { events };
}

function summary(results: ReplayResult[]) {
  const count = (o: ReplayResult['outcome']) => results.filter((r) => r.outcome === o).length;
  return { revoked: count('revoked'), already_revoked: count('already_revoked'), not_found: count('not_found') };
}

function describe(results: ReplayResult[]): string {
  const s = summary(results);
  const rows = results.filter((r) => r.outcome === 'revoked').map((r) => `revoked ${r.kind === 'key' ? 'key' : 'operator token'} ${r.id} (${r.eventType}, event ${r.eventId})`);
  return [...rows, `${results.length} revoked credential(s) in the export: ${s.revoked} revoked now, ${s.already_revoked} already revoked, ${s.not_found} not in this database`].join('\n');
}

/** keys replay-revocations, beside the other `keys` commands. */
export function registerReplayRevocationsCommand(program: Command): void {
  const keys = program.commands.find((c) => c.name() === 'keys');
  if (!keys) throw new Error('register the keys commands first');
  keys
    .command('replay-revocations')
    .description('after a restore: revoke again every key and operator token an audit export records as revoked or rotated away')
    .argument('<file>', "the output of `keyplane audit export`, or '-' to read it from stdin")
    .option('--json', 'print JSON')
    .action(async (file: string, o: { json?: boolean }, cmd: Command) => {
      const parsed = parseExport(file === '-' ? await readStdin() : await readFile(file, 'utf8'));
      if ('problem' in parsed) cmd.error(`keyplane keys replay-revocations: ${parsed.problem}`, { exitCode: 2, code: 'commander.invalidArgument' });
      await withServices(async ({ services }) => {
        const results = await replayRevocations(services, parsed.events, cliContext());
        const wire = results.map((r) => ({ kind: r.kind, id: r.id, event_id: r.eventId, event_type: r.eventType, outcome: r.outcome }));
        print(!!o.json, { ...summary(results), results: wire }, describe(results));
      });
    });
}
