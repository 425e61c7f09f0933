import type { FastifyInstance } from 'fastify';
import { createThreadSchema, modifyThreadSchema } from '../../api/schemas.js';
import { parseOrThrow } from '../../api/validation.js';
import { notFound } from '../../errors.js';
import type { Storage } from '../../storage/index.js';
import { rejectUnknownFiles, toNewMessage } from '../content.js';
import type { VectorStoreService } from '../../ingest/vector-store-service.js';

type Params = { thread_id: string };

export function threadRoutes(app: FastifyInstance, storage: Storage, vectorStores: VectorStoreService, onDeleted: (threadId: string) => Promise<void> = async () => {}) {
  app.post('/threads', async (request) => {
    const body = parseOrThrow(createThreadSchema, request.body);
    await rejectUnknownFiles(storage.files, body.messages ?? [], 'messages');
    const thread = await storage.createThread({
      messages: (body.messages ?? []).map(toNewMessage),
      toolResources: await vectorStores.resolveToolResources(body.tool_resources, 'tool_resources', 'thread'),
      metadata: body.metadata,
    });
    await vectorStores.attachToThread(thread.id, body.messages ?? []);
    return (await storage.getThread(thread.id)) ?? thread;
  });

  app.get<{ Params: Params }>('/threads/:thread_id', async (request) => {
    const id = request.params.thread_id;
    return (await storage.getThread(id)) ?? Promise.reject(notFound('thread', id));
  });

  app.post<{ Params: Params }>('/threads/:thread_id', async (request) => {
    const id = request.params.thread_id;
    const changes = parseOrThrow(modifyThreadSchema, request.body);
    if (!(await storage.getThread(id))) throw notFound('thread', id);
    changes.tool_resources = await vectorStores.resolveToolResources(changes.tool_resources, 'tool_resources', 'thread');
    return (await storage.modifyThread(id, changes)) ?? Promise.reject(notFound('thread', id));
  });

  app.delete<{ Params: Params }>('/threads/:thread_id', async (request) => {
    const id = request.params.thread_id;
    if (!(await storage.deleteThread(id))) throw notFound('thread', id);
    await onDeleted(id);
    return { id, object: 'thread.deleted', deleted: true };
  });
}
