import type { FastifyInstance, FastifyReply } from 'fastify';
import {
  createFileBatchSchema,
  createVectorStoreFileSchema,
  createVectorStoreSchema,
  listVectorStoreFilesQuerySchema,
  searchVectorStoreSchema,
  updateFileAttributesSchema,
  updateVectorStoreSchema,
} from '../../api/schemas.js';
import { parseOrThrow } from '../../api/validation.js';
import { notFound } from '../../errors.js';
import type { VectorStoreService } from '../../ingest/vector-store-service.js';
import type { Storage } from '../../storage/index.js';
import { pageFromQuery } from '../pagination.js';

type StoreParams = { vector_store_id: string };
type FileParams = StoreParams & { file_id: string };
type BatchParams = StoreParams & { batch_id: string };

export function vectorStoreRoutes(app: FastifyInstance, storage: Storage, service: VectorStoreService, pollAfterMs: number) {
  const stores = storage.vectorStores;
  const pollHint = (reply: FastifyReply) => reply.header('openai-poll-after-ms', String(pollAfterMs));
  const storeOr404 = async (id: string) => {
    const stored = await stores.getStore(id);
    if (!stored) throw notFound('vector store', id);
    return stored;
  };

  app.post('/vector_stores', async (request) => service.createStore(parseOrThrow(createVectorStoreSchema, request.body)));

  app.get('/vector_stores', async (request) => stores.listStores(pageFromQuery(request.query)));

  app.get<{ Params: StoreParams }>('/vector_stores/:vector_store_id', async (request, reply) => {
    pollHint(reply);
    return (await storeOr404(request.params.vector_store_id)).store;
  });

  app.post<{ Params: StoreParams }>('/vector_stores/:vector_store_id', async (request) => {
    const id = request.params.vector_store_id;
    const body = parseOrThrow(updateVectorStoreSchema, request.body);
    return (await stores.modifyStore(id, { name: body.name, expiresAfter: body.expires_after, metadata: body.metadata })) ?? Promise.reject(notFound('vector store', id));
  });

  app.delete<{ Params: StoreParams }>('/vector_stores/:vector_store_id', async (request) => {
    const id = request.params.vector_store_id;
    if (!(await stores.deleteStore(id))) throw notFound('vector store', id);
    return { id, object: 'vector_store.deleted', deleted: true };
  });

  // ---- files

  app.post<{ Params: StoreParams }>('/vector_stores/:vector_store_id/files', async (request) =>
    service.addFile(request.params.vector_store_id, parseOrThrow(createVectorStoreFileSchema, request.body)),
  );

  app.get<{ Params: StoreParams }>('/vector_stores/:vector_store_id/files', async (request) => {
    const id = request.params.vector_store_id;
    const query = pageFromQuery(request.query, listVectorStoreFilesQuerySchema);
    const list = await stores.listStoreFiles(id, { ...query, filter: query.filter as never });
    if (list.data.length === 0) await storeOr404(id);
    return list;
  });

  app.get<{ Params: FileParams }>('/vector_stores/:vector_store_id/files/:file_id', async (request, reply) => {
    const { vector_store_id: storeId, file_id: fileId } = request.params;
    const file = await stores.getStoreFile(storeId, fileId);
    if (!file) throw (await stores.getStore(storeId)) ? notFound('vector store file', fileId) : notFound('vector store', storeId);
    pollHint(reply);
    return file;
  });

  app.post<{ Params: FileParams }>('/vector_stores/:vector_store_id/files/:file_id', async (request) => {
    const { vector_store_id: storeId, file_id: fileId } = request.params;
    const body = parseOrThrow(updateFileAttributesSchema, request.body);
    const file = await stores.updateFileAttributes(storeId, fileId, body.attributes);
    if (!file) throw (await stores.getStore(storeId)) ? notFound('vector store file', fileId) : notFound('vector store', storeId);
    return file;
  });

  app.delete<{ Params: FileParams }>('/vector_stores/:vector_store_id/files/:file_id', async (request) => {
    const { vector_store_id: storeId, file_id: fileId } = request.params;
    if (!(await stores.deleteStoreFile(storeId, fileId))) {
      throw (await stores.getStore(storeId)) ? notFound('vector store file', fileId) : notFound('vector store', storeId);
    }
    return { id: fileId, object: 'vector_store.file.deleted', deleted: true };
  });

  app.get<{ Params: FileParams }>('/vector_stores/:vector_store_id/files/:file_id/content', async (request) => {
    const { vector_store_id: storeId, file_id: fileId } = request.params;
    const content = await stores.fileContent(storeId, fileId);
    if (content === undefined) throw (await stores.getStore(storeId)) ? notFound('vector store file', fileId) : notFound('vector store', storeId);
    return { object: 'vector_store.file_content.page', data: content === null ? [] : [{ type: 'text', text: content }], has_more: false, next_page: null };
  });

  // ---- batches

  app.post<{ Params: StoreParams }>('/vector_stores/:vector_store_id/file_batches', async (request) =>
    service.createBatch(request.params.vector_store_id, parseOrThrow(createFileBatchSchema, request.body)),
  );

  app.get<{ Params: BatchParams }>('/vector_stores/:vector_store_id/file_batches/:batch_id', async (request, reply) => {
    const { vector_store_id: storeId, batch_id: batchId } = request.params;
    const batch = await stores.getBatch(storeId, batchId);
    if (!batch) throw (await stores.getStore(storeId)) ? notFound('vector store file batch', batchId) : notFound('vector store', storeId);
    pollHint(reply);
    return batch;
  });

  app.post<{ Params: BatchParams }>('/vector_stores/:vector_store_id/file_batches/:batch_id/cancel', async (request) => {
    const { vector_store_id: storeId, batch_id: batchId } = request.params;
    const batch = await stores.cancelBatch(storeId, batchId);
    if (!batch) throw (await stores.getStore(storeId)) ? notFound('vector store file batch', batchId) : notFound('vector store', storeId);
    return batch;
  });

  app.get<{ Params: BatchParams }>('/vector_stores/:vector_store_id/file_batches/:batch_id/files', async (request) => {
    const { vector_store_id: storeId, batch_id: batchId } = request.params;
    const query = pageFromQuery(request.query, listVectorStoreFilesQuerySchema);
    const list = await stores.listStoreFiles(storeId, { ...query, filter: query.filter as never, batchId });
    if (list.data.length === 0 && !(await stores.getBatch(storeId, batchId))) {
      throw (await stores.getStore(storeId)) ? notFound('vector store file batch', batchId) : notFound('vector store', storeId);
    }
    return list;
  });

  // ---- search

  app.post<{ Params: StoreParams }>('/vector_stores/:vector_store_id/search', async (request) => {
    const body = parseOrThrow(searchVectorStoreSchema, request.body);
    const stored = await service.getLiveStore(request.params.vector_store_id);
    const queries = typeof body.query === 'string' ? [body.query] : body.query;
    const hits = await service.search([stored], {
      queries,
      maxResults: body.max_num_results ?? 10,
      scoreThreshold: body.ranking_options?.score_threshold ?? 0,
      filters: body.filters,
    });
    return {
      object: 'vector_store.search_results.page',
      // rewrite_query is accepted; the query is searched as given.
      search_query: queries,
      data: hits.map((hit) => ({ file_id: hit.fileId, filename: hit.filename, score: hit.score, attributes: hit.attributes, content: [{ type: 'text', text: hit.text }] })),
      has_more: false,
      next_page: null,
    };
  });
}
