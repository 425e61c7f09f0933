/**
 * The database going away never crashes the server: a request meanwhile gets a 503 in OpenAI's
 * shape with Retry-After (not a 500), and once the database answers again so does the server. On
 * PostgreSQL, the server's own connections are terminated for real (pg_terminate_backend) and its
 * pool reconnects.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { isDatabaseUnavailable } from '../src/errors.js';
import { startFakeModel, type FakeModel } from './helpers/fake-model.js';
import { http, startTestServer, type TestServer } from './helpers/server.js';

const APPLICATION = `assistd-outage-${process.pid}`;
const databaseUrl = process.env.DATABASE_URL;

let fake: FakeModel;
let server: TestServer;
before(async () => {
  fake = await startFakeModel();
  const url = databaseUrl ? `${databaseUrl}${databaseUrl.includes('?') ? '&' : '?'}application_name=${APPLICATION}` : undefined;
  server = await startTestServer({ modelUrl: fake.url, config: url ? { general_settings: { database_url: url } } : {} });
});
after(async () => {
  await server?.close();
  await fake?.close();
});

describe('the database going away', () => {
  test('connection failures are recognised, query errors are not', () => {
    const coded = (code: string, message = 'x') => Object.assign(new Error(message), { code });
    for (const error of [coded('ECONNREFUSED'), coded('57P01', 'terminating connection due to administrator command'), coded('08006'), coded('57P03', 'the database system is starting up'), new Error('Connection terminated unexpectedly')]) {
      assert.equal(isDatabaseUnavailable(error), true, error.message);
    }
    for (const error of [coded('23505', 'duplicate key'), coded('42P01', 'relation does not exist'), new Error('something else'), 'not an error']) {
      assert.equal(isDatabaseUnavailable(error), false, String(error));
    }
  });

  test('while queries fail with a connection error: 503 with Retry-After in OpenAI shape; then answers again', async () => {
    const assistant = await server.client.beta.assistants.create({ model: 'gpt-4o' });
    const sql = server.storage.sql as { query: (...args: unknown[]) => Promise<unknown> };
    const query = sql.query;
    sql.query = async () => {
      throw Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
    };
    try {
      const response = await http(server, 'GET', `/v1/assistants/${assistant.id}`);
      assert.equal(response.status, 503);
      assert.equal(response.headers.get('retry-after'), '1');
      assert.deepEqual(response.json, {
        error: { message: 'The server cannot reach its database right now. Retry the request in a moment.', type: 'server_error', param: null, code: 'database_unavailable' },
      });
      assert.equal((await http(server, 'GET', '/health', { auth: false })).status, 503);
    } finally {
      sql.query = query;
    }
    assert.equal((await http(server, 'GET', `/v1/assistants/${assistant.id}`)).status, 200);
  });

  test('PostgreSQL: the server\'s connections terminated for real; requests are never a 500 and the pool reconnects', { skip: databaseUrl ? false : 'needs DATABASE_URL' }, async () => {
    const assistant = await server.client.beta.assistants.create({ model: 'gpt-4o' });
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ terminated: boolean }>('SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity WHERE application_name = $1', [APPLICATION]);
      assert.ok(rows.length >= 1 && rows.every((row) => row.terminated), `terminated ${rows.length} connections`);
    } finally {
      await admin.end();
    }
    // Straight after: each request either succeeds on a fresh connection or is told to retry.
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 20; attempt++) statuses.push((await http(server, 'GET', `/v1/assistants/${assistant.id}`)).status);
    assert.ok(statuses.every((status) => status === 200 || status === 503), statuses.join(','));
    assert.equal(statuses.at(-1), 200, statuses.join(','));
    fake.enqueue({ text: 'Still here.' });
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'Hi' }] });
    const run = await server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, { pollIntervalMs: 10 });
    assert.equal(run.status, 'completed');
  });
});
