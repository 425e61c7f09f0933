import { redactUrl } from '../redact.js';
import { lockDataDir } from './lock.js';
import { migrate } from './migrations.js';
import { openPglite, postgresClient, type SqlClient } from './sql.js';
import { Repositories } from './repositories.js';
import { RunRepository } from './runs.js';

export interface StorageOptions {
  /** A PostgreSQL server; when absent, embedded PGlite under `dataDir`. */
  databaseUrl?: string | null;
  dataDir: string;
  /** PostgreSQL schema to use (created if missing); tests isolate themselves this way. */
  schema?: string;
  poolSize?: number;
}

export interface Storage extends Repositories {
  readonly sql: SqlClient;
  readonly runs: RunRepository;
  /** Where the data lives, for the start-up banner; never includes a password. */
  readonly description: string;
  close(): Promise<void>;
}

export async function openStorage(options: StorageOptions): Promise<Storage> {
  let sql: SqlClient;
  let description: string;
  let release = () => {};
  if (options.databaseUrl) {
    if (options.schema) {
      const bootstrap = postgresClient(options.databaseUrl, { max: 1 });
      try {
        await bootstrap.exec(`CREATE SCHEMA IF NOT EXISTS "${options.schema.replaceAll('"', '""')}"`);
      } finally {
        await bootstrap.close();
      }
    }
    sql = postgresClient(options.databaseUrl, { schema: options.schema, max: options.poolSize });
    description = `PostgreSQL ${redactUrl(options.databaseUrl)}${options.schema ? ` (schema ${options.schema})` : ''}`;
  } else {
    release = lockDataDir(options.dataDir);
    try {
      sql = await openPglite(options.dataDir);
    } catch (error) {
      release();
      throw error;
    }
    description = `embedded PGlite in ${options.dataDir}`;
  }
  try {
    await migrate(sql);
  } catch (error) {
    await sql.close().catch(() => {});
    release();
    throw error;
  }
  const repositories = new Repositories(sql);
  return Object.assign(repositories, {
    sql,
    runs: new RunRepository(sql),
    description,
    async close() {
      await sql.close();
      release();
    },
  });
}
