import pg from 'pg';
import type { PGlite, Transaction } from '@electric-sql/pglite';

export interface QueryResult<Row> {
  rows: Row[];
  rowCount: number;
}

/**
 * The one database interface the repositories use. Both adapters speak PostgreSQL's SQL with
 * `$n` parameters; JSON columns come back parsed, `bigint` columns as numbers.
 */
export interface SqlClient {
  readonly kind: 'pglite' | 'postgres';
  query<Row = Record<string, unknown>>(text: string, values?: readonly unknown[]): Promise<QueryResult<Row>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(script: string): Promise<void>;
  /** Runs `work` inside BEGIN/COMMIT on one connection, rolling back if it throws. */
  transaction<T>(work: (client: SqlClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /** A server pool's connections (PostgreSQL only), for /metrics. */
  poolStats?(): { total: number; idle: number; waiting: number; max: number };
  /**
   * PostgreSQL only (processes sharing one database): `listen` keeps a connection of its own
   * LISTENing on `channel` (reconnecting when it is cut) and hands each payload to `onMessage`;
   * `notify` sends one. Channels are scoped to the schema, so deployments sharing a database apart.
   */
  listen?(channel: string, onMessage: (payload: string) => void): Promise<{ close(): Promise<void> }>;
  notify?(channel: string, payload: string): Promise<void>;
  /** Set on a client fenced by a run claim (see fencedClient in runs.ts): the claim, and the client beneath. */
  readonly fence?: { readonly claim: { runId: string; token: number }; readonly base: SqlClient };
}

const INT8_OID = 20;
const parseInt8 = (value: string) => Number(value);

export function postgresClient(connectionString: string, options: { schema?: string; max?: number; extraSchema?: string | null } = {}): SqlClient {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    // search_path per connection lets test suites isolate themselves in a schema of their own
    options: options.schema ? `-c search_path=${options.schema},public` : undefined,
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8_OID ? parseInt8 : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  // A schema the search path leaves out but the tables need (where the vector extension lives) is
  // appended on every new connection, before it serves a query.
  const extraSchema = options.extraSchema;
  if (extraSchema) {
    pool.on('connect', (client) => {
      client.query(`SELECT set_config('search_path', current_setting('search_path') || ', ' || quote_ident($1), false)`, [extraSchema]).catch(() => {});
    });
  }

  // Parameterised statements are prepared once per connection under a stable name: the server
  // then skips parsing and planning on the hot CRUD paths.
  const statementNames = new Map<string, string>();
  const statementName = (text: string) => {
    let name = statementNames.get(text);
    if (name === undefined) {
      name = `assistd_${statementNames.size}`;
      statementNames.set(text, name);
    }
    return name;
  };
  const wrap = (runner: pg.Pool | pg.PoolClient): SqlClient['query'] =>
    async (text, values) => {
      const result =
        values === undefined
          ? await runner.query(text)
          : await runner.query({ name: statementName(text), text, values: values as unknown[] });
      return { rows: result.rows, rowCount: result.rowCount ?? 0 };
    };

  return {
    kind: 'postgres',
    query: wrap(pool),
    exec: async (script) => {
      await pool.query(script);
    },
    async transaction(work) {
      const connection = await pool.connect();
      const client: SqlClient = {
        kind: 'postgres',
        query: wrap(connection),
        exec: async (script) => {
          await connection.query(script);
        },
        transaction: (inner) => inner(client),
        close: async () => {},
      };
      try {
        await connection.query('BEGIN');
        const result = await work(client);
        await connection.query('COMMIT');
        return result;
      } catch (error) {
        await connection.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        connection.release();
      }
    },
    close: () => pool.end(),
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max: pool.options.max ?? 10 }),
    listen: (channel, onMessage) => listenOn(connectionString, scoped(channel), onMessage),
    notify: async (channel, payload) => {
      await pool.query('SELECT pg_notify($1, $2)', [scoped(channel), payload]);
    },
  };

  function scoped(channel: string): string {
    return `${channel}:${options.schema ?? 'public'}`.slice(0, 63);
  }
}

const RELISTEN_MS = 1_000;

/** A dedicated connection LISTENing on `channel`; when it is cut, it connects again a second later. */
async function listenOn(connectionString: string, channel: string, onMessage: (payload: string) => void): Promise<{ close(): Promise<void> }> {
  let closed = false;
  let client: pg.Client | null = null;
  let retry: NodeJS.Timeout | undefined;
  const connect = async (): Promise<void> => {
    const next = new pg.Client({ connectionString });
    next.on('notification', (message) => {
      if (message.channel === channel && message.payload !== undefined) onMessage(message.payload);
    });
    const again = () => {
      if (closed || client !== next) return;
      client = null;
      next.removeAllListeners('end');
      void next.end().catch(() => {});
      retry = setTimeout(() => void connect().catch(again), RELISTEN_MS);
      retry.unref();
    };
    next.on('error', again);
    next.on('end', again);
    client = next;
    try {
      await next.connect();
      await next.query(`LISTEN "${channel.replaceAll('"', '""')}"`);
    } catch (error) {
      again();
      throw error;
    }
  };
  // The first connection must work (a bad URL fails the start); later ones are retried quietly.
  await connect();
  return {
    async close() {
      closed = true;
      clearTimeout(retry);
      const open = client;
      client = null;
      await open?.end().catch(() => {});
    },
  };
}

export function pgliteClient(database: PGlite): SqlClient {
  const wrap = (runner: PGlite | Transaction): SqlClient['query'] =>
    async (text, values) => {
      const result = await runner.query(text, values as unknown[] | undefined);
      return { rows: result.rows as never[], rowCount: Math.max(result.affectedRows ?? 0, result.rows.length) };
    };
  return {
    kind: 'pglite',
    query: wrap(database),
    exec: async (script) => {
      await database.exec(script);
    },
    transaction: (work) =>
      database.transaction(async (transaction) => {
        const client: SqlClient = {
          kind: 'pglite',
          query: wrap(transaction),
          exec: async (script) => {
            await transaction.exec(script);
          },
          transaction: (inner) => inner(client),
          close: async () => {},
        };
        return work(client);
      }),
    close: () => database.close(),
  };
}

export async function openPglite(dataDir: string): Promise<SqlClient> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { vector } = await import('@electric-sql/pglite-pgvector');
  const database = await PGlite.create({
    dataDir,
    extensions: { vector },
    parsers: { [INT8_OID]: parseInt8 },
  });
  return pgliteClient(database);
}
