/**
 * The ingestion service's leases, against a scripted store: a heartbeat that was in flight while
 * another file was claimed must not stop that file's work (it was not among the files the
 * heartbeat asked about). Stopping it left the file leased and idle until its lease lapsed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IngestionService } from '../src/ingest/ingestion.js';
import { Readable } from 'node:stream';
import type { PendingFile } from '../src/storage/vector-stores.js';

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => (resolve = done));
  return { promise, resolve };
}

const pending = (fileId: string): PendingFile => ({ vectorStoreId: 'vs_1', fileId, chunkingStrategy: { type: 'auto' } as never, attempts: 1, embeddingModel: null, embeddingDimensions: null });

test('a file claimed while a heartbeat is in flight keeps its work when the heartbeat returns without it', async () => {
  const claims = [[pending('file_a')], [pending('file_x')]];
  const lookups = new Map<string, ReturnType<typeof deferred<unknown>>>();
  const completed: string[] = [];
  const heartbeat = deferred<Set<string>>();
  const failed: string[] = [];
  const released: string[] = [];
  const stores = {
    claimPending: async () => claims.shift() ?? [],
    extendLeases: async (_owner: string, files: { fileId: string }[]) => {
      assert.deepEqual(files.map((file) => file.fileId), ['file_a'], 'the heartbeat asks about the file being worked on');
      return heartbeat.promise;
    },
    completeFile: async (_owner: string, file: { fileId: string }) => (completed.push(file.fileId), true),
    failFile: async (_owner: string, file: { fileId: string }) => void failed.push(file.fileId),
    releaseFile: async (_owner: string, file: { fileId: string }) => void released.push(file.fileId),
  };
  const storage = {
    vectorStores: stores,
    files: {
      getStoredFile: (fileId: string) => {
        const lookup = deferred<unknown>();
        lookups.set(fileId, lookup);
        return lookup.promise;
      },
    },
    blobs: { get: () => Readable.from([Buffer.from('Some words to index.')]) },
  };
  const log = { warn() {}, error() {} };
  const service = new IngestionService({ storage: storage as never, models: {} as never, settings: { modelMaxRetries: 0 } as never, log });
  const waitFor = async (check: () => boolean) => {
    for (let tries = 0; !check(); tries++) {
      assert.ok(tries < 500, 'timed out');
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  };

  service.notify();
  await waitFor(() => lookups.has('file_a'));
  const beat = (service as unknown as { extendLeases(): Promise<void> }).extendLeases();
  service.notify(); // file_x is claimed while the heartbeat's query runs
  await waitFor(() => lookups.has('file_x'));
  heartbeat.resolve(new Set(['vs_1 file_a']));
  await beat;

  // Both files go on to be indexed (a stopped one would end before writing its chunks).
  const stored = (fileId: string) => ({ file: { id: fileId, filename: `${fileId}.txt` }, blobId: `blob_${fileId}`, mimeType: 'text/plain' });
  lookups.get('file_a')!.resolve(stored('file_a'));
  lookups.get('file_x')!.resolve(stored('file_x'));
  await service.idle();
  assert.deepEqual(completed.sort(), ['file_a', 'file_x']);
  assert.deepEqual([failed, released], [[], []]);
  await service.close();
});
