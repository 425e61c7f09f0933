import type { FastifyInstance, FastifyReply } from 'fastify';
import type { MultipartFile } from '@fastify/multipart';
import { createFileFieldsSchema, listFilesQuerySchema } from '../../api/schemas.js';
import type { FilePurpose } from '../../api/objects.js';
import { parseOrThrow } from '../../api/validation.js';
import { fileTooLarge, invalidRequest, notFound, quote } from '../../errors.js';
import { nowSeconds } from '../../ids.js';
import { BlobTooLargeError } from '../../storage/blobs.js';
import type { Storage } from '../../storage/index.js';
import { pageFromQuery } from '../pagination.js';

type Params = { file_id: string };

/** `expires_after[seconds]=3600` (how the SDKs send nested form fields) → `{expires_after: {seconds: 3600}}`. */
function formFields(fields: Map<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of fields) {
    const nested = /^(\w+)\[(\w+)\]$/.exec(name);
    if (!nested) {
      out[name] = value;
      continue;
    }
    const parent = (out[nested[1]!] ??= {}) as Record<string, unknown>;
    // A number the form could only send as text.
    parent[nested[2]!] = /^-?\d+$/.test(value) ? Number(value) : value;
  }
  return out;
}

export function fileRoutes(app: FastifyInstance, storage: Storage, maxUploadBytes: number) {
  app.post('/files', { config: { upload: true } }, async (request) => {
    if (!request.isMultipart()) {
      throw invalidRequest(`Invalid Content-Type header (${quote(request.headers['content-type'] ?? 'none')}), expected multipart/form-data.`);
    }
    const fields = new Map<string, string>();
    let upload: { blobId: string; bytes: number; filename: string; mimeType: string | null } | undefined;
    try {
      // The SDKs send the file before the other fields: it streams to storage as it comes, and
      // the form is judged once whole.
      for await (const part of request.parts()) {
        if (part.type === 'field') {
          fields.set(part.fieldname, String(part.value));
          continue;
        }
        const file = part as MultipartFile;
        if (file.fieldname !== 'file' || upload) {
          file.file.resume();
          throw invalidRequest(
            upload ? "Only one file may be uploaded per request ('file')." : `Unknown parameter: '${quote(file.fieldname)}'.`,
            file.fieldname,
          );
        }
        const stored = await storage.blobs.put(file.file, { maxBytes: maxUploadBytes });
        upload = { blobId: stored.id, bytes: stored.bytes, filename: file.filename || 'upload', mimeType: file.mimetype || null };
      }
      if (!upload) throw invalidRequest("Missing required parameter: 'file'.", 'file', 'missing_required_parameter');
      const form = parseOrThrow(createFileFieldsSchema, formFields(fields));
      return await storage.files.createFile({
        filename: upload.filename,
        purpose: form.purpose as FilePurpose,
        bytes: upload.bytes,
        blobId: upload.blobId,
        mimeType: upload.mimeType,
        expiresAt: form.expires_after ? nowSeconds() + form.expires_after.seconds : null,
      });
    } catch (error) {
      if (upload) await storage.blobs.delete(upload.blobId).catch(() => {});
      const code = (error as { code?: string }).code;
      if (error instanceof BlobTooLargeError || code === 'FST_REQ_FILE_TOO_LARGE') throw fileTooLarge(maxUploadBytes);
      throw error;
    }
  });

  app.get('/files', async (request) => {
    const query = pageFromQuery(request.query, listFilesQuerySchema);
    return storage.files.listFiles({ ...query, purpose: query.purpose as string | undefined });
  });

  app.get<{ Params: Params }>('/files/:file_id', async (request) => {
    const id = request.params.file_id;
    return (await storage.files.getFile(id)) ?? Promise.reject(notFound('file', id));
  });

  app.delete<{ Params: Params }>('/files/:file_id', async (request) => {
    const id = request.params.file_id;
    const blobId = await storage.files.deleteFile(id);
    if (blobId === undefined) throw notFound('file', id);
    await storage.blobs.delete(blobId);
    return { id, object: 'file', deleted: true };
  });

  app.get<{ Params: Params }>('/files/:file_id/content', async (request, reply: FastifyReply) => {
    const id = request.params.file_id;
    const stored = await storage.files.getStoredFile(id);
    if (!stored) throw notFound('file', id);
    void reply.header('content-type', stored.mimeType ?? 'application/octet-stream').header('content-length', String(stored.file.bytes));
    return reply.send(storage.blobs.get(stored.blobId));
  });
}
