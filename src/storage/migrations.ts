import type { SqlClient } from './sql.js';

interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Append only: a released migration is never edited, a change is a new version. */
export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'assistants, threads, messages',
    sql: `
      CREATE TABLE assistants (
        id text PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        created_at bigint NOT NULL,
        name text,
        description text,
        model text NOT NULL,
        instructions text,
        tools jsonb NOT NULL,
        tool_resources jsonb,
        metadata jsonb NOT NULL,
        temperature double precision,
        top_p double precision,
        response_format jsonb,
        reasoning_effort text
      );
      CREATE TABLE threads (
        id text PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        created_at bigint NOT NULL,
        tool_resources jsonb,
        metadata jsonb NOT NULL
      );
      CREATE TABLE messages (
        id text PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        thread_id text NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
        created_at bigint NOT NULL,
        status text NOT NULL,
        incomplete_details jsonb,
        completed_at bigint,
        incomplete_at bigint,
        role text NOT NULL,
        content jsonb NOT NULL,
        assistant_id text,
        run_id text,
        attachments jsonb,
        metadata jsonb NOT NULL
      );
      CREATE INDEX messages_thread_seq ON messages (thread_id, seq);
      CREATE INDEX messages_run ON messages (run_id) WHERE run_id IS NOT NULL;
    `,
  },
];

// Any fixed 64-bit number: the lock is shared by every assistd process on the database.
const MIGRATION_LOCK_KEY = 7_151_520_233;

/**
 * Applies pending migrations in one transaction under an advisory lock, so two processes that start
 * together apply each version once; the loser waits, then finds nothing left to do.
 */
export async function migrate(sql: SqlClient): Promise<number[]> {
  return sql.transaction(async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.exec(`CREATE TABLE IF NOT EXISTS assistd_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM assistd_migrations');
    const applied = new Set(rows.map((row) => row.version));
    const newlyApplied: number[] = [];
    for (const migration of MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      await client.exec(migration.sql);
      await client.query('INSERT INTO assistd_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      newlyApplied.push(migration.version);
    }
    return newlyApplied;
  });
}
