/**
 * `assistd serve --no-worker` and `assistd worker`, real processes over one PostgreSQL database (a
 * database of the test's own): the API alone streams runs but leaves background runs queued; a
 * worker started later picks them up, starts new ones it is told of, indexes uploaded files, and
 * stops a run cancelled through the API mid-answer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { assistdEnv, cleanUpCliProcesses, CliProcess, LISTENING, listening } from './helpers/cli.js';
import { startFakeModel, type FakeModel } from './helpers/fake-model.js';
import { withTimeout } from './helpers/harness.js';
import { nowSeconds } from '../src/ids.js';
import { createTestDatabase, tempDir } from './helpers/storage.js';

const adminUrl = process.env.DATABASE_URL;
const skip = adminUrl ? false : 'needs DATABASE_URL (API and workers share a PostgreSQL database)';

let fake: FakeModel;
let config: string;
let api: CliProcess;
let client: OpenAI;
let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;

async function waitForStatus(threadId: string, runId: string, wanted: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await client.beta.threads.runs.retrieve(runId, { thread_id: threadId });
    if (run.status === wanted) return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} is ${run.status}, not ${wanted}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

before(async () => {
  if (!adminUrl) return;
  fake = await startFakeModel();
  database = await createTestDatabase('workers');
  config = join(tempDir('workers'), 'config.yaml');
  writeFileSync(
    config,
    JSON.stringify({
      model_list: [{ model_name: '*', litellm_params: { model: 'openai/*', api_base: fake.url, api_key: 'sk-fake' } }],
      general_settings: { database_url: database.url },
    }),
  );
  api = new CliProcess(['serve', '--no-worker', '--port', '0', '--config', config, '--data-dir', tempDir('workers-api')], { env: assistdEnv() });
  const { url: base } = listening(await api.waitFor(LISTENING));
  await api.waitFor(/^assistd: no worker here \(--no-worker\)/m);
  client = new OpenAI({ apiKey: 'unused', baseURL: `${base}/v1`, maxRetries: 0 });
});
after(async () => {
  await cleanUpCliProcesses();
  await fake?.close();
  await database?.drop();
});

describe('API replicas without a worker, and workers', { skip }, () => {
  let queued: { threadId: string; runId: string };
  let assistantId: string;

  test('the API alone: a streamed run executes in it; a background run waits, queued', async () => {
    const assistant = await client.beta.assistants.create({ model: 'gpt-4o' });
    assistantId = assistant.id;
    const streamedThread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Hi' }] });
    fake.enqueue({ text: 'Streamed by the API.' });
    const streamed = await withTimeout(client.beta.threads.runs.stream(streamedThread.id, { assistant_id: assistant.id }).finalRun(), 'stream');
    assert.equal(streamed.status, 'completed');

    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Later, please.' }] });
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: assistant.id });
    queued = { threadId: thread.id, runId: run.id };
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.equal((await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id })).status, 'queued', 'nobody executes it');
  });

  test('a worker takes the waiting run, then starts new ones it is told of', async () => {
    fake.enqueue({ text: 'Done by the worker.' });
    const worker = new CliProcess(['worker', '--config', config, '--data-dir', tempDir('workers-worker')], { env: assistdEnv() });
    await worker.waitFor(/^assistd: worker: no HTTP/m);
    assert.doesNotMatch(worker.stdout, /listening on/);
    await waitForStatus(queued.threadId, queued.runId, 'completed');
    const messages = await client.beta.threads.messages.list(queued.threadId);
    assert.equal((messages.data[0]!.content[0] as { text: { value: string } }).text.value, 'Done by the worker.');

    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Now.' }] });
    fake.enqueue({ text: 'At once.' });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistantId }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'completed');
  });

  test('files uploaded through the API are indexed by the worker', async () => {
    const store = await client.vectorStores.create({ name: 'worker-indexed' });
    const file = await client.vectorStores.files.uploadAndPoll(store.id, await toFile(Buffer.from('The worker indexed this line.'), 'note.txt'), { pollIntervalMs: 50 });
    assert.equal(file.status, 'completed', JSON.stringify(file.last_error));
  });

  test('a background run on the worker, cancelled through the API, stops mid-answer', async () => {
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Count slowly.' }] });
    fake.enqueue({ chunks: Array.from({ length: 60 }, (_, index) => `w${index} `), chunkDelayMs: 100 });
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: assistantId });
    await waitForStatus(thread.id, run.id, 'in_progress');
    await new Promise((resolve) => setTimeout(resolve, 500));
    await client.beta.threads.runs.cancel(run.id, { thread_id: thread.id });
    await waitForStatus(thread.id, run.id, 'cancelled', 5_000);
  });
});

describe('API replicas with no worker at all', { skip }, () => {
  test('a background run nobody takes expires at its expires_at, as OpenAI\'s do, rather than waiting forever', async () => {
    const own = await createTestDatabase('expiry');
    try {
      const file = join(tempDir('workers-expiry'), 'config.yaml');
      writeFileSync(
        file,
        JSON.stringify({
          model_list: [{ model_name: '*', litellm_params: { model: 'openai/*', api_base: fake.url, api_key: 'sk-fake' } }],
          general_settings: { database_url: own.url },
          assistd_settings: { run_expiry_seconds: 2, run_lease_seconds: 1 },
        }),
      );
      const alone = new CliProcess(['serve', '--no-worker', '--port', '0', '--config', file, '--data-dir', tempDir('workers-expiry-api')], { env: assistdEnv() });
      const { url } = listening(await alone.waitFor(LISTENING));
      const api = new OpenAI({ apiKey: 'unused', baseURL: `${url}/v1`, maxRetries: 0 });
      const assistant = await api.beta.assistants.create({ model: 'gpt-4o' });
      const thread = await api.beta.threads.create({ messages: [{ role: 'user', content: 'Nobody will run this.' }] });
      const run = await api.beta.threads.runs.create(thread.id, { assistant_id: assistant.id });
      assert.equal(run.status, 'queued');
      const deadline = Date.now() + 30_000;
      let current = run;
      while (current.status === 'queued' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        current = await api.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
      }
      assert.equal(current.status, 'expired');
      assert.ok(current.expires_at !== null && nowSeconds() >= current.expires_at);
      // The thread is free again.
      const next = await api.beta.threads.messages.create(thread.id, { role: 'user', content: 'Still there?' });
      assert.equal(next.role, 'user');
      await alone.stop();
    } finally {
      await own.drop();
    }
  });
});

describe('roles need PostgreSQL', () => {
  test('--no-worker and worker on the embedded store: a non-zero exit saying why, nothing started', async () => {
    for (const args of [['serve', '--no-worker', '--port', '0'], ['worker']]) {
      const cli = new CliProcess([...args, '--data-dir', tempDir('workers-embedded')], { env: assistdEnv() });
      const exit = await cli.waitExit();
      assert.notEqual(exit.code, 0);
      assert.match(cli.stderr, /needs PostgreSQL \(DATABASE_URL or general_settings\.database_url\)/, cli.describe());
      assert.doesNotMatch(cli.stdout, /listening/);
    }
  });
});
