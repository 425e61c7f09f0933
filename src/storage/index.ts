import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { redactUrl } from '../redact.js';
import { lockDataDir } from './lock.js';
import { migrate, MIGRATION_LOCK_KEY } from './migrations.js';
import { openPglite, postgresClient, type SqlClient } from './sql.js';
import { Repositories } from './repositories.js';
import { RunRepository } from './runs.js';
import { directoryBlobStore, postgresBlobStore, type BlobStore } from './blobs.js';
import { FileRepository } from './files.js';
import { VectorStoreRepository } from './vector-stores.js';
import { checkPostgres, migrationError, postgresTarget, StorageStartError, type PostgresTarget } from './start-errors.js';

export interface StorageOptions {
  /** A PostgreSQL server; when absent, embedded PGlite under `dataDir`. */
  databaseUrl?: string | null;
  dataDir: string;
  /** PostgreSQL schema to use (created if missing); tests isolate themselves this way. */
  schema?: string;
  poolSize?: number;
  /** Told what is being done while it may take a while (creating the database, migrating). */
  progress?: (line: string) => void;
}

export interface Storage extends Repositories {
  readonly sql: SqlClient;
  readonly runs: RunRepository;
  readonly files: FileRepository;
  readonly vectorStores: VectorStoreRepository;
  /** File contents: a directory in the data dir when embedded, PostgreSQL rows when on a server. */
  readonly blobs: BlobStore;
  /** Where the data lives, for the start-up banner; never includes a password. */
  readonly description: string;
  close(): Promise<void>;
}

export async function openStorage(options: StorageOptions): Promise<Storage> {
  let sql: SqlClient;
  let description: string;
  let release = () => {};
  let target: PostgresTarget | null = null;
  const progress = options.progress ?? (() => {});
  if (options.databaseUrl) {
    target = postgresTarget(options.databaseUrl);
    progress(`connecting to PostgreSQL at ${target.host}:${target.port} (database '${target.database}')`);
    const { hiddenVectorSchema } = await checkPostgres(options.databaseUrl, target);
    if (options.schema) {
      const bootstrap = postgresClient(options.databaseUrl, { max: 1 });
      try {
        // The vector extension is database-wide: it lives in public (on every test schema's search
        // path), never in a schema of its own that a dropped test schema would take with it.
        await bootstrap.exec(
          `SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY});
           CREATE SCHEMA IF NOT EXISTS "${options.schema.replaceAll('"', '""')}";
           CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;`,
        );
      } finally {
        await bootstrap.close();
      }
    }
    sql = postgresClient(options.databaseUrl, { schema: options.schema, max: options.poolSize, extraSchema: hiddenVectorSchema });
    description = `PostgreSQL ${redactUrl(options.databaseUrl)}${options.schema ? ` (schema ${options.schema})` : ''}`;
  } else {
    release = lockDataDir(options.dataDir);
    // PGlite takes seconds to create a database (tens on a busy machine): say so rather than look hung.
    progress(
      existsSync(join(options.dataDir, 'PG_VERSION'))
        ? `opening the embedded database in ${options.dataDir}`
        : `creating the embedded database in ${options.dataDir} (first start; this takes a few seconds)`,
    );
    try {
      sql = await openPglite(options.dataDir);
    } catch (error) {
      release();
      throw new StorageStartError(`cannot open the embedded database in ${options.dataDir}: ${(error as Error).message}`, { cause: error });
    }
    description = `embedded PGlite in ${options.dataDir}`;
  }
  try {
    await migrate(sql, (pending) =>
      progress(`applying database migrations: ${pending.map((migration) => `${migration.version} (${migration.name})`).join(', ')}`),
    );
  } catch (error) {
    await sql.close().catch(() => {});
    release();
    throw migrationError(error, target);
  }
  const repositories = new Repositories(sql);
  return Object.assign(repositories, {
    sql,
    runs: new RunRepository(sql),
    files: new FileRepository(sql),
    vectorStores: new VectorStoreRepository(sql),
    blobs: sql.kind === 'postgres' ? postgresBlobStore(sql) : directoryBlobStore(join(options.dataDir, 'files')),
    description,
    async close() {
      await sql.close();
      release();
    },
  });
}
