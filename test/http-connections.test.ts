/**
 * Hostile and broken connections against a real listening server: requests whose headers or body
 * stall get a 408 in OpenAI's shape and lose their connection; oversized headers and malformed HTTP
 * get OpenAI-shaped 431/400s; hundreds of slow clients at once leave the server serving, streamed
 * runs longer than the request timeout included; idle keep-alive connections are closed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startFakeModel, type FakeModel } from './helpers/fake-model.js';
import { http, startTestServer, TEST_KEY, type TestServer } from './helpers/server.js';

type Json = any;

interface RawExchange {
  socket: Socket;
  /** Everything the server wrote, once it closed the connection. */
  closed: Promise<string>;
}

/** A raw TCP connection: what the server answers is collected until it closes the connection. */
function open(port: number): RawExchange {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.setNoDelay(true);
  let received = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    received += chunk;
  });
  socket.on('error', () => {});
  const closed = new Promise<string>((resolve) => socket.once('close', () => resolve(received)));
  return { socket, closed };
}

/** Writes `text` one byte every `intervalMs` until the socket closes. */
function dribble(socket: Socket, text: string, intervalMs: number): void {
  let index = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || !socket.writable || index >= text.length) return clearInterval(timer);
    socket.write(text[index++]!);
  }, intervalMs);
  socket.once('close', () => clearInterval(timer));
}

/** Status and JSON body of a raw HTTP/1.1 response. */
function parseResponse(raw: string): { status: number; headers: string; body: Json } {
  const split = raw.indexOf('\r\n\r\n');
  assert.ok(split > 0, `an HTTP response: ${JSON.stringify(raw.slice(0, 300))}`);
  const head = raw.slice(0, split);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  let body: Json;
  try {
    body = JSON.parse(raw.slice(split + 4));
  } catch {
    assert.fail(`a JSON body: ${JSON.stringify(raw.slice(0, 500))}`);
  }
  return { status, headers: head.toLowerCase(), body };
}

/** Exactly OpenAI's error shape. */
function assertOpenAIError(body: Json, status: number, actualStatus: number, pattern: RegExp) {
  assert.equal(actualStatus, status, JSON.stringify(body));
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(body.error.type, 'invalid_request_error');
  assert.match(body.error.message, pattern);
}

const HEADERS = `POST /v1/assistants HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TEST_KEY}\r\nContent-Type: application/json\r\n`;

const port = (server: TestServer) => Number(new URL(server.url).port);

// Every wait here is bounded by the server's own timeouts; the test timeout only catches a server that has none.
describe('connections', { concurrency: true, timeout: 120_000 }, () => {
describe('connections with short timeouts (headers 1 s, request 2 s, keep-alive 1 s)', { concurrency: true }, () => {
  let fake: FakeModel;
  let server: TestServer;
  before(async () => {
    fake = await startFakeModel();
    server = await startTestServer({
      modelUrl: fake.url,
      config: {
        assistd_settings: { headers_timeout_seconds: 1, request_timeout_seconds: 2, keep_alive_timeout_seconds: 1 },
      },
    });
  });
  after(async () => {
    await server?.close();
    await fake?.close();
  });

  test('a body shorter than its Content-Length → 408 in OpenAI shape, then the connection closes', async () => {
    const { socket, closed } = open(port(server));
    socket.write(`${HEADERS}Content-Length: 100\r\n\r\n{"model":"gpt-4o"}`);
    const response = parseResponse(await closed);
    assertOpenAIError(response.body, 408, response.status, /^The request body did not arrive within 2 seconds/);
    assert.equal(response.body.error.code, 'request_timeout');
    assert.match(response.headers, /connection: close/);
    assert.match(response.headers, /content-type: application\/json/);
  });

  test('headers that never end → 408 naming the headers', async () => {
    const { socket, closed } = open(port(server));
    socket.write('GET /v1/assistants HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const response = parseResponse(await closed);
    assertOpenAIError(response.body, 408, response.status, /^The request headers did not arrive within 1 second\./);
  });

  test('headers dribbled one byte at a time do not keep a connection open: the clock runs from the first byte', async () => {
    const { socket, closed } = open(port(server));
    dribble(socket, `${HEADERS}X-Padding: ${'a'.repeat(200)}\r\n\r\n`, 50);
    const response = parseResponse(await closed);
    assertOpenAIError(response.body, 408, response.status, /^The request headers did not arrive/);
  });

  test('a connection that sends nothing at all is closed too', async () => {
    const { closed } = open(port(server));
    const raw = await closed;
    // Nothing was asked, so there may be nothing to answer; if something is written it is OpenAI's shape.
    if (raw !== '') assertOpenAIError(parseResponse(raw).body, 408, parseResponse(raw).status, /did not arrive/);
  });

  test('an idle keep-alive connection is closed after keep_alive_timeout_seconds', async () => {
    const { socket, closed } = open(port(server));
    socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const raw = await closed;
    assert.match(raw, /^HTTP\/1\.1 200 /);
    assert.match(raw.toLowerCase(), /keep-alive: timeout=1/);
    assert.equal(raw.match(/HTTP\/1\.1 /g)?.length, 1, `one response, nothing unasked for: ${raw}`);
  });

  test('300 slowloris clients and 100 stalled bodies at once: the API still answers, a 4 s streamed run completes, every slow client gets its 408', async () => {
    const slow: Promise<string>[] = [];
    for (let index = 0; index < 300; index++) {
      const { socket, closed } = open(port(server));
      dribble(socket, `${HEADERS}X-Slow: ${'b'.repeat(500)}\r\n\r\n`, 100);
      slow.push(closed);
    }
    for (let index = 0; index < 100; index++) {
      const { socket, closed } = open(port(server));
      socket.write(`${HEADERS}Content-Length: 5000\r\n\r\n{"model":`);
      slow.push(closed);
    }
    // While they hang on: ordinary requests through the SDK, and a streamed run that outlasts the
    // request timeout twice over (a response is never cut by it).
    fake.enqueue({ chunks: ['one ', 'two ', 'three ', 'four ', 'five'], chunkDelayMs: 800 });
    const assistant = await server.client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'count slowly' }] });
    const stream = server.client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    const listed = await server.client.beta.assistants.list({ limit: 5 });
    assert.ok(listed.data.some((item) => item.id === assistant.id));
    const run = await stream.finalRun();
    assert.equal(run.status, 'completed');
    const [message] = await stream.finalMessages();
    assert.equal((message!.content[0] as Json).text.value, 'one two three four five');

    const answers = await Promise.all(slow);
    const statuses = new Map<number, number>();
    for (const raw of answers) {
      const response = parseResponse(raw);
      assertOpenAIError(response.body, 408, response.status, /did not arrive/);
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    }
    assert.deepEqual([...statuses], [[408, 400]]);
  });
});

describe('errors below the routes, in OpenAI shape (default limits)', { concurrency: true }, () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server?.close();
  });

  test('a 100 KB URL → 431 in OpenAI shape', async () => {
    const response = await http(server, 'GET', `/v1/threads/x?${'a'.repeat(100_000)}`);
    assertOpenAIError(response.json, 431, response.status, /^Request header fields too large/);
  });

  test('a 20 KB header → 431 in OpenAI shape', async () => {
    const response = await http(server, 'GET', '/v1/assistants', { headers: { 'x-big': 'a'.repeat(20_000) } });
    assertOpenAIError(response.json, 431, response.status, /^Request header fields too large/);
  });

  test('a malformed request line → 400 in OpenAI shape', async () => {
    const { socket, closed } = open(port(server));
    socket.write('NOT-A-METHOD /v1/assistants HTTP/1.1\r\nHost: x\r\n\r\n');
    const response = parseResponse(await closed);
    assertOpenAIError(response.body, 400, response.status, /^The request is not valid HTTP\/1\.1: /);
  });

  test('an HTTP/1.1 request without a Host header → 400 in OpenAI shape (HTTP/1.0 needs none)', async () => {
    const { socket, closed } = open(port(server));
    socket.write(`GET /v1/assistants HTTP/1.1\r\nAuthorization: Bearer ${TEST_KEY}\r\n\r\n`);
    const response = parseResponse(await closed);
    assertOpenAIError(response.body, 400, response.status, /^The request has no Host header/);
    const old = open(port(server));
    old.socket.write(`GET /v1/assistants HTTP/1.0\r\nAuthorization: Bearer ${TEST_KEY}\r\n\r\n`);
    assert.equal(parseResponse(await old.closed).status, 200);
  });

  test('an Expect header other than 100-continue → 417 in OpenAI shape', async () => {
    const { socket, closed } = open(port(server));
    socket.write(`GET /v1/assistants HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nConnection: close\r\n\r\n`);
    const response = parseResponse(await closed);
    assertOpenAIError(response.body, 417, response.status, /^Expectation failed/);
  });

  test('Content-Length and Transfer-Encoding together → 400 in OpenAI shape', async () => {
    const { socket, closed } = open(port(server));
    socket.write(`${HEADERS}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}`);
    const response = parseResponse(await closed);
    assertOpenAIError(response.body, 400, response.status, /^The request is not valid HTTP\/1\.1: /);
  });

  test('with the default timeouts, the stalled body of the quick check (Content-Length 100, 18 bytes sent) gets its 408', async () => {
    const { socket, closed } = open(port(server));
    socket.write(`${HEADERS}Content-Length: 100\r\n\r\n{"model":"gpt-4o"}`);
    const response = parseResponse(await closed);
    assertOpenAIError(response.body, 408, response.status, /^The request body did not arrive within 20 seconds/);
  });
});
});
