import type { ChunkingStrategy, FileAttributes, Metadata, VectorStoreFileBatchObject, VectorStoreFileObject, VectorStoreObject } from '../api/objects.js';
import type { ChunkingStrategyRequest, ToolResources } from '../api/schemas.js';
import type { AssistdSettings } from '../config.js';
import { ApiError, fileNotFound, invalidRequest, notFound, quote } from '../errors.js';
import type { ModelRegistry } from '../providers/registry.js';
import type { Storage } from '../storage/index.js';
import type { SqlClient } from '../storage/sql.js';
import type { NewStoreFile, StoredVectorStore } from '../storage/vector-stores.js';
import { AUTO_CHUNKING } from './chunk.js';
import type { IngestionService } from './ingestion.js';
import { searchStores, type Filter, type SearchHit } from './search.js';

/** How a request's chunking strategy reads back: `auto` is OpenAI's static 800/400. */
export function chunkingStrategy(request: ChunkingStrategyRequest | undefined): ChunkingStrategy {
  if (request?.type === 'static') return { type: 'static', static: { ...request.static } };
  return { type: 'static', static: { max_chunk_size_tokens: AUTO_CHUNKING.maxTokens, chunk_overlap_tokens: AUTO_CHUNKING.overlapTokens } };
}

/** Stores made for a thread (inline, or for its messages' attachments) expire a week after their last use. */
const THREAD_STORE_EXPIRY = { anchor: 'last_active_at' as const, days: 7 };

export interface VectorStoreFileRequest {
  file_id: string;
  chunking_strategy?: ChunkingStrategyRequest | undefined;
  attributes?: FileAttributes | null | undefined;
}

export interface SearchOptions {
  queries: string[];
  maxResults: number;
  scoreThreshold: number;
  filters?: Filter | undefined;
}

/**
 * Vector stores as the API and the engine use them: creating them (with the embedding model of
 * the moment recorded, so a later config never mixes vector spaces), adding files (which wakes
 * ingestion), and searching.
 */
export class VectorStoreService {
  constructor(
    private readonly deps: { storage: Storage; models: ModelRegistry; settings: AssistdSettings; ingestion: IngestionService },
  ) {}

  private get stores() {
    return this.deps.storage.vectorStores;
  }

  /** Refuses file ids naming no file, naming the first such parameter. */
  async assertFilesExist(fileIds: readonly string[], param: (index: number) => string): Promise<void> {
    const missing = new Set(await this.deps.storage.files.missingFiles(fileIds));
    const index = fileIds.findIndex((id) => missing.has(id));
    if (index >= 0) throw fileNotFound(fileIds[index]!, param(index));
  }

  async createStore(
    input: {
      name?: string | undefined;
      description?: string | undefined;
      expires_after?: { anchor: 'last_active_at'; days: number } | undefined;
      metadata?: Metadata | null | undefined;
      file_ids?: string[] | undefined;
      chunking_strategy?: ChunkingStrategyRequest | undefined;
    },
    options: { param?: string; client?: SqlClient } = {},
  ): Promise<VectorStoreObject> {
    const fileIds = [...new Set(input.file_ids ?? [])];
    await this.assertFilesExist(fileIds, (index) => `${options.param ? `${options.param}.` : ''}file_ids[${index}]`);
    const embedding = this.deps.models.embedding;
    const create = async (client: SqlClient) => {
      const store = await this.stores.createStore(
        {
          name: input.name ?? '',
          description: input.description ?? null,
          expiresAfter: input.expires_after ?? null,
          metadata: input.metadata ?? {},
          embeddingModel: embedding?.name ?? null,
          embeddingDimensions: embedding?.dimensions ?? null,
        },
        client,
      );
      const strategy = chunkingStrategy(input.chunking_strategy);
      await this.stores.addFiles(store.id, fileIds.map((fileId) => ({ fileId, chunkingStrategy: strategy, attributes: null })), null, client);
      return store;
    };
    const store = options.client ? await create(options.client) : await this.deps.storage.sql.transaction(create);
    this.deps.ingestion.notify();
    return (await this.stores.getStore(store.id, options.client))?.store ?? store;
  }

  /**
   * tool_resources as stored: an inline `vector_stores` entry becomes a store of its own (its id
   * in `vector_store_ids`; a thread's expires 7 days after its last use, as OpenAI's did), and
   * the files and stores named must exist. `param` names the field in the request.
   */
  async resolveToolResources(resources: ToolResources | undefined, param: string, owner: 'assistant' | 'thread'): Promise<ToolResources | undefined> {
    if (!resources) return resources;
    const out: NonNullable<ToolResources> = { ...resources };
    const fileIds = resources.code_interpreter?.file_ids ?? [];
    await this.assertFilesExist(fileIds, (index) => `${param}.code_interpreter.file_ids[${index}]`);
    const search = resources.file_search;
    if (search) {
      const inline = search.vector_stores?.[0];
      if (inline) {
        const store = await this.createStore(
          {
            file_ids: inline.file_ids,
            chunking_strategy: inline.chunking_strategy,
            metadata: inline.metadata,
            expires_after: owner === 'thread' ? THREAD_STORE_EXPIRY : undefined,
          },
          { param: `${param}.file_search.vector_stores[0]` },
        );
        out.file_search = { vector_store_ids: [store.id] };
      } else {
        const ids = search.vector_store_ids ?? [];
        const found = await this.stores.getStores(ids);
        const missing = ids.findIndex((id) => !found.has(id));
        if (missing >= 0) throw new ApiError(400, `No vector store found with id '${quote(ids[missing]!)}'.`, 'invalid_request_error', `${param}.file_search.vector_store_ids[${missing}]`);
        out.file_search = { vector_store_ids: ids };
      }
    }
    return out;
  }

  /**
   * Files attached to messages for file_search go into the thread's own vector store, made (and
   * named in its tool_resources) the first time.
   */
  async attachToThread(threadId: string, messages: readonly { attachments?: { file_id: string; tools: { type: string }[] }[] | null | undefined }[]): Promise<void> {
    const fileIds = [
      ...new Set(
        messages.flatMap((message) => (message.attachments ?? []).filter((attachment) => attachment.tools.some((tool) => tool.type === 'file_search')).map((attachment) => attachment.file_id)),
      ),
    ];
    if (fileIds.length === 0) return;
    const thread = await this.deps.storage.getThread(threadId);
    if (!thread) return;
    const resources = thread.tool_resources as NonNullable<ToolResources>;
    let storeId = resources.file_search?.vector_store_ids?.[0];
    if (!storeId) {
      storeId = (await this.createStore({ expires_after: THREAD_STORE_EXPIRY })).id;
      await this.deps.storage.modifyThread(threadId, { tool_resources: { ...resources, file_search: { vector_store_ids: [storeId] } } });
    }
    await this.stores.addFiles(storeId, fileIds.map((fileId) => ({ fileId, chunkingStrategy: chunkingStrategy(undefined), attributes: null })));
    this.deps.ingestion.notify();
  }

  async getLiveStore(id: string): Promise<StoredVectorStore> {
    const stored = await this.stores.getStore(id);
    if (!stored) throw notFound('vector store', id);
    if (stored.store.status === 'expired') throw invalidRequest(`Vector store ${id} has expired.`);
    return stored;
  }

  async addFile(storeId: string, request: VectorStoreFileRequest): Promise<VectorStoreFileObject> {
    await this.getLiveStore(storeId);
    await this.assertFilesExist([request.file_id], () => 'file_id');
    const [file] = await this.stores.addFiles(storeId, [toNewStoreFile(request)]);
    this.deps.ingestion.notify();
    return file!;
  }

  async createBatch(
    storeId: string,
    request: { file_ids?: string[] | undefined; files?: VectorStoreFileRequest[] | undefined; chunking_strategy?: ChunkingStrategyRequest | undefined; attributes?: FileAttributes | null | undefined },
  ): Promise<VectorStoreFileBatchObject> {
    await this.getLiveStore(storeId);
    if ((request.file_ids === undefined) === (request.files === undefined)) {
      throw invalidRequest("Exactly one of 'file_ids' and 'files' must be given.", request.file_ids ? 'files' : 'file_ids');
    }
    // The batch's chunking strategy and attributes are the default for each file that gives none.
    const files: VectorStoreFileRequest[] = (request.files ?? request.file_ids!.map((fileId): VectorStoreFileRequest => ({ file_id: fileId }))).map((file) => ({
      file_id: file.file_id,
      chunking_strategy: file.chunking_strategy ?? request.chunking_strategy,
      attributes: file.attributes ?? request.attributes,
    }));
    const param = request.files ? (index: number) => `files[${index}].file_id` : (index: number) => `file_ids[${index}]`;
    await this.assertFilesExist(files.map((file) => file.file_id), param);
    const unique = [...new Map(files.map((file) => [file.file_id, file])).values()];
    const batch = await this.stores.createBatch(storeId, unique.map(toNewStoreFile));
    this.deps.ingestion.notify();
    return batch;
  }

  /** Searches live stores; their activity clocks move. */
  async search(stores: StoredVectorStore[], options: SearchOptions): Promise<SearchHit[]> {
    const live = stores.filter((stored) => stored.store.status !== 'expired');
    await this.stores.touchStores(live.map((stored) => stored.store.id));
    return searchStores(this.deps, { stores: live, ...options });
  }
}

function toNewStoreFile(request: VectorStoreFileRequest): NewStoreFile {
  return { fileId: request.file_id, chunkingStrategy: chunkingStrategy(request.chunking_strategy), attributes: request.attributes ?? null };
}
