/**
 * PostgreSQL restarted under a running deployment: a PostgreSQL server of the test's own (initdb in
 * a scratch directory, on a port of its own, so no other test's database goes away), an API replica
 * (`serve --no-worker`) and a worker over it, real processes. While the database is down, requests
 * get 503 `database_unavailable` with Retry-After in OpenAI's shape; neither process exits; once it
 * is back the pools reconnect, the run that was cut off mid-answer resumes and completes with one
 * answer, and new requests are served.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { assistdEnv, cleanUpCliProcesses, CliProcess, LISTENING, listening } from './helpers/cli.js';
import { startFakeModel, type FakeModel } from './helpers/fake-model.js';
import { pollRun, taggedRuns, waitFor } from './helpers/harness.js';
import { tempDir } from './helpers/storage.js';

type Json = any;

const BIN = '/usr/lib/postgresql/15/bin';
const root = userInfo().uid === 0;
/** initdb and the server refuse to run as root: as root, they run as the postgres user. */
const asServerUser = (command: string, args: string[]) =>
  execFileSync(root ? 'runuser' : command, root ? ['-u', 'postgres', '--', command, ...args] : args, { stdio: 'pipe' });
const skip = !process.env.DATABASE_URL
  ? 'needs DATABASE_URL (a machine with PostgreSQL)'
  : !existsSync(join(BIN, 'initdb'))
    ? `no PostgreSQL server binaries in ${BIN}`
    : false;

const { newTag, tagOf } = taggedRuns('R');
let fake: FakeModel;
let dir: string;
let port: number;
let client: OpenAI;
let apiUrl: string;
let api: CliProcess;
let worker: CliProcess;

const pgCtl = (action: 'start' | 'stop') =>
  asServerUser(join(BIN, 'pg_ctl'), ['-D', join(dir, 'data'), '-l', join(dir, 'log'), '-w', '-m', 'fast', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, action]);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: chosen } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return chosen;
}

before(async () => {
  if (skip) return;
  fake = await startFakeModel();
  dir = tempDir('pg-restart');
  if (root) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })));
  port = await freePort();
  asServerUser(join(BIN, 'initdb'), ['-D', join(dir, 'data'), '-A', 'trust', '-U', 'postgres']);
  pgCtl('start');
  const config = join(tempDir('pg-restart-config'), 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      model_list: [{ model_name: '*', litellm_params: { model: 'openai/*', api_base: fake.url, api_key: 'sk-fake' } }],
      general_settings: { database_url: `postgres://postgres@127.0.0.1:${port}/postgres` },
      assistd_settings: { run_lease_seconds: 2 },
    }),
  );
  fake.onRequest((request) => {
    const tag = tagOf(request.body);
    return tag ? scripts.get(tag)?.shift() : undefined;
  });
  api = new CliProcess(['serve', '--no-worker', '--port', '0', '--config', config, '--data-dir', tempDir('pg-restart-api')], { env: assistdEnv() });
  apiUrl = listening(await api.waitFor(LISTENING)).url;
  client = new OpenAI({ apiKey: 'unused', baseURL: `${apiUrl}/v1`, maxRetries: 0 });
  worker = new CliProcess(['worker', '--config', config, '--data-dir', tempDir('pg-restart-worker')], { env: assistdEnv() });
  await worker.waitFor(/^assistd: worker: no HTTP/m);
});
after(async () => {
  await cleanUpCliProcesses();
  await fake?.close();
  if (dir && existsSync(join(dir, 'data', 'postmaster.pid'))) pgCtl('stop');
});

const scripts = new Map<string, Json[]>();

describe('PostgreSQL restarted under an API replica and a worker', { skip }, () => {
  test('503 with Retry-After while it is down, nobody exits, and the cut-off run resumes with one answer', async () => {
    const assistant = await client.beta.assistants.create({ model: 'gpt-4o' });
    const tag = newTag();
    scripts.set(tag, [{ chunks: Array.from({ length: 40 }, (_, index) => `cut${index} `), chunkDelayMs: 100 }, { text: 'Resumed after the restart.' }]);
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: `Go on. ${tag}` }] });
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: assistant.id });
    await waitFor('the answer being written', async () => {
      const messages = await client.beta.threads.messages.list(thread.id);
      return messages.data.some((message) => message.role === 'assistant' && message.status === 'in_progress');
    });

    pgCtl('stop');
    const down = await fetch(`${apiUrl}/v1/assistants/${assistant.id}`);
    assert.equal(down.status, 503);
    assert.equal(down.headers.get('retry-after'), '1');
    const body = (await down.json()) as Json;
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(body.error.code, 'database_unavailable');
    // The worker's answer ends while the database is away: its writes fail, and the run is left to resume.
    await new Promise((resolve) => setTimeout(resolve, 4_500));
    pgCtl('start');
    // A request meeting a connection the restart cut gets a 503 the SDK retries: retry, as clients with default settings do.
    client = client.withOptions({ maxRetries: 5 });

    const final = await pollRun(client, thread.id, run.id, ['completed', 'failed', 'cancelled', 'expired', 'incomplete'], 60_000).catch((error: Error) => assert.fail(`${error.message}\n${worker.describe()}`));
    assert.equal(final.status, 'completed', JSON.stringify(final.last_error));
    const messages = await client.beta.threads.messages.list(thread.id, { order: 'asc' });
    const answers = messages.data.filter((message) => message.role === 'assistant');
    assert.deepEqual(
      answers.map((message) => [message.status, (message.content[0] as Json)?.text?.value]),
      [['completed', 'Resumed after the restart.']],
    );
    assert.equal(api.exited, false, api.describe());
    assert.equal(worker.exited, false, worker.describe());
    assert.equal((await fetch(`${apiUrl}/v1/assistants/${assistant.id}`)).status, 200);
    const next = newTag();
    scripts.set(next, [{ text: 'Served after the restart.' }]);
    const again = await client.beta.threads.create({ messages: [{ role: 'user', content: `Again. ${next}` }] });
    const done = await client.beta.threads.runs.createAndPoll(again.id, { assistant_id: assistant.id }, { pollIntervalMs: 20 });
    assert.equal(done.status, 'completed');
  });
});
