/**
 * LiteLLM's assistants functions in TypeScript: every example of the README's translation of
 * LiteLLM's page run by node as written (the in-process engine: no server, no port), and again with
 * `api_base`/`api_key` added against a real listening server; Azure's path, header and api-version;
 * errors as AssistantsAPIError; runThread's polling and a stream's final run.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { assistdEnv } from './helpers/cli.js';
import { startFakeModel, type FakeModel } from './helpers/fake-model.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { tempDir } from './helpers/storage.js';
import {
  AssistantsAPIError,
  closeLocal,
  configureLocal,
  createAssistants,
  createThread,
  deleteAssistant,
  getAssistants,
  getThread,
  runThread,
  runThreadStream,
} from '../src/index.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const ENTRY = pathToFileURL(join(ROOT, 'dist', 'src', 'index.js')).href;
const ANSWER = 'Doing well, thanks for asking.';

/** The README's translation of LiteLLM's page: each `#### heading` with its js block, in order. */
function examples(): { heading: string; code: string }[] {
  const start = README.indexOf("\n## LiteLLM's assistants functions in TypeScript\n");
  assert.ok(start >= 0, 'the README has the LiteLLM functions section');
  const end = README.indexOf('\n## ', start + 5);
  const section = README.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/\n#### (.+)\n[\s\S]*?```js\n([\s\S]*?)```/g)].map((match) => ({ heading: match[1]!, code: match[2]! }));
}

/** A preload that fails the process if anything in it listens on a port. */
const NO_LISTEN = `data:text/javascript,${encodeURIComponent(
  "import net from 'node:net'; net.Server.prototype.listen = function () { throw new Error('the in-process mode opened a port'); };",
)}`;

let fake: FakeModel;
const cleanup: string[] = [];
before(async () => {
  fake = await startFakeModel();
  fake.defaultTurn = { text: ANSWER };
});
after(async () => {
  await closeLocal();
  await fake?.close();
  for (const path of cleanup) rmSync(path, { recursive: true, force: true });
});

async function runExample(code: string, name: string, env: NodeJS.ProcessEnv, cwd: string): Promise<string> {
  const file = join(ROOT, 'dist', `litellm-example-${process.pid}-${name}.mjs`);
  cleanup.push(file);
  writeFileSync(file, code.replaceAll('from "assistd"', `from ${JSON.stringify(ENTRY)}`));
  const { stdout } = await run(process.execPath, ['--import', NO_LISTEN, file], { env, cwd, timeout: 90_000 });
  return stdout;
}

function checkOutput(heading: string, stdout: string) {
  if (heading === 'Create an Assistant') assert.match(stdout, /^asst_\w+\n$/);
  else if (heading === 'Get the Assistant') assert.ok(Number(stdout.trim()) >= 1, stdout);
  else if (heading === 'Create a Thread') assert.match(stdout, /^thread_\w+\n$/);
  else if (heading === 'Add Messages to the Thread') assert.match(stdout, /^thread_\w+ msg_\w+\n$/);
  else if (heading === 'Run the Assistant on the Thread') assert.equal(stdout, `run_thread: completed\n${ANSWER}\n`);
  else if (heading === 'Streaming') {
    const lines = stdout.trim().split('\n');
    assert.equal(lines[0], 'chunk: thread.run.created');
    assert.ok(lines.includes('chunk: thread.message.delta'), stdout);
    assert.equal(lines.at(-2), 'chunk: thread.run.completed');
    assert.equal(lines.at(-1), 'completed');
  } else assert.fail(`no check for the example '${heading}'`);
}

describe("the README's LiteLLM examples, run as written", () => {
  test('every example of the page is there, in its order', () => {
    assert.deepEqual(
      examples().map((example) => example.heading),
      ['Create an Assistant', 'Get the Assistant', 'Create a Thread', 'Add Messages to the Thread', 'Run the Assistant on the Thread', 'Streaming'],
    );
  });

  test('in-process: each runs with no server and no port, on the embedded store, its model from OPENAI_BASE_URL', async () => {
    const cwd = tempDir('litellm-local');
    cleanup.push(cwd);
    const env = assistdEnv({ OPENAI_BASE_URL: fake.url });
    const seen = fake.requests.length;
    for (const [index, example] of examples().entries()) {
      const stdout = await runExample(example.code, `local-${index}`, env, cwd);
      checkOutput(example.heading, stdout);
    }
    assert.ok(existsSync(join(cwd, '.assistd', 'PG_VERSION')), 'the embedded store is ./.assistd');
    const calls = fake.requests.slice(seen).filter((request) => request.path.endsWith('/chat/completions'));
    assert.equal(calls.length, 2, 'the polled run and the streamed run each asked the model once');
    // The example's OPENAI_API_KEY is the model key in this mode.
    assert.equal(calls[0]!.headers.authorization, 'Bearer sk-..');
  });

  test('remote: with api_base and api_key added, each runs against a listening server, where the objects live', async () => {
    const server = await startTestServer({ modelUrl: fake.url });
    const cwd = tempDir('litellm-remote');
    cleanup.push(cwd);
    try {
      const env = assistdEnv({});
      const remote = `custom_llm_provider: "openai", api_base: ${JSON.stringify(`${server.url}/v1`)}, api_key: ${JSON.stringify(server.apiKey)}`;
      for (const [index, example] of examples().entries()) {
        const code = example.code.replaceAll('custom_llm_provider: "openai"', remote);
        assert.notEqual(code, example.code);
        checkOutput(example.heading, await runExample(code, `remote-${index}`, env, cwd));
      }
      assert.equal(existsSync(join(cwd, '.assistd')), false, 'no embedded store in remote mode');
      const tutors = await server.client.beta.assistants.list();
      assert.ok(tutors.data.some((assistant) => assistant.name === 'Math Tutor'));
    } finally {
      await server.close();
    }
  });
});

describe('the functions, called from this process', () => {
  test('in-process: errors are AssistantsAPIError with the API status and fields; runThread stops at requires_action; deleteAssistant', async () => {
    const dataDir = tempDir('litellm-direct');
    cleanup.push(dataDir);
    process.env.OPENAI_BASE_URL = fake.url;
    try {
      await configureLocal({ dataDir });
      const error = await getThread({ thread_id: 'thread_missing' }).then(() => null, (caught: unknown) => caught);
      assert.ok(error instanceof AssistantsAPIError);
      assert.equal(error.status, 404);
      assert.equal(error.type, 'invalid_request_error');
      const invalid = await createAssistants({ model: '' }).then(() => null, (caught: unknown) => caught);
      assert.ok(invalid instanceof AssistantsAPIError && invalid.status === 400, String(invalid));

      const assistant = await createAssistants({
        model: 'gpt-4o',
        tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }],
      });
      const thread = await createThread({ messages: [{ role: 'user', content: 'look it up' }] });
      fake.enqueue({ toolCalls: [{ name: 'lookup', arguments: '{}' }] });
      const waiting = await runThread({ thread_id: thread.id, assistant_id: assistant.id });
      assert.equal(waiting.status, 'requires_action');
      assert.equal(waiting.required_action?.submit_tool_outputs.tool_calls[0]?.function.name, 'lookup');
      assert.deepEqual(await deleteAssistant({ assistant_id: assistant.id }), { id: assistant.id, object: 'assistant.deleted', deleted: true });
      assert.equal((await getAssistants()).data.some((item) => item.id === assistant.id), false);
    } finally {
      delete process.env.OPENAI_BASE_URL;
      await closeLocal();
    }
  });

  test('a stream: finalRun and finalMessages without iterating; an error answer before the stream is thrown', async () => {
    const server = await startTestServer({ modelUrl: fake.url });
    try {
      const connection = { api_base: `${server.url}/v1`, api_key: server.apiKey };
      const assistant = await createAssistants({ ...connection, model: 'gpt-4o' });
      const thread = await createThread({ ...connection, messages: [{ role: 'user', content: 'hi' }] });
      const stream = await runThreadStream({ ...connection, thread_id: thread.id, assistant_id: assistant.id });
      assert.equal((await stream.finalRun()).status, 'completed');
      const [message] = await stream.finalMessages();
      assert.equal((message?.content[0] as { text: { value: string } }).text.value, ANSWER);
      await assert.rejects(runThreadStream({ ...connection, thread_id: thread.id, assistant_id: 'asst_missing' }), (error: unknown) => error instanceof AssistantsAPIError && error.status === 404);
      await assert.rejects(getAssistants({ ...connection, api_key: 'sk-wrong' }), (error: unknown) => error instanceof AssistantsAPIError && error.status === 401);
    } finally {
      await server.close();
    }
  });

  test('azure: {api_base}/openai/..., the api-key header and api-version (default 2024-05-01-preview)', async () => {
    const seen: { url: string; headers: IncomingMessage['headers'] }[] = [];
    const upstream = createServer((request, response) => {
      seen.push({ url: request.url ?? '', headers: request.headers });
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [], first_id: null, last_id: null, has_more: false }));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    try {
      await getAssistants({ custom_llm_provider: 'azure', api_base: base, api_key: 'azure-key', limit: 5 });
      await getAssistants({ custom_llm_provider: 'azure', api_base: base, api_key: 'azure-key', api_version: '2025-01-01-preview' });
      assert.equal(seen[0]!.url, '/openai/assistants?api-version=2024-05-01-preview&limit=5');
      assert.equal(seen[0]!.headers['api-key'], 'azure-key');
      assert.equal(seen[0]!.headers.authorization, undefined);
      assert.equal(seen[0]!.headers['openai-beta'], 'assistants=v2');
      assert.equal(seen[1]!.url, '/openai/assistants?api-version=2025-01-01-preview');
      await assert.rejects(getAssistants({ custom_llm_provider: 'azure' }), /needs api_base/);
    } finally {
      await new Promise((resolve) => upstream.close(resolve));
    }
  });
});
