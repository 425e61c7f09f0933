import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { migrate, MIGRATIONS } from '../src/storage/migrations.js';
import { postgresClient } from '../src/storage/sql.js';
import { lockDataDir, DataDirLockedError } from '../src/storage/lock.js';
import { BACKENDS, freshSchema, openTestStorage, tempDir, type TestStorage } from './helpers/storage.js';

const message = (text: string) => ({
  role: 'user' as const,
  content: [{ type: 'text', text: { value: text, annotations: [] } }],
  attachments: [],
  metadata: {},
});

for (const backend of BACKENDS) {
  describe(`storage on ${backend}`, () => {
    let handle: TestStorage;
    before(async () => {
      handle = await openTestStorage(backend);
    });
    after(async () => {
      await handle.close();
    });

    test('migrations are recorded once and re-running them changes nothing', async () => {
      const { storage } = handle;
      assert.deepEqual(await migrate(storage.sql), []);
      const { rows } = await storage.sql.query<{ version: number }>('SELECT version FROM assistd_migrations ORDER BY version');
      assert.deepEqual(
        rows.map((row) => row.version),
        MIGRATIONS.map((migration) => migration.version),
      );
    });

    test('the vector extension can be created and used', async () => {
      const { storage } = handle;
      if (storage.sql.kind === 'postgres') {
        const { rows } = await storage.sql.query("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'");
        if (rows.length === 0) return; // pgvector not installed on this server: required only by file_search
      }
      await storage.sql.exec('CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public');
      const { rows } = await storage.sql.query<{ distance: number }>(
        "SELECT '[1,0,0]'::vector <-> '[0,1,0]'::vector AS distance",
      );
      assert.ok(Math.abs(Number(rows[0]!.distance) - Math.SQRT2) < 1e-6);
    });

    test('cursor pagination is exact when every row shares one second', async () => {
      const { storage } = handle;
      const thread = await storage.createThread({ messages: [], toolResources: undefined, metadata: {} });
      const ids: string[] = [];
      for (let i = 0; i < 23; i++) ids.push((await storage.createMessage(thread.id, message(`m${i}`))).id);
      // Force the same created_at everywhere: ordering must come from insertion order alone.
      await storage.sql.query('UPDATE messages SET created_at = 1700000000 WHERE thread_id = $1', [thread.id]);

      for (const order of ['asc', 'desc'] as const) {
        const expected = order === 'asc' ? ids : [...ids].reverse();
        const seen: string[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await storage.listMessages(thread.id, { limit: 5, order, after });
          seen.push(...page.data.map((item) => item.id));
          assert.equal(page.first_id, page.data[0]?.id ?? null);
          assert.equal(page.last_id, page.data.at(-1)?.id ?? null);
          if (!page.has_more) break;
          after = page.last_id!;
        }
        assert.deepEqual(seen, expected, `walk in ${order} order`);

        // `before` returns the nearest items before the cursor, in the requested order.
        const cursor = expected[10]!;
        const page = await storage.listMessages(thread.id, { limit: 3, order, before: cursor });
        assert.deepEqual(
          page.data.map((item) => item.id),
          expected.slice(7, 10),
        );
        assert.equal(page.has_more, true);
        const between = await storage.listMessages(thread.id, { limit: 50, order, after: expected[2]!, before: expected[6]! });
        assert.deepEqual(
          between.data.map((item) => item.id),
          expected.slice(3, 6),
        );
      }
      const empty = await storage.listMessages(thread.id, { limit: 5, order: 'desc', after: 'msg_unknown' });
      assert.deepEqual(empty, { object: 'list', data: [], first_id: null, last_id: null, has_more: false });
    });

    test('deleting a thread deletes its messages', async () => {
      const { storage } = handle;
      const thread = await storage.createThread({ messages: [message('a'), message('b')], toolResources: undefined, metadata: {} });
      const listed = await storage.listMessages(thread.id, { limit: 10, order: 'asc' });
      assert.equal(listed.data.length, 2);
      assert.equal(await storage.deleteThread(thread.id), true);
      const { rows } = await storage.sql.query('SELECT id FROM messages WHERE thread_id = $1', [thread.id]);
      assert.equal(rows.length, 0);
      assert.equal(await storage.deleteThread(thread.id), false);
    });

    test('a thread with an invalid message is not created at all', async () => {
      const { storage } = handle;
      const before = await storage.sql.query('SELECT count(*)::int AS n FROM threads');
      await assert.rejects(
        storage.createThread({
          messages: [message('ok'), { ...message('bad'), role: 'system' as never, content: undefined as never }],
          toolResources: undefined,
          metadata: {},
        }),
      );
      const afterwards = await storage.sql.query('SELECT count(*)::int AS n FROM threads');
      assert.deepEqual(afterwards.rows, before.rows);
    });

    test('jsonb and bigint columns round-trip as JSON values and numbers', async () => {
      const { storage } = handle;
      const assistant = await storage.createAssistant({
        model: 'm',
        tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
        metadata: { k: 'v' },
        response_format: { type: 'json_object' },
        tool_resources: { code_interpreter: { file_ids: ['file-1'] } },
      });
      assert.equal(typeof assistant.created_at, 'number');
      const fetched = await storage.getAssistant(assistant.id);
      assert.deepEqual(fetched, assistant);
      assert.deepEqual(fetched?.tool_resources, { code_interpreter: { file_ids: ['file-1'] } });
      assert.deepEqual(fetched?.response_format, { type: 'json_object' });
      const cleared = await storage.modifyAssistant(assistant.id, { tool_resources: null, metadata: null, name: 'renamed' });
      assert.deepEqual(cleared?.tool_resources, {});
      assert.deepEqual(cleared?.metadata, {});
      assert.equal(cleared?.name, 'renamed');
      assert.equal(cleared?.model, 'm');
    });
  });
}

describe('migrations under concurrency', { skip: !process.env.DATABASE_URL && 'DATABASE_URL is not set' }, () => {
  test('two processes migrating one schema at once apply each version exactly once', async () => {
    const schema = freshSchema();
    const url = process.env.DATABASE_URL!;
    const bootstrap = postgresClient(url, { max: 1 });
    await bootstrap.exec(`CREATE SCHEMA "${schema}"`);
    await bootstrap.close();
    const clients = Array.from({ length: 4 }, () => postgresClient(url, { schema, max: 2 }));
    try {
      const results = await Promise.all(clients.map((client) => migrate(client)));
      const applied = results.flat().sort();
      assert.deepEqual(
        applied,
        MIGRATIONS.map((migration) => migration.version),
      );
      const { rows } = await clients[0]!.query<{ n: number }>('SELECT count(*)::int AS n FROM assistd_migrations');
      assert.equal(rows[0]!.n, MIGRATIONS.length);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
      const cleanup = postgresClient(url, { max: 1 });
      await cleanup.exec(`DROP SCHEMA "${schema}" CASCADE`);
      await cleanup.close();
    }
  });
});

describe('data dir lock', () => {
  test('a second holder is refused while the first is alive, and the lock is released on close', () => {
    const dir = tempDir('lock');
    const release = lockDataDir(dir);
    try {
      assert.throws(() => lockDataDir(dir), DataDirLockedError);
      // Another process is refused too.
      const child = spawnSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import { lockDataDir } from ${JSON.stringify(new URL('../src/storage/lock.js', import.meta.url).href)};
           try { lockDataDir(${JSON.stringify(dir)}); process.exit(0); } catch (e) { console.error(e.message); process.exit(3); }`,
        ],
        { encoding: 'utf8' },
      );
      assert.equal(child.status, 3);
      assert.match(child.stderr, /in use by another assistd process/);
    } finally {
      release();
    }
    assert.equal(existsSync(join(dir, 'assistd.lock')), false);
    lockDataDir(dir)();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a lock left by a dead process is taken over', () => {
    const dir = tempDir('lock');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(join(dir, 'assistd.lock'), JSON.stringify({ pid: Number(dead.stdout) }));
    const release = lockDataDir(dir);
    assert.equal(JSON.parse(readFileSync(join(dir, 'assistd.lock'), 'utf8')).pid, process.pid);
    release();
    rmSync(dir, { recursive: true, force: true });
  });

  test('opening the same PGlite data dir twice fails fast and leaves the data intact', async () => {
    const handle = await openTestStorage('pglite');
    try {
      const assistant = await handle.storage.createAssistant({ model: 'm' });
      const { openStorage } = await import('../src/storage/index.js');
      await assert.rejects(openStorage({ dataDir: handle.dataDir }), DataDirLockedError);
      assert.deepEqual(await handle.storage.getAssistant(assistant.id), assistant);
    } finally {
      await handle.close();
    }
  });
});
