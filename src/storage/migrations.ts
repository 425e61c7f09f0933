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
    // Object columns are `json`, not `jsonb`: json keeps the text as written, so objects leave in
    // the key order of the API's own examples.
    sql: `
      CREATE TABLE assistants (
        id text PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        created_at bigint NOT NULL,
        name text,
        description text,
        model text NOT NULL,
        instructions text,
        tools json NOT NULL,
        tool_resources json,
        metadata json NOT NULL,
        temperature double precision,
        top_p double precision,
        response_format json,
        reasoning_effort text
      );
      CREATE TABLE threads (
        id text PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        created_at bigint NOT NULL,
        tool_resources json,
        metadata json NOT NULL
      );
      CREATE TABLE messages (
        id text PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        thread_id text NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
        created_at bigint NOT NULL,
        status text NOT NULL,
        incomplete_details json,
        completed_at bigint,
        incomplete_at bigint,
        role text NOT NULL,
        content json NOT NULL,
        assistant_id text,
        run_id text,
        attachments json,
        metadata json NOT NULL
      );
      CREATE INDEX messages_thread_seq ON messages (thread_id, seq);
      CREATE INDEX messages_run ON messages (run_id) WHERE run_id IS NOT NULL;
    `,
  },
  {
    version: 2,
    name: 'runs and run steps',
    sql: `
      CREATE TABLE runs (
        id text PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        thread_id text NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
        assistant_id text NOT NULL,
        created_at bigint NOT NULL,
        status text NOT NULL,
        started_at bigint,
        expires_at bigint,
        cancelled_at bigint,
        failed_at bigint,
        completed_at bigint,
        required_action json,
        last_error json,
        model text NOT NULL,
        instructions text,
        additional_instructions text,
        tools json NOT NULL,
        metadata json NOT NULL,
        temperature double precision,
        top_p double precision,
        max_completion_tokens integer,
        max_prompt_tokens integer,
        truncation_strategy json NOT NULL,
        incomplete_details json,
        usage json,
        response_format json,
        tool_choice json NOT NULL,
        parallel_tool_calls boolean NOT NULL,
        reasoning_effort text,
        -- execution bookkeeping, never on the wire: which process holds the run, until when (ms)
        locked_by text,
        locked_until bigint
      );
      CREATE INDEX runs_thread_seq ON runs (thread_id, seq);
      -- One active run per thread, enforced by the database itself.
      CREATE UNIQUE INDEX runs_one_active_per_thread ON runs (thread_id)
        WHERE status IN ('queued', 'in_progress', 'requires_action', 'cancelling');
      CREATE INDEX runs_unfinished ON runs (status, locked_until)
        WHERE status IN ('queued', 'in_progress', 'requires_action', 'cancelling');

      CREATE TABLE run_steps (
        id text PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        run_id text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        thread_id text NOT NULL,
        assistant_id text NOT NULL,
        created_at bigint NOT NULL,
        type text NOT NULL,
        status text NOT NULL,
        step_details json NOT NULL,
        last_error json,
        expired_at bigint,
        cancelled_at bigint,
        failed_at bigint,
        completed_at bigint,
        metadata json NOT NULL DEFAULT '{}',
        usage json,
        -- which model call of the run produced the step: a message and tool calls from one call
        -- are one assistant turn when the prompt is rebuilt
        turn integer NOT NULL
      );
      CREATE INDEX run_steps_run_seq ON run_steps (run_id, seq);
    `,
  },
  {
    version: 3,
    name: 'vector extension',
    // Needed by file_search's vector stores. Created in the current schema unless it already exists
    // anywhere in the database; only a superuser may create it (pgvector is not a trusted extension).
    sql: `CREATE EXTENSION IF NOT EXISTS vector;`,
  },
  {
    version: 4,
    name: 'files and blobs',
    sql: `
      CREATE TABLE files (
        id text PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        created_at bigint NOT NULL,
        bytes bigint NOT NULL,
        filename text NOT NULL,
        purpose text NOT NULL,
        expires_at bigint,
        status text NOT NULL,
        status_details text,
        -- never on the wire: where the contents are, and the type the upload declared
        blob_id text NOT NULL,
        mime_type text
      );
      CREATE INDEX files_purpose_seq ON files (purpose, seq);
      CREATE INDEX files_expiring ON files (expires_at) WHERE expires_at IS NOT NULL;
      -- The PostgreSQL blob store (the embedded default keeps blobs as files in the data dir).
      CREATE TABLE blobs (
        id text PRIMARY KEY,
        created_at bigint NOT NULL,
        complete boolean NOT NULL,
        bytes bigint
      );
      CREATE TABLE blob_chunks (
        blob_id text NOT NULL REFERENCES blobs (id) ON DELETE CASCADE,
        position integer NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (blob_id, position)
      );
    `,
  },
  {
    version: 5,
    name: 'vector stores, their files and chunks',
    sql: `
      CREATE TABLE vector_stores (
        id text PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        created_at bigint NOT NULL,
        name text NOT NULL,
        expires_after json,
        expires_at bigint,
        last_active_at bigint,
        metadata json NOT NULL,
        -- never on the wire: what the store was created with, and the vector space it lives in
        description text,
        embedding_model text,
        embedding_dimensions integer
      );
      CREATE TABLE vector_store_file_batches (
        id text PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        vector_store_id text NOT NULL REFERENCES vector_stores (id) ON DELETE CASCADE,
        created_at bigint NOT NULL,
        -- in_progress or cancelled; completed and failed are read off the batch's files
        status text NOT NULL
      );
      CREATE TABLE vector_store_files (
        vector_store_id text NOT NULL REFERENCES vector_stores (id) ON DELETE CASCADE,
        -- a deleted file leaves every vector store, chunks and all
        file_id text NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        created_at bigint NOT NULL,
        status text NOT NULL,
        last_error json,
        usage_bytes bigint NOT NULL DEFAULT 0,
        chunking_strategy json NOT NULL,
        attributes json,
        batch_id text REFERENCES vector_store_file_batches (id) ON DELETE SET NULL,
        -- the text parsing extracted (GET …/content), never on the wire otherwise
        content text,
        -- ingestion bookkeeping: which process holds the file, until when (ms), how often tried
        locked_by text,
        locked_until bigint,
        attempts integer NOT NULL DEFAULT 0,
        PRIMARY KEY (vector_store_id, file_id)
      );
      CREATE INDEX vector_store_files_store_seq ON vector_store_files (vector_store_id, seq);
      CREATE INDEX vector_store_files_pending ON vector_store_files (locked_until) WHERE status = 'in_progress';
      CREATE INDEX vector_store_files_batch ON vector_store_files (batch_id) WHERE batch_id IS NOT NULL;
      CREATE INDEX vector_store_files_file ON vector_store_files (file_id);
      CREATE TABLE chunks (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        vector_store_id text NOT NULL,
        file_id text NOT NULL,
        position integer NOT NULL,
        text text NOT NULL,
        -- Stores of different embedding models share the table: each vector size gets an HNSW index
        -- of its own (created as the first store of that size fills), over embedding::vector(n).
        dimensions integer,
        embedding vector,
        -- Full text indexes only the chunk's own part (no overlap with its neighbours), so each
        -- word of a document is indexed once however much its chunks overlap.
        own_from integer,
        own_length integer,
        search tsvector GENERATED ALWAYS AS (
          to_tsvector('english', CASE WHEN own_length IS NULL THEN text ELSE substr(text, own_from + 1, own_length) END)
        ) STORED,
        FOREIGN KEY (vector_store_id, file_id) REFERENCES vector_store_files (vector_store_id, file_id) ON DELETE CASCADE
      );
      CREATE INDEX chunks_store_file ON chunks (vector_store_id, file_id, position);
      CREATE INDEX chunks_search ON chunks USING gin (search);
    `,
  },
  {
    version: 6,
    name: 'built-in tool state of run steps',
    // Never on the wire: what the model asked a built-in tool (file_search's queries) and the
    // number its results are cited by, so the conversation can be rebuilt as the model saw it.
    sql: `ALTER TABLE run_steps ADD COLUMN tool_state json;`,
  },
  {
    version: 7,
    name: 'fencing tokens for run claims; files made by run steps',
    // Every claim of a run takes the next lease_token, and every write its executor makes is
    // conditioned on that token and an unexpired lease: a process that lost the run writes nothing.
    // A file code_interpreter made names its step, so a step redone after a crash leaves no copy.
    sql: `ALTER TABLE runs ADD COLUMN lease_token bigint NOT NULL DEFAULT 0;
      ALTER TABLE files ADD COLUMN made_by_step text;
      CREATE INDEX files_made_by_step ON files (made_by_step) WHERE made_by_step IS NOT NULL;`,
  },
];

// Any fixed 64-bit number: the lock is shared by every assistd process on the database.
export const MIGRATION_LOCK_KEY = 7_151_520_233;

/**
 * Applies pending migrations in one transaction under an advisory lock, so two processes that start
 * together apply each version once; the loser waits, then finds nothing left to do.
 */
export async function migrate(sql: SqlClient, onPending: (pending: Migration[]) => void = () => {}): Promise<number[]> {
  return sql.transaction(async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.exec(`CREATE TABLE IF NOT EXISTS assistd_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM assistd_migrations');
    const applied = new Set(rows.map((row) => row.version));
    const pending = MIGRATIONS.filter((migration) => !applied.has(migration.version));
    if (pending.length > 0) onPending(pending);
    for (const migration of pending) {
      await client.exec(migration.sql);
      await client.query('INSERT INTO assistd_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
    }
    return pending.map((migration) => migration.version);
  });
}
