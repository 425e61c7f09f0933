import type { FastifyInstance } from 'fastify';
import { createMessageSchema, listMessagesQuerySchema, modifyMessageSchema } from '../../api/schemas.js';
import { parseOrThrow } from '../../api/validation.js';
import { invalidRequest, notFound, notFoundInThread } from '../../errors.js';
import type { Storage } from '../../storage/index.js';
import { FOREIGN_KEY_VIOLATION } from '../../storage/runs.js';
import { rejectUnknownFiles, toNewMessage } from '../content.js';
import { pageFromQuery } from '../pagination.js';
import type { VectorStoreService } from '../../ingest/vector-store-service.js';

type ThreadParams = { thread_id: string };
type MessageParams = { thread_id: string; message_id: string };

export function messageRoutes(app: FastifyInstance, storage: Storage, vectorStores: VectorStoreService) {
  app.post<{ Params: ThreadParams }>('/threads/:thread_id/messages', async (request) => {
    const threadId = request.params.thread_id;
    const body = parseOrThrow(createMessageSchema, request.body);
    await rejectUnknownFiles(storage.files, [body]);
    try {
      // The thread's existence is checked by the foreign key, the active run by the insert's
      // guard: one round trip on the hot path.
      const message = await storage.createMessage(threadId, toNewMessage(body), true);
      if (message) {
        await vectorStores.attachToThread(threadId, [body]);
        return message;
      }
      const runId = await storage.runs.activeRunId(threadId);
      throw invalidRequest(
        runId ? `Can't add messages to ${threadId} while a run ${runId} is active.` : `Can't add messages to ${threadId} while a run is active.`,
      );
    } catch (error) {
      if ((error as { code?: string }).code === FOREIGN_KEY_VIOLATION) throw notFound('thread', threadId);
      throw error;
    }
  });

  app.get<{ Params: ThreadParams }>('/threads/:thread_id/messages', async (request) => {
    const threadId = request.params.thread_id;
    const query = pageFromQuery(request.query, listMessagesQuerySchema);
    const list = await storage.listMessages(threadId, { ...query, runId: query.run_id as string | undefined });
    // A message references its thread, so only an empty page leaves the thread's existence open.
    if (list.data.length === 0 && !(await storage.getThread(threadId))) throw notFound('thread', threadId);
    return list;
  });

  app.get<{ Params: MessageParams }>('/threads/:thread_id/messages/:message_id', async (request) => {
    const { thread_id: threadId, message_id: id } = request.params;
    return (await storage.getMessage(threadId, id)) ?? Promise.reject(await notFoundInThread(storage, threadId, 'message', id));
  });

  app.post<{ Params: MessageParams }>('/threads/:thread_id/messages/:message_id', async (request) => {
    const { thread_id: threadId, message_id: id } = request.params;
    const body = parseOrThrow(modifyMessageSchema, request.body);
    return (
      (await storage.modifyMessage(threadId, id, body.metadata)) ?? Promise.reject(await notFoundInThread(storage, threadId, 'message', id))
    );
  });

  app.delete<{ Params: MessageParams }>('/threads/:thread_id/messages/:message_id', async (request) => {
    const { thread_id: threadId, message_id: id } = request.params;
    if (!(await storage.deleteMessage(threadId, id))) throw await notFoundInThread(storage, threadId, 'message', id);
    return { id, object: 'thread.message.deleted', deleted: true };
  });
}
