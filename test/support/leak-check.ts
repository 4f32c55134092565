import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { SECRET_PATTERN } from '../../src/domain/credentials.js';

export interface LeakReport {
  secrets: number;
  lines: number;
  /** The first 12 characters of every secret found in a log line (never the whole secret). */
  leaks: string[];
}

/**
 * Looks through a run's logs (runDir/logs) for any string shaped like a keyplane secret and for every
 * secret the run's tests recorded (runDir/secrets): none may appear in any log line.
 */
export function findLeaks(runDir: string): LeakReport {
  const read = (dir: string) => readdirSync(dir).map((f) => readFileSync(path.join(dir, f), 'utf8'));
  const logs = read(path.join(runDir, 'logs')).join('\n');
  const secrets = new Set(read(path.join(runDir, 'secrets')).join('\n').split('\n').filter(Boolean));
  const leaks = new Set<string>();
  for (const m of logs.matchAll(SECRET_PATTERN)) leaks.add(m[0].slice(0, 12));
  for (const s of secrets) if (logs.includes(s)) leaks.add(s.slice(0, 12));
  return { secrets: secrets.size, lines: logs.split('\n').filter(Boolean).length, leaks: [...leaks] };
}
