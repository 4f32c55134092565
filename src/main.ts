import { parseConfig } from './config.js';
import { serveForever } from './server.js';

try {
  await serveForever(parseConfig(process.env));
} catch (err) {
  process.stderr.write(`keyplane: ${(err as Error).message}\n`);
  process.exit(1);
}
