import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import type { SqlClient } from './sql.js';

/** An upload went past its size limit; whatever was written of it is gone. */
export class BlobTooLargeError extends Error {
  constructor(readonly limitBytes: number) {
    super(`the blob is larger than ${limitBytes} bytes`);
    this.name = 'BlobTooLargeError';
  }
}

/**
 * Where file contents live. Contents stream in and out, never held whole in memory. A blob is
 * visible once `put` resolves, and never half-written: a failed or interrupted `put` leaves
 * nothing behind that `get` could return (`sweep` removes what a crash left).
 */
export interface BlobStore {
  readonly kind: 'directory' | 'postgres';
  /** Stores `source` and returns its id and size; rejects with BlobTooLargeError past `maxBytes`. */
  put(source: AsyncIterable<Uint8Array>, options: { maxBytes: number }): Promise<{ id: string; bytes: number }>;
  /** The contents, as a stream. */
  get(id: string): Readable;
  /** Removes the blob; a missing one is not an error. */
  delete(id: string): Promise<void>;
  /** Removes what interrupted writes left behind. */
  sweep(): Promise<void>;
}

const newBlobId = () => randomBytes(16).toString('hex');

/** Blobs as files in a directory (the embedded default: one process owns the data dir). */
export function directoryBlobStore(directory: string): BlobStore {
  const path = (id: string) => join(directory, id);
  const partial = (id: string) => join(directory, `${id}.part`);
  return {
    kind: 'directory',
    async put(source, { maxBytes }) {
      await mkdir(directory, { recursive: true });
      const id = newBlobId();
      const file = await open(partial(id), 'wx');
      let bytes = 0;
      try {
        for await (const chunk of source) {
          bytes += chunk.byteLength;
          if (bytes > maxBytes) throw new BlobTooLargeError(maxBytes);
          await file.write(chunk);
        }
        await file.sync();
      } catch (error) {
        await file.close().catch(() => {});
        await unlink(partial(id)).catch(() => {});
        throw error;
      }
      await file.close();
      await rename(partial(id), path(id));
      return { id, bytes };
    },
    get: (id) => createReadStream(path(id)),
    async delete(id) {
      await rm(path(id), { force: true });
    },
    async sweep() {
      const names = await readdir(directory).catch(() => [] as string[]);
      await Promise.all(names.filter((name) => name.endsWith('.part')).map((name) => unlink(join(directory, name)).catch(() => {})));
    },
  };
}

/** Rows of up to this many bytes: big enough to keep round trips few, small enough to stream. */
const CHUNK_BYTES = 1024 * 1024;
/** A blob still unfinished after this long was cut off by a crash. */
const STALE_PARTIAL_SECONDS = 3600;

/** Blobs in PostgreSQL itself, in chunked rows, so every replica of a deployment sees every file. */
export function postgresBlobStore(sql: SqlClient): BlobStore {
  return {
    kind: 'postgres',
    async put(source, { maxBytes }) {
      const id = newBlobId();
      await sql.query('INSERT INTO blobs (id, created_at, complete) VALUES ($1, $2, false)', [id, Math.floor(Date.now() / 1000)]);
      let bytes = 0;
      let position = 0;
      const pending: Buffer[] = [];
      let pendingBytes = 0;
      const flush = async () => {
        if (pendingBytes === 0) return;
        const data = Buffer.concat(pending, pendingBytes);
        pending.length = 0;
        pendingBytes = 0;
        await sql.query('INSERT INTO blob_chunks (blob_id, position, data) VALUES ($1, $2, $3)', [id, position++, data]);
      };
      try {
        for await (const chunk of source) {
          bytes += chunk.byteLength;
          if (bytes > maxBytes) throw new BlobTooLargeError(maxBytes);
          pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          pendingBytes += chunk.byteLength;
          if (pendingBytes >= CHUNK_BYTES) await flush();
        }
        await flush();
        await sql.query('UPDATE blobs SET complete = true, bytes = $2 WHERE id = $1', [id, bytes]);
      } catch (error) {
        await sql.query('DELETE FROM blobs WHERE id = $1', [id]).catch(() => {});
        throw error;
      }
      return { id, bytes };
    },
    get(id) {
      // One chunk at a time, each read when the consumer asks for more.
      let position = 0;
      return new Readable({
        async read() {
          try {
            const { rows } = await sql.query<{ data: Uint8Array }>('SELECT data FROM blob_chunks WHERE blob_id = $1 AND position = $2', [id, position++]);
            if (rows[0]) return void this.push(Buffer.from(rows[0].data));
            // No first chunk: an empty blob, or none at all (as a missing file is an error).
            if (position === 1) {
              const blob = await sql.query('SELECT 1 FROM blobs WHERE id = $1 AND complete', [id]);
              if (blob.rows.length === 0) return void this.destroy(Object.assign(new Error(`no blob ${id}`), { code: 'ENOENT' }));
            }
            this.push(null);
          } catch (error) {
            this.destroy(error as Error);
          }
        },
      });
    },
    async delete(id) {
      await sql.query('DELETE FROM blobs WHERE id = $1', [id]);
    },
    async sweep() {
      await sql.query('DELETE FROM blobs WHERE NOT complete AND created_at < $1', [Math.floor(Date.now() / 1000) - STALE_PARTIAL_SECONDS]);
    },
  };
}
