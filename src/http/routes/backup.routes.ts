import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { BackupService } from '../../domain/backup/backup.service.js';
import type { Clock } from '../../domain/clock.js';
import { errorResponses } from './common.schemas.js';
import { backupConflictError, insufficientScopeError } from './error.schemas.js';

const backupResponses = {
  200: {
    description:
      'The embedded database\'s dump: a gzipped tarball of its data directory, every transaction committed before it; `keyplane restore` loads it (with the server stopped). It holds every key\'s hash and the whole compliance log: keep it as private as the data directory.',
    content: { 'application/gzip': { schema: z.string().meta({ format: 'binary' }) } },
  },
  ...errorResponses([401, 503] as const),
  403: insufficientScopeError,
  409: backupConflictError,
};

/** keyplane-backup-20261207T180102Z.tar.gz: sorts by time, and says what it is. */
const fileName = (now: Date) => `keyplane-backup-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}.tar.gz`;

/**
 * GET /internal/v1/backup: the running embedded server's online backup, for an operator token of
 * scope admin. While the dump is read, the database answers no other statement (pglite/backup.ts),
 * so requests wait for it: a second or two for a small database.
 */
export async function backupRoutes(app: FastifyInstance, opts: { backup: BackupService; clock: Clock }): Promise<void> {
  app.get('/backup', { config: { scope: 'admin' }, schema: { response: backupResponses } }, async (request, reply) => {
    const dump = await opts.backup.take();
    const operator = request.operator;
    request.log.info({ bytes: dump.byteLength, operator: operator?.name }, 'backup taken');
    return reply
      .type('application/gzip')
      .header('content-disposition', `attachment; filename="${fileName(opts.clock.now())}"`)
      .header('cache-control', 'no-store')
      .send(Buffer.from(dump.buffer, dump.byteOffset, dump.byteLength));
  });
}
