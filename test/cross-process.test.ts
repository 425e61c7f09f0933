/**
 * Two servers over one PostgreSQL database (as replicas run): a cancel sent to the replica that does
 * not execute the run reaches the one that does at once (LISTEN/NOTIFY), not at its next lease
 * renewal: the stream stops mid-answer. Leases here are 120 s (renewed every 40 s), so only the
 * notification can stop it before the answer's end.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import OpenAI from 'openai';
import { parseConfig } from '../src/config.js';
import { startServer, type RunningServer } from '../src/server.js';
import { startFakeModel, type FakeModel } from './helpers/fake-model.js';
import { withTimeout } from './helpers/harness.js';
import { freshSchema, tempDir } from './helpers/storage.js';

const databaseUrl = process.env.DATABASE_URL;
const skip = databaseUrl ? false : 'needs DATABASE_URL (replicas share a PostgreSQL database)';
const KEY = 'sk-replicas';
const WORDS = 40;

let fake: FakeModel;
const servers: RunningServer[] = [];
const dirs: string[] = [];
let first: OpenAI;
let second: OpenAI;

before(async () => {
  if (!databaseUrl) return;
  fake = await startFakeModel();
  const schema = freshSchema();
  const config = parseConfig(
    {
      model_list: [{ model_name: '*', litellm_params: { model: 'openai/*', api_base: fake.url, api_key: 'sk-fake' } }],
      general_settings: { master_key: KEY, database_url: databaseUrl },
      assistd_settings: { run_lease_seconds: 120 },
    },
    {},
  );
  for (let index = 0; index < 2; index++) {
    const dataDir = tempDir('replica');
    dirs.push(dataDir);
    servers.push(await startServer({ config, dataDir, port: 0, host: '127.0.0.1', schema, shutdownGraceMs: 0 }));
  }
  first = new OpenAI({ apiKey: KEY, baseURL: `${servers[0]!.url}/v1`, maxRetries: 0 });
  second = new OpenAI({ apiKey: KEY, baseURL: `${servers[1]!.url}/v1`, maxRetries: 0 });
});
after(async () => {
  for (const server of servers) await server.close();
  await fake?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('replicas over one database', { skip }, () => {
  test('a cancel sent to the other replica stops the stream mid-answer', async () => {
    const assistant = await first.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await first.beta.threads.create({ messages: [{ role: 'user', content: 'Count slowly.' }] });
    fake.enqueue({ chunks: Array.from({ length: WORDS }, (_, index) => `w${index} `), chunkDelayMs: 100 });
    const stream = first.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    let deltas = 0;
    const events: string[] = [];
    stream.on('event', (event) => events.push(event.event));
    stream.on('textDelta', () => deltas++);
    const run = await withTimeout(
      new Promise<{ id: string }>((resolve) => stream.once('textDelta', () => resolve(stream.currentRun()!))),
      'first delta',
    );
    const cancelling = await second.beta.threads.runs.cancel(run.id, { thread_id: thread.id });
    assert.equal(cancelling.status, 'cancelling');
    const final = await withTimeout(stream.finalRun(), 'finalRun');
    assert.equal(final.status, 'cancelled');
    assert.ok(deltas < WORDS / 2, `stopped mid-answer: ${deltas} of ${WORDS} deltas`);
    assert.equal(events.at(-1), 'thread.run.cancelled');
    assert.equal((await second.beta.threads.runs.retrieve(run.id, { thread_id: thread.id })).status, 'cancelled');
  });

  test('either replica serves any request: an object made on one is read on the other', async () => {
    const assistant = await first.beta.assistants.create({ model: 'gpt-4o', name: 'shared' });
    assert.equal((await second.beta.assistants.retrieve(assistant.id)).name, 'shared');
  });
});
