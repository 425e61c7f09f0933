import type { FileObject, FilePurpose, ListObject } from '../api/objects.js';
import { newId, nowSeconds } from '../ids.js';
import { listPage, toList, type PageRequest } from './repositories.js';
import type { SqlClient } from './sql.js';

const FILE_COLUMNS = `id, 'file' AS object, bytes, created_at, expires_at, filename, purpose, status, status_details`;
/** A file past its expiry is gone for every reader, before the sweep removes it. */
const LIVE = `(expires_at IS NULL OR expires_at > $1)`;

export interface NewFile {
  filename: string;
  purpose: FilePurpose;
  bytes: number;
  blobId: string;
  mimeType: string | null;
  expiresAt: number | null;
  /** The run step whose code made it (code_interpreter): redoing that step removes it. */
  madeByStep?: string;
}

/** A stored file with where its contents are (never on the wire). */
export interface StoredFile {
  file: FileObject;
  blobId: string;
  mimeType: string | null;
}

export class FileRepository {
  constructor(private readonly sql: SqlClient) {}

  async createFile(file: NewFile): Promise<FileObject> {
    const { rows } = await this.sql.query<FileObject>(
      `INSERT INTO files (id, created_at, bytes, filename, purpose, expires_at, status, blob_id, mime_type, made_by_step)
       VALUES ($1, $2, $3, $4, $5, $6, 'processed', $7, $8, $9) RETURNING ${FILE_COLUMNS}`,
      [newId('file'), nowSeconds(), file.bytes, file.filename, file.purpose, file.expiresAt, file.blobId, file.mimeType, file.madeByStep ?? null],
    );
    return rows[0]!;
  }

  async getFile(id: string): Promise<FileObject | undefined> {
    return (await this.getStoredFile(id))?.file;
  }

  async getStoredFile(id: string): Promise<StoredFile | undefined> {
    const { rows } = await this.sql.query<FileObject & { blob_id: string; mime_type: string | null }>(
      `SELECT ${FILE_COLUMNS}, blob_id, mime_type FROM files WHERE id = $2 AND ${LIVE}`,
      [nowSeconds(), id],
    );
    const row = rows[0];
    if (!row) return undefined;
    const { blob_id: blobId, mime_type: mimeType, ...file } = row;
    return { file, blobId, mimeType };
  }

  /** The ids among `ids` that name no live file. */
  async missingFiles(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const { rows } = await this.sql.query<{ id: string }>(`SELECT id FROM files WHERE id = ANY($2) AND ${LIVE}`, [nowSeconds(), ids]);
    const found = new Set(rows.map((row) => row.id));
    return ids.filter((id) => !found.has(id));
  }

  async listFiles(page: PageRequest & { purpose?: string | undefined }): Promise<ListObject<FileObject>> {
    const values: unknown[] = [nowSeconds()];
    let where = LIVE;
    if (page.purpose !== undefined) {
      values.push(page.purpose);
      where += ` AND purpose = $${values.length}`;
    }
    const { rows, hasMore } = await listPage<FileObject>(this.sql, 'files', FILE_COLUMNS, where, values, page);
    return toList(rows, hasMore);
  }

  /** Removes the file's row; returns its blob id for the caller to delete, or undefined when there was no such file. */
  async deleteFile(id: string): Promise<string | undefined> {
    const { rows } = await this.sql.query<{ blob_id: string }>(`DELETE FROM files WHERE id = $2 AND ${LIVE} RETURNING blob_id`, [nowSeconds(), id]);
    return rows[0]?.blob_id;
  }

  /** Removes files past their expiry; returns their blob ids. */
  async deleteExpiredFiles(): Promise<string[]> {
    const { rows } = await this.sql.query<{ blob_id: string }>('DELETE FROM files WHERE expires_at <= $1 RETURNING blob_id', [nowSeconds()]);
    return rows.map((row) => row.blob_id);
  }
}
