import type { FastifyInstance } from 'fastify';
import { createAssistantSchema, modifyAssistantSchema } from '../../api/schemas.js';
import { parseOrThrow } from '../../api/validation.js';
import { notFound } from '../../errors.js';
import type { VectorStoreService } from '../../ingest/vector-store-service.js';
import type { Storage } from '../../storage/index.js';
import { pageFromQuery } from '../pagination.js';

type Params = { assistant_id: string };

export function assistantRoutes(app: FastifyInstance, storage: Storage, assertModelRoutes: (model: string) => void, vectorStores: VectorStoreService) {
  app.post('/assistants', async (request) => {
    const body = parseOrThrow(createAssistantSchema, request.body);
    assertModelRoutes(body.model);
    body.tool_resources = await vectorStores.resolveToolResources(body.tool_resources, 'tool_resources', 'assistant');
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
    if (changes.model !== undefined) assertModelRoutes(changes.model);
    if (!(await storage.getAssistant(id))) throw notFound('assistant', id);
    changes.tool_resources = await vectorStores.resolveToolResources(changes.tool_resources, 'tool_resources', 'assistant');
    return (await storage.modifyAssistant(id, changes)) ?? Promise.reject(notFound('assistant', id));
  });

  app.delete<{ Params: Params }>('/assistants/:assistant_id', async (request) => {
    const id = request.params.assistant_id;
    if (!(await storage.deleteAssistant(id))) throw notFound('assistant', id);
    return { id, object: 'assistant.deleted', deleted: true };
  });
}

