import pg from 'pg';

/** Storage could not be opened for a reason the operator can fix; the message is one line that says which. */
export class StorageStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageStartError';
  }
}

type DriverError = Error & { code?: string; errors?: DriverError[] };

/** Where a connection string points, as pg resolves it (PG* environment variables included). */
export interface PostgresTarget {
  host: string;
  port: number;
  database: string;
  user: string;
}

export function postgresTarget(connectionString: string): PostgresTarget {
  let protocol: string | undefined;
  try {
    protocol = new URL(connectionString).protocol;
  } catch {
    // not a URL at all (a libpq keyword string, a typo): said below without quoting it
  }
  if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
    // The value is not repeated: it may hold a password in a form redaction does not know.
    throw new StorageStartError(
      'the database URL (DATABASE_URL or general_settings.database_url) is not a PostgreSQL URL such as postgres://user:password@host:5432/database',
    );
  }
  const client = new pg.Client({ connectionString }) as pg.Client & Partial<PostgresTarget>;
  return {
    host: client.host ?? 'localhost',
    port: client.port ?? 5432,
    database: client.database ?? '',
    user: client.user ?? '',
  };
}

const SOCKET_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused; is the server running and listening there?',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'the host name could not be resolved',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'the connection timed out',
  ECONNRESET: 'the server closed the connection',
};

// pg's own connect timeout has no code, only this message.
const TIMEOUT_MESSAGE = /timeout expired/i;

/** The driver error's code; Node's happy-eyeballs connect wraps one error per address in an AggregateError. */
function codeOf(error: DriverError): string | undefined {
  return error.code ?? error.errors?.find((inner) => inner.code)?.code;
}

function reasonOf(error: DriverError): string {
  const code = codeOf(error);
  const message = error.message || error.errors?.find((inner) => inner.message)?.message || String(error);
  if (code && SOCKET_REASONS[code]) return `${SOCKET_REASONS[code]} (${code})`;
  if (!code && TIMEOUT_MESSAGE.test(message)) return `no answer within ${CONNECT_TIMEOUT_MS / 1000} s`;
  return code && !message.includes(code) ? `${message} (${code})` : message;
}

const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Connects once (bounded in time) so that an unreachable or refusing server is named before
 * anything else runs. Returns the schema of an installed vector extension that the connection's
 * search path leaves out (installed in `extensions`, say), for every connection to add.
 */
export async function checkPostgres(connectionString: string, target: PostgresTarget): Promise<{ hiddenVectorSchema: string | null }> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw connectError(error, target);
  }
  try {
    const { rows } = await client.query<{ schema: string; visible: boolean }>(
      `SELECT n.nspname AS schema, n.nspname = ANY (current_schemas(false)) AS visible
       FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'`,
    );
    const found = rows[0];
    return { hiddenVectorSchema: found && !found.visible ? found.schema : null };
  } finally {
    await client.end().catch(() => {});
  }
}

/** A failed first connection, in one line: where, as whom, and why. */
export function connectError(error: unknown, target: PostgresTarget): StorageStartError {
  const driverError = error as DriverError;
  const where = `PostgreSQL at ${target.host}:${target.port} (database '${target.database}', user '${target.user}')`;
  const code = codeOf(driverError);
  // 28000 invalid authorization (no such role, or pg_hba refused it), 28P01 wrong password
  const refused = code === '28000' || code === '28P01';
  const verb = refused ? `${where} refused the credentials` : code === '3D000' ? `${where} has no such database` : `cannot connect to ${where}`;
  return new StorageStartError(`${verb}: ${reasonOf(driverError)}`, { cause: error });
}

/**
 * A failed migration, in one line. The vector extension (pgvector) is the usual culprit on a server
 * of one's own: not installed, or the user may not create it.
 */
export function migrationError(error: unknown, target: PostgresTarget | null): StorageStartError {
  const driverError = error as DriverError;
  const code = codeOf(driverError);
  const where = target ? `database '${target.database}' at ${target.host}:${target.port}` : 'the embedded database';
  const reason = reasonOf(driverError);
  if (/\bvector\b/.test(driverError.message ?? '')) {
    if (code === '42501') {
      return new StorageStartError(
        `${where} lacks the vector extension (pgvector), and user '${target?.user}' may not create it: ` +
          `a superuser must run CREATE EXTENSION vector in that database once (${reason})`,
        { cause: error },
      );
    }
    if (code === '0A000' || code === '58P01') {
      return new StorageStartError(
        `${where} lacks the vector extension: pgvector is not installed on that server ` +
          `(on Debian's PostgreSQL 15, scripts/install-pgvector.sh builds it) (${reason})`,
        { cause: error },
      );
    }
  }
  if (code === '42501') {
    return new StorageStartError(
      `user '${target?.user}' may not create assistd's tables in ${where}: grant it CREATE on the schema, or use the database's owner (${reason})`,
      { cause: error },
    );
  }
  return new StorageStartError(`preparing ${where} failed: ${reason}`, { cause: error });
}
