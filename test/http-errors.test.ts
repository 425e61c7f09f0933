/**
 * Raw HTTP against a real listening server: exact statuses and exact error bodies in OpenAI's shape
 * `{"error": {"message", "type", "param", "code"}}`, authentication, body limits, routing with and
 * without the /v1 prefix, the public endpoints, and a deterministic fuzz of malformed bodies.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { http, startTestServer, type TestServer } from './helpers/server.js';

let server: TestServer;
let assistantId: string;
let threadId: string;
let messageId: string;

before(async () => {
  server = await startTestServer();
  assistantId = (await call('POST', '/v1/assistants', { body: { model: 'gpt-4o' } }, 200)).json.id;
  threadId = (await call('POST', '/v1/threads', { body: {} }, 200)).json.id;
  messageId = (await call('POST', `/v1/threads/${threadId}/messages`, { body: { role: 'user', content: 'hi' } }, 200)).json.id;
});

after(async () => {
  await server?.close();
});

// ---------------------------------------------------------------- helpers

type Json = any;
type Options = Parameters<typeof http>[3];
type Response = Awaited<ReturnType<typeof http>>;

async function call(method: string, path: string, options: Options = {}, status?: number): Promise<Response> {
  const response = await http(server, method, path, options);
  if (status !== undefined) assert.equal(response.status, status, `${method} ${path}: ${response.text.slice(0, 500)}`);
  return response;
}

function errorBody(message: string, param: string | null = null, code: string | null = null, type = 'invalid_request_error') {
  return { error: { message, type, param, code } };
}

const INVALID_JSON = errorBody(
  'We could not parse the JSON body of your request. The API expects a JSON payload, but what was sent was not valid JSON.',
);
const MISSING_KEY = errorBody(
  "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
);
const INVALID_KEY = errorBody('Incorrect API key provided.', null, 'invalid_api_key');

/** Exact status and exact body, sent as JSON. */
function assertError(response: Response, status: number, body: Json, label = '') {
  assert.equal(response.status, status, `${label} status; body: ${response.text.slice(0, 500)}`);
  assert.deepStrictEqual(response.json, body, label);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/, `${label} content-type`);
}

/** The OpenAI error shape, whatever the message: exactly error.{message,type,param,code}. */
function assertErrorShape(response: Response, label = '') {
  const body = response.json;
  assert.ok(body !== undefined, `${label}: body is JSON: ${response.text.slice(0, 300)}`);
  assert.deepEqual(Object.keys(body), ['error'], `${label}: top-level keys of ${response.text.slice(0, 300)}`);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type'], `${label}: error keys`);
  assert.equal(typeof body.error.message, 'string', label);
  assert.ok(body.error.message.length > 0, label);
  assert.equal(typeof body.error.type, 'string', label);
  assert.ok(body.error.param === null || typeof body.error.param === 'string', `${label}: param`);
  assert.ok(body.error.code === null || typeof body.error.code === 'string', `${label}: code`);
}

const json = { 'content-type': 'application/json' };

/** The six POST routes, with the ids of this file's fixtures. */
function postRoutes() {
  return [
    `/v1/assistants`,
    `/v1/assistants/${assistantId}`,
    `/v1/threads`,
    `/v1/threads/${threadId}`,
    `/v1/threads/${threadId}/messages`,
    `/v1/threads/${threadId}/messages/${messageId}`,
  ];
}

/** Every implemented route (method, path), fixtures plugged in. */
function allRoutes(): [string, string, unknown?][] {
  return [
    ['GET', '/assistants'],
    ['POST', '/assistants', { model: 'gpt-4o' }],
    ['GET', `/assistants/${assistantId}`],
    ['POST', `/assistants/${assistantId}`, {}],
    ['DELETE', '/assistants/asst_missing'],
    ['POST', '/threads', {}],
    ['GET', `/threads/${threadId}`],
    ['POST', `/threads/${threadId}`, {}],
    ['DELETE', '/threads/thread_missing'],
    ['GET', `/threads/${threadId}/messages`],
    ['POST', `/threads/${threadId}/messages`, { role: 'user', content: 'x' }],
    ['GET', `/threads/${threadId}/messages/${messageId}`],
    ['POST', `/threads/${threadId}/messages/${messageId}`, {}],
    ['DELETE', `/threads/${threadId}/messages/msg_missing`],
    ['GET', '/files'],
    ['DELETE', '/files/file-missing'],
  ];
}

// ---------------------------------------------------------------- malformed JSON

describe('malformed JSON', () => {
  const BROKEN = [
    '{',
    '{"model": "gpt-4o",}',
    "{'model': 'gpt-4o'}",
    '{"model": "gpt-4o"} trailing',
    '{"model": gpt-4o}',
    'undefined',
    'NaN',
    '[1, 2',
    '"unterminated',
    '{"a": 01}',
    '{"a": "\\x"}',
    '\u0000',
    '{"model": "gpt-4o"}{"model": "gpt-4o"}',
  ];

  test('every POST route answers 400 with the invalid-JSON error', async () => {
    for (const path of postRoutes()) {
      for (const rawBody of BROKEN) {
        assertError(await call('POST', path, { rawBody, headers: json }), 400, INVALID_JSON, `${path} ${JSON.stringify(rawBody)}`);
      }
    }
  });

  test('the body is JSON whatever the declared content type', async () => {
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-8']) {
      const path = '/v1/assistants';
      assertError(await call('POST', path, { rawBody: '{', headers: { 'content-type': contentType } }), 400, INVALID_JSON, contentType);
      const ok = await call('POST', path, { rawBody: '{"model":"gpt-4o"}', headers: { 'content-type': contentType } }, 200);
      assert.equal(ok.json.object, 'assistant');
    }
  });

  test('an empty body is an empty object', async () => {
    assertError(
      await call('POST', '/v1/assistants', { rawBody: '', headers: json }),
      400,
      errorBody("Missing required parameter: 'model'.", 'model', 'missing_required_parameter'),
    );
    const thread = await call('POST', '/v1/threads', { rawBody: '', headers: json }, 200);
    assert.equal(thread.json.object, 'thread');
    const whitespace = await call('POST', '/v1/threads', { rawBody: ' \n\t ', headers: json }, 200);
    assert.equal(whitespace.json.object, 'thread');
  });
});

// ---------------------------------------------------------------- validation

interface ValidationCase {
  path: () => string;
  body: unknown;
  message: string;
  param: string | null;
  code: string | null;
  method?: string;
}

const A = () => '/v1/assistants';
const T = () => '/v1/threads';
const M = () => `/v1/threads/${threadId}/messages`;

const VALIDATION: ValidationCase[] = [
  { path: A, body: {}, message: "Missing required parameter: 'model'.", param: 'model', code: 'missing_required_parameter' },
  { path: A, body: { name: 'no model' }, message: "Missing required parameter: 'model'.", param: 'model', code: 'missing_required_parameter' },
  {
    path: A,
    body: { model: 5 },
    message: "Invalid type for 'model': expected a string, but got an integer instead.",
    param: 'model',
    code: 'invalid_type',
  },
  {
    path: A,
    body: { model: null },
    message: "Invalid type for 'model': expected a string, but got null instead.",
    param: 'model',
    code: 'invalid_type',
  },
  {
    path: A,
    body: { model: 'm', tools: [{ type: 'function', function: { name: 42 } }] },
    message: "Invalid type for 'tools[0].function.name': expected a string, but got an integer instead.",
    param: 'tools[0].function.name',
    code: 'invalid_type',
  },
  {
    path: A,
    body: { model: 'm', tools: [{ type: 'code_interpreter' }, { type: 'function', function: { name: 'ok', parameters: [] } }] },
    message: "Invalid type for 'tools[1].function.parameters': expected an object, but got an array instead.",
    param: 'tools[1].function.parameters',
    code: 'invalid_type',
  },
  {
    path: A,
    body: { model: 'm', tools: {} },
    message: "Invalid type for 'tools': expected an array, but got an object instead.",
    param: 'tools',
    code: 'invalid_type',
  },
  {
    path: A,
    body: { model: 'm', temperature: 'hot' },
    message: "Invalid type for 'temperature': expected a number, but got a string instead.",
    param: 'temperature',
    code: 'invalid_type',
  },
  {
    path: A,
    body: { model: 'm', name: true },
    message: "Invalid type for 'name': expected a string, but got a boolean instead.",
    param: 'name',
    code: 'invalid_type',
  },
  {
    path: A,
    body: { model: 'm', metadata: { a: 1 } },
    message: "Invalid type for 'metadata.a': expected a string, but got an integer instead.",
    param: 'metadata.a',
    code: 'invalid_type',
  },
  {
    path: A,
    body: { model: 'm', metadata: [] },
    message: "Invalid type for 'metadata': expected an object, but got an array instead.",
    param: 'metadata',
    code: 'invalid_type',
  },
  {
    path: A,
    body: { model: 'm', metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) },
    message:
      "Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an object with 17 properties instead.",
    param: 'metadata',
    code: 'invalid_value',
  },
  {
    path: A,
    body: { model: 'm', name: 'n'.repeat(257) },
    message: "Invalid 'name': string too long. Expected a string with maximum length 256, but got a string with length 257 instead.",
    param: 'name',
    code: 'string_above_max_length',
  },
  {
    path: A,
    body: { model: 'm', description: 'd'.repeat(513) },
    message:
      "Invalid 'description': string too long. Expected a string with maximum length 512, but got a string with length 513 instead.",
    param: 'description',
    code: 'string_above_max_length',
  },
  {
    path: A,
    body: { model: 'm', top_p: 1.5 },
    message: "Invalid 'top_p': decimal above maximum value. Expected a value <= 1, but got 1.5 instead.",
    param: 'top_p',
    code: 'decimal_above_max_value',
  },
  {
    path: A,
    body: { model: 'm', temperature: -1 },
    message: "Invalid 'temperature': integer below minimum value. Expected a value >= 0, but got -1 instead.",
    param: 'temperature',
    code: 'integer_below_min_value',
  },
  {
    path: A,
    body: { model: 'm', tools: [{ type: 'file_search', file_search: { max_num_results: 51 } }] },
    message:
      "Invalid 'tools[0].file_search.max_num_results': integer above maximum value. Expected a value <= 50, but got 51 instead.",
    param: 'tools[0].file_search.max_num_results',
    code: 'integer_above_max_value',
  },
  {
    path: A,
    body: { model: 'm', tools: [{ type: 'file_search', file_search: { max_num_results: 2.5 } }] },
    message: "Invalid type for 'tools[0].file_search.max_num_results': expected an integer, but got a decimal instead.",
    param: 'tools[0].file_search.max_num_results',
    code: 'invalid_type',
  },
  {
    path: A,
    body: { model: 'm', tools: [{ type: 'function', function: { name: 'bad name' } }] },
    message: "Invalid 'tools[0].function.name': expected a name matching '^[a-zA-Z0-9_-]+$'.",
    param: 'tools[0].function.name',
    code: 'invalid_value',
  },
  {
    path: A,
    body: { model: 'm', tools: Array.from({ length: 129 }, () => ({ type: 'code_interpreter' })) },
    message: "Invalid 'tools': array too long. Expected an array with maximum length 128, but got an array with length 129 instead.",
    param: 'tools',
    code: 'array_above_max_length',
  },
  {
    path: A,
    body: { model: 'm', tools: [{ type: 'browser' }] },
    message: "Invalid value: 'browser'. Supported values are: 'code_interpreter', 'file_search', and 'function'.",
    param: 'tools[0].type',
    code: 'invalid_value',
  },
  {
    path: A,
    body: { model: 'm', tools: [{ type: 'function' }] },
    message: "Missing required parameter: 'tools[0].function'.",
    param: 'tools[0].function',
    code: 'missing_required_parameter',
  },
  {
    path: A,
    body: { model: 'm', tools: [{ type: 'code_interpreter', code_interpreter: {} }] },
    message: "Unknown parameter: 'tools[0].code_interpreter'.",
    param: 'tools[0].code_interpreter',
    code: 'unknown_parameter',
  },
  {
    path: A,
    body: { model: 'm', reasoning_effort: 'extreme' },
    message: "Invalid value: 'extreme'. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', 'xhigh', and 'max'.",
    param: 'reasoning_effort',
    code: 'invalid_value',
  },
  {
    path: A,
    body: { model: 'm', tool_resources: { file_search: { vector_store_ids: ['vs_a', 'vs_b'] } } },
    message:
      "Invalid 'tool_resources.file_search.vector_store_ids': array too long. Expected an array with maximum length 1, but got an array with length 2 instead.",
    param: 'tool_resources.file_search.vector_store_ids',
    code: 'array_above_max_length',
  },
  {
    path: A,
    body: { model: 'm', tool_resources: { file_search: { vector_stores: [{ file_ids: ['file-1'] }] } } },
    message: "No file found with id 'file-1'.",
    param: 'tool_resources.file_search.vector_stores[0].file_ids[0]',
    code: null,
  },
  {
    path: A,
    body: { model: 'm', tool_resources: { file_search: { vector_store_ids: ['vs_missing'] } } },
    message: "No vector store found with id 'vs_missing'.",
    param: 'tool_resources.file_search.vector_store_ids[0]',
    code: null,
  },
  {
    path: A,
    body: { model: 'm', tool_resources: { code_interpreter: { file_ids: ['file-missing'] } } },
    message: "No file found with id 'file-missing'.",
    param: 'tool_resources.code_interpreter.file_ids[0]',
    code: null,
  },
  {
    path: A,
    body: { model: 'm', tool_resources: { file_search: { vector_stores: [{}, {}] } } },
    message:
      "Invalid 'tool_resources.file_search.vector_stores': array too long. Expected an array with maximum length 1, but got an array with length 2 instead.",
    param: 'tool_resources.file_search.vector_stores',
    code: 'array_above_max_length',
  },
  { path: A, body: { model: 'm', stream: true }, message: "Unknown parameter: 'stream'.", param: 'stream', code: 'unknown_parameter' },
  {
    path: () => `/v1/assistants/${assistantId}`,
    body: { model: '' },
    message: "Invalid 'model': string too short. Expected a string with minimum length 1, but got a string with length 0 instead.",
    param: 'model',
    code: 'string_below_min_length',
  },
  {
    path: () => `/v1/assistants/${assistantId}`,
    body: { tools: [{ type: 'function', function: { name: 'x'.repeat(65) } }] },
    message:
      "Invalid 'tools[0].function.name': string too long. Expected a string with maximum length 64, but got a string with length 65 instead.",
    param: 'tools[0].function.name',
    code: 'string_above_max_length',
  },
  {
    path: T,
    body: { messages: {} },
    message: "Invalid type for 'messages': expected an array, but got an object instead.",
    param: 'messages',
    code: 'invalid_type',
  },
  {
    path: T,
    body: { messages: Array.from({ length: 33 }, () => ({ role: 'user', content: 'x' })) },
    message: "Invalid 'messages': array too long. Expected an array with maximum length 32, but got an array with length 33 instead.",
    param: 'messages',
    code: 'array_above_max_length',
  },
  {
    path: T,
    body: { messages: [{ role: 'user', content: [] }] },
    message:
      "Invalid 'messages[0].content': empty array. Expected an array with minimum length 1, but got an array with length 0 instead.",
    param: 'messages[0].content',
    code: 'array_below_min_length',
  },
  {
    path: T,
    body: { messages: [{ role: 'user', content: 'ok' }, { role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] },
    message: "Invalid 'messages[1].content[0].image_url.url': expected an http(s) URL or a data:image/ URL.",
    param: 'messages[1].content[0].image_url.url',
    code: 'invalid_value',
  },
  {
    path: T,
    body: { tool_resources: { file_search: { vector_store_ids: ['vs_x'], vector_stores: [{}] } } },
    message: "Invalid 'tool_resources.file_search.vector_stores': Give either vector_store_ids or vector_stores, not both.",
    param: 'tool_resources.file_search.vector_stores',
    code: 'invalid_value',
  },
  {
    path: () => `/v1/threads/${threadId}`,
    body: { messages: [] },
    message: "Unknown parameter: 'messages'.",
    param: 'messages',
    code: 'unknown_parameter',
  },
  {
    path: () => `/v1/threads/${threadId}`,
    body: { tool_resources: { code_interpreter: { file_ids: 'file-1' } } },
    message: "Invalid type for 'tool_resources.code_interpreter.file_ids': expected an array, but got a string instead.",
    param: 'tool_resources.code_interpreter.file_ids',
    code: 'invalid_type',
  },
  { path: M, body: { content: 'x' }, message: "Missing required parameter: 'role'.", param: 'role', code: 'missing_required_parameter' },
  {
    path: M,
    body: { role: 'system', content: 'x' },
    message: "Invalid value: 'system'. Supported values are: 'user' and 'assistant'.",
    param: 'role',
    code: 'invalid_value',
  },
  {
    path: M,
    body: { role: 'user', content: [{ type: 'text' }] },
    message: "Missing required parameter: 'content[0].text'.",
    param: 'content[0].text',
    code: 'missing_required_parameter',
  },
  {
    path: M,
    body: { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x.test/a.png', detail: 'max' } }] },
    message: "Invalid value: 'max'. Supported values are: 'auto', 'low', and 'high'.",
    param: 'content[0].image_url.detail',
    code: 'invalid_value',
  },
  {
    path: M,
    body: { role: 'user', content: [{ type: 'image_file', image_file: { file_id: '' } }] },
    message:
      "Invalid 'content[0].image_file.file_id': string too short. Expected a string with minimum length 1, but got a string with length 0 instead.",
    param: 'content[0].image_file.file_id',
    code: 'string_below_min_length',
  },
  {
    path: M,
    body: { role: 'user', content: 'x', attachments: [{ file_id: 'file-1', tools: [{ type: 'function' }] }] },
    message: "Invalid value: 'function'. Supported values are: 'code_interpreter' and 'file_search'.",
    param: 'attachments[0].tools[0].type',
    code: 'invalid_value',
  },
  {
    path: M,
    body: { role: 'user', content: 'x', attachments: [{ tools: [] }] },
    message: "Missing required parameter: 'attachments[0].file_id'.",
    param: 'attachments[0].file_id',
    code: 'missing_required_parameter',
  },
  {
    path: () => `/v1/threads/${threadId}/messages/${messageId}`,
    body: { metadata: 'x' },
    message: "Invalid type for 'metadata': expected an object, but got a string instead.",
    param: 'metadata',
    code: 'invalid_type',
  },
  {
    path: () => `/v1/threads/${threadId}/messages/${messageId}`,
    body: { role: 'user' },
    message: "Unknown parameter: 'role'.",
    param: 'role',
    code: 'unknown_parameter',
  },
  {
    path: () => `/v1/threads/${threadId}/messages/${messageId}`,
    body: { metadata: { ['k'.repeat(65)]: 'v' } },
    message: "Invalid 'metadata': keys must be at most 64 characters, but 'kkkkkkkkkkkkkkkk…' has 65.",
    param: `metadata.${'k'.repeat(65)}`,
    code: 'invalid_value',
  },
];

const QUERY_VALIDATION: { path: () => string; message: string; param: string; code: string }[] = [
  {
    path: () => '/v1/assistants?order=sideways',
    message: "Invalid value: 'sideways'. Supported values are: 'asc' and 'desc'.",
    param: 'order',
    code: 'invalid_value',
  },
  {
    path: () => '/v1/assistants?limit=abc',
    message: "Invalid type for 'limit': expected a number, but got a string instead.",
    param: 'limit',
    code: 'invalid_type',
  },
  {
    path: () => '/v1/assistants?limit=5&limit=6',
    message: "Invalid type for 'limit': expected a number, but got an array instead.",
    param: 'limit',
    code: 'invalid_type',
  },
  {
    path: () => '/v1/assistants?after=',
    message: "Invalid 'after': string too short. Expected a string with minimum length 1, but got a string with length 0 instead.",
    param: 'after',
    code: 'string_below_min_length',
  },
  {
    path: () => `/v1/threads/${threadId}/messages?before=`,
    message: "Invalid 'before': string too short. Expected a string with minimum length 1, but got a string with length 0 instead.",
    param: 'before',
    code: 'string_below_min_length',
  },
  {
    path: () => `/v1/threads/${threadId}/messages?run_id=`,
    message: "Invalid 'run_id': string too short. Expected a string with minimum length 1, but got a string with length 0 instead.",
    param: 'run_id',
    code: 'string_below_min_length',
  },
  {
    path: () => `/v1/threads/${threadId}/messages?order=ASC`,
    message: "Invalid value: 'ASC'. Supported values are: 'asc' and 'desc'.",
    param: 'order',
    code: 'invalid_value',
  },
];

describe('validation errors', () => {
  test('wrong types, missing and unknown parameters: exact 400 bodies with param naming the field', async () => {
    for (const item of VALIDATION) {
      const path = item.path();
      const label = `${item.method ?? 'POST'} ${path} ${JSON.stringify(item.body).slice(0, 120)}`;
      assertError(await call(item.method ?? 'POST', path, { body: item.body }), 400, errorBody(item.message, item.param, item.code), label);
    }
  });

  test('query parameters: exact 400 bodies', async () => {
    for (const item of QUERY_VALIDATION) {
      assertError(await call('GET', item.path()), 400, errorBody(item.message, item.param, item.code), item.path());
    }
  });

  test('a message naming a file the server does not have is refused, wherever the message comes in, and nothing is written', async () => {
    const fileError = (id: string, param: string) => errorBody(`No file found with id '${id}'.`, param);
    const attachment = { file_id: 'file-abc', tools: [{ type: 'file_search' }] };
    const image = { type: 'image_file', image_file: { file_id: 'file-img' } };
    const messagesBefore = (await call('GET', `/v1/threads/${threadId}/messages?limit=100`, {}, 200)).json;
    const runsBefore = (await call('GET', `/v1/threads/${threadId}/runs`, {}, 200)).json;
    const cases: [string, unknown, Json][] = [
      [`/v1/threads/${threadId}/messages`, { role: 'user', content: 'x', attachments: [attachment] }, fileError('file-abc', 'attachments[0].file_id')],
      [`/v1/threads/${threadId}/messages`, { role: 'user', content: [{ type: 'text', text: 'see' }, image] }, fileError('file-img', 'content[1].image_file.file_id')],
      ['/v1/threads', { messages: [{ role: 'user', content: 'ok' }, { role: 'user', content: 'x', attachments: [attachment] }] }, fileError('file-abc', 'messages[1].attachments[0].file_id')],
      [
        `/v1/threads/${threadId}/runs`,
        { assistant_id: assistantId, additional_messages: [{ role: 'user', content: [image] }] },
        fileError('file-img', 'additional_messages[0].content[0].image_file.file_id'),
      ],
      [
        '/v1/threads/runs',
        { assistant_id: assistantId, thread: { messages: [{ role: 'user', content: 'x', attachments: [attachment] }] } },
        fileError('file-abc', 'thread.messages[0].attachments[0].file_id'),
      ],
    ];
    for (const [path, body, expected] of cases) assertError(await call('POST', path, { body }), 400, expected, `POST ${path}`);
    assert.deepStrictEqual((await call('GET', `/v1/threads/${threadId}/messages?limit=100`, {}, 200)).json, messagesBefore);
    assert.deepStrictEqual((await call('GET', `/v1/threads/${threadId}/runs`, {}, 200)).json, runsBefore);
  });

  test('a rejected request writes nothing', async () => {
    const before = (await call('GET', `/v1/assistants/${assistantId}`, {}, 200)).json;
    await call('POST', `/v1/assistants/${assistantId}`, { body: { name: 'renamed', tools: 'nope' } }, 400);
    assert.deepStrictEqual((await call('GET', `/v1/assistants/${assistantId}`, {}, 200)).json, before);
    const messages = (await call('GET', `/v1/threads/${threadId}/messages?limit=100`, {}, 200)).json;
    await call('POST', `/v1/threads/${threadId}/messages`, { body: { role: 'user', content: 'x', metadata: { a: 1 } } }, 400);
    assert.deepStrictEqual((await call('GET', `/v1/threads/${threadId}/messages?limit=100`, {}, 200)).json, messages);
  });

  // ---- server bugs: each of these fails against the current server (see the final report)

  test('limit out of range in the query is reported as an integer, like any integer parameter', async () => {
    // The query value is the string "0", so the bound error is worded for a 'decimal'.
    assertError(
      await call('GET', '/v1/assistants?limit=0'),
      400,
      errorBody(
        "Invalid 'limit': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        'limit',
        'integer_below_min_value',
      ),
    );
    assertError(
      await call('GET', `/v1/threads/${threadId}/messages?limit=101`),
      400,
      errorBody(
        "Invalid 'limit': integer above maximum value. Expected a value <= 100, but got 101 instead.",
        'limit',
        'integer_above_max_value',
      ),
    );
  });

  test("a missing 'type' discriminator is a missing parameter, not the value 'undefined'", async () => {
    assertError(
      await call('POST', '/v1/assistants', { body: { model: 'm', tools: [{}] } }),
      400,
      errorBody("Missing required parameter: 'tools[0].type'.", 'tools[0].type', 'missing_required_parameter'),
    );
    assertError(
      await call('POST', `/v1/threads/${threadId}/messages`, { body: { role: 'user', content: [{ text: 'x' }] } }),
      400,
      errorBody("Missing required parameter: 'content[0].type'.", 'content[0].type', 'missing_required_parameter'),
    );
  });

  test("a missing or mistyped 'content' names the parameter (not a bare 'Invalid input')", async () => {
    assertError(
      await call('POST', `/v1/threads/${threadId}/messages`, { body: { role: 'user' } }),
      400,
      errorBody("Missing required parameter: 'content'.", 'content', 'missing_required_parameter'),
    );
    assertError(
      await call('POST', '/v1/threads', { body: { messages: [{ role: 'user' }] } }),
      400,
      errorBody("Missing required parameter: 'messages[0].content'.", 'messages[0].content', 'missing_required_parameter'),
    );
    const wrongType = await call('POST', `/v1/threads/${threadId}/messages`, { body: { role: 'user', content: 5 } });
    assert.equal(wrongType.status, 400);
    assertErrorShape(wrongType);
    assert.equal(wrongType.json.error.param, 'content');
    assert.equal(wrongType.json.error.code, 'invalid_type');
    assert.match(wrongType.json.error.message, /'content'/);
  });

  test('a body that is not a JSON object gets param null, not the empty string', async () => {
    for (const rawBody of ['null', '[]', '5', '"text"', 'true']) {
      for (const path of ['/v1/assistants', '/v1/threads']) {
        const response = await call('POST', path, { rawBody, headers: json });
        assert.equal(response.status, 400, `${path} ${rawBody}`);
        assertErrorShape(response, `${path} ${rawBody}`);
        assert.equal(response.json.error.param, null, `${path} ${rawBody}: ${response.text}`);
        assert.doesNotMatch(response.json.error.message, /''/, `${path} ${rawBody}`);
      }
    }
  });
});

// ---------------------------------------------------------------- 404s

describe('unknown ids and routes', () => {
  test('unknown assistant, thread and message ids: 404 naming the missing object', async () => {
    const assistant = errorBody("No assistant found with id 'asst_x'.");
    const thread = errorBody("No thread found with id 'thread_x'.");
    const message = errorBody("No message found with id 'msg_x'.");
    const cases: [string, string, unknown, Json][] = [
      ['GET', '/v1/assistants/asst_x', undefined, assistant],
      ['POST', '/v1/assistants/asst_x', { name: 'n' }, assistant],
      ['POST', '/v1/assistants/asst_x', {}, assistant],
      ['DELETE', '/v1/assistants/asst_x', undefined, assistant],
      ['GET', '/v1/threads/thread_x', undefined, thread],
      ['POST', '/v1/threads/thread_x', { metadata: {} }, thread],
      ['DELETE', '/v1/threads/thread_x', undefined, thread],
      ['GET', '/v1/threads/thread_x/messages', undefined, thread],
      ['POST', '/v1/threads/thread_x/messages', { role: 'user', content: 'x' }, thread],
      ['GET', '/v1/threads/thread_x/messages/msg_x', undefined, thread],
      ['POST', '/v1/threads/thread_x/messages/msg_x', { metadata: {} }, thread],
      ['DELETE', '/v1/threads/thread_x/messages/msg_x', undefined, thread],
      ['GET', `/v1/threads/${threadId}/messages/msg_x`, undefined, message],
      ['POST', `/v1/threads/${threadId}/messages/msg_x`, { metadata: {} }, message],
      ['DELETE', `/v1/threads/${threadId}/messages/msg_x`, undefined, message],
    ];
    for (const [method, path, body, expected] of cases) {
      assertError(await call(method, path, body === undefined ? {} : { body }), 404, expected, `${method} ${path}`);
    }
  });

  test('a message id under another thread is not found', async () => {
    const other = (await call('POST', '/v1/threads', { body: {} }, 200)).json.id;
    assertError(
      await call('GET', `/v1/threads/${other}/messages/${messageId}`),
      404,
      errorBody(`No message found with id '${messageId}'.`),
    );
    assertError(
      await call('DELETE', `/v1/threads/${other}/messages/${messageId}`),
      404,
      errorBody(`No message found with id '${messageId}'.`),
    );
    await call('GET', `/v1/threads/${threadId}/messages/${messageId}`, {}, 200);
  });

  test('validation comes before existence: a bad body on an unknown id is a 400', async () => {
    assertError(
      await call('POST', '/v1/assistants/asst_x', { body: { bogus: 1 } }),
      400,
      errorBody("Unknown parameter: 'bogus'.", 'bogus', 'unknown_parameter'),
    );
  });

  test('unknown route: 404 Invalid URL, with the query string left out', async () => {
    assertError(await call('GET', '/v1/nope'), 404, errorBody('Invalid URL (GET /v1/nope)'));
    assertError(await call('GET', '/v1/nope?limit=3&x=y'), 404, errorBody('Invalid URL (GET /v1/nope)'));
    assertError(await call('GET', '/nope'), 404, errorBody('Invalid URL (GET /nope)'));
    assertError(await call('POST', '/v1/nope', { body: {} }), 404, errorBody('Invalid URL (POST /v1/nope)'));
    assertError(await call('PUT', '/v1/assistants'), 404, errorBody('Invalid URL (PUT /v1/assistants)'));
    assertError(await call('PATCH', `/v1/threads/${threadId}`), 404, errorBody(`Invalid URL (PATCH /v1/threads/${threadId})`));
    assertError(await call('DELETE', '/v1/assistants'), 404, errorBody('Invalid URL (DELETE /v1/assistants)'));
    assertError(await call('GET', '/v1/threads'), 404, errorBody('Invalid URL (GET /v1/threads)'));
    // Routes the API does not have.
    for (const [method, path] of [
      ['PUT', '/v1/files'],
      ['PUT', '/v1/vector_stores'],
      ['GET', '/v1/vector_stores/vs_1/chunks'],
      ['POST', `/v1/threads/${threadId}/runs/run_1/steps`],
      ['DELETE', `/v1/threads/${threadId}/runs/run_1`],
    ] as const) {
      assertError(await call(method, path, method === 'POST' ? { body: {} } : {}), 404, errorBody(`Invalid URL (${method} ${path})`));
    }
    // POST /threads/runs is create-thread-and-run, not "modify thread 'runs'".
    const runs = await call('POST', '/v1/threads/runs', { body: {} });
    assertError(runs, 400, {
      error: {
        message: "Missing required parameter: 'assistant_id'.",
        type: 'invalid_request_error',
        param: 'assistant_id',
        code: 'missing_required_parameter',
      },
    });
  });

  test('a malformed percent-encoding in the URL gets an error in the OpenAI shape', async () => {
    const response = await call('GET', '/v1/assistants/%E0%A4%A');
    assert.equal(response.status, 400);
    assertErrorShape(response);
    assert.equal(response.json.error.type, 'invalid_request_error');
  });
});

// ---------------------------------------------------------------- auth

describe('authentication', () => {
  test('no credentials: 401 on every route, with and without /v1', async () => {
    for (const [method, path, body] of allRoutes()) {
      for (const prefix of ['/v1', '']) {
        const response = await call(method, prefix + path, { auth: false, ...(body === undefined ? {} : { body }) });
        assertError(response, 401, MISSING_KEY, `${method} ${prefix}${path}`);
      }
    }
  });

  test('a wrong key: 401 invalid_api_key on every route; nothing is written', async () => {
    for (const [method, path, body] of allRoutes()) {
      const response = await call(method, '/v1' + path, {
        headers: { authorization: 'Bearer sk-wrong' },
        ...(body === undefined ? {} : { body }),
      });
      assertError(response, 401, INVALID_KEY, `${method} ${path}`);
    }
    await call('GET', `/v1/threads/${threadId}/messages/${messageId}`, {}, 200);
  });

  test('odd Authorization headers are rejected', async () => {
    for (const authorization of ['Basic dXNlcjpwYXNz', 'Bearer', `Bearer ${server.apiKey}x`, `Bearer x${server.apiKey}`]) {
      const response = await call('GET', '/v1/assistants', { headers: { authorization } });
      assert.equal(response.status, 401, authorization);
      assertErrorShape(response, authorization);
    }
    assertError(await call('GET', '/v1/assistants', { headers: { authorization: '' }, auth: false }), 401, MISSING_KEY);
  });

  test("the scheme is case-insensitive and Azure's api-key header works", async () => {
    await call('GET', '/v1/assistants', { headers: { authorization: `bearer ${server.apiKey}` } }, 200);
    await call('GET', '/v1/assistants', { headers: { authorization: `BEARER ${server.apiKey}` } }, 200);
    const azure = await call('GET', `/v1/assistants/${assistantId}`, { auth: false, headers: { 'api-key': server.apiKey } }, 200);
    assert.equal(azure.json.id, assistantId);
    await call('POST', '/threads', { auth: false, headers: { 'api-key': server.apiKey }, body: {} }, 200);
    assertError(await call('GET', '/v1/assistants', { auth: false, headers: { 'api-key': 'sk-wrong' } }), 401, INVALID_KEY);
  });

  test('the key never appears in a response', async () => {
    const wrong = 'sk-wrong-secret-0123456789';
    const responses: [string, Response][] = [];
    for (const [method, path, body] of allRoutes()) {
      const withBody = body === undefined ? {} : { body };
      responses.push([`${method} ${path}`, await call(method, '/v1' + path, withBody)]);
      responses.push([`${method} ${path} (wrong)`, await call(method, '/v1' + path, { ...withBody, headers: { authorization: `Bearer ${wrong}` } })]);
      responses.push([`${method} ${path} (api-key wrong)`, await call(method, '/v1' + path, { ...withBody, auth: false, headers: { 'api-key': wrong } })]);
    }
    responses.push(['404', await call('GET', '/v1/nope')]);
    responses.push(['400', await call('POST', '/v1/assistants', { body: { model: 7 } })]);
    responses.push(['json', await call('POST', '/v1/assistants', { rawBody: '{', headers: json })]);
    responses.push(['health', await call('GET', '/health')]);
    for (const [label, response] of responses) {
      for (const secret of [server.apiKey, wrong]) {
        assert.ok(!response.text.includes(secret), `${label}: body contains a key`);
        for (const [name, value] of response.headers) {
          assert.ok(!value.includes(secret), `${label}: header ${name} contains a key`);
        }
      }
    }
  });
});

// ---------------------------------------------------------------- routing

describe('routing', () => {
  test('every route answers both with and without the /v1 prefix', async () => {
    for (const [method, path, body] of allRoutes()) {
      const options = body === undefined ? {} : { body };
      const prefixed = await call(method, '/v1' + path, options);
      const bare = await call(method, path, options);
      assert.equal(bare.status, prefixed.status, `${method} ${path}`);
      assert.ok(prefixed.status === 200 || prefixed.status === 404, `${method} ${path}: ${prefixed.status}`);
      if (method === 'GET' || prefixed.status === 404) assert.deepStrictEqual(bare.json, prefixed.json, `${method} ${path}`);
      else assert.equal(bare.json.object, prefixed.json.object, `${method} ${path}`);
    }
    // Full life cycles through the bare routes.
    const assistant = (await call('POST', '/assistants', { body: { model: 'gpt-4o', name: 'bare' } }, 200)).json;
    assert.equal((await call('POST', `/assistants/${assistant.id}`, { body: { name: 'renamed' } }, 200)).json.name, 'renamed');
    assert.deepStrictEqual((await call('GET', `/v1/assistants/${assistant.id}`, {}, 200)).json, {
      ...assistant,
      name: 'renamed',
    });
    assert.deepStrictEqual((await call('DELETE', `/assistants/${assistant.id}`, {}, 200)).json, {
      id: assistant.id,
      object: 'assistant.deleted',
      deleted: true,
    });
    await call('GET', `/v1/assistants/${assistant.id}`, {}, 404);
    const thread = (await call('POST', '/threads', { body: { metadata: { via: 'bare' } } }, 200)).json;
    const message = (await call('POST', `/threads/${thread.id}/messages`, { body: { role: 'user', content: 'bare' } }, 200)).json;
    assert.deepStrictEqual((await call('GET', `/v1/threads/${thread.id}/messages/${message.id}`, {}, 200)).json, message);
    assert.deepStrictEqual((await call('GET', `/threads/${thread.id}/messages`, {}, 200)).json.data, [message]);
    assert.deepStrictEqual((await call('DELETE', `/threads/${thread.id}/messages/${message.id}`, {}, 200)).json, {
      id: message.id,
      object: 'thread.message.deleted',
      deleted: true,
    });
    assert.deepStrictEqual((await call('DELETE', `/threads/${thread.id}`, {}, 200)).json, {
      id: thread.id,
      object: 'thread.deleted',
      deleted: true,
    });
    await call('GET', `/v1/threads/${thread.id}`, {}, 404);
  });

  test('the OpenAI-Beta header is accepted but not required', async () => {
    for (const [method, path] of allRoutes()) {
      if (method !== 'GET') continue;
      const without = await call(method, '/v1' + path, {}, 200);
      const withV2 = await call(method, '/v1' + path, { headers: { 'OpenAI-Beta': 'assistants=v2' } }, 200);
      assert.deepStrictEqual(withV2.json, without.json, path);
    }
    const created = await call('POST', '/v1/threads', { body: {}, headers: { 'OpenAI-Beta': 'assistants=v2' } }, 200);
    assert.equal(created.json.object, 'thread');
    const plain = await call('POST', '/v1/threads', { body: {} }, 200);
    assert.equal(plain.json.object, 'thread');
    // Error bodies are the same either way.
    assertError(
      await call('GET', '/v1/assistants/asst_x', { headers: { 'OpenAI-Beta': 'assistants=v2' } }),
      404,
      errorBody("No assistant found with id 'asst_x'."),
    );
  });

  test('every response carries an x-request-id', async () => {
    for (const response of [
      await call('GET', '/v1/assistants', {}, 200),
      await call('GET', '/v1/assistants/asst_x', {}, 404),
      await call('GET', '/v1/assistants', { auth: false }, 401),
      await call('POST', '/v1/assistants', { rawBody: '{', headers: json }, 400),
    ]) {
      assert.match(response.headers.get('x-request-id') ?? '', /^req_/);
    }
  });
});

// ---------------------------------------------------------------- public endpoints

describe('public endpoints', () => {
  test('/health needs no key', async () => {
    const expected = { status: 'ok', storage: server.storage.sql.kind };
    assert.deepStrictEqual((await call('GET', '/health', { auth: false }, 200)).json, expected);
    assert.deepStrictEqual((await call('GET', '/health', { headers: { authorization: 'Bearer sk-wrong' } }, 200)).json, expected);
  });

  test('/openapi.json needs no key and lists exactly the implemented routes', async () => {
    const response = await call('GET', '/openapi.json', { auth: false }, 200);
    const document = response.json;
    assert.match(String(document.openapi), /^3\./);
    assert.deepStrictEqual(document.servers, [{ url: '/v1' }]);
    const routes = Object.fromEntries(
      Object.entries(document.paths as Record<string, Record<string, unknown>>).map(([path, operations]) => [
        path,
        Object.keys(operations).sort(),
      ]),
    );
    assert.deepStrictEqual(routes, {
      '/assistants': ['get', 'post'],
      '/assistants/{assistant_id}': ['delete', 'get', 'post'],
      '/threads': ['post'],
      '/threads/{thread_id}': ['delete', 'get', 'post'],
      '/threads/{thread_id}/messages': ['get', 'post'],
      '/threads/{thread_id}/messages/{message_id}': ['delete', 'get', 'post'],
      '/threads/runs': ['post'],
      '/threads/{thread_id}/runs': ['get', 'post'],
      '/threads/{thread_id}/runs/{run_id}': ['get', 'post'],
      '/threads/{thread_id}/runs/{run_id}/cancel': ['post'],
      '/threads/{thread_id}/runs/{run_id}/submit_tool_outputs': ['post'],
      '/threads/{thread_id}/runs/{run_id}/steps': ['get'],
      '/threads/{thread_id}/runs/{run_id}/steps/{step_id}': ['get'],
      '/files': ['get', 'post'],
      '/files/{file_id}': ['delete', 'get'],
      '/files/{file_id}/content': ['get'],
      '/vector_stores': ['get', 'post'],
      '/vector_stores/{vector_store_id}': ['delete', 'get', 'post'],
      '/vector_stores/{vector_store_id}/files': ['get', 'post'],
      '/vector_stores/{vector_store_id}/files/{file_id}': ['delete', 'get', 'post'],
      '/vector_stores/{vector_store_id}/files/{file_id}/content': ['get'],
      '/vector_stores/{vector_store_id}/file_batches': ['post'],
      '/vector_stores/{vector_store_id}/file_batches/{batch_id}': ['get'],
      '/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel': ['post'],
      '/vector_stores/{vector_store_id}/file_batches/{batch_id}/files': ['get'],
      '/vector_stores/{vector_store_id}/search': ['post'],
    });
    // It describes what is served, nothing more: title, tags and components included.
    assert.match(document.info.title, /Assistants API v2/);
    // What the served schemas still describe but the server does not run, it says.
    assert.match(document.info.description, /file_search runs here over the vector stores; code_interpreter runs Python in a sandbox/);
    assert.deepStrictEqual(document.tags.map((tag: Json) => tag.name), ['Assistants', 'Files', 'Vector stores']);
    const refs = new Set<string>();
    const collect = (value: unknown): void => {
      if (Array.isArray(value)) value.forEach(collect);
      else if (value && typeof value === 'object') {
        for (const [key, item] of Object.entries(value)) key === '$ref' ? refs.add(String(item)) : collect(item);
      }
    };
    collect(document);
    for (const ref of refs) {
      const [, section, name] = /^#\/components\/(\w+)\/(.+)$/.exec(ref) ?? [];
      assert.ok(section && document.components[section]?.[name!], `${ref} resolves`);
    }
    const schemas = Object.keys(document.components.schemas);
    assert.equal(schemas.length, new Set([...refs].filter((ref) => ref.startsWith('#/components/schemas/'))).size, 'only schemas something refers to');
    for (const served of ['OpenAIFile', 'VectorStoreObject', 'VectorStoreSearchRequest']) assert.ok(schemas.includes(served), served);
    // The operations are the spec's own, not stubs.
    assert.equal(document.paths['/assistants'].post.operationId, 'createAssistant');
    assert.equal(document.paths['/threads/{thread_id}/messages'].get.operationId, 'listMessages');
    assert.ok(document.components?.schemas?.AssistantObject, 'components.schemas.AssistantObject');
    // The same document with a key.
    assert.deepStrictEqual((await call('GET', '/openapi.json', {}, 200)).json, document);
  });
});

// ---------------------------------------------------------------- body size

describe('request size limit', () => {
  let small: TestServer;
  const LIMIT = 1048; // floor(0.001 MiB)
  const tooLarge = errorBody(`Request body too large. The maximum size is ${LIMIT} bytes.`, null, 'request_too_large');

  before(async () => {
    small = await startTestServer({ config: { general_settings: { max_request_size_mb: 0.001 } } });
  });

  after(async () => {
    await small?.close();
  });

  test('a body over max_request_size_mb is a 413 in the OpenAI shape; at the limit it is accepted', async () => {
    const bodyOf = (bytes: number) => JSON.stringify({ model: 'm'.repeat(bytes - '{"model":""}'.length) });
    assert.equal(bodyOf(LIMIT).length, LIMIT);
    const atLimit = await http(small, 'POST', '/v1/assistants', { rawBody: bodyOf(LIMIT), headers: json });
    assert.equal(atLimit.status, 200, atLimit.text);
    for (const path of ['/v1/assistants', '/assistants', '/v1/threads']) {
      assertError(await http(small, 'POST', path, { rawBody: bodyOf(LIMIT + 1), headers: json }), 413, tooLarge, path);
      assertError(await http(small, 'POST', path, { rawBody: bodyOf(4000), headers: json }), 413, tooLarge, path);
    }
    const thread = await http(small, 'POST', '/v1/threads', { body: {} });
    assert.equal(thread.status, 200);
    assertError(
      await http(small, 'POST', `/v1/threads/${thread.json.id}/messages`, { body: { role: 'user', content: 'x'.repeat(2000) } }),
      413,
      tooLarge,
    );
    // Nothing was stored by the rejected message.
    const list = await http(small, 'GET', `/v1/threads/${thread.json.id}/messages`);
    assert.deepStrictEqual(list.json.data, []);
  });

  test('a chunked body without content-length is cut off at the limit too', async () => {
    const bytes = new TextEncoder().encode(JSON.stringify({ model: 'm'.repeat(4000) }));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, 1000));
        controller.enqueue(bytes.slice(1000));
        controller.close();
      },
    });
    const response = await fetch(`${small.url}/v1/assistants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${small.apiKey}`, 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    assert.equal(response.status, 413);
    assert.deepStrictEqual(await response.json(), tooLarge);
  });
});

// ---------------------------------------------------------------- fuzz

/** mulberry32: a small seeded PRNG, so every run sends the same bodies. */
function prng(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  return { next, int, pick };
}
type Rng = ReturnType<typeof prng>;

const FIELD_NAMES = [
  'model', 'name', 'description', 'instructions', 'reasoning_effort', 'tools', 'tool_resources', 'metadata',
  'temperature', 'top_p', 'response_format', 'messages', 'role', 'content', 'attachments', 'type', 'function',
  'file_search', 'code_interpreter', 'file_ids', 'vector_store_ids', 'vector_stores', 'image_url', 'image_file',
  'url', 'detail', 'file_id', 'text', 'parameters', 'json_schema', '__proto__', 'constructor', '', ' ', 'ü',
] as const;

const STRINGS = [
  '', ' ', 'gpt-4o', 'user', 'assistant', 'system', 'function', 'text', 'image_url', 'auto', 'json_object',
  'https://example.com/x.png', 'data:image/png;base64,AAAA', 'file-abc', 'vs_1', '{"nested": "json"}', '[]', 'null',
  'ünïcödé ✓ 漢字', '\n\t\r', '\\', '"', "'", '<script>', '%s%n', '../../etc/passwd', 'DROP TABLE threads;--',
];

/** A random JSON value as text, so depth is not limited by JSON.stringify's recursion. */
function garbage(r: Rng, depth = 0): string {
  const roll = r.int(depth > 3 ? 6 : 11);
  switch (roll) {
    case 0:
      return r.pick(['0', '-1', '1', '2', '3.5', '-0', '1e308', '-1e308', '9007199254740993', '1e-320', '0.1', '17', '129', '1e400']);
    case 1:
      return r.pick(['true', 'false', 'null']);
    case 2:
      return JSON.stringify(r.pick(STRINGS));
    case 3:
      // A long string: up to 200 KB.
      return JSON.stringify(r.pick(['x', 'ab', 'ü', '漢']).repeat(1 + r.int(100_000)));
    case 4:
      return JSON.stringify(r.pick(STRINGS) + String(r.int(1000)));
    case 5:
      return '[]';
    case 6:
    case 7: {
      const items = Array.from({ length: r.int(5) }, () => garbage(r, depth + 1));
      return `[${items.join(',')}]`;
    }
    case 8: {
      const entries = Array.from({ length: r.int(6) }, () => `${JSON.stringify(r.pick(FIELD_NAMES))}:${garbage(r, depth + 1)}`);
      return `{${entries.join(',')}}`;
    }
    case 9: {
      // Deep nesting: up to 20 000 levels of arrays or objects.
      const levels = 100 + r.int(20_000);
      return r.next() < 0.5 ? '['.repeat(levels) + ']'.repeat(levels) : '{"a":'.repeat(levels) + 'null' + '}'.repeat(levels);
    }
    default: {
      // Near-valid shapes with garbage inside.
      const inner = garbage(r, depth + 1);
      return r.pick([
        `[{"type":${inner}}]`,
        `[{"type":"function","function":${inner}}]`,
        `[{"type":"function","function":{"name":${inner}}}]`,
        `{"code_interpreter":${inner}}`,
        `{"file_search":{"vector_store_ids":${inner}}}`,
        `[{"role":"user","content":${inner}}]`,
        `[{"type":"image_url","image_url":${inner}}]`,
        `[{"type":"text","text":${inner}}]`,
        `{"type":"json_schema","json_schema":${inner}}`,
        `[{"file_id":${inner},"tools":[]}]`,
        `{"k":${inner}}`,
      ]);
    }
  }
}

/** Values that are invalid for every field of every route: one of them makes a body invalid. */
const POISON = ['true', '[[[]]]', '-1', '{"\\u0001":[]}', '{"type":7}'];

/** A body that every POST route must reject: a non-object, or an object with at least one bad entry. */
function invalidBody(r: Rng): string {
  const roll = r.next();
  if (roll < 0.2) {
    // Not an object at all.
    let value = garbage(r);
    while (value.startsWith('{')) value = garbage(r);
    return value;
  }
  const entries = Array.from({ length: r.int(5) }, () => `${JSON.stringify(r.pick(FIELD_NAMES))}:${garbage(r, 1)}`);
  if (roll < 0.6) entries.push(`${JSON.stringify(`unknown_${r.int(100)}`)}:${garbage(r, 1)}`);
  else entries.push(`${JSON.stringify(r.pick(['model', 'name', 'tools', 'metadata', 'role', 'content', 'messages', 'tool_resources', 'attachments', 'temperature', 'response_format']))}:${r.pick(POISON)}`);
  // Shuffle so the bad entry is not always last (JSON keeps the last of duplicate keys, so a
  // duplicate of a poisoned key placed after it could make the body valid: drop duplicates).
  const seen = new Set<string>();
  const unique = entries.reverse().filter((entry) => {
    const key = entry.slice(0, entry.indexOf('":') + 1);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  for (let i = unique.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [unique[i], unique[j]] = [unique[j]!, unique[i]!];
  }
  return `{${unique.join(',')}}`;
}

describe('fuzz', () => {
  const BODIES_PER_ROUTE = 200;

  test(`${BODIES_PER_ROUTE} malformed bodies per POST route: every one a 400 in the error shape, never a 5xx`, async () => {
    const r = prng(0x5eed);
    const failures: string[] = [];
    let sent = 0;
    for (const path of postRoutes()) {
      for (let index = 0; index < BODIES_PER_ROUTE; index++) {
        const rawBody = invalidBody(r);
        const response = await http(server, 'POST', path, { rawBody, headers: json });
        sent++;
        const label = `POST ${path} #${index} ${rawBody.slice(0, 160)}${rawBody.length > 160 ? `… (${rawBody.length} bytes)` : ''}`;
        if (response.status !== 400) {
          failures.push(`${label} → ${response.status} ${response.text.slice(0, 200)}`);
          continue;
        }
        try {
          assertErrorShape(response, label);
          assert.equal(response.json.error.type, 'invalid_request_error');
        } catch (error) {
          failures.push(`${label} → ${(error as Error).message}`);
        }
      }
    }
    assert.equal(sent, BODIES_PER_ROUTE * 6);
    assert.deepStrictEqual(failures, []);
    // The fixtures were not touched by any of it.
    assert.equal((await call('GET', `/v1/assistants/${assistantId}`, {}, 200)).json.id, assistantId);
    assert.equal((await call('GET', `/v1/threads/${threadId}/messages/${messageId}`, {}, 200)).json.id, messageId);
  });

  test('random list query strings: 200 or a 400 in the error shape, never a 5xx', async () => {
    const r = prng(0x9e7);
    const values = ['0', '1', '100', '101', '-5', '1.5', 'abc', '', 'asc', 'desc', 'ASC', 'msg_x', 'asst_x', '1e2', ' 7', '[]', '%E2%9C%93'];
    const keys = ['limit', 'order', 'after', 'before', 'run_id', 'extra'];
    for (let index = 0; index < 150; index++) {
      const query = Array.from({ length: 1 + r.int(4) }, () => `${r.pick(keys)}=${r.pick(values)}`).join('&');
      const path = r.next() < 0.5 ? `/v1/assistants?${query}` : `/v1/threads/${threadId}/messages?${query}`;
      const response = await http(server, 'GET', path);
      assert.ok(response.status === 200 || response.status === 400, `${path} → ${response.status} ${response.text.slice(0, 200)}`);
      if (response.status === 400) assertErrorShape(response, path);
      else assert.equal(response.json.object, 'list', path);
    }
  });
});

// ---------------------------------------------------------------- hostile but well-typed values (server bugs)

/**
 * Bodies that are valid by shape but carry values the storage layer cannot hold as-is. The server
 * may store them or reject them with a 400, but never answer 5xx.
 */
async function neverServerError(cases: [string, () => string, string][]) {
  const failures: string[] = [];
  for (const [method, path, rawBody] of cases) {
    const response = await http(server, method, path(), { rawBody, headers: json });
    if (response.status >= 500) failures.push(`${method} ${path()} ${rawBody.slice(0, 100)} → ${response.status} ${response.text}`);
    else if (response.status >= 400) assertErrorShape(response, `${method} ${path()} ${rawBody.slice(0, 100)}`);
  }
  assert.deepStrictEqual(failures, []);
}

describe('hostile values', () => {
  const message = () => `/v1/threads/${threadId}/messages`;
  const assistants = () => '/v1/assistants';
  const threads = () => '/v1/threads';

  test('a NUL character (\\u0000) in any string is never a 5xx', async () => {
    await neverServerError([
      ['POST', assistants, '{"model":"gpt-4o","name":"a\\u0000b"}'],
      ['POST', assistants, '{"model":"gpt\\u0000"}'],
      ['POST', assistants, '{"model":"gpt-4o","instructions":"\\u0000"}'],
      ['POST', assistants, '{"model":"gpt-4o","metadata":{"k":"v\\u0000"}}'],
      ['POST', assistants, '{"model":"gpt-4o","metadata":{"k\\u0000":"v"}}'],
      ['POST', assistants, '{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"f","description":"\\u0000"}}]}'],
      ['POST', threads, '{"metadata":{"k":"\\u0000"}}'],
      ['POST', threads, '{"messages":[{"role":"user","content":"\\u0000"}]}'],
      ['POST', message, '{"role":"user","content":"hello\\u0000world"}'],
      ['POST', message, '{"role":"user","content":"x","attachments":[{"file_id":"file-\\u0000","tools":[]}]}'],
    ]);
  });

  test('a NUL character in a path id or a list cursor is a 404 or 400, never a 5xx', async () => {
    const failures: string[] = [];
    for (const [method, path] of [
      ['GET', '/v1/assistants/asst_%00'],
      ['POST', '/v1/assistants/asst_%00'],
      ['DELETE', '/v1/assistants/asst_%00'],
      ['GET', '/v1/threads/thread_%00'],
      ['DELETE', '/v1/threads/thread_%00'],
      ['GET', '/v1/threads/thread_%00/messages'],
      ['POST', '/v1/threads/thread_%00/messages'],
      ['GET', `/v1/threads/${threadId}/messages/msg_%00`],
      ['DELETE', `/v1/threads/${threadId}/messages/msg_%00`],
      ['GET', '/v1/assistants?after=%00'],
      ['GET', '/v1/assistants?before=asst_%00'],
      ['GET', `/v1/threads/${threadId}/messages?after=msg_%00`],
      ['GET', `/v1/threads/${threadId}/messages?run_id=run_%00`],
    ] as const) {
      const body = method !== 'POST' ? {} : { body: path.endsWith('/messages') ? { role: 'user', content: 'x' } : {} };
      const response = await http(server, method, path, body);
      if (response.status >= 500) failures.push(`${method} ${path} → ${response.status} ${response.text}`);
      else {
        assert.ok(response.status === 400 || response.status === 404 || response.status === 200, `${method} ${path} → ${response.status}`);
        if (response.status !== 200) assertErrorShape(response, `${method} ${path}`);
      }
    }
    assert.deepStrictEqual(failures, []);
  });

  test('a lone UTF-16 surrogate (\\ud800) in a string is never a 5xx', async () => {
    await neverServerError([
      ['POST', assistants, '{"model":"gpt-4o","metadata":{"k":"\\ud800"}}'],
      ['POST', assistants, '{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"f","parameters":{"d":"\\udfff"}}}]}'],
      ['POST', threads, '{"metadata":{"\\ud800":"v"}}'],
      ['POST', message, '{"role":"user","content":"\\ud800"}'],
      ['POST', message, '{"role":"user","content":[{"type":"text","text":"a\\udc00b"}]}'],
    ]);
  });

  test('deeply nested JSON in free-form fields (function parameters, json_schema) is never a 5xx', async () => {
    const deep = (levels: number) => '{"a":'.repeat(levels) + '1' + '}'.repeat(levels);
    const deepArray = (levels: number) => '{"a":' + '['.repeat(levels) + ']'.repeat(levels) + '}';
    await neverServerError([
      ['POST', assistants, `{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"f","parameters":${deep(100_000)}}}]}`],
      ['POST', assistants, `{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"f","parameters":${deepArray(100_000)}}}]}`],
      [
        'POST',
        assistants,
        `{"model":"gpt-4o","response_format":{"type":"json_schema","json_schema":{"name":"s","schema":${deep(100_000)}}}}`,
      ],
      ['POST', () => `/v1/assistants/${assistantId}`, `{"tools":[{"type":"function","function":{"name":"f","parameters":${deep(100_000)}}}]}`],
    ]);
  });

  test('a content type the server cannot parse is a 4xx in the OpenAI shape, never a 5xx', async () => {
    const failures: string[] = [];
    for (const contentType of ['???', 'application/json; charset', '/', 'a b', 'application/json;;', '']) {
      const response = await http(server, 'POST', '/v1/threads', { rawBody: '{}', headers: { 'content-type': contentType } });
      if (response.status >= 500) failures.push(`content-type ${JSON.stringify(contentType)} → ${response.status} ${response.text}`);
      else if (response.status >= 400) assertErrorShape(response, contentType);
    }
    assert.deepStrictEqual(failures, []);
  });

  test("a metadata key '__proto__' is stored or rejected, never silently dropped", async () => {
    const response = await http(server, 'POST', '/v1/threads', {
      rawBody: '{"metadata":{"__proto__":"x","k":"v"}}',
      headers: json,
    });
    if (response.status === 400) {
      assertErrorShape(response);
      return;
    }
    assert.equal(response.status, 200, response.text);
    // JSON.parse keeps "__proto__" as an own property.
    assert.deepStrictEqual(response.json.metadata, JSON.parse('{"__proto__":"x","k":"v"}'));
  });
});

// ---------------------------------------------------------------- bounded quotes

describe('error messages quote client input only in part', () => {
  const LONG = 'a'.repeat(10_000);
  const MAX_MESSAGE = 400;

  /** Each error is OpenAI's shape, short, and repeats at most 80 characters of the input. */
  function assertBounded(response: Response, label: string) {
    assert.ok(response.status >= 400 && response.status < 500, `${label} → ${response.status} ${response.text.slice(0, 200)}`);
    assertErrorShape(response, label);
    const { message, param } = response.json.error;
    assert.ok(message.length <= MAX_MESSAGE, `${label}: a message of ${message.length} characters: ${message.slice(0, 200)}`);
    assert.ok(!message.includes('a'.repeat(81)), `${label}: the message repeats more than 80 characters of input`);
    assert.ok(param === null || param.length <= 250, `${label}: a param of ${param?.length} characters`);
  }

  test('a 10,000-character id in any path segment', async () => {
    const paths: [string, string, unknown?][] = [
      ['GET', `/v1/assistants/asst_${LONG}`],
      ['POST', `/v1/assistants/asst_${LONG}`, {}],
      ['DELETE', `/v1/assistants/asst_${LONG}`],
      ['GET', `/v1/threads/thread_${LONG}`],
      ['GET', `/v1/threads/thread_${LONG}/messages`],
      ['GET', `/v1/threads/${threadId}/messages/msg_${LONG}`],
      ['GET', `/v1/threads/${threadId}/runs/run_${LONG}`],
      ['GET', `/v1/threads/${threadId}/runs/run_${LONG}/steps`],
      ['GET', `/v1/nope/${LONG}`],
      ['GET', `/${LONG}`],
    ];
    for (const id of [LONG.slice(0, 120), LONG]) {
      for (const [method, path, body] of paths) {
        const url = path.replace(LONG, id);
        assertBounded(await call(method, url, body === undefined ? {} : { body }), `${method} ${url.slice(0, 60)}… (${id.length})`);
      }
    }
  });

  test('10,000-character values in queries and bodies', async () => {
    const cases: [string, string, Options][] = [
      ['GET', `/v1/assistants?order=${LONG}`, {}],
      ['GET', `/v1/assistants?after=${LONG}`, {}],
      ['GET', `/v1/assistants?limit=${LONG}`, {}],
      ['GET', `/v1/threads/${threadId}/messages?run_id=${LONG}`, {}],
      ['POST', '/v1/assistants', { body: { model: 'gpt-4o', [LONG]: 1 } }],
      ['POST', '/v1/assistants', { body: { model: 'gpt-4o', metadata: { [LONG]: 1 } } }],
      ['POST', '/v1/assistants', { body: { model: 'gpt-4o', tools: [{ type: LONG }] } }],
      ['POST', '/v1/assistants', { body: { model: 'gpt-4o', response_format: LONG } }],
      ['POST', '/v1/threads', { body: { messages: [{ role: LONG, content: 'x' }] } }],
      ['POST', `/v1/threads/${threadId}/runs`, { body: { assistant_id: `asst_${LONG}` } }],
      [
        'POST',
        `/v1/threads/${threadId}/runs`,
        { body: { assistant_id: assistantId, tool_choice: { type: 'function', function: { name: LONG } } } },
      ],
    ];
    for (const [method, path, options] of cases) assertBounded(await call(method, path, options), `${method} ${path.slice(0, 60)}`);
  });
});
