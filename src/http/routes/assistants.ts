import type { FastifyInstance } from 'fastify';
import { createAssistantSchema, modifyAssistantSchema } from '../../api/schemas.js';
import { parseOrThrow } from '../../api/validation.js';
import { invalidRequest, notFound } from '../../errors.js';
import type { Storage } from '../../storage/index.js';
import { pageFromQuery } from '../pagination.js';

type Params = { assistant_id: string };

export function rejectUnsupportedResources(body: { tool_resources?: { file_search?: { vector_stores?: unknown } } | null }) {
  if (body.tool_resources?.file_search?.vector_stores !== undefined) {
    throw invalidRequest(
      'Creating vector stores inline is not supported yet: create the vector store first and pass its id in vector_store_ids.',
      'tool_resources.file_search.vector_stores',
    );
  }
}

export function assistantRoutes(app: FastifyInstance, storage: Storage, assertModelRoutes: (model: string) => void) {
  app.post('/assistants', async (request) => {
    const body = parseOrThrow(createAssistantSchema, request.body);
    rejectUnsupportedResources(body);
    assertModelRoutes(body.model);
    return storage.createAssistant(body);
  });

  app.get('/assistants', async (request) => storage.listAssistants(pageFromQuery(request.query)));

  app.get<{ Params: Params }>('/assistants/:assistant_id', async (request) => {
    const id = request.params.assistant_id;
    return (await storage.getAssistant(id)) ?? Promise.reject(notFound('assistant', id));
  });

  app.post<{ Params: Params }>('/assistants/:assistant_id', async (request) => {
    const id = request.params.assistant_id;
    const changes = parseOrThrow(modifyAssistantSchema, request.body);
    rejectUnsupportedResources(changes);
    if (changes.model !== undefined) assertModelRoutes(changes.model);
    return (await storage.modifyAssistant(id, changes)) ?? Promise.reject(notFound('assistant', id));
  });

  app.delete<{ Params: Params }>('/assistants/:assistant_id', async (request) => {
    const id = request.params.assistant_id;
    if (!(await storage.deleteAssistant(id))) throw notFound('assistant', id);
    return { id, object: 'assistant.deleted', deleted: true };
  });
}

