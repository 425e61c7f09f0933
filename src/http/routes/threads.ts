import type { FastifyInstance } from 'fastify';
import { createThreadSchema, modifyThreadSchema } from '../../api/schemas.js';
import { parseOrThrow } from '../../api/validation.js';
import { notFound } from '../../errors.js';
import type { Storage } from '../../storage/index.js';
import { rejectUnknownFiles, toNewMessage } from '../content.js';
import { rejectUnsupportedResources } from './assistants.js';

type Params = { thread_id: string };

export function threadRoutes(app: FastifyInstance, storage: Storage) {
  app.post('/threads', async (request) => {
    const body = parseOrThrow(createThreadSchema, request.body);
    rejectUnsupportedResources(body);
    await rejectUnknownFiles(storage.files, body.messages ?? [], 'messages');
    return storage.createThread({
      messages: (body.messages ?? []).map(toNewMessage),
      toolResources: body.tool_resources,
      metadata: body.metadata,
    });
  });

  app.get<{ Params: Params }>('/threads/:thread_id', async (request) => {
    const id = request.params.thread_id;
    return (await storage.getThread(id)) ?? Promise.reject(notFound('thread', id));
  });

  app.post<{ Params: Params }>('/threads/:thread_id', async (request) => {
    const id = request.params.thread_id;
    const changes = parseOrThrow(modifyThreadSchema, request.body);
    rejectUnsupportedResources(changes);
    return (await storage.modifyThread(id, changes)) ?? Promise.reject(notFound('thread', id));
  });

  app.delete<{ Params: Params }>('/threads/:thread_id', async (request) => {
    const id = request.params.thread_id;
    if (!(await storage.deleteThread(id))) throw notFound('thread', id);
    return { id, object: 'thread.deleted', deleted: true };
  });
}
