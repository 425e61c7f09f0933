import { cpSync, existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { MIGRATIONS } from '../../src/storage/migrations.js';
import { openStorage, type Storage } from '../../src/storage/index.js';

export type Backend = 'pglite' | 'postgres';

/** PGlite always; PostgreSQL too whenever DATABASE_URL is set (CI sets it). */
export const BACKENDS: Backend[] = process.env.DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];

/** The default backend for end-to-end tests: PostgreSQL when configured, else PGlite. */
export const E2E_BACKEND: Backend = process.env.DATABASE_URL ? 'postgres' : 'pglite';

export function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `assistd-${label}-`));
}

/**
 * A fresh PGlite data dir with every migration applied. Creating a PGlite database costs seconds,
 * so one template is built per migration set and copied for each use; concurrent test files race
 * by rename, and the loser's copy is thrown away.
 */
export async function preparedDataDir(): Promise<string> {
  const version = createHash('sha256').update(JSON.stringify(MIGRATIONS)).digest('hex').slice(0, 12);
  const template = join(tmpdir(), `assistd-template-${version}`);
  if (!existsSync(join(template, 'PG_VERSION'))) {
    const building = `${template}.building-${process.pid}-${randomBytes(4).toString('hex')}`;
    const storage = await openStorage({ dataDir: building });
    await storage.close();
    try {
      renameSync(building, template);
    } catch {
      rmSync(building, { recursive: true, force: true });
    }
  }
  const dataDir = tempDir('data');
  cpSync(template, dataDir, { recursive: true });
  return dataDir;
}

/** A unique schema name so parallel test files never see each other's rows on one database. */
export function freshSchema(): string {
  return `t_${process.pid}_${randomBytes(4).toString('hex')}`;
}

export interface TestStorage {
  storage: Storage;
  dataDir: string;
  schema?: string;
  close(): Promise<void>;
}

export async function openTestStorage(backend: Backend): Promise<TestStorage> {
  if (backend === 'postgres') {
    const schema = freshSchema();
    const dataDir = tempDir('pg');
    const storage = await openStorage({ databaseUrl: process.env.DATABASE_URL!, dataDir, schema });
    return { storage, dataDir, schema, close: () => storage.close() };
  }
  const dataDir = await preparedDataDir();
  const storage = await openStorage({ dataDir });
  return {
    storage,
    dataDir,
    close: async () => {
      await storage.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs `sql` on the server DATABASE_URL names (in its database, or `database`), over a connection of its own. */
export async function adminQuery<Row = Record<string, unknown>>(sql: string, values: unknown[] = [], database?: string): Promise<Row[]> {
  const { default: pg } = await import('pg');
  const url = new URL(process.env.DATABASE_URL!);
  if (database) url.pathname = `/${database}`;
  const connection = new pg.Client({ connectionString: url.toString() });
  await connection.connect();
  try {
    return (await connection.query(sql, values)).rows as Row[];
  } finally {
    await connection.end();
  }
}

/**
 * A PostgreSQL database of the test's own on the DATABASE_URL server (processes of the real CLI
 * share it: a schema cannot be handed to them), and its URL; `drop` removes it, connections and all.
 */
export async function createTestDatabase(label: string): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `assistd_${label}_${process.pid}`;
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await adminQuery(`CREATE DATABASE ${name}`);
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = `/${name}`;
  return { name, url: url.toString(), drop: async () => void (await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)) };
}
