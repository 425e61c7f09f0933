/**
 * End to end through the official SDKs: `openai` 7.x (`server.client`) and the older 4.x call style
 * (`server.clientV4`), against a real listening server. Every object is compared whole
 * (deepStrictEqual with the server-assigned id and created_at plugged in), so an extra or a missing
 * field fails.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { toFile } from 'openai';
import OpenAIv4 from 'openai-v4';
import { startTestServer, type TestServer } from './helpers/server.js';

let server: TestServer;
/** A real file and vector store for tool_resources to name (unknown ids are refused). */
let fileId: string;
let storeId: string;

before(async () => {
  server = await startTestServer();
  fileId = (await server.client.files.create({ file: await toFile(Buffer.from('resource'), 'resource.txt'), purpose: 'assistants' })).id;
  storeId = (await server.client.vectorStores.create({ name: 'resources' })).id;
});

after(async () => {
  await server?.close();
});

// ---------------------------------------------------------------- helpers

type Json = any;

/** Wall-clock bounds around a call, in whole seconds: created_at must fall inside. */
function clock() {
  const start = Math.floor(Date.now() / 1000);
  return {
    check(value: unknown, label = 'created_at') {
      const end = Math.ceil(Date.now() / 1000);
      assert.ok(Number.isInteger(value), `${label} is an integer: ${String(value)}`);
      assert.ok((value as number) >= start && (value as number) <= end, `${label} ${String(value)} within [${start}, ${end}]`);
    },
  };
}

function assistantObject(id: string, createdAt: number, fields: Record<string, unknown> = {}) {
  return {
    id,
    object: 'assistant',
    created_at: createdAt,
    name: null,
    description: null,
    model: 'gpt-4o',
    instructions: null,
    tools: [],
    tool_resources: {},
    metadata: {},
    temperature: 1,
    top_p: 1,
    response_format: 'auto',
    ...fields,
  };
}

function threadObject(id: string, createdAt: number, fields: Record<string, unknown> = {}) {
  return { id, object: 'thread', created_at: createdAt, tool_resources: {}, metadata: {}, ...fields };
}

function messageObject(message: { id: string; created_at: number; thread_id: string }, fields: Record<string, unknown>) {
  return {
    id: message.id,
    object: 'thread.message',
    created_at: message.created_at,
    thread_id: message.thread_id,
    status: 'completed',
    incomplete_details: null,
    completed_at: message.created_at,
    incomplete_at: null,
    role: 'user',
    content: [],
    assistant_id: null,
    run_id: null,
    attachments: [],
    metadata: {},
    ...fields,
  };
}

const text = (value: string) => ({ type: 'text', text: { value, annotations: [] } });

/** Plain JSON copy: drops the SDKs' non-enumerable extras and checks the value is JSON-shaped. */
const plain = (value: unknown): Json => JSON.parse(JSON.stringify(value));

interface ExpectedError {
  status: number;
  message?: string;
  type?: string;
  param?: string | null;
  code?: string | null;
}

/**
 * Awaits a rejected SDK call and checks the error class and the fields the SDK exposes. With a
 * `message`, the whole `error` body is compared exactly.
 */
async function expectApiError(
  call: () => Promise<unknown>,
  errorClass: new (...args: any[]) => Error,
  expected: ExpectedError,
): Promise<Json> {
  let caught: unknown;
  try {
    await call();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught !== undefined, `expected ${errorClass.name}, but the call succeeded`);
  assert.ok(caught instanceof errorClass, `expected ${errorClass.name}, got ${(caught as Error)?.constructor?.name}: ${String(caught)}`);
  const error = caught as Json;
  assert.equal(error.status, expected.status);
  const type = expected.type ?? 'invalid_request_error';
  assert.equal(error.type, type);
  if (expected.param !== undefined) assert.equal(error.param, expected.param);
  if (expected.code !== undefined) assert.equal(error.code, expected.code);
  assert.equal(typeof error.error?.message, 'string');
  assert.deepEqual(Object.keys(error.error).sort(), ['code', 'message', 'param', 'type']);
  if (expected.message !== undefined) {
    assert.deepStrictEqual(plain(error.error), {
      message: expected.message,
      type,
      param: expected.param ?? null,
      code: expected.code ?? null,
    });
    assert.equal(error.message, `${expected.status} ${expected.message}`);
  }
  // The request id the server sends back reaches the SDK (7.x: requestID, 4.x: request_id).
  assert.match(String(error.requestID ?? error.request_id), /^req_/);
  return error;
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

function assertNoDuplicates(ids: string[]) {
  assert.equal(new Set(ids).size, ids.length, `duplicate ids in ${ids.join(',')}`);
}

/** A 7.x or 4.x client whose fetch records the URL of every request it sends. */
function countingClients() {
  const urls: URL[] = [];
  const recording = (input: any, init?: any) => {
    urls.push(new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url));
    return fetch(input, init);
  };
  const baseURL = `${server.url}/v1`;
  return {
    urls,
    v7: new OpenAI({ apiKey: server.apiKey, baseURL, maxRetries: 0, fetch: recording as any }),
    v4: new OpenAIv4({ apiKey: server.apiKey, baseURL, maxRetries: 0, fetch: recording as any }),
  };
}

// ---------------------------------------------------------------- assistants

const FULL_TOOLS = [
  { type: 'code_interpreter' },
  {
    type: 'file_search',
    file_search: { max_num_results: 5, ranking_options: { ranker: 'auto', score_threshold: 0.5 } },
  },
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Weather for a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      strict: true,
    },
  },
];

const JSON_SCHEMA_FORMAT = {
  type: 'json_schema',
  json_schema: { name: 'answer', description: 'd', schema: { type: 'object', properties: {} }, strict: true },
};

describe('assistants (openai 7.x)', () => {
  test('create with every field, retrieve, update, list, delete', async () => {
    const client = server.client;
    const t = clock();
    const created = await client.beta.assistants.create({
      model: 'gpt-4o',
      name: 'Math tutor',
      description: 'Helps with maths',
      instructions: 'You are a personal math tutor.',
      reasoning_effort: 'low',
      tools: FULL_TOOLS as any,
      tool_resources: { code_interpreter: { file_ids: [fileId] }, file_search: { vector_store_ids: [storeId] } },
      metadata: { team: 'maths', level: '3' },
      temperature: 0.25,
      top_p: 0.5,
      response_format: JSON_SCHEMA_FORMAT as any,
    });
    t.check(created.created_at);
    assert.match(created.id, /^asst_[A-Za-z0-9]{24}$/);
    const expected = assistantObject(created.id, created.created_at, {
      name: 'Math tutor',
      description: 'Helps with maths',
      instructions: 'You are a personal math tutor.',
      tools: FULL_TOOLS,
      tool_resources: { code_interpreter: { file_ids: [fileId] }, file_search: { vector_store_ids: [storeId] } },
      metadata: { team: 'maths', level: '3' },
      temperature: 0.25,
      top_p: 0.5,
      response_format: JSON_SCHEMA_FORMAT,
    });
    assert.deepStrictEqual(plain(created), expected);
    assert.deepStrictEqual(plain(await client.beta.assistants.retrieve(created.id)), expected);

    // A partial update changes only what it names; metadata is replaced, not merged.
    const updated = await client.beta.assistants.update(created.id, {
      name: 'Algebra tutor',
      metadata: { level: '4' },
      tools: [{ type: 'code_interpreter' }],
    });
    const expectedUpdated = { ...expected, name: 'Algebra tutor', metadata: { level: '4' }, tools: [{ type: 'code_interpreter' }] };
    assert.deepStrictEqual(plain(updated), expectedUpdated);
    assert.deepStrictEqual(plain(await client.beta.assistants.retrieve(created.id)), expectedUpdated);

    // null clears nullable fields; sampling parameters fall back to their defaults.
    const cleared = await client.beta.assistants.update(created.id, {
      name: null,
      description: null,
      instructions: null,
      temperature: null,
      top_p: null,
      response_format: null,
      tool_resources: null,
      metadata: null,
      model: 'gpt-4o-mini',
    } as any);
    const expectedCleared = assistantObject(created.id, created.created_at, {
      model: 'gpt-4o-mini',
      tools: [{ type: 'code_interpreter' }],
    });
    assert.deepStrictEqual(plain(cleared), expectedCleared);

    // An empty update is a no-op that returns the object.
    assert.deepStrictEqual(plain(await client.beta.assistants.update(created.id, {})), expectedCleared);

    const listed = await collect(client.beta.assistants.list({ limit: 100 }));
    assert.deepStrictEqual(plain(listed.find((a) => a.id === created.id)), expectedCleared);

    const deleted = await client.beta.assistants.delete(created.id);
    assert.deepStrictEqual(plain(deleted), { id: created.id, object: 'assistant.deleted', deleted: true });
    const gone = `No assistant found with id '${created.id}'.`;
    await expectApiError(() => client.beta.assistants.retrieve(created.id), OpenAI.NotFoundError, { status: 404, message: gone });
    await expectApiError(() => client.beta.assistants.delete(created.id), OpenAI.NotFoundError, { status: 404, message: gone });
    await expectApiError(() => client.beta.assistants.update(created.id, { name: 'x' }), OpenAI.NotFoundError, {
      status: 404,
      message: gone,
    });
    const after = await collect(client.beta.assistants.list({ limit: 100 }));
    assert.ok(!after.some((a) => a.id === created.id));
  });

  test('create with only a model fills every default', async () => {
    const t = clock();
    const created = await server.client.beta.assistants.create({ model: 'gpt-4o' });
    t.check(created.created_at);
    assert.deepStrictEqual(plain(created), assistantObject(created.id, created.created_at));
    await server.client.beta.assistants.delete(created.id);
  });

  test('tool_resources with empty sections read back with empty id lists', async () => {
    const created = await server.client.beta.assistants.create({
      model: 'gpt-4o',
      tool_resources: { code_interpreter: {}, file_search: {} },
    });
    assert.deepStrictEqual(
      plain(created),
      assistantObject(created.id, created.created_at, {
        tool_resources: { code_interpreter: { file_ids: [] }, file_search: { vector_store_ids: [] } },
      }),
    );
    await server.client.beta.assistants.delete(created.id);
  });
});

describe('assistants (openai 4.x call style)', () => {
  test('create, retrieve, update, list, del', async () => {
    const client = server.clientV4;
    const t = clock();
    const created = await client.beta.assistants.create({
      model: 'gpt-4o',
      name: 'v4 assistant',
      instructions: 'Be brief.',
      tools: [{ type: 'file_search' }],
      metadata: { sdk: 'v4' },
      temperature: 0.7,
      response_format: { type: 'json_object' },
    });
    t.check(created.created_at);
    const expected = assistantObject(created.id, created.created_at, {
      name: 'v4 assistant',
      instructions: 'Be brief.',
      tools: [{ type: 'file_search' }],
      metadata: { sdk: 'v4' },
      temperature: 0.7,
      response_format: { type: 'json_object' },
    });
    assert.deepStrictEqual(plain(created), expected);
    assert.deepStrictEqual(plain(await client.beta.assistants.retrieve(created.id)), expected);

    const updated = await client.beta.assistants.update(created.id, { description: 'now described', top_p: 0.9 });
    const expectedUpdated = { ...expected, description: 'now described', top_p: 0.9 };
    assert.deepStrictEqual(plain(updated), expectedUpdated);

    const listed = await collect(client.beta.assistants.list({ limit: 100, order: 'asc' }));
    assert.deepStrictEqual(plain(listed.find((a) => a.id === created.id)), expectedUpdated);

    assert.deepStrictEqual(plain(await client.beta.assistants.del(created.id)), {
      id: created.id,
      object: 'assistant.deleted',
      deleted: true,
    });
    const gone = `No assistant found with id '${created.id}'.`;
    await expectApiError(() => client.beta.assistants.retrieve(created.id), OpenAIv4.NotFoundError, { status: 404, message: gone });
    await expectApiError(() => client.beta.assistants.del(created.id), OpenAIv4.NotFoundError, { status: 404, message: gone });
  });
});

// ---------------------------------------------------------------- threads

const THREAD_MESSAGES = [
  { role: 'user', content: 'Hello there', metadata: { n: '0' } },
  {
    role: 'user',
    content: [
      { type: 'text', text: 'Look at these' },
      { type: 'image_url', image_url: { url: 'https://example.com/cat.png', detail: 'high' } },
      { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
    ],
    // No file exists until the Files API is served: image_file parts and attachments are refused
    // (see http-errors.test.ts), so only empty attachments appear here.
    attachments: [],
  },
  { role: 'assistant', content: 'Hi! How can I help?' },
];

/** What the server stores for THREAD_MESSAGES, in order, minus the per-message identity. */
const THREAD_MESSAGE_FIELDS = [
  { role: 'user', content: [text('Hello there')], metadata: { n: '0' } },
  {
    role: 'user',
    content: [
      text('Look at these'),
      { type: 'image_url', image_url: { url: 'https://example.com/cat.png', detail: 'high' } },
      { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'auto' } },
    ],
    attachments: [],
  },
  { role: 'assistant', content: [text('Hi! How can I help?')] },
];

describe('threads (openai 7.x)', () => {
  test('create with messages, metadata and tool_resources; retrieve; update; delete', async () => {
    const client = server.client;
    const t = clock();
    const thread = await client.beta.threads.create({
      messages: THREAD_MESSAGES as any,
      metadata: { customer: 'c-42' },
      tool_resources: { code_interpreter: { file_ids: [fileId] }, file_search: { vector_store_ids: [storeId] } },
    });
    t.check(thread.created_at);
    assert.match(thread.id, /^thread_[A-Za-z0-9]{24}$/);
    const expected = threadObject(thread.id, thread.created_at, {
      metadata: { customer: 'c-42' },
      tool_resources: { code_interpreter: { file_ids: [fileId] }, file_search: { vector_store_ids: [storeId] } },
    });
    assert.deepStrictEqual(plain(thread), expected);
    assert.deepStrictEqual(plain(await client.beta.threads.retrieve(thread.id)), expected);

    // The initial messages are stored in the order given, each a complete message object.
    const messages = await collect(client.beta.threads.messages.list(thread.id, { order: 'asc' }));
    assert.equal(messages.length, 3);
    messages.forEach((message, index) => {
      assert.match(message.id, /^msg_[A-Za-z0-9]{24}$/);
      assert.equal(message.thread_id, thread.id);
      t.check(message.created_at, `messages[${index}].created_at`);
      assert.deepStrictEqual(plain(message), messageObject(message, THREAD_MESSAGE_FIELDS[index]!));
    });
    assertNoDuplicates(messages.map((m) => m.id));
    const desc = await collect(client.beta.threads.messages.list(thread.id));
    assert.deepStrictEqual(
      desc.map((m) => m.id),
      messages.map((m) => m.id).reverse(),
    );
    const second = messages[1]!;
    assert.deepStrictEqual(
      plain(await client.beta.threads.messages.retrieve(second.id, { thread_id: thread.id })),
      messageObject(second, THREAD_MESSAGE_FIELDS[1]!),
    );

    // Updating metadata leaves tool_resources alone, and the other way round.
    const withMetadata = await client.beta.threads.update(thread.id, { metadata: { customer: 'c-43', tier: 'gold' } });
    const expectedMetadata = { ...expected, metadata: { customer: 'c-43', tier: 'gold' } };
    assert.deepStrictEqual(plain(withMetadata), expectedMetadata);
    const withResources = await client.beta.threads.update(thread.id, {
      tool_resources: { code_interpreter: { file_ids: [fileId] } },
    });
    const expectedResources = { ...expectedMetadata, tool_resources: { code_interpreter: { file_ids: [fileId] } } };
    assert.deepStrictEqual(plain(withResources), expectedResources);
    assert.deepStrictEqual(plain(await client.beta.threads.update(thread.id, {})), expectedResources);
    assert.deepStrictEqual(plain(await client.beta.threads.retrieve(thread.id)), expectedResources);
    const cleared = await client.beta.threads.update(thread.id, { metadata: null, tool_resources: null } as any);
    assert.deepStrictEqual(plain(cleared), threadObject(thread.id, thread.created_at));

    // Deleting the thread deletes its messages.
    assert.deepStrictEqual(plain(await client.beta.threads.delete(thread.id)), {
      id: thread.id,
      object: 'thread.deleted',
      deleted: true,
    });
    const gone = `No thread found with id '${thread.id}'.`;
    await expectApiError(() => client.beta.threads.retrieve(thread.id), OpenAI.NotFoundError, { status: 404, message: gone });
    await expectApiError(() => client.beta.threads.delete(thread.id), OpenAI.NotFoundError, { status: 404, message: gone });
    await expectApiError(() => client.beta.threads.update(thread.id, { metadata: {} }), OpenAI.NotFoundError, {
      status: 404,
      message: gone,
    });
    for (const message of messages) {
      await expectApiError(
        () => client.beta.threads.messages.retrieve(message.id, { thread_id: thread.id }),
        OpenAI.NotFoundError,
        { status: 404, message: gone },
      );
    }
    await expectApiError(() => client.beta.threads.messages.list(thread.id), OpenAI.NotFoundError, { status: 404, message: gone });
    await expectApiError(
      () => client.beta.threads.messages.create(thread.id, { role: 'user', content: 'late' }),
      OpenAI.NotFoundError,
      { status: 404, message: gone },
    );
  });

  test('create with no body is an empty thread with no messages', async () => {
    const t = clock();
    const thread = await server.client.beta.threads.create();
    t.check(thread.created_at);
    assert.deepStrictEqual(plain(thread), threadObject(thread.id, thread.created_at));
    const page = await server.client.beta.threads.messages.list(thread.id);
    assert.deepStrictEqual(plain(page.data), []);
    assert.equal(page.has_more, false);
    await server.client.beta.threads.delete(thread.id);
  });
});

describe('threads (openai 4.x call style)', () => {
  test('create with messages, retrieve, update, del; messages gone with the thread', async () => {
    const client = server.clientV4;
    const t = clock();
    const thread = await client.beta.threads.create({
      messages: THREAD_MESSAGES as any,
      metadata: { sdk: 'v4' },
      tool_resources: { file_search: { vector_store_ids: [storeId] } },
    });
    t.check(thread.created_at);
    const expected = threadObject(thread.id, thread.created_at, {
      metadata: { sdk: 'v4' },
      tool_resources: { file_search: { vector_store_ids: [storeId] } },
    });
    assert.deepStrictEqual(plain(thread), expected);
    assert.deepStrictEqual(plain(await client.beta.threads.retrieve(thread.id)), expected);

    const messages = await collect(client.beta.threads.messages.list(thread.id, { order: 'asc' }));
    assert.deepStrictEqual(
      plain(messages),
      messages.map((message, index) => messageObject(message, THREAD_MESSAGE_FIELDS[index]!)),
    );
    const first = messages[0]!;
    assert.deepStrictEqual(
      plain(await client.beta.threads.messages.retrieve(thread.id, first.id)),
      messageObject(first, THREAD_MESSAGE_FIELDS[0]!),
    );

    const updated = await client.beta.threads.update(thread.id, { metadata: { sdk: 'v4', step: '2' } });
    assert.deepStrictEqual(plain(updated), { ...expected, metadata: { sdk: 'v4', step: '2' } });

    assert.deepStrictEqual(plain(await client.beta.threads.del(thread.id)), {
      id: thread.id,
      object: 'thread.deleted',
      deleted: true,
    });
    const gone = `No thread found with id '${thread.id}'.`;
    await expectApiError(() => client.beta.threads.retrieve(thread.id), OpenAIv4.NotFoundError, { status: 404, message: gone });
    await expectApiError(() => client.beta.threads.messages.retrieve(thread.id, first.id), OpenAIv4.NotFoundError, {
      status: 404,
      message: gone,
    });
    await expectApiError(() => client.beta.threads.messages.del(thread.id, first.id), OpenAIv4.NotFoundError, {
      status: 404,
      message: gone,
    });
  });
});

// ---------------------------------------------------------------- messages

describe('messages (openai 7.x)', () => {
  test('create (string and parts), retrieve, update metadata, list filters, delete', async () => {
    const client = server.client;
    const thread = await client.beta.threads.create();
    const t = clock();
    const plainText = await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'What is 2+2?' });
    t.check(plainText.created_at);
    const expectedPlain = messageObject(plainText, { content: [text('What is 2+2?')] });
    assert.equal(plainText.thread_id, thread.id);
    assert.deepStrictEqual(plain(plainText), expectedPlain);

    const parts = await client.beta.threads.messages.create(thread.id, {
      role: 'assistant',
      content: [
        { type: 'text', text: 'Four.' },
        { type: 'image_url', image_url: { url: 'http://example.com/4.png', detail: 'low' } },
      ],
      attachments: [],
      metadata: { source: 'test' },
    });
    t.check(parts.created_at);
    const expectedParts = messageObject(parts, {
      role: 'assistant',
      content: [
        text('Four.'),
        { type: 'image_url', image_url: { url: 'http://example.com/4.png', detail: 'low' } },
      ],
      attachments: [],
      metadata: { source: 'test' },
    });
    assert.deepStrictEqual(plain(parts), expectedParts);
    assert.deepStrictEqual(plain(await client.beta.threads.messages.retrieve(parts.id, { thread_id: thread.id })), expectedParts);

    // attachments: null is accepted and reads back as [].
    const nullAttachments = await client.beta.threads.messages.create(thread.id, {
      role: 'user',
      content: 'no files',
      attachments: null,
    });
    const expectedNull = messageObject(nullAttachments, { content: [text('no files')] });
    assert.deepStrictEqual(plain(nullAttachments), expectedNull);

    // update replaces metadata; an update without metadata changes nothing; null clears it.
    const updated = await client.beta.threads.messages.update(plainText.id, {
      thread_id: thread.id,
      metadata: { checked: 'yes' },
    });
    const expectedUpdated = { ...expectedPlain, metadata: { checked: 'yes' } };
    assert.deepStrictEqual(plain(updated), expectedUpdated);
    assert.deepStrictEqual(
      plain(await client.beta.threads.messages.update(plainText.id, { thread_id: thread.id })),
      expectedUpdated,
    );
    assert.deepStrictEqual(
      plain(await client.beta.threads.messages.retrieve(plainText.id, { thread_id: thread.id })),
      expectedUpdated,
    );
    assert.deepStrictEqual(
      plain(await client.beta.threads.messages.update(plainText.id, { thread_id: thread.id, metadata: null } as any)),
      expectedPlain,
    );

    // list: default order is desc; limit; after/before; run_id filter.
    const ids = [plainText.id, parts.id, nullAttachments.id];
    const descPage = await client.beta.threads.messages.list(thread.id);
    assert.deepStrictEqual(
      descPage.data.map((m) => m.id),
      [...ids].reverse(),
    );
    assert.equal(descPage.has_more, false);
    const raw = await client.beta.threads.messages.list(thread.id, { limit: 2, order: 'asc' }).asResponse();
    assert.equal(raw.status, 200);
    assert.deepStrictEqual(await raw.json(), {
      object: 'list',
      data: [expectedPlain, expectedParts],
      first_id: plainText.id,
      last_id: parts.id,
      has_more: true,
    });
    const afterFirst = await client.beta.threads.messages.list(thread.id, { after: plainText.id, order: 'asc' });
    assert.deepStrictEqual(
      afterFirst.data.map((m) => m.id),
      [parts.id, nullAttachments.id],
    );
    const beforeLast = await client.beta.threads.messages.list(thread.id, { before: nullAttachments.id, order: 'asc' });
    assert.deepStrictEqual(
      beforeLast.data.map((m) => m.id),
      [plainText.id, parts.id],
    );
    const afterDesc = await client.beta.threads.messages.list(thread.id, { after: nullAttachments.id, order: 'desc' });
    assert.deepStrictEqual(
      afterDesc.data.map((m) => m.id),
      [parts.id, plainText.id],
    );
    const byRun = await client.beta.threads.messages.list(thread.id, { run_id: 'run_doesnotexist' });
    assert.deepStrictEqual(plain(byRun.data), []);
    assert.equal(byRun.has_more, false);
    const rawRun = await client.beta.threads.messages.list(thread.id, { run_id: 'run_doesnotexist' }).asResponse();
    assert.deepStrictEqual(await rawRun.json(), { object: 'list', data: [], first_id: null, last_id: null, has_more: false });

    // delete: the message is gone, the thread and the others stay.
    assert.deepStrictEqual(plain(await client.beta.threads.messages.delete(parts.id, { thread_id: thread.id })), {
      id: parts.id,
      object: 'thread.message.deleted',
      deleted: true,
    });
    const gone = `No message found with id '${parts.id}'.`;
    await expectApiError(() => client.beta.threads.messages.retrieve(parts.id, { thread_id: thread.id }), OpenAI.NotFoundError, {
      status: 404,
      message: gone,
    });
    await expectApiError(() => client.beta.threads.messages.delete(parts.id, { thread_id: thread.id }), OpenAI.NotFoundError, {
      status: 404,
      message: gone,
    });
    await expectApiError(
      () => client.beta.threads.messages.update(parts.id, { thread_id: thread.id, metadata: {} }),
      OpenAI.NotFoundError,
      { status: 404, message: gone },
    );
    const remaining = await collect(client.beta.threads.messages.list(thread.id, { order: 'asc' }));
    assert.deepStrictEqual(plain(remaining), [expectedPlain, expectedNull]);

    // A message is only reachable through its own thread.
    const other = await client.beta.threads.create();
    await expectApiError(
      () => client.beta.threads.messages.retrieve(plainText.id, { thread_id: other.id }),
      OpenAI.NotFoundError,
      { status: 404, message: `No message found with id '${plainText.id}'.` },
    );
    await expectApiError(
      () => client.beta.threads.messages.delete(plainText.id, { thread_id: other.id }),
      OpenAI.NotFoundError,
      { status: 404, message: `No message found with id '${plainText.id}'.` },
    );
    assert.deepStrictEqual(
      plain(await client.beta.threads.messages.retrieve(plainText.id, { thread_id: thread.id })),
      expectedPlain,
    );
    await client.beta.threads.delete(other.id);
    await client.beta.threads.delete(thread.id);
  });
});

describe('messages (openai 4.x call style)', () => {
  test('create, retrieve(threadId, messageId), update, list, del', async () => {
    const client = server.clientV4;
    const thread = await client.beta.threads.create();
    const t = clock();
    const message = await client.beta.threads.messages.create(thread.id, {
      role: 'user',
      content: [
        { type: 'text', text: 'v4 parts' },
        { type: 'image_url', image_url: { url: 'https://example.com/v4.jpg' } },
      ],
      metadata: { v: '4' },
    });
    t.check(message.created_at);
    const expected = messageObject(message, {
      content: [text('v4 parts'), { type: 'image_url', image_url: { url: 'https://example.com/v4.jpg', detail: 'auto' } }],
      metadata: { v: '4' },
    });
    assert.deepStrictEqual(plain(message), expected);
    assert.deepStrictEqual(plain(await client.beta.threads.messages.retrieve(thread.id, message.id)), expected);

    const second = await client.beta.threads.messages.create(thread.id, { role: 'assistant', content: 'reply' });
    const expectedSecond = messageObject(second, { role: 'assistant', content: [text('reply')] });
    assert.deepStrictEqual(plain(second), expectedSecond);

    const updated = await client.beta.threads.messages.update(thread.id, message.id, { metadata: { v: '4', edited: 'true' } });
    const expectedUpdated = { ...expected, metadata: { v: '4', edited: 'true' } };
    assert.deepStrictEqual(plain(updated), expectedUpdated);

    const page = await client.beta.threads.messages.list(thread.id, { limit: 1 });
    assert.deepStrictEqual(plain(page.data), [expectedSecond]);
    assert.equal(page.has_more, true);
    assert.deepStrictEqual(plain(await collect(client.beta.threads.messages.list(thread.id, { limit: 1, order: 'asc' }))), [
      expectedUpdated,
      expectedSecond,
    ]);
    const before = await client.beta.threads.messages.list(thread.id, { before: second.id, order: 'asc' });
    assert.deepStrictEqual(plain(before.data), [expectedUpdated]);
    const byRun = await client.beta.threads.messages.list(thread.id, { run_id: 'run_none' });
    assert.deepStrictEqual(plain(byRun.data), []);

    assert.deepStrictEqual(plain(await client.beta.threads.messages.del(thread.id, message.id)), {
      id: message.id,
      object: 'thread.message.deleted',
      deleted: true,
    });
    await expectApiError(() => client.beta.threads.messages.retrieve(thread.id, message.id), OpenAIv4.NotFoundError, {
      status: 404,
      message: `No message found with id '${message.id}'.`,
    });
    await client.beta.threads.del(thread.id);
  });
});

// ---------------------------------------------------------------- pagination

describe('pagination', () => {
  const COUNT = 25;
  let threadId: string;
  /** Message ids in creation order. */
  let ids: string[];

  before(async () => {
    const thread = await server.client.beta.threads.create();
    threadId = thread.id;
    ids = [];
    // One after the other, as fast as possible: many share a created_at second.
    for (let index = 0; index < COUNT; index++) {
      const message = await server.client.beta.threads.messages.create(threadId, { role: 'user', content: `message ${index}` });
      ids.push(message.id);
    }
  });

  test('the messages share created_at seconds (the cursor must not rely on created_at)', async () => {
    const all = await collect(server.client.beta.threads.messages.list(threadId, { limit: 100, order: 'asc' }));
    assert.deepStrictEqual(
      all.map((m) => m.id),
      ids,
    );
    const seconds = new Set(all.map((m) => m.created_at));
    assert.ok(seconds.size < COUNT, 'at least two messages share a second');
    all.forEach((m, index) => assert.deepStrictEqual(plain(m), messageObject(m, { content: [text(`message ${index}`)] })));
  });

  for (const order of ['asc', 'desc'] as const) {
    test(`openai 7.x async iterator walks every message exactly once (order=${order}, limit=7)`, async () => {
      const { v7, urls } = countingClients();
      const walked = await collect(v7.beta.threads.messages.list(threadId, { limit: 7, order }));
      const expected = order === 'asc' ? ids : [...ids].reverse();
      const walkedIds = walked.map((m) => m.id);
      assertNoDuplicates(walkedIds);
      assert.deepStrictEqual(walkedIds, expected);
      // 25 = 7 + 7 + 7 + 4: four requests, each after the last id of the page before.
      assert.equal(urls.length, 4);
      assert.deepStrictEqual(
        urls.map((url) => url.searchParams.get('after')),
        [null, expected[6], expected[13], expected[20]],
      );
      for (const url of urls) {
        assert.equal(url.searchParams.get('limit'), '7');
        assert.equal(url.searchParams.get('order'), order);
      }
    });

    test(`openai 4.x async iterator walks every message exactly once (order=${order}, limit=7)`, async () => {
      const { v4, urls } = countingClients();
      const walked = await collect(v4.beta.threads.messages.list(threadId, { limit: 7, order }));
      const expected = order === 'asc' ? ids : [...ids].reverse();
      assertNoDuplicates(walked.map((m) => m.id));
      assert.deepStrictEqual(
        walked.map((m) => m.id),
        expected,
      );
      assert.equal(urls.length, 4);
    });

    test(`pages of 5 over 25 (order=${order}): has_more false on the last page, no empty extra request`, async () => {
      const { v7, urls } = countingClients();
      const pages: string[][] = [];
      const hasMore: boolean[] = [];
      const first = await v7.beta.threads.messages.list(threadId, { limit: 5, order });
      for await (const page of first.iterPages()) {
        pages.push(page.data.map((m) => m.id));
        hasMore.push(page.has_more);
      }
      const expected = order === 'asc' ? ids : [...ids].reverse();
      assert.deepStrictEqual(pages, [0, 5, 10, 15, 20].map((start) => expected.slice(start, start + 5)));
      assert.deepStrictEqual(hasMore, [true, true, true, true, false]);
      assert.equal(urls.length, 5);
    });
  }

  test('default page: 20 newest first, has_more true', async () => {
    const page = await server.client.beta.threads.messages.list(threadId);
    assert.deepStrictEqual(
      page.data.map((m) => m.id),
      [...ids].reverse().slice(0, 20),
    );
    assert.equal(page.has_more, true);
  });

  test('after: the page starts right after the cursor, in either order', async () => {
    const asc = await server.client.beta.threads.messages.list(threadId, { after: ids[9]!, limit: 3, order: 'asc' });
    assert.deepStrictEqual(
      asc.data.map((m) => m.id),
      ids.slice(10, 13),
    );
    assert.equal(asc.has_more, true);
    const desc = await server.client.beta.threads.messages.list(threadId, { after: ids[9]!, limit: 3, order: 'desc' });
    assert.deepStrictEqual(
      desc.data.map((m) => m.id),
      [ids[8], ids[7], ids[6]],
    );
    assert.equal(desc.has_more, true);
    const tail = await server.client.beta.threads.messages.list(threadId, { after: ids[21]!, limit: 3, order: 'asc' });
    assert.deepStrictEqual(
      tail.data.map((m) => m.id),
      ids.slice(22),
    );
    assert.equal(tail.has_more, false);
    const end = await server.client.beta.threads.messages.list(threadId, { after: ids[24]!, order: 'asc' });
    assert.deepStrictEqual(plain(end.data), []);
    assert.equal(end.has_more, false);
  });

  test('before: the page holds the items nearest the cursor, in the requested order', async () => {
    const asc = await server.client.beta.threads.messages.list(threadId, { before: ids[10]!, limit: 3, order: 'asc' });
    assert.deepStrictEqual(
      asc.data.map((m) => m.id),
      [ids[7], ids[8], ids[9]],
    );
    assert.equal(asc.has_more, true);
    const desc = await server.client.beta.threads.messages.list(threadId, { before: ids[10]!, limit: 3, order: 'desc' });
    assert.deepStrictEqual(
      desc.data.map((m) => m.id),
      [ids[13], ids[12], ids[11]],
    );
    assert.equal(desc.has_more, true);
    const head = await server.client.beta.threads.messages.list(threadId, { before: ids[3]!, limit: 3, order: 'asc' });
    assert.deepStrictEqual(
      head.data.map((m) => m.id),
      ids.slice(0, 3),
    );
    assert.equal(head.has_more, false);
    const raw = await server.client.beta.threads.messages.list(threadId, { before: ids[2]!, limit: 5, order: 'asc' }).asResponse();
    const body = (await raw.json()) as Json;
    assert.deepStrictEqual(
      body.data.map((m: Json) => m.id),
      ids.slice(0, 2),
    );
    assert.equal(body.first_id, ids[0]);
    assert.equal(body.last_id, ids[1]);
    assert.equal(body.has_more, false);
    const none = await server.client.beta.threads.messages.list(threadId, { before: ids[0]!, order: 'asc' });
    assert.deepStrictEqual(plain(none.data), []);
    // 4.x: same semantics
    const v4 = await server.clientV4.beta.threads.messages.list(threadId, { before: ids[20]!, limit: 4, order: 'desc' });
    assert.deepStrictEqual(
      v4.data.map((m) => m.id),
      [ids[24], ids[23], ids[22], ids[21]],
    );
    assert.equal(v4.has_more, false);
  });

  test('after and before together bound a window', async () => {
    const asc = await server.client.beta.threads.messages.list(threadId, { after: ids[4]!, before: ids[10]!, order: 'asc' });
    assert.deepStrictEqual(
      asc.data.map((m) => m.id),
      ids.slice(5, 10),
    );
    assert.equal(asc.has_more, false);
    const limited = await server.client.beta.threads.messages.list(threadId, {
      after: ids[4]!,
      before: ids[10]!,
      order: 'asc',
      limit: 2,
    });
    assert.deepStrictEqual(
      limited.data.map((m) => m.id),
      ids.slice(5, 7),
    );
    assert.equal(limited.has_more, true);
    const desc = await server.client.beta.threads.messages.list(threadId, { after: ids[10]!, before: ids[4]!, order: 'desc' });
    assert.deepStrictEqual(
      desc.data.map((m) => m.id),
      ids.slice(5, 10).reverse(),
    );
  });

  test('walking while deleting: a deleted message never reappears and none is skipped', async () => {
    const seen: string[] = [];
    const deleted = new Set<string>();
    for await (const message of server.client.beta.threads.messages.list(threadId, { limit: 4, order: 'asc' })) {
      seen.push(message.id);
      // Delete a message on a later page that has not been reached yet.
      const index = ids.indexOf(message.id);
      if (index % 6 === 0 && index + 5 < ids.length) {
        const victim = ids[index + 5]!;
        await server.client.beta.threads.messages.delete(victim, { thread_id: threadId });
        deleted.add(victim);
      }
    }
    assert.ok(deleted.size >= 3);
    assert.deepStrictEqual(
      seen,
      ids.filter((id) => !deleted.has(id)),
    );
    ids = ids.filter((id) => !deleted.has(id));
  });

  test('assistants list: the async iterator walks every assistant exactly once, both orders, both SDKs', async () => {
    const created: string[] = [];
    for (let index = 0; index < 23; index++) {
      const assistant = await server.client.beta.assistants.create({ model: 'gpt-4o', name: `pager ${index}` });
      created.push(assistant.id);
    }
    // Ground truth: one page of up to 100 (this file creates far fewer assistants than that).
    const all = await server.client.beta.assistants.list({ limit: 100, order: 'asc' });
    assert.equal(all.has_more, false);
    const allIds = all.data.map((a) => a.id);
    assertNoDuplicates(allIds);
    // The ones created just now are the newest, in creation order.
    assert.deepStrictEqual(allIds.slice(-created.length), created);

    for (const order of ['asc', 'desc'] as const) {
      const expected = order === 'asc' ? allIds : [...allIds].reverse();
      const v7 = (await collect(server.client.beta.assistants.list({ limit: 7, order }))).map((a) => a.id);
      assertNoDuplicates(v7);
      assert.deepStrictEqual(v7, expected, `7.x order=${order}`);
      const v4 = (await collect(server.clientV4.beta.assistants.list({ limit: 7, order }))).map((a) => a.id);
      assert.deepStrictEqual(v4, expected, `4.x order=${order}`);
    }
    const before = await server.client.beta.assistants.list({ before: created[10]!, limit: 2, order: 'asc' });
    assert.deepStrictEqual(
      before.data.map((a) => a.id),
      [created[8], created[9]],
    );
    const beforeDesc = await server.client.beta.assistants.list({ before: created[10]!, limit: 2, order: 'desc' });
    assert.deepStrictEqual(
      beforeDesc.data.map((a) => a.id),
      [created[12], created[11]],
    );
    for (const id of created) await server.client.beta.assistants.delete(id);
  });
});

// ---------------------------------------------------------------- errors through both SDKs

interface ErrorCase {
  name: string;
  expected: ExpectedError;
  v7: (client: OpenAI, threadId: string) => Promise<unknown>;
  v4: (client: OpenAIv4, threadId: string) => Promise<unknown>;
}

const seventeenKeys = Object.fromEntries(Array.from({ length: 17 }, (_, index) => [`key${index}`, 'v']));

const BAD_REQUESTS: ErrorCase[] = [
  {
    name: 'metadata with 17 keys',
    expected: {
      status: 400,
      message:
        "Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an object with 17 properties instead.",
      param: 'metadata',
      code: 'invalid_value',
    },
    v7: (client) => client.beta.assistants.create({ model: 'gpt-4o', metadata: seventeenKeys }),
    v4: (client) => client.beta.assistants.create({ model: 'gpt-4o', metadata: seventeenKeys }),
  },
  {
    name: 'metadata with 17 keys on a thread update',
    expected: {
      status: 400,
      message:
        "Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an object with 17 properties instead.",
      param: 'metadata',
      code: 'invalid_value',
    },
    v7: (client, threadId) => client.beta.threads.update(threadId, { metadata: seventeenKeys }),
    v4: (client, threadId) => client.beta.threads.update(threadId, { metadata: seventeenKeys }),
  },
  {
    name: 'metadata value longer than 512',
    expected: {
      status: 400,
      message:
        "Invalid 'metadata.note': string too long. Expected a string with maximum length 512, but got a string with length 513 instead.",
      param: 'metadata.note',
      code: 'invalid_value',
    },
    v7: (client, threadId) => client.beta.threads.messages.create(threadId, { role: 'user', content: 'x', metadata: { note: 'n'.repeat(513) } }),
    v4: (client, threadId) => client.beta.threads.messages.create(threadId, { role: 'user', content: 'x', metadata: { note: 'n'.repeat(513) } }),
  },
  {
    name: 'name longer than 256',
    expected: {
      status: 400,
      message: "Invalid 'name': string too long. Expected a string with maximum length 256, but got a string with length 257 instead.",
      param: 'name',
      code: 'string_above_max_length',
    },
    v7: (client) => client.beta.assistants.create({ model: 'gpt-4o', name: 'n'.repeat(257) }),
    v4: (client) => client.beta.assistants.create({ model: 'gpt-4o', name: 'n'.repeat(257) }),
  },
  {
    name: "role 'system'",
    expected: {
      status: 400,
      message: "Invalid value: 'system'. Supported values are: 'user' and 'assistant'.",
      param: 'role',
      code: 'invalid_value',
    },
    v7: (client, threadId) => client.beta.threads.messages.create(threadId, { role: 'system' as any, content: 'hi' }),
    v4: (client, threadId) => client.beta.threads.messages.create(threadId, { role: 'system' as any, content: 'hi' }),
  },
  {
    name: "role 'system' inside threads.create messages",
    expected: {
      status: 400,
      message: "Invalid value: 'system'. Supported values are: 'user' and 'assistant'.",
      param: 'messages[1].role',
      code: 'invalid_value',
    },
    v7: (client) =>
      client.beta.threads.create({ messages: [{ role: 'user', content: 'a' }, { role: 'system' as any, content: 'b' }] }),
    v4: (client) =>
      client.beta.threads.create({ messages: [{ role: 'user', content: 'a' }, { role: 'system' as any, content: 'b' }] }),
  },
  {
    // The exact wording is checked in http-errors.test.ts; here the SDK-visible fields.
    name: 'limit=0',
    expected: { status: 400, param: 'limit' },
    v7: (client) => client.beta.assistants.list({ limit: 0 }),
    v4: (client) => client.beta.assistants.list({ limit: 0 }),
  },
  {
    name: 'limit=101',
    expected: { status: 400, param: 'limit' },
    v7: (client, threadId) => client.beta.threads.messages.list(threadId, { limit: 101 }),
    v4: (client, threadId) => client.beta.threads.messages.list(threadId, { limit: 101 }),
  },
  {
    name: "order='sideways'",
    expected: {
      status: 400,
      message: "Invalid value: 'sideways'. Supported values are: 'asc' and 'desc'.",
      param: 'order',
      code: 'invalid_value',
    },
    v7: (client, threadId) => client.beta.threads.messages.list(threadId, { order: 'sideways' as any }),
    v4: (client) => client.beta.assistants.list({ order: 'sideways' as any }),
  },
  {
    name: 'unknown parameter',
    expected: { status: 400, message: "Unknown parameter: 'colour'.", param: 'colour', code: 'unknown_parameter' },
    v7: (client) => client.beta.assistants.create({ model: 'gpt-4o', colour: 'blue' } as any),
    v4: (client) => client.beta.assistants.create({ model: 'gpt-4o', colour: 'blue' } as any),
  },
  {
    name: 'unknown nested parameter',
    expected: {
      status: 400,
      message: "Unknown parameter: 'tool_resources.code_interpreter.files'.",
      param: 'tool_resources.code_interpreter.files',
      code: 'unknown_parameter',
    },
    v7: (client) => client.beta.threads.create({ tool_resources: { code_interpreter: { files: [] } } as any }),
    v4: (client) => client.beta.threads.create({ tool_resources: { code_interpreter: { files: [] } } as any }),
  },
  {
    name: 'missing model',
    expected: { status: 400, message: "Missing required parameter: 'model'.", param: 'model', code: 'missing_required_parameter' },
    v7: (client) => client.beta.assistants.create({} as any),
    v4: (client) => client.beta.assistants.create({} as any),
  },
  {
    name: 'wrong type deep in tools',
    expected: {
      status: 400,
      message: "Invalid type for 'tools[0].function.name': expected a string, but got an integer instead.",
      param: 'tools[0].function.name',
      code: 'invalid_type',
    },
    v7: (client) => client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'function', function: { name: 42 } }] } as any),
    v4: (client) => client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'function', function: { name: 42 } }] } as any),
  },
  {
    name: 'empty content',
    expected: {
      status: 400,
      message: "Invalid 'content': string too short. Expected a string with minimum length 1, but got a string with length 0 instead.",
      param: 'content',
      code: 'string_below_min_length',
    },
    v7: (client, threadId) => client.beta.threads.messages.create(threadId, { role: 'user', content: '' }),
    v4: (client, threadId) => client.beta.threads.messages.create(threadId, { role: 'user', content: '' }),
  },
  {
    name: 'image_url that is not a URL',
    expected: {
      status: 400,
      message: "Invalid 'content[0].image_url.url': expected an http(s) URL or a data:image/ URL.",
      param: 'content[0].image_url.url',
      code: 'invalid_value',
    },
    v7: (client, threadId) =>
      client.beta.threads.messages.create(threadId, { role: 'user', content: [{ type: 'image_url', image_url: { url: 'ftp://x' } }] }),
    v4: (client, threadId) =>
      client.beta.threads.messages.create(threadId, { role: 'user', content: [{ type: 'image_url', image_url: { url: 'ftp://x' } }] }),
  },
  {
    name: 'temperature above 2',
    expected: {
      status: 400,
      message: "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5 instead.",
      param: 'temperature',
      code: 'decimal_above_max_value',
    },
    v7: (client) => client.beta.assistants.create({ model: 'gpt-4o', temperature: 2.5 }),
    v4: (client) => client.beta.assistants.create({ model: 'gpt-4o', temperature: 2.5 }),
  },
];

/** The 404 for each kind of unknown id. */
const NOT_FOUND_ERRORS = {
  assistant: { status: 404, message: "No assistant found with id 'asst_x'." },
  thread: { status: 404, message: "No thread found with id 'thread_x'." },
  message: { status: 404, message: "No message found with id 'msg_x'." },
};

/** Calls on unknown ids (`asst_x`, `thread_x`, `msg_x` on a real thread), in both SDKs, and which id the 404 names. */
const NOT_FOUND: { unknown: keyof typeof NOT_FOUND_ERRORS; v7: ErrorCase['v7']; v4: ErrorCase['v4'] }[] = [
  { unknown: 'assistant', v7: (client) => client.beta.assistants.retrieve('asst_x'), v4: (client) => client.beta.assistants.retrieve('asst_x') },
  { unknown: 'assistant', v7: (client) => client.beta.assistants.update('asst_x', { name: 'n' }), v4: (client) => client.beta.assistants.update('asst_x', { name: 'n' }) },
  { unknown: 'assistant', v7: (client) => client.beta.assistants.delete('asst_x'), v4: (client) => client.beta.assistants.del('asst_x') },
  { unknown: 'thread', v7: (client) => client.beta.threads.retrieve('thread_x'), v4: (client) => client.beta.threads.retrieve('thread_x') },
  { unknown: 'thread', v7: (client) => client.beta.threads.update('thread_x', { metadata: {} }), v4: (client) => client.beta.threads.update('thread_x', { metadata: {} }) },
  { unknown: 'thread', v7: (client) => client.beta.threads.delete('thread_x'), v4: (client) => client.beta.threads.del('thread_x') },
  {
    unknown: 'thread',
    v7: (client) => client.beta.threads.messages.create('thread_x', { role: 'user', content: 'x' }),
    v4: (client) => client.beta.threads.messages.create('thread_x', { role: 'user', content: 'x' }),
  },
  { unknown: 'thread', v7: (client) => client.beta.threads.messages.list('thread_x'), v4: (client) => client.beta.threads.messages.list('thread_x') },
  {
    unknown: 'thread',
    v7: (client) => client.beta.threads.messages.retrieve('msg_x', { thread_id: 'thread_x' }),
    v4: (client) => client.beta.threads.messages.retrieve('thread_x', 'msg_x'),
  },
  {
    unknown: 'message',
    v7: (client, threadId) => client.beta.threads.messages.retrieve('msg_x', { thread_id: threadId }),
    v4: (client, threadId) => client.beta.threads.messages.retrieve(threadId, 'msg_x'),
  },
  {
    unknown: 'message',
    v7: (client, threadId) => client.beta.threads.messages.update('msg_x', { thread_id: threadId, metadata: {} }),
    v4: (client, threadId) => client.beta.threads.messages.update(threadId, 'msg_x', { metadata: {} }),
  },
  {
    unknown: 'message',
    v7: (client, threadId) => client.beta.threads.messages.delete('msg_x', { thread_id: threadId }),
    v4: (client, threadId) => client.beta.threads.messages.del(threadId, 'msg_x'),
  },
];

describe('SDK error classes', () => {
  let threadId: string;
  let assistantId: string;

  before(async () => {
    threadId = (await server.client.beta.threads.create()).id;
    assistantId = (await server.client.beta.assistants.create({ model: 'gpt-4o' })).id;
  });

  for (const badRequest of BAD_REQUESTS) {
    test(`400 BadRequestError, openai 7.x: ${badRequest.name}`, async () => {
      await expectApiError(() => badRequest.v7(server.client, threadId), OpenAI.BadRequestError, badRequest.expected);
    });
    test(`400 BadRequestError, openai 4.x: ${badRequest.name}`, async () => {
      await expectApiError(() => badRequest.v4(server.clientV4, threadId), OpenAIv4.BadRequestError, badRequest.expected);
    });
  }

  test('a rejected request changes nothing', async () => {
    const before = await server.client.beta.threads.retrieve(threadId);
    await expectApiError(
      () => server.client.beta.threads.update(threadId, { metadata: { ok: 'yes' }, tool_resources: { bogus: {} } } as any),
      OpenAI.BadRequestError,
      { status: 400, message: "Unknown parameter: 'tool_resources.bogus'.", param: 'tool_resources.bogus', code: 'unknown_parameter' },
    );
    assert.deepStrictEqual(plain(await server.client.beta.threads.retrieve(threadId)), plain(before));
    // threads.create with one bad message creates neither the thread nor the good messages.
    const count = async () => {
      const { rows } = await server.storage.sql.query<{ threads: number; messages: number }>(
        'SELECT (SELECT count(*) FROM threads)::int AS threads, (SELECT count(*) FROM messages)::int AS messages',
      );
      return rows[0];
    };
    const counted = await count();
    await expectApiError(
      () => server.client.beta.threads.create({ messages: [{ role: 'user', content: 'ok' }, { role: 'user', content: '' }] }),
      OpenAI.BadRequestError,
      { status: 400, param: 'messages[1].content', code: 'string_below_min_length' },
    );
    assert.deepStrictEqual(await count(), counted);
  });

  const WRONG_KEY = 'sk-definitely-not-the-key-123';
  const invalidKey = { status: 401, message: 'Incorrect API key provided.', param: null, code: 'invalid_api_key' };

  test('401 AuthenticationError, openai 7.x: wrong key', async () => {
    const client = new OpenAI({ apiKey: WRONG_KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
    for (const call of [
      () => client.beta.assistants.list(),
      () => client.beta.assistants.create({ model: 'gpt-4o' }),
      () => client.beta.assistants.retrieve(assistantId),
      () => client.beta.threads.create(),
      () => client.beta.threads.retrieve(threadId),
      () => client.beta.threads.messages.list(threadId),
      () => client.beta.threads.messages.create(threadId, { role: 'user', content: 'x' }),
      () => client.beta.threads.delete(threadId),
    ]) {
      const error = await expectApiError(call, OpenAI.AuthenticationError, invalidKey);
      assert.ok(!String(error.message).includes(WRONG_KEY));
      assert.ok(!JSON.stringify(error.error).includes(WRONG_KEY));
    }
    // Nothing was deleted by the unauthenticated call.
    assert.equal((await server.client.beta.threads.retrieve(threadId)).id, threadId);
  });

  test('401 AuthenticationError, openai 4.x: wrong key', async () => {
    const client = new OpenAIv4({ apiKey: WRONG_KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
    for (const call of [
      () => client.beta.assistants.list(),
      () => client.beta.assistants.del(assistantId),
      () => client.beta.threads.messages.retrieve(threadId, 'msg_x'),
    ]) {
      const error = await expectApiError(call, OpenAIv4.AuthenticationError, invalidKey);
      assert.ok(!JSON.stringify(error.error).includes(WRONG_KEY));
    }
    assert.equal((await server.client.beta.assistants.retrieve(assistantId)).id, assistantId);
  });

  test('404 NotFoundError, openai 7.x: unknown ids', async () => {
    for (const notFound of NOT_FOUND) {
      await expectApiError(() => notFound.v7(server.client, threadId), OpenAI.NotFoundError, NOT_FOUND_ERRORS[notFound.unknown]);
    }
  });

  test('404 NotFoundError, openai 4.x: unknown ids', async () => {
    for (const notFound of NOT_FOUND) {
      await expectApiError(() => notFound.v4(server.clientV4, threadId), OpenAIv4.NotFoundError, NOT_FOUND_ERRORS[notFound.unknown]);
    }
  });
});
