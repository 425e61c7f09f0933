/**
 * Fencing tokens on run claims, at the storage layer, on PGlite and PostgreSQL: each claim takes the
 * next token, and every write made through a claim's fenced client (alone or in a transaction; on
 * the run's row, its steps, messages and files) holds only while that claim's lease does. A claim
 * that lapsed, or that another claim replaced, writes nothing; a new claim waits for a fenced write
 * in flight, so no stale write ever lands after it. Ingestion claims are fenced by attempt number.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fencedWrites, finishCancellation } from '../src/engine/execute-run.js';
import { Repositories } from '../src/storage/repositories.js';
import { LeaseLostError, usagePlusSql, type NewRun } from '../src/storage/runs.js';
import { BACKENDS, openTestStorage, type TestStorage } from './helpers/storage.js';
import { sleep } from './helpers/harness.js';

const LONG_LEASE_MS = 60_000;

function newRun(threadId: string, assistantId: string, owner: string): NewRun {
  return {
    threadId,
    assistantId,
    model: 'm',
    instructions: null,
    additionalInstructions: null,
    tools: [],
    metadata: {},
    temperature: 1,
    topP: 1,
    maxCompletionTokens: null,
    maxPromptTokens: null,
    truncationStrategy: { type: 'auto', last_messages: null },
    responseFormat: 'auto',
    toolChoice: 'auto',
    parallelToolCalls: true,
    reasoningEffort: null,
    expiresAfterSeconds: 600,
    lockedBy: owner,
    leaseMs: LONG_LEASE_MS,
  };
}

const assistantMessage = (runId: string) => ({
  role: 'assistant' as const,
  content: [],
  attachments: [],
  metadata: {},
  status: 'in_progress' as const,
  runId,
});

for (const backend of BACKENDS) {
  describe(`fencing on ${backend}`, () => {
    let handle: TestStorage;
    let assistantId: string;
    before(async () => {
      handle = await openTestStorage(backend);
      assistantId = (await handle.storage.createAssistant({ model: 'm' })).id;
    });
    after(async () => {
      await handle.close();
    });

    async function queuedRun(owner: string) {
      const { storage } = handle;
      const thread = await storage.createThread({ messages: [], toolResources: null, metadata: null });
      return storage.runs.createRun(newRun(thread.id, assistantId, owner), []);
    }

    test('each claim takes the next token; a replaced claim writes nothing, the current one writes', async () => {
      const { storage } = handle;
      const run = await queuedRun('a');
      const first = (await storage.runs.claim(run.id, 'a', 50))!;
      assert.ok(first);
      await sleep(80); // the lease lapses
      const second = (await storage.runs.claim(run.id, 'b', LONG_LEASE_MS))!;
      assert.equal(second.token, first.token + 1);

      const stale = fencedWrites(storage, first);
      await assert.rejects(stale.runs.transition(run.id, ['queued'], 'in_progress'), LeaseLostError);
      const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 };
      await assert.rejects(stale.runs.writeTogether(run.id, [{ table: 'runs', id: run.id, fields: { usage: usagePlusSql(usage) } }]), LeaseLostError);
      await assert.rejects(
        stale.sql.transaction(async (tx) => {
          await new Repositories(tx).createMessage(run.thread_id, assistantMessage(run.id));
        }),
        LeaseLostError,
      );
      await assert.rejects(stale.runs.createStep(run, { type: 'tool_calls', tool_calls: [] }, 0), LeaseLostError);
      await assert.rejects(stale.runs.startMessage(run, 0), LeaseLostError);
      await assert.rejects(
        stale.files.createFile({ filename: 'x.png', purpose: 'assistants_output', bytes: 1, blobId: 'blob', mimeType: null, expiresAt: null }),
        LeaseLostError,
      );
      assert.deepEqual(await storage.runs.extendLeases([first], LONG_LEASE_MS), []);
      await storage.runs.release(first); // a stale release lets go of nothing
      const { rows } = await storage.sql.query<{ status: string; locked_by: string; messages: number; steps: number; usage: unknown }>(
        `SELECT status, locked_by, usage, (SELECT count(*)::int FROM messages WHERE thread_id = runs.thread_id) AS messages,
           (SELECT count(*)::int FROM run_steps WHERE run_id = runs.id) AS steps FROM runs WHERE id = $1`,
        [run.id],
      );
      assert.deepEqual(rows[0], { status: 'queued', locked_by: 'b', usage: null, messages: 0, steps: 0 });

      const current = fencedWrites(storage, second);
      const started = await current.runs.transition(run.id, ['queued'], 'in_progress');
      assert.equal(started?.status, 'in_progress');
      await current.runs.createStep(run, { type: 'tool_calls', tool_calls: [] }, 0);
      const { message, step } = await current.runs.startMessage(run, 1);
      assert.equal(message.status, 'in_progress');
      assert.equal(step.step_details.type === 'message_creation' && step.step_details.message_creation.message_id, message.id);
      // Several rows in one fenced statement: each comes back written, in its place.
      const [ended, endedStep, completed] = (await current.runs.writeTogether(run.id, [
        { table: 'messages', id: message.id, fields: { status: 'completed', completed_at: 5 } },
        { table: 'run_steps', id: step.id, fields: { status: 'completed', completed_at: 5 } },
        { table: 'runs', id: run.id, from: ['in_progress'], status: 'requires_action', fields: { usage: usagePlusSql(usage) } },
      ])) as [{ status: string }, { status: string }, { status: string }];
      assert.deepEqual([ended.status, endedStep.status, completed.status], ['completed', 'completed', 'requires_action']);
      const [missed] = await current.runs.writeTogether(run.id, [{ table: 'runs', id: run.id, from: ['queued'], status: 'in_progress', fields: {} }]);
      assert.equal(missed, undefined, 'a status that does not hold writes nothing');
      await storage.runs.transition(run.id, ['requires_action'], 'in_progress');
      assert.deepEqual(await storage.runs.extendLeases([second], LONG_LEASE_MS), [run.id]);

      // A claim that also starts the run takes the next token as well, fencing the one before it.
      await storage.runs.release(second);
      const third = await storage.runs.claimForExecution(run.id, 'c', LONG_LEASE_MS, 1);
      assert.equal(third?.claim.token, second.token + 1);
      assert.equal(third?.load.previousStatus, 'in_progress');
      await assert.rejects(current.runs.startMessage(run, 2), LeaseLostError);
    });

    test('claimForExecution moves a queued run to in_progress, keeping what the run had', async () => {
      const { storage } = handle;
      const run = await queuedRun('a');
      const claimed = await storage.runs.claimForExecution(run.id, 'a', LONG_LEASE_MS, 1234);
      assert.equal(claimed?.load.previousStatus, 'queued');
      assert.equal(claimed?.load.run.status, 'in_progress');
      assert.equal(claimed?.load.run.started_at, 1234);
      assert.equal(await storage.runs.claimForExecution(run.id, 'b', LONG_LEASE_MS, 1), undefined, 'held by a live lease');
    });

    test('a claim whose lease lapsed writes nothing even when no one took the run over', async () => {
      const { storage } = handle;
      const run = await queuedRun('a');
      const claim = (await storage.runs.claim(run.id, 'a', 50))!;
      await sleep(80);
      const writes = fencedWrites(storage, claim);
      await assert.rejects(writes.runs.transition(run.id, ['queued'], 'in_progress'), LeaseLostError);
      assert.deepEqual(await storage.runs.extendLeases([claim], LONG_LEASE_MS), []);
      assert.equal((await storage.runs.getRunById(run.id))?.status, 'queued');
    });

    test('a status a fenced write does not find is no lost lease: it is reported as no transition', async () => {
      const { storage } = handle;
      const run = await queuedRun('a');
      const claim = (await storage.runs.claim(run.id, 'a', LONG_LEASE_MS))!;
      const writes = fencedWrites(storage, claim);
      assert.equal(await writes.runs.transition(run.id, ['requires_action'], 'queued'), undefined);
    });

    test('a cancellation through a stale claim changes nothing; through the current one it ends the run', async () => {
      const { storage } = handle;
      const run = await queuedRun('a');
      await storage.runs.transition(run.id, ['queued'], 'cancelling');
      const stale = (await storage.runs.claim(run.id, 'a', 50))!;
      await sleep(80);
      const current = (await storage.runs.claim(run.id, 'b', LONG_LEASE_MS))!;
      await assert.rejects(finishCancellation(fencedWrites(storage, stale), run.id, 1), LeaseLostError);
      assert.equal((await storage.runs.getRunById(run.id))?.status, 'cancelling');
      const ended = await finishCancellation(fencedWrites(storage, current), run.id, 1);
      assert.equal(ended?.run.status, 'cancelled');
    });

    if (backend === 'postgres') {
      test('a new claim waits for a fenced transaction in flight, which commits before it; after it, the old claim is refused', async () => {
        const { storage } = handle;
        const run = await queuedRun('a');
        const first = (await storage.runs.claim(run.id, 'a', 300))!;
        const stale = fencedWrites(storage, first);
        let release!: () => void;
        const held = new Promise<void>((resolve) => (release = resolve));
        const inFlight = stale.sql.transaction(async (tx) => {
          await new Repositories(tx).createMessage(run.thread_id, assistantMessage(run.id));
          await held;
        });
        await sleep(400); // the lease lapses while the transaction holds the run's row
        let claimedAt = 0;
        const takeover = storage.runs.claim(run.id, 'b', LONG_LEASE_MS).then((claim) => {
          claimedAt = Date.now();
          return claim;
        });
        await sleep(100);
        assert.equal(claimedAt, 0, 'the claim waits for the fenced transaction');
        const committedAt = Date.now();
        release();
        await inFlight;
        const second = (await takeover)!;
        assert.ok(claimedAt >= committedAt);
        assert.equal(second.token, first.token + 1);
        await assert.rejects(
          stale.sql.transaction(async (tx) => {
            await new Repositories(tx).createMessage(run.thread_id, assistantMessage(run.id));
          }),
          LeaseLostError,
        );
        const { rows } = await storage.sql.query<{ n: number }>('SELECT count(*)::int AS n FROM messages WHERE thread_id = $1', [run.thread_id]);
        assert.equal(rows[0]!.n, 1, 'the write made before the takeover stays; none after it');
      });
    }

    test('ingestion claims are fenced by attempt: a file taken again refuses the earlier attempt\'s completion', async () => {
      const { storage } = handle;
      const store = await storage.vectorStores.createStore({ name: 'fenced', description: null, metadata: {}, expiresAfter: null, embeddingModel: null, embeddingDimensions: null });
      const blob = await storage.blobs.put((async function* () {
        yield Buffer.from('hello');
      })(), { maxBytes: 1024 });
      const file = await storage.files.createFile({ filename: 'a.txt', purpose: 'assistants', bytes: blob.bytes, blobId: blob.id, mimeType: 'text/plain', expiresAt: null });
      await storage.vectorStores.addFiles(store.id, [{ fileId: file.id, chunkingStrategy: { type: 'auto' } as never, attributes: null }]);
      const [first] = await storage.vectorStores.claimPending('a', 1, 50);
      assert.ok(first);
      await sleep(80);
      const [second] = await storage.vectorStores.claimPending('a', 1, LONG_LEASE_MS);
      assert.equal(second?.attempts, first.attempts + 1, 'the same owner claims it again');
      const result = { content: 'hello', chunks: [], usageBytes: 5 };
      assert.equal(await storage.vectorStores.completeFile('a', first, result), false);
      assert.deepEqual([...(await storage.vectorStores.extendLeases('a', [first], LONG_LEASE_MS))], []);
      assert.equal(await storage.vectorStores.completeFile('a', second!, result), true);
    });
  });
}
