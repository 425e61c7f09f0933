/**
 * A database that cannot be used stops the start with one line saying what failed (host, port,
 * database, user, and the reason) and a non-zero exit: unreachable, refused credentials, no such
 * database, no pgvector, or no right to create it. Driven through the real CLI; the pgvector-missing
 * wording is checked against a real PostgreSQL (PGlite) that has no vector extension.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { migrate } from '../src/storage/migrations.js';
import { pgliteClient } from '../src/storage/sql.js';
import { migrationError, StorageStartError } from '../src/storage/start-errors.js';
import { assistdEnv, cleanUpCliProcesses, CliProcess, LISTENING } from './helpers/cli.js';
import { tempDir } from './helpers/storage.js';

after(() => cleanUpCliProcesses());

const skip = process.env.DATABASE_URL ? false : 'DATABASE_URL is not set';

/** Starts the CLI on `databaseUrl` and expects it to give up: exit 1 and exactly one line on stderr besides warnings. */
async function failedStart(databaseUrl: string, secret?: string): Promise<string> {
  const cli = new CliProcess(['serve', '--port', '0', '--data-dir', join(tempDir('unused'), 'd')], {
    env: assistdEnv({ DATABASE_URL: databaseUrl }),
  });
  const exit = await cli.waitExit();
  assert.deepEqual(exit, { code: 1, signal: null }, cli.describe());
  assert.doesNotMatch(cli.stdout, LISTENING);
  const lines = cli.stderr.split('\n').filter((line) => line !== '' && !line.startsWith('assistd: warning:'));
  assert.equal(lines.length, 1, `one line:\n${cli.describe()}`);
  assert.doesNotMatch(cli.output, /^\s+at /m, 'no stack trace');
  if (secret) assert.ok(!cli.output.includes(secret), 'the password is never printed');
  return lines[0]!;
}

/** DATABASE_URL with its user, password or database replaced. */
function variant(changes: { user?: string; password?: string; database?: string }): string {
  const url = new URL(process.env.DATABASE_URL!);
  if (changes.user !== undefined) url.username = changes.user;
  if (changes.password !== undefined) url.password = changes.password;
  if (changes.database !== undefined) url.pathname = `/${changes.database}`;
  return url.toString();
}

async function query(connectionString: string, text: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

describe('a database assistd cannot use stops the start in one line', { concurrency: true }, () => {
  test('nothing listens at the address: host, port, database, user and "connection refused"', async () => {
    const line = await failedStart('postgres://postgres:secretpw-refused@127.0.0.1:1/somedb', 'secretpw-refused');
    assert.equal(
      line,
      "assistd: cannot connect to PostgreSQL at 127.0.0.1:1 (database 'somedb', user 'postgres'): connection refused; is the server running and listening there? (ECONNREFUSED)",
    );
  });

  test('a value that is not a PostgreSQL URL (a libpq keyword string, a bad port) is named without repeating it', async () => {
    for (const value of ['host=127.0.0.1 user=postgres password=secretpw-keywords dbname=app', 'postgres://u:secretpw-port@127.0.0.1:99999/app', 'mysql://u:secretpw-scheme@127.0.0.1/app']) {
      const line = await failedStart(value, value.match(/secretpw-\w+/)![0]);
      assert.equal(
        line,
        'assistd: the database URL (DATABASE_URL or general_settings.database_url) is not a PostgreSQL URL such as postgres://user:password@host:5432/database',
      );
    }
  });

  test('a host that does not resolve', async () => {
    const line = await failedStart('postgres://postgres@no-such-host.invalid:5432/somedb');
    assert.match(line, /^assistd: cannot connect to PostgreSQL at no-such-host\.invalid:5432 \(database 'somedb', user 'postgres'\): (no such host \(ENOTFOUND\)|the host name could not be resolved \(EAI_AGAIN\))$/);
  });

  test('credentials the server refuses (a role it does not know)', { skip }, async () => {
    const role = `nobody_${randomBytes(4).toString('hex')}`;
    const line = await failedStart(variant({ user: role, password: 'secretpw-role' }), 'secretpw-role');
    const { hostname, port, pathname } = new URL(process.env.DATABASE_URL!);
    assert.equal(
      line,
      `assistd: PostgreSQL at ${hostname}:${port || 5432} (database '${pathname.slice(1)}', user '${role}') refused the credentials: role "${role}" does not exist (28000)`,
    );
  });

  test('a database that does not exist', { skip }, async () => {
    const database = `nodb_${randomBytes(4).toString('hex')}`;
    const line = await failedStart(variant({ database }));
    assert.match(line, new RegExp(`^assistd: PostgreSQL at \\S+ \\(database '${database}', user '\\S+'\\) has no such database: database "${database}" does not exist \\(3D000\\)$`));
  });

  describe('the vector extension', { skip }, () => {
    const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;
    const owner = `assistd_owner_${suffix}`;
    const outsider = `assistd_outsider_${suffix}`;
    const database = `assistd_novector_${suffix}`;
    const fresh = `assistd_fresh_${suffix}`;
    after(() =>
      admin(async (client) => {
        for (const name of [database, fresh]) await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        for (const role of [owner, outsider]) await client.query(`DROP ROLE IF EXISTS ${role}`);
      }),
    );

    test('a database without it, opened by a user who may not create it: says so and what a superuser must run', async () => {
      await admin(async (client) => {
        await client.query(`CREATE ROLE ${owner} LOGIN`);
        await client.query(`CREATE ROLE ${outsider} LOGIN`);
        // The owner may create tables in its own database, but not pgvector (only a superuser may).
        await client.query(`CREATE DATABASE ${database} OWNER ${owner}`);
      });
      const line = await failedStart(variant({ user: owner, database }));
      assert.match(
        line,
        new RegExp(`^assistd: database '${database}' at \\S+ lacks the vector extension \\(pgvector\\), and user '${owner}' may not create it: a superuser must run CREATE EXTENSION vector in that database once \\(permission denied to create extension "vector" \\(42501\\)\\)$`),
      );
      // Nothing was half-done: the migrations ran in one transaction.
      assert.deepEqual(await query(variant({ database }), "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"), []);

      const denied = await failedStart(variant({ user: outsider, database }));
      assert.match(denied, new RegExp(`^assistd: user '${outsider}' may not create assistd's tables in database '${database}' at \\S+: grant it CREATE on the schema, or use the database's owner \\(permission denied for schema public \\(42501\\)\\)$`));
    });

    test('a superuser on a database without it: the migration creates it and the server starts', async () => {
      await admin((client) => client.query(`CREATE DATABASE ${fresh}`));
      const cli = new CliProcess(['serve', '--port', '0', '--data-dir', join(tempDir('unused'), 'd')], {
        env: assistdEnv({ DATABASE_URL: variant({ database: fresh }) }),
      });
      await cli.waitFor(LISTENING);
      await cli.stop();
      assert.deepEqual(await query(variant({ database: fresh }), "SELECT extname FROM pg_extension WHERE extname = 'vector'"), [{ extname: 'vector' }]);
    });
  });

  test('a PostgreSQL without pgvector installed at all (PGlite without the extension): says it is not installed', async () => {
    const bare = await PGlite.create();
    try {
      const error = await migrate(pgliteClient(bare)).then(
        () => assert.fail('migrations succeeded without the vector extension'),
        (reason: unknown) => reason,
      );
      const explained = migrationError(error, { host: 'db.example', port: 5432, database: 'app', user: 'app' });
      assert.ok(explained instanceof StorageStartError);
      assert.equal(
        explained.message,
        "database 'app' at db.example:5432 lacks the vector extension: pgvector is not installed on that server (on Debian's PostgreSQL 15, scripts/install-pgvector.sh builds it) (extension \"vector\" is not available (0A000))",
      );
    } finally {
      await bare.close();
    }
  });
});
