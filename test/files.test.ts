/**
 * The Files API through the official SDKs against a real server: upload (streamed from disk, as a
 * form), list, retrieve, content, delete, expiry; the upload limits (413, a stall is a 408, a slow
 * but steady upload is not); uploads streamed to storage without being held in memory; both blob
 * stores (a directory, PostgreSQL rows); and image files reaching vision models as images.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { toFile } from 'openai';
import { directoryBlobStore, BlobTooLargeError } from '../src/storage/blobs.js';
import { sweepExpiredFiles } from '../src/server.js';
import { assistdEnv, cleanUpCliProcesses, CliProcess, LISTENING, listening } from './helpers/cli.js';
import { taggedRuns, withTimeout } from './helpers/harness.js';
import { http, startTestServer, TEST_KEY, type TestServer } from './helpers/server.js';
import { BACKENDS, openTestStorage, preparedDataDir, tempDir } from './helpers/storage.js';

type Json = any;

const PNG_1X1 = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const FILE_KEYS = ['id', 'object', 'bytes', 'created_at', 'expires_at', 'filename', 'purpose', 'status', 'status_details'];

const scratch: string[] = [];
after(async () => {
  await cleanUpCliProcesses();
  for (const path of scratch) rmSync(path, { recursive: true, force: true });
});

function scratchFile(name: string, contents: string | Buffer): string {
  const dir = tempDir('files');
  scratch.push(dir);
  const path = join(dir, name);
  writeFileSync(path, contents);
  return path;
}

describe('files through the SDKs', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ config: { assistd_settings: { max_upload_size_mb: 1 } } });
  });
  after(async () => {
    await server?.close();
  });

  test('openai 7.x: create from a read stream, retrieve, list, content, delete', async () => {
    const text = 'The treasure is buried under the old oak tree.\n'.repeat(100);
    const path = scratchFile('notes.txt', text);
    const before = Math.floor(Date.now() / 1000);
    const file: Json = await server.client.files.create({ file: createReadStream(path), purpose: 'assistants' });
    assert.deepEqual(Object.keys(file), FILE_KEYS);
    assert.match(file.id, /^file-[A-Za-z0-9]{24}$/);
    assert.equal(file.object, 'file');
    assert.equal(file.bytes, Buffer.byteLength(text));
    assert.ok(file.created_at >= before && file.created_at <= before + 5);
    assert.equal(file.expires_at, null);
    assert.equal(file.filename, 'notes.txt');
    assert.equal(file.purpose, 'assistants');
    assert.equal(file.status, 'processed');
    assert.equal(file.status_details, null);

    assert.deepEqual(await server.client.files.retrieve(file.id), file);
    const content = await server.client.files.content(file.id);
    assert.equal(await content.text(), text);

    const other: Json = await server.client.files.create({ file: await toFile(Buffer.from('{"a":1}'), 'data.json'), purpose: 'user_data' });
    const listed = await server.client.files.list();
    assert.deepEqual(listed.data.slice(0, 2).map((item) => item.id), [other.id, file.id], 'newest first');
    assert.deepEqual((await server.client.files.list({ purpose: 'user_data' })).data.map((item) => item.id), [other.id]);
    const ascending = await server.client.files.list({ order: 'asc' });
    assert.ok(ascending.data.findIndex((item) => item.id === file.id) < ascending.data.findIndex((item) => item.id === other.id));
    const page = await http(server, 'GET', `/v1/files?limit=1&order=desc`);
    assert.equal(page.status, 200);
    assert.equal(page.json.data.length, 1);
    assert.equal(page.json.has_more, true);
    const next = await http(server, 'GET', `/v1/files?limit=1&order=desc&after=${page.json.last_id}`);
    assert.notEqual(next.json.data[0].id, page.json.data[0].id);

    assert.deepEqual(await server.client.files.delete(file.id), { id: file.id, object: 'file', deleted: true });
    for (const path of [`/v1/files/${file.id}`, `/v1/files/${file.id}/content`]) {
      const gone = await http(server, 'GET', path);
      assert.equal(gone.status, 404);
      assert.deepEqual(gone.json, { error: { message: `No file found with id '${file.id}'.`, type: 'invalid_request_error', param: null, code: null } });
    }
    assert.equal((await http(server, 'DELETE', `/v1/files/${file.id}`)).status, 404);
    assert.ok(!(await server.client.files.list()).data.some((item) => item.id === file.id));
  });

  test('openai 4.x: create with toFile and expires_after; retrieve', async () => {
    const file: Json = await server.clientV4.files.create({
      file: await toFile(Buffer.from('short-lived'), 'brief.txt'),
      purpose: 'assistants',
      expires_after: { anchor: 'created_at', seconds: 3_600 },
    } as never);
    assert.equal(file.expires_at, file.created_at + 3_600);
    assert.deepEqual(await server.clientV4.files.retrieve(file.id), file);
  });

  test('an expired file is gone at once, and the sweep removes its contents', async () => {
    const file: Json = await server.client.files.create({
      file: await toFile(Buffer.from('expiring'), 'expiring.txt'),
      purpose: 'assistants',
      expires_after: { anchor: 'created_at', seconds: 3_600 },
    });
    const stored = await server.storage.files.getStoredFile(file.id);
    // The clock cannot be moved in a test; the expiry is.
    await server.storage.sql.query('UPDATE files SET expires_at = $2 WHERE id = $1', [file.id, Math.floor(Date.now() / 1000) - 1]);
    assert.equal((await http(server, 'GET', `/v1/files/${file.id}`)).status, 404);
    assert.ok(!(await server.client.files.list()).data.some((item) => item.id === file.id));
    await sweepExpiredFiles(server.storage);
    const { rows } = await server.storage.sql.query('SELECT id FROM files WHERE id = $1', [file.id]);
    assert.equal(rows.length, 0);
    await assert.rejects(async () => {
      for await (const chunk of server.storage.blobs.get(stored!.blobId)) void chunk;
    });
  });

  test('over max_upload_size_mb → 413 in OpenAI shape, and nothing is kept', async () => {
    const before = (await server.client.files.list()).data.length;
    const error: Json = await server.client.files
      .create({ file: await toFile(Buffer.alloc(3 * 1024 * 1024, 1), 'big.bin'), purpose: 'assistants' })
      .then(() => assert.fail('accepted'), (reason: unknown) => reason);
    assert.equal(error.status, 413);
    assert.deepEqual(error.error, {
      message: 'File too large. The maximum size is 1 MB (assistd_settings.max_upload_size_mb).',
      type: 'invalid_request_error',
      param: 'file',
      code: 'file_too_large',
    });
    assert.equal((await server.client.files.list()).data.length, before);
    // The blob store tests below show that a refused blob leaves nothing behind, in either store.
  });

  test('bad forms are 400s naming the field', async () => {
    const attempt = async (form: FormData) => {
      const response = await fetch(`${server.url}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${TEST_KEY}` }, body: form });
      return { status: response.status, json: (await response.json()) as Json };
    };
    const file = () => new Blob(['hello'], { type: 'text/plain' });
    let form = new FormData();
    form.append('file', file(), 'a.txt');
    let response = await attempt(form);
    assert.equal(response.status, 400);
    assert.deepEqual(response.json.error, { message: "Missing required parameter: 'purpose'.", type: 'invalid_request_error', param: 'purpose', code: 'missing_required_parameter' });

    form = new FormData();
    form.append('purpose', 'assistants');
    response = await attempt(form);
    assert.equal(response.json.error.param, 'file');
    assert.equal(response.json.error.code, 'missing_required_parameter');

    form = new FormData();
    form.append('file', file(), 'a.txt');
    form.append('purpose', 'assistants');
    form.append('expires_after[anchor]', 'created_at');
    form.append('expires_after[seconds]', '10');
    response = await attempt(form);
    assert.equal(response.status, 400);
    assert.equal(response.json.error.param, 'expires_after.seconds');

    const json = await http(server, 'POST', '/v1/files', { body: { purpose: 'assistants' } });
    assert.equal(json.status, 400);
    assert.match(json.json.error.message, /expected multipart\/form-data/);
  });

  test('a file in a message: image_file parts and attachments name uploaded files; unknown ones are refused', async () => {
    const image: Json = await server.client.files.create({ file: await toFile(PNG_1X1, 'dot.png'), purpose: 'vision' });
    const doc: Json = await server.client.files.create({ file: await toFile(Buffer.from('doc'), 'doc.txt'), purpose: 'assistants' });
    const thread = await server.client.beta.threads.create();
    const message: Json = await server.client.beta.threads.messages.create(thread.id, {
      role: 'user',
      content: [
        { type: 'text', text: 'What is this?' },
        { type: 'image_file', image_file: { file_id: image.id, detail: 'low' } },
      ],
      attachments: [{ file_id: doc.id, tools: [{ type: 'file_search' }] }],
    });
    assert.deepEqual(message.content[1], { type: 'image_file', image_file: { file_id: image.id, detail: 'low' } });
    assert.deepEqual(message.attachments, [{ file_id: doc.id, tools: [{ type: 'file_search' }] }]);
    const refused = await http(server, 'POST', `/v1/threads/${thread.id}/messages`, {
      body: { role: 'user', content: 'x', attachments: [{ file_id: doc.id, tools: [] }, { file_id: 'file-nope', tools: [] }] },
    });
    assert.equal(refused.status, 400);
    assert.deepEqual(refused.json.error, { message: "No file found with id 'file-nope'.", type: 'invalid_request_error', param: 'attachments[1].file_id', code: null });
  });
});

describe('an image file reaches a vision model as an image', () => {
  const { newTag, useHarness } = taggedRuns('F');
  const h = useHarness();

  test('image_file parts become data-URL image_url parts with their detail', async () => {
    const tag = newTag();
    const image: Json = await h.client.files.create({ file: await toFile(PNG_1X1, 'dot.png'), purpose: 'vision' });
    const assistant = await h.client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await h.client.beta.threads.create({
      messages: [{ role: 'user', content: [{ type: 'text', text: `Describe ${tag}` }, { type: 'image_file', image_file: { file_id: image.id, detail: 'high' } }] }],
    });
    const run = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'createAndPoll');
    assert.equal(run.status, 'completed');
    assert.deepEqual(h.requests(tag)[0]!.body.messages.at(-1), {
      role: 'user',
      content: [
        { type: 'text', text: `Describe ${tag}` },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG_1X1.toString('base64')}`, detail: 'high' } },
      ],
    });
  });
});

describe('upload timing', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ config: { assistd_settings: { request_timeout_seconds: 1 } } });
  });
  after(async () => {
    await server?.close();
  });

  const boundary = 'assistdboundary';
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.txt"\r\nContent-Type: text/plain\r\n\r\n`;
  const tail = `\r\n--${boundary}--\r\n`;
  const request = (length: number) =>
    `POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_KEY}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${length}\r\n\r\n`;

  test('an upload that stalls → 408 (upload stalled), and nothing is kept', async () => {
    const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(request(head.length + 1_000 + tail.length) + head + 'x'.repeat(100));
    await withTimeout(closed, 'the connection closed');
    assert.match(received, /^HTTP\/1\.1 408 /);
    assert.deepEqual(JSON.parse(received.slice(received.indexOf('\r\n\r\n') + 4)).error, {
      message: 'The upload stalled: no bytes arrived for 1 second.',
      type: 'invalid_request_error',
      param: null,
      code: 'request_timeout',
    });
    assert.equal((await server.client.files.list()).data.length, 0);
  });

  test('a slow but steady upload outlasts the request timeout and completes', async () => {
    const body = 'y'.repeat(30);
    const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    const answered = new Promise<void>((resolve) => socket.on('data', () => received.includes('\r\n\r\n{') && received.endsWith('}') && resolve()));
    socket.write(request(head.length + body.length + tail.length) + head);
    // 30 bytes 100 ms apart: 3 s in all, three times the request timeout, never 1 s without a byte.
    for (const char of body) {
      socket.write(char);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    socket.write(tail);
    await withTimeout(answered, 'the answer');
    socket.destroy();
    assert.match(received, /^HTTP\/1\.1 200 /);
    const file = JSON.parse(received.slice(received.indexOf('\r\n\r\n') + 4));
    assert.equal(file.bytes, 30);
    assert.equal(file.filename, 'slow.txt');
  });
});

describe('uploads stream to storage', () => {
  test("a 256 MB upload raises the server's peak memory by far less than its size", async () => {
    const dataDir = await preparedDataDir();
    scratch.push(dataDir);
    const cli = new CliProcess(['serve', '--port', '0', '--data-dir', dataDir], {
      env: assistdEnv({ DATABASE_URL: process.env.DATABASE_URL }),
    });
    const { url } = listening(await cli.waitFor(LISTENING));
    const peak = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${cli.proc.pid}/status`, 'utf8'))![1]) / 1024;
    try {
      const before = peak();
      const size = 256 * 1024 * 1024;
      const piece = Buffer.alloc(1024 * 1024, 7);
      async function* pieces() {
        for (let sent = 0; sent < size; sent += piece.length) yield piece;
      }
      const { default: OpenAI } = await import('openai');
      const client = new OpenAI({ apiKey: 'unused', baseURL: `${url}/v1`, maxRetries: 0 });
      const file = await client.files.create({ file: await toFile(Readable.from(pieces()), 'big.bin'), purpose: 'assistants' });
      assert.equal(file.bytes, size);
      const grown = peak() - before;
      assert.ok(grown < 128, `peak RSS grew by ${grown.toFixed(0)} MB for a ${size / 1024 / 1024} MB upload`);
    } finally {
      await cli.stop();
    }
  });
});

for (const backend of BACKENDS) {
  describe(`blob store (${backend})`, () => {
    test('put streams in and get streams out the same bytes; delete removes; past maxBytes nothing is kept', async () => {
      const { storage, close } = await openTestStorage(backend);
      try {
        const blobs = storage.blobs;
        assert.equal(blobs.kind, backend === 'postgres' ? 'postgres' : 'directory');
        const parts = Array.from({ length: 5 }, (_, index) => Buffer.alloc(700 * 1024, index + 1));
        const stored = await blobs.put(Readable.from(parts), { maxBytes: 10 * 1024 * 1024 });
        assert.equal(stored.bytes, 5 * 700 * 1024);
        const read: Buffer[] = [];
        for await (const chunk of blobs.get(stored.id)) read.push(chunk as Buffer);
        assert.ok(Buffer.concat(read).equals(Buffer.concat(parts)));
        await blobs.delete(stored.id);
        await assert.rejects(async () => {
          const again: Buffer[] = [];
          for await (const chunk of blobs.get(stored.id)) again.push(chunk as Buffer);
          if (again.length === 0) throw new Error('empty');
        });
        await assert.rejects(blobs.put(Readable.from(parts), { maxBytes: 1024 * 1024 }), BlobTooLargeError);
        if (backend === 'postgres') {
          const { rows } = await storage.sql.query<{ n: number }>('SELECT count(*)::int AS n FROM blobs');
          assert.equal(rows[0]!.n, 0);
        }
      } finally {
        await close();
      }
    });
  });
}

test('directory blob store: a partial blob left by a crash is swept, finished ones are kept', async () => {
  const dir = tempDir('blobs');
  scratch.push(dir);
  const blobs = directoryBlobStore(dir);
  const kept = await blobs.put(Readable.from([Buffer.from('kept')]), { maxBytes: 100 });
  writeFileSync(join(dir, 'deadbeef.part'), 'half');
  await blobs.sweep();
  assert.deepEqual(readdirSync(dir), [kept.id]);
});
