/**
 * Passthrough (`assistant_settings`): a second assistd is the upstream (its own master key, a
 * scripted fake model behind it), and a passthrough assistd in front of it with a different key.
 * The official `openai` SDK talks to the proxy; objects are read back straight from the upstream,
 * and the upstream's HTTP server records every request it gets (headers included). Small
 * recording HTTP servers stand in for upstreams where the test needs to watch bytes arrive, hang,
 * or see Azure's layout.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, existsSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { AZURE_ASSISTANTS_API_VERSION } from '../src/http/passthrough.js';
import { assistdEnv, CliProcess, cleanUpCliProcesses } from './helpers/cli.js';
import { startFakeModel, type FakeModel, type FakeTurn } from './helpers/fake-model.js';
import { taggedRuns, waitFor, withTimeout } from './helpers/harness.js';
import { startTestPassthrough, startTestServer, type TestPassthrough, type TestServer } from './helpers/server.js';
import { tempDir } from './helpers/storage.js';

type Json = any;

const UPSTREAM_KEY = 'sk-upstream-master-key-0123';
const PROXY_KEY = 'sk-proxy-client-key-4567';

const { newTag, tagOf } = taggedRuns('P');
const scripts = new Map<string, FakeTurn[]>();
const script = (tag: string, ...turns: FakeTurn[]) => scripts.set(tag, [...(scripts.get(tag) ?? []), ...turns]);

let fake: FakeModel;
let upstream: TestServer;
let proxy: TestPassthrough;
let client: OpenAI;
/** Every request the upstream assistd received, as its HTTP server saw it. */
const seen: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];
const toStop: { close(): Promise<void> }[] = [];

before(async () => {
  fake = await startFakeModel();
  fake.onRequest((request) => {
    const tag = tagOf(request.body);
    return tag ? scripts.get(tag)?.shift() : undefined;
  });
  upstream = await startTestServer({ modelUrl: fake.url, masterKey: UPSTREAM_KEY });
  upstream.app.server.prependListener('request', (request: IncomingMessage) => {
    seen.push({ method: request.method!, url: request.url!, headers: { ...request.headers } });
  });
  proxy = await startTestPassthrough({ custom_llm_provider: 'openai', litellm_params: { api_base: `${upstream.url}/v1`, api_key: UPSTREAM_KEY } }, PROXY_KEY);
  client = proxy.client;
});

after(async () => {
  await cleanUpCliProcesses();
  for (const server of toStop) await server.close();
  await proxy?.close();
  await upstream?.close();
  await fake?.close();
});

// ---------------------------------------------------------------- helpers

interface Raw {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: Json;
}

/** node:http, not fetch: fetch refuses hop-by-hop headers and normalizes `..` away. */
function raw(base: string, method: string, path: string, options: { headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const request = http.request(`${base}${path}`, { method, headers: options.headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: response.statusCode!, headers: response.headers, text, json });
      });
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(options.body);
  });
}

const proxyAuth = { authorization: `Bearer ${PROXY_KEY}` };
const upstreamAuth = { authorization: `Bearer ${UPSTREAM_KEY}` };
const plain = (value: unknown) => JSON.parse(JSON.stringify(value));

/** Event names of an SSE body, in order. */
function eventNames(text: string): string[] {
  return text
    .split('\n\n')
    .filter((frame) => frame.trim() !== '')
    .map((frame) => /^event: (.+)$/m.exec(frame)?.[1] ?? '?');
}

function eventData(text: string, name: string): Json {
  const frame = text.split('\n\n').find((candidate) => candidate.startsWith(`event: ${name}\n`));
  return frame ? JSON.parse(frame.slice(frame.indexOf('\ndata: ') + 7)) : undefined;
}

interface RecordedCall {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** Bytes of the body received so far (live). */
  bytes: number;
  ended: boolean;
  closed: boolean;
  body: Buffer;
}

/** A plain HTTP server standing in for an upstream: records each request; `answer` decides the response. */
async function startRecorder(answer?: (call: RecordedCall, response: ServerResponse) => void) {
  const calls: RecordedCall[] = [];
  const server = http.createServer((request, response) => {
    const call: RecordedCall = { method: request.method!, url: request.url!, headers: request.headers, bytes: 0, ended: false, closed: false, body: Buffer.alloc(0) };
    calls.push(call);
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      call.bytes += chunk.length;
    });
    request.on('end', () => {
      call.ended = true;
      call.body = Buffer.concat(chunks);
    });
    response.on('close', () => (call.closed = true));
    if (answer) return answer(call, response);
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ object: 'list', data: [], first_id: null, last_id: null, has_more: false }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const recorder = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  toStop.push(recorder);
  return recorder;
}

async function passthroughTo(settings: Record<string, unknown>): Promise<TestPassthrough> {
  const server = await startTestPassthrough(settings, PROXY_KEY);
  toStop.push(server);
  return server;
}

// ---------------------------------------------------------------- against a real upstream assistd

describe('passthrough to an upstream assistd (openai 7.x against the proxy)', () => {
  test('objects created, changed and deleted through the proxy live on the upstream; query strings and the unprefixed routes pass', async () => {
    const assistant = await client.beta.assistants.create({ model: 'gpt-4o', name: 'via proxy', metadata: { made: 'through the proxy' } });
    assert.deepEqual(plain(await upstream.client.beta.assistants.retrieve(assistant.id)), plain(assistant));

    const thread = await client.beta.threads.create({ metadata: { side: 'proxy' } });
    for (const text of ['first', 'second', 'third']) await client.beta.threads.messages.create(thread.id, { role: 'user', content: text });
    const direct = await upstream.client.beta.threads.messages.list(thread.id, { order: 'asc' });
    assert.deepEqual(direct.data.map((message: Json) => message.content[0].text.value), ['first', 'second', 'third']);

    // The query string arrives upstream byte for byte; the answer comes back byte for byte.
    const path = `/threads/${thread.id}/messages?limit=2&order=asc`;
    const through = await raw(proxy.url, 'GET', `/v1${path}`, { headers: proxyAuth });
    assert.equal(seen.at(-1)!.url, `/v1${path}`);
    const straight = await raw(upstream.url, 'GET', `/v1${path}`, { headers: upstreamAuth });
    assert.equal(through.status, 200);
    assert.deepEqual(through.json.data.map((message: Json) => message.content[0].text.value), ['first', 'second']);
    assert.equal(through.json.has_more, true);
    assert.equal(through.text, straight.text);

    // Without the /v1 prefix, as LiteLLM serves it: the upstream still gets its api_base path.
    const unprefixed = await raw(proxy.url, 'GET', `/assistants/${assistant.id}`, { headers: proxyAuth });
    assert.equal(unprefixed.status, 200);
    assert.equal(unprefixed.json.id, assistant.id);
    assert.equal(seen.at(-1)!.url, `/v1/assistants/${assistant.id}`);

    await client.beta.assistants.update(assistant.id, { name: 'renamed via proxy' });
    assert.equal((await upstream.client.beta.assistants.retrieve(assistant.id)).name, 'renamed via proxy');
    const deleted = await client.beta.assistants.delete(assistant.id);
    assert.equal(deleted.deleted, true);
    await assert.rejects(upstream.client.beta.assistants.retrieve(assistant.id), (error: Json) => error.status === 404);
  });

  test('a wrong or missing client key gets 401 from the proxy, and the upstream is never asked', async () => {
    const before = seen.length;
    const wrong = await raw(proxy.url, 'GET', '/v1/assistants', { headers: { authorization: 'Bearer sk-wrong' } });
    assert.equal(wrong.status, 401);
    assert.deepEqual(wrong.json, { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    const missing = await raw(proxy.url, 'GET', '/assistants');
    assert.equal(missing.status, 401);
    assert.match(missing.json.error.message, /You didn't provide an API key/);
    // The upstream's key is not the proxy's: a client holding it gets nowhere here either.
    assert.equal((await raw(proxy.url, 'GET', '/v1/assistants', { headers: upstreamAuth })).status, 401);
    assert.equal((await raw(proxy.url, 'GET', '/v1/assistants', { headers: { 'api-key': 'sk-wrong' } })).status, 401);
    await assert.rejects(new OpenAI({ apiKey: 'sk-wrong', baseURL: `${proxy.url}/v1`, maxRetries: 0 }).beta.assistants.list(), OpenAI.AuthenticationError);
    assert.equal(seen.length, before, 'no request reached the upstream');
  });

  test("request headers: OpenAI-Beta, content-type, accept, Idempotency-Key and the rest arrive; hop-by-hop ones, the client's key and account do not", async () => {
    const response = await raw(proxy.url, 'POST', '/v1/threads', {
      headers: {
        authorization: `Bearer ${PROXY_KEY}`,
        'api-key': PROXY_KEY,
        'openai-beta': 'assistants=v2',
        'content-type': 'application/json',
        accept: 'application/json',
        'idempotency-key': 'idem-passthrough-1',
        'x-stainless-retry-count': '0',
        'user-agent': 'passthrough-test/1.0',
        'x-custom-header': 'kept',
        'openai-organization': 'org-of-the-client',
        'openai-project': 'proj-of-the-client',
        'proxy-authorization': 'Basic c2VjcmV0',
        connection: 'keep-alive, x-hop-secret',
        'x-hop-secret': 'for this connection only',
        te: 'trailers',
      },
      body: JSON.stringify({ metadata: { headers: 'test' } }),
    });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.object, 'thread');
    const { headers } = seen.at(-1)!;
    assert.equal(headers.authorization, `Bearer ${UPSTREAM_KEY}`);
    assert.equal(headers['openai-beta'], 'assistants=v2');
    assert.equal(headers['content-type'], 'application/json');
    assert.equal(headers.accept, 'application/json');
    assert.equal(headers['idempotency-key'], 'idem-passthrough-1');
    assert.equal(headers['x-stainless-retry-count'], '0');
    assert.equal(headers['user-agent'], 'passthrough-test/1.0');
    assert.equal(headers['x-custom-header'], 'kept');
    assert.equal(headers['content-length'], String(Buffer.byteLength(JSON.stringify({ metadata: { headers: 'test' } }))));
    assert.equal(headers.host, new URL(upstream.url).host);
    for (const name of ['api-key', 'openai-organization', 'openai-project', 'proxy-authorization', 'x-hop-secret', 'te']) {
      assert.equal(headers[name], undefined, `${name} is not forwarded`);
    }
    // The response's own headers come back (the upstream's request id among them).
    assert.match(String(response.headers['x-request-id']), /^req_/);
    assert.equal(response.headers['content-type'], 'application/json; charset=utf-8');
  });

  test('createAndPoll through the proxy: the run executes upstream and every poll is forwarded', async () => {
    const tag = newTag();
    script(tag, { text: 'Polled through the proxy.' });
    const assistant = await client.beta.assistants.create({ model: 'gpt-4o', instructions: 'Be brief.' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: `Hello ${tag}` }] });
    const run = await withTimeout(client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'createAndPoll');
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    assert.deepEqual(plain(await upstream.client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id })), plain(run));
    const messages = await client.beta.threads.messages.list(thread.id);
    assert.equal((messages.data[0] as Json).content[0].text.value, 'Polled through the proxy.');
    assert.ok(seen.some((request) => request.method === 'GET' && request.url === `/v1/threads/${thread.id}/runs/${run.id}`), 'the poll reached the upstream');
    const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    assert.equal(steps.data[0]?.type, 'message_creation');
  });

  test('a streamed run: runs.stream() / finalRun() through the proxy; the raw event stream is the one the upstream sends', async () => {
    const assistant = await client.beta.assistants.create({ model: 'gpt-4o' });
    const tag = newTag();
    script(tag, { chunks: ['Streamed', ' through', ' the', ' proxy.'] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: `Stream ${tag}` }] });
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    const events: string[] = [];
    const deltas: string[] = [];
    stream.on('event', (event) => events.push(event.event));
    stream.on('textDelta', (delta) => deltas.push(delta.value ?? ''));
    const finalRun = await withTimeout(stream.finalRun(), 'finalRun');
    assert.equal(finalRun.status, 'completed');
    assert.deepEqual(deltas, ['Streamed', ' through', ' the', ' proxy.'], 'one delta per upstream chunk');
    assert.deepEqual(plain(finalRun), plain(await upstream.client.beta.threads.runs.retrieve(finalRun.id, { thread_id: thread.id })));

    // Raw: the same script once through the proxy and once straight at the upstream.
    const sse = async (base: string, auth: Record<string, string>) => {
      const runTag = newTag();
      script(runTag, { chunks: ['One', ' two', ' three.'] });
      const response = await raw(base, 'POST', '/v1/threads/runs', {
        headers: { ...auth, 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ assistant_id: assistant.id, stream: true, thread: { messages: [{ role: 'user', content: `Again ${runTag}` }] } }),
      });
      assert.equal(response.status, 200, response.text);
      assert.equal(response.headers['content-type'], 'text/event-stream; charset=utf-8');
      return response.text;
    };
    const through = await sse(proxy.url, proxyAuth);
    const straight = await sse(upstream.url, upstreamAuth);
    assert.deepEqual(eventNames(through), eventNames(straight));
    assert.deepEqual(eventNames(through).slice(0, 3), ['thread.created', 'thread.run.created', 'thread.run.queued']);
    assert.ok(through.endsWith('event: thread.run.completed\ndata: ' + JSON.stringify(eventData(through, 'thread.run.completed')) + '\n\nevent: done\ndata: [DONE]\n\n'));
    const completed = eventData(through, 'thread.run.completed');
    assert.deepEqual(completed, plain(await upstream.client.beta.threads.runs.retrieve(completed.id, { thread_id: completed.thread_id })));
  });

  test('function calling: requires_action → submitToolOutputsAndPoll, and requires_action → submitToolOutputsStream', async () => {
    const assistant = await client.beta.assistants.create({
      model: 'gpt-4o',
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
    });
    const polledTag = newTag();
    script(polledTag, { toolCalls: [{ id: 'call_polled', name: 'get_weather', arguments: '{"city":"Lisbon"}' }] }, { text: 'Sunny in Lisbon.' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: `Weather? ${polledTag}` }] });
    const paused = await withTimeout(client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'createAndPoll');
    assert.equal(paused.status, 'requires_action');
    assert.equal(paused.required_action?.submit_tool_outputs.tool_calls[0]?.id, 'call_polled');
    const done = await withTimeout(
      client.beta.threads.runs.submitToolOutputsAndPoll(paused.id, { thread_id: thread.id, tool_outputs: [{ tool_call_id: 'call_polled', output: '24C, sunny' }] }),
      'submitToolOutputsAndPoll',
    );
    assert.equal(done.status, 'completed', JSON.stringify(done.last_error));
    const second = fake.requests.filter((request) => tagOf(request.body) === polledTag).at(-1)!;
    assert.ok(second.body.messages.some((message: Json) => message.role === 'tool' && message.tool_call_id === 'call_polled' && message.content === '24C, sunny'));

    const streamedTag = newTag();
    script(streamedTag, { toolCalls: [{ id: 'call_streamed', name: 'get_weather', arguments: '{"city":"Porto"}' }] }, { chunks: ['Rain', ' in', ' Porto.'] });
    const streamThread = await client.beta.threads.create({ messages: [{ role: 'user', content: `Porto? ${streamedTag}` }] });
    const stream = client.beta.threads.runs.stream(streamThread.id, { assistant_id: assistant.id });
    const waiting = await withTimeout(stream.finalRun(), 'finalRun (requires_action)');
    assert.equal(waiting.status, 'requires_action');
    const resumed = client.beta.threads.runs.submitToolOutputsStream(waiting.id, {
      thread_id: streamThread.id,
      tool_outputs: [{ tool_call_id: 'call_streamed', output: '12C, rain' }],
    });
    const deltas: string[] = [];
    resumed.on('textDelta', (delta) => deltas.push(delta.value ?? ''));
    const finished = await withTimeout(resumed.finalRun(), 'submitToolOutputsStream finalRun');
    assert.equal(finished.status, 'completed');
    assert.equal(deltas.join(''), 'Rain in Porto.');
    assert.equal((await upstream.client.beta.threads.runs.retrieve(finished.id, { thread_id: streamThread.id })).status, 'completed');
  });

  test('a multipart file upload lands upstream whole; /content comes back byte for byte', async () => {
    // A few MB, so the body crosses the proxy in many chunks.
    const content = Buffer.from(Array.from({ length: 60_000 }, (_, index) => `line ${index}: the quick brown fox\n`).join(''));
    const file = await client.files.create({ file: await toFile(content, 'notes.txt'), purpose: 'assistants' });
    assert.equal(file.bytes, content.length);
    const upload = seen.findLast((request) => request.method === 'POST' && request.url === '/v1/files')!;
    assert.match(String(upload.headers['content-type']), /^multipart\/form-data; boundary=/);
    const stored = await upstream.client.files.retrieve(file.id);
    assert.deepEqual(plain(stored), plain(file));
    const through = Buffer.from(await (await client.files.content(file.id)).arrayBuffer());
    assert.ok(through.equals(content), 'the content through the proxy is the uploaded bytes');
    const listed = await client.files.list();
    assert.ok(listed.data.some((entry) => entry.id === file.id));
    await client.files.delete(file.id);
    await assert.rejects(upstream.client.files.retrieve(file.id), (error: Json) => error.status === 404);
  });

  test("an upstream error comes through with its status and body unchanged (404, 400)", async () => {
    await assert.rejects(client.beta.assistants.retrieve('asst_doesnotexist'), (error: Json) => error instanceof OpenAI.NotFoundError && error.status === 404);
    for (const [method, path, body] of [
      ['GET', '/v1/assistants/asst_doesnotexist', undefined],
      ['GET', '/v1/threads/thread_missing/runs/run_missing', undefined],
      ['POST', '/v1/assistants', '{}'],
    ] as const) {
      const headers: Record<string, string> = body ? { 'content-type': 'application/json' } : {};
      const through = await raw(proxy.url, method, path, { headers: { ...proxyAuth, ...headers }, body });
      const straight = await raw(upstream.url, method, path, { headers: { ...upstreamAuth, ...headers }, body });
      assert.ok(through.status >= 400, `${method} ${path}: ${through.status}`);
      assert.equal(through.status, straight.status, `${method} ${path}`);
      assert.equal(through.text, straight.text, `${method} ${path}`);
      assert.equal(through.headers['content-type'], straight.headers['content-type']);
    }
  });

  test('the forwarded routes are the native ones; other paths, and segments that would leave the route, get the proxy\'s 404', async () => {
    const pathsOf = async (base: string) => {
      const document = (await raw(base, 'GET', '/openapi.json')).json;
      return Object.fromEntries(Object.entries(document.paths as Record<string, object>).map(([path, item]) => [path, Object.keys(item).sort()]));
    };
    const proxied = await pathsOf(proxy.url);
    assert.ok(Object.keys(proxied).length >= 20);
    assert.deepEqual(proxied, await pathsOf(upstream.url));

    const before = seen.length;
    for (const path of ['/v1/chat/completions', '/v1/assistants/%2e%2e', '/v1/files/..%2Fchat/content', '/v1/threads/abc%2F..%2F..%2Fmodels']) {
      const response = await raw(proxy.url, path.includes('chat/completions') ? 'POST' : 'GET', path, { headers: proxyAuth });
      assert.equal(response.status, 404, path);
      assert.equal(response.json.error.type, 'invalid_request_error', path);
      assert.match(response.json.error.message, /^Invalid URL/, path);
    }
    assert.equal(seen.length, before, 'none of them reached the upstream');
    assert.deepEqual((await raw(proxy.url, 'GET', '/health')).json, { status: 'ok', mode: 'passthrough' });
  });

  test('the first event of a slow stream reaches the client while the upstream is still streaming', async () => {
    const assistant = await client.beta.assistants.create({ model: 'gpt-4o' });
    const tag = newTag();
    const chunks = ['one', ' two', ' three', ' four', ' five', ' six'];
    script(tag, { chunks, chunkDelayMs: 250 });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: `Slowly ${tag}` }] });
    const started = Date.now();
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    let firstDelta: { afterMs: number; modelChunksSent: number; runStatus: string } | undefined;
    stream.on('textDelta', () => {
      if (firstDelta) return;
      const request = fake.requests.find((candidate) => tagOf(candidate.body) === tag)!;
      firstDelta = { afterMs: Date.now() - started, modelChunksSent: request.chunksSent, runStatus: '' };
    });
    const finalRun = await withTimeout(stream.finalRun(), 'finalRun');
    const totalMs = Date.now() - started;
    assert.equal(finalRun.status, 'completed');
    assert.ok(firstDelta, 'a delta arrived');
    // The fake writes role + 6 text chunks + finish (+ usage) + [DONE]; at the first delta it had sent only the first few.
    assert.ok(firstDelta.modelChunksSent <= 3, `model chunks sent when the client saw the first delta: ${firstDelta.modelChunksSent}`);
    assert.ok(totalMs - firstDelta.afterMs >= 800, `first delta at ${firstDelta.afterMs} ms, stream ended at ${totalMs} ms`);
  });

  test("across every request of this file, the upstream saw its own key and never the client's", () => {
    assert.ok(seen.length > 30, `requests seen: ${seen.length}`);
    // (The test's own unauthenticated GET /openapi.json at the upstream aside.)
    for (const request of seen.filter((entry) => entry.url !== '/openapi.json')) {
      assert.equal(request.headers.authorization, `Bearer ${UPSTREAM_KEY}`, `${request.method} ${request.url}`);
      assert.ok(!JSON.stringify(request.headers).includes(PROXY_KEY), `${request.method} ${request.url} carries no client key`);
    }
  });
});

// ---------------------------------------------------------------- against recording upstreams

describe('passthrough against recording upstreams', () => {
  test('azure: {api_base}/openai/… paths, the api-key header (no Authorization), api-version (default, configured, or the client\'s)', async () => {
    const recorder = await startRecorder();
    const byDefault = await passthroughTo({ custom_llm_provider: 'azure', litellm_params: { api_base: recorder.url, api_key: 'azure-secret-key' } });
    const list = await byDefault.client.beta.assistants.list({ limit: 2 });
    assert.deepEqual(list.data, []);
    let call = recorder.calls.at(-1)!;
    assert.equal(call.url, `/openai/assistants?limit=2&api-version=${AZURE_ASSISTANTS_API_VERSION}`);
    assert.equal(call.headers['api-key'], 'azure-secret-key');
    assert.equal(call.headers.authorization, undefined);
    assert.equal(call.headers['openai-beta'], 'assistants=v2');
    // Without a configured version, the client's own stays.
    await raw(byDefault.url, 'GET', '/files?api-version=2024-05-01-preview&purpose=assistants', { headers: proxyAuth });
    assert.equal(recorder.calls.at(-1)!.url, '/openai/files?api-version=2024-05-01-preview&purpose=assistants');

    const configured = await passthroughTo({
      custom_llm_provider: 'azure',
      litellm_params: { api_base: `${recorder.url}/openai/`, api_key: 'azure-secret-key', api_version: '2024-07-01-preview' },
    });
    const response = await raw(configured.url, 'POST', '/threads/thread_1/messages?api-version=2020-01-01&x=1', {
      headers: { ...proxyAuth, 'content-type': 'application/json' },
      body: '{"role":"user","content":"hi"}',
    });
    assert.equal(response.status, 200);
    call = recorder.calls.at(-1)!;
    assert.equal(call.url, '/openai/threads/thread_1/messages?x=1&api-version=2024-07-01-preview');
    assert.equal(call.method, 'POST');
    assert.equal(call.body.toString(), '{"role":"user","content":"hi"}');
    assert.ok(!JSON.stringify(recorder.calls.map((entry) => entry.headers)).includes(PROXY_KEY));
  });

  test('a request body streams to the upstream as it arrives (the upstream has the first bytes before the client sent the rest)', async () => {
    const recorder = await startRecorder();
    const streaming = await passthroughTo({ litellm_params: { api_base: `${recorder.url}/v1`, api_key: 'sk-up' } });
    const boundary = 'passthroughboundary';
    const head = Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nassistants\r\n--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`);
    const part = Buffer.alloc(256 * 1024, 7);
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const upload = http.request(`${streaming.url}/v1/files`, {
      method: 'POST',
      agent: false,
      headers: { ...proxyAuth, 'content-type': `multipart/form-data; boundary=${boundary}`, 'transfer-encoding': 'chunked' },
    });
    const answered = new Promise<Raw>((resolve, reject) => {
      upload.on('response', (response) => {
        let text = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, text, json: JSON.parse(text) }));
      });
      upload.on('error', reject);
    });
    upload.write(head);
    upload.write(part);
    await waitFor('the first quarter MB upstream', () => (recorder.calls[0]?.bytes ?? 0) >= head.length + part.length, 5_000);
    const call = recorder.calls[0]!;
    assert.equal(call.ended, false, 'the upstream is still receiving');
    for (let index = 0; index < 3; index++) upload.write(part);
    upload.end(tail);
    const response = await withTimeout(answered, 'upload answer');
    assert.equal(response.status, 200);
    assert.equal(call.bytes, head.length + 4 * part.length + tail.length);
    assert.equal(call.headers['content-type'], `multipart/form-data; boundary=${boundary}`);
    assert.equal(call.headers['transfer-encoding'], 'chunked');
    assert.equal(call.headers.authorization, 'Bearer sk-up');
  });

  test('an unreachable upstream is a 502, a silent one a 504, in OpenAI\'s error shape', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const unreachable = await passthroughTo({ litellm_params: { api_base: `http://127.0.0.1:${closedPort}/v1`, api_key: 'sk-up' } });
    const refused = await raw(unreachable.url, 'GET', '/v1/assistants', { headers: proxyAuth });
    assert.equal(refused.status, 502);
    assert.deepEqual(refused.json, {
      error: {
        message: 'The upstream Assistants API could not be reached (ECONNREFUSED). Retry the request in a moment.',
        type: 'server_error',
        param: null,
        code: 'upstream_unreachable',
      },
    });
    await assert.rejects(unreachable.client.beta.threads.create(), (error: Json) => error instanceof OpenAI.APIError && error.status === 502);

    const silent = await startRecorder(() => {}); // never answers
    const slow = await passthroughTo({ litellm_params: { api_base: `${silent.url}/v1`, api_key: 'sk-up', timeout: 0.3 } });
    const started = Date.now();
    const timedOut = await raw(slow.url, 'POST', '/v1/threads', { headers: { ...proxyAuth, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(timedOut.status, 504);
    assert.deepEqual(timedOut.json, {
      error: { message: 'The upstream Assistants API did not answer within 0.3 seconds.', type: 'server_error', param: null, code: 'upstream_timeout' },
    });
    assert.ok(Date.now() - started < 5_000);
    await waitFor('the timed-out upstream request to be closed', () => silent.calls[0]?.closed, 5_000);
  });

  test('a client that goes away aborts its upstream request (before an answer, and mid-stream)', async () => {
    const recorder = await startRecorder((call, response) => {
      if (call.url.includes('hang')) return; // never answers
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write('event: thread.run.created\ndata: {}\n\n');
      // …and then goes quiet, as a run waiting on a slow model does
    });
    const forwarding = await passthroughTo({ litellm_params: { api_base: `${recorder.url}/v1`, api_key: 'sk-up' } });

    const waiting = new AbortController();
    const pending = fetch(`${forwarding.url}/v1/threads/thread_hang/runs/run_1`, { headers: proxyAuth, signal: waiting.signal });
    await waitFor('the upstream request', () => recorder.calls.length === 1);
    waiting.abort();
    await assert.rejects(pending);
    await waitFor('the upstream request to be aborted', () => recorder.calls[0]!.closed, 5_000);

    const streaming = new AbortController();
    const response = await fetch(`${forwarding.url}/v1/threads/runs`, {
      method: 'POST',
      headers: { ...proxyAuth, 'content-type': 'application/json' },
      body: '{"stream":true}',
      signal: streaming.signal,
    });
    assert.equal(response.headers.get('content-type'), 'text/event-stream');
    const reader = response.body!.getReader();
    const first = await withTimeout(reader.read(), 'first event');
    assert.equal(new TextDecoder().decode(first.value), 'event: thread.run.created\ndata: {}\n\n');
    assert.equal(recorder.calls[1]!.closed, false);
    streaming.abort();
    await waitFor('the upstream stream to be aborted', () => recorder.calls[1]!.closed, 5_000);
  });

  test('start-up lines say passthrough mode and the upstream, redacted; no storage is opened', async () => {
    const dir = tempDir('passthrough-cli');
    toStop.push({ close: async () => (await import('node:fs')).rmSync(dir, { recursive: true, force: true }) });
    const configFile = join(dir, 'config.yaml');
    const dataDir = join(dir, 'data');
    writeFileSync(
      configFile,
      JSON.stringify({
        model_list: [{ model_name: 'gpt-4o', litellm_params: { model: 'openai/gpt-4o' } }],
        general_settings: { master_key: PROXY_KEY },
        assistant_settings: {
          custom_llm_provider: 'azure',
          litellm_params: { api_base: 'https://user:hunter2@my-resource.openai.azure.com/?token=tok-secret', api_key: 'sk-azure-very-secret' },
        },
      }),
    );
    const cli = new CliProcess(['serve', '--port', '0', '--host', '127.0.0.1', '--config', configFile, '--data-dir', dataDir], { env: assistdEnv() });
    await cli.waitFor(/^assistd: passthrough: clients send/m);
    assert.match(
      cli.stdout,
      new RegExp(
        `^assistd: passthrough: every Assistants route is forwarded to azure at https://user:\\*\\*\\*@my-resource\\.openai\\.azure\\.com/openai\\?token=\\*\\*\\* \\(api-version ${AZURE_ASSISTANTS_API_VERSION}, the default\\); nothing is stored or run here`,
        'm',
      ),
      cli.describe(),
    );
    assert.match(cli.stdout, /^assistd: listening on 127\.0\.0\.1 port \d+ \(this machine only\)/m);
    assert.doesNotMatch(cli.stdout, /storage:|model:|file_search:/);
    await cli.waitFor(/model_list is not used in passthrough mode/, 'stderr');
    for (const secret of ['hunter2', 'tok-secret', 'sk-azure-very-secret', PROXY_KEY]) assert.ok(!cli.output.includes(secret), `${secret} is not printed`);
    const exit = await cli.stop();
    assert.equal(exit.code, 0, cli.describe());
    assert.match(cli.stdout, /^assistd: stopped$/m);
    assert.equal(existsSync(dataDir), false, 'no data dir was created');
  });
});
