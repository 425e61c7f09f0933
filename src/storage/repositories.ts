import type { AssistantObject, ListObject, MessageObject, Metadata, ThreadObject } from '../api/objects.js';
import type { CreateAssistant, ModifyAssistant, ToolResources } from '../api/schemas.js';
import { newId, nowSeconds } from '../ids.js';
import type { SqlClient } from './sql.js';

export interface PageRequest {
  limit: number;
  order: 'asc' | 'desc';
  after?: string | undefined;
  before?: string | undefined;
}

/** Content parts as stored: the request's shorthand already expanded to the wire shape. */
export type MessageContent = unknown[];

export interface NewMessage {
  role: 'user' | 'assistant';
  content: MessageContent;
  attachments: unknown[];
  metadata: Metadata;
  status?: MessageObject['status'];
  assistantId?: string | null;
  runId?: string | null;
}

const json = (value: unknown) => (value === undefined || value === null ? null : JSON.stringify(value));

/**
 * One page of `table` filtered by `where` (with `values`), in insertion order. Cursors compare the
 * insertion sequence, not `created_at`, so pages stay exact when many rows share a second. `before`
 * alone reads backwards from the cursor and returns the page in the requested order.
 */
export async function listPage<Row extends { id: string }>(
  sql: SqlClient,
  table: string,
  columns: string,
  where: string,
  values: unknown[],
  page: PageRequest,
  /** The `seq` of the row a cursor names (default: the row of `table` with that `id`). */
  cursorSeq: (placeholder: string) => string = (placeholder) => `(SELECT seq FROM ${table} WHERE id = ${placeholder})`,
): Promise<{ rows: Row[]; hasMore: boolean }> {
  const conditions = [where];
  const params = [...values];
  const cursor = (id: string, operator: '<' | '>') => {
    params.push(id);
    conditions.push(`seq ${operator} ${cursorSeq(`$${params.length}`)}`);
  };
  const ascending = page.order === 'asc';
  if (page.after !== undefined) cursor(page.after, ascending ? '>' : '<');
  if (page.before !== undefined) cursor(page.before, ascending ? '<' : '>');
  // With only `before`, the rows nearest the cursor are wanted: read towards it, then flip.
  const backwards = page.before !== undefined && page.after === undefined;
  const direction = ascending !== backwards ? 'ASC' : 'DESC';
  params.push(page.limit + 1);
  const { rows } = await sql.query<Row>(
    `SELECT ${columns} FROM ${table} WHERE ${conditions.join(' AND ')} ORDER BY seq ${direction} LIMIT $${params.length}`,
    params,
  );
  const hasMore = rows.length > page.limit;
  if (hasMore) rows.pop();
  if (backwards) rows.reverse();
  return { rows, hasMore };
}

export function toList<T extends { id: string }>(data: T[], hasMore: boolean): ListObject<T> {
  return {
    object: 'list',
    data,
    first_id: data[0]?.id ?? null,
    last_id: data.at(-1)?.id ?? null,
    has_more: hasMore,
  };
}

const ASSISTANT_COLUMNS = `id, 'assistant' AS object, created_at, name, description, model, instructions, tools,
  COALESCE(tool_resources, '{}'::json) AS tool_resources, metadata, temperature, top_p, response_format`;
const THREAD_COLUMNS = `id, 'thread' AS object, created_at, COALESCE(tool_resources, '{}'::json) AS tool_resources, metadata`;
/** Run statuses that hold a thread: one active run per thread, no new messages meanwhile. */
export const ACTIVE_RUN_STATUSES = ['queued', 'in_progress', 'requires_action', 'cancelling'] as const;
export const ACTIVE_RUN_STATUS_SQL = `(${ACTIVE_RUN_STATUSES.map((status) => `'${status}'`).join(', ')})`;

export const MESSAGE_COLUMNS = `id, 'thread.message' AS object, created_at, thread_id, status, incomplete_details, completed_at,
  incomplete_at, role, content, assistant_id, run_id, COALESCE(attachments, '[]'::json) AS attachments, metadata`;

/** Data access for every resource, on one SqlClient. Repositories return wire objects. */
export class Repositories {
  constructor(readonly sql: SqlClient) {}

  // ---- assistants

  async createAssistant(input: CreateAssistant): Promise<AssistantObject> {
    const { rows } = await this.sql.query<AssistantObject>(
      `INSERT INTO assistants (id, created_at, name, description, model, instructions, tools, tool_resources, metadata,
         temperature, top_p, response_format, reasoning_effort)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
       RETURNING ${ASSISTANT_COLUMNS}`,
      [
        newId('assistant'),
        nowSeconds(),
        input.name ?? null,
        input.description ?? null,
        input.model,
        input.instructions ?? null,
        json(input.tools ?? []),
        json(normalizeToolResources(input.tool_resources)),
        json(input.metadata ?? {}),
        input.temperature ?? 1,
        input.top_p ?? 1,
        json(input.response_format ?? 'auto'),
        input.reasoning_effort ?? null,
      ],
    );
    return rows[0]!;
  }

  async getAssistant(id: string): Promise<AssistantObject | undefined> {
    // Built by the database as one JSON value: the driver describes and parses one column, not thirteen (the hottest read).
    const { rows } = await this.sql.query<{ assistant: AssistantObject }>(
      `SELECT row_to_json(a) AS assistant FROM (SELECT ${ASSISTANT_COLUMNS} FROM assistants WHERE id = $1) a`,
      [id],
    );
    return rows[0]?.assistant;
  }

  /** The assistant (undefined when unknown) and whether the thread exists, in one read (creating a run). */
  async assistantAndThread(assistantId: string, threadId: string): Promise<{ assistant: AssistantObject | undefined; threadExists: boolean }> {
    const { rows } = await this.sql.query<{ assistant: AssistantObject | null; thread_exists: boolean }>(
      `SELECT (SELECT row_to_json(a) FROM (SELECT ${ASSISTANT_COLUMNS} FROM assistants WHERE id = $1) a) AS assistant,
         EXISTS (SELECT 1 FROM threads WHERE id = $2) AS thread_exists`,
      [assistantId, threadId],
    );
    return { assistant: rows[0]!.assistant ?? undefined, threadExists: rows[0]!.thread_exists };
  }

  /** Applies only the fields present in `changes`; returns undefined for an unknown id. */
  async modifyAssistant(id: string, changes: ModifyAssistant): Promise<AssistantObject | undefined> {
    const assignments: string[] = [];
    const values: unknown[] = [id];
    const set = (column: string, value: unknown) => {
      values.push(value);
      assignments.push(`${column} = $${values.length}`);
    };
    if (changes.model !== undefined) set('model', changes.model);
    if (changes.name !== undefined) set('name', changes.name);
    if (changes.description !== undefined) set('description', changes.description);
    if (changes.instructions !== undefined) set('instructions', changes.instructions);
    if (changes.reasoning_effort !== undefined) set('reasoning_effort', changes.reasoning_effort);
    if (changes.tools !== undefined) set('tools', json(changes.tools));
    if (changes.tool_resources !== undefined) set('tool_resources', json(normalizeToolResources(changes.tool_resources)));
    if (changes.metadata !== undefined) set('metadata', json(changes.metadata ?? {}));
    if (changes.temperature !== undefined) set('temperature', changes.temperature ?? 1);
    if (changes.top_p !== undefined) set('top_p', changes.top_p ?? 1);
    if (changes.response_format !== undefined) set('response_format', json(changes.response_format ?? 'auto'));
    if (assignments.length === 0) return this.getAssistant(id);
    const { rows } = await this.sql.query<AssistantObject>(
      `UPDATE assistants SET ${assignments.join(', ')} WHERE id = $1 RETURNING ${ASSISTANT_COLUMNS}`,
      values,
    );
    return rows[0];
  }

  async deleteAssistant(id: string): Promise<boolean> {
    const { rowCount } = await this.sql.query('DELETE FROM assistants WHERE id = $1', [id]);
    return rowCount > 0;
  }

  async listAssistants(page: PageRequest): Promise<ListObject<AssistantObject>> {
    const { rows, hasMore } = await listPage<AssistantObject>(this.sql, 'assistants', ASSISTANT_COLUMNS, 'TRUE', [], page);
    return toList(rows, hasMore);
  }

  // ---- threads

  /** Creates the thread and its first messages in one transaction: all of them or none. */
  async createThread(input: {
    messages: NewMessage[];
    toolResources: ToolResources | undefined;
    metadata: Metadata | null | undefined;
  }): Promise<ThreadObject> {
    return this.sql.transaction(async (client) => {
      const { rows } = await client.query<ThreadObject>(
        `INSERT INTO threads (id, created_at, tool_resources, metadata) VALUES ($1, $2, $3, $4) RETURNING ${THREAD_COLUMNS}`,
        [newId('thread'), nowSeconds(), json(normalizeToolResources(input.toolResources)), json(input.metadata ?? {})],
      );
      const thread = rows[0]!;
      const repositories = new Repositories(client);
      for (const message of input.messages) await repositories.createMessage(thread.id, message);
      return thread;
    });
  }

  async getThread(id: string): Promise<ThreadObject | undefined> {
    const { rows } = await this.sql.query<ThreadObject>(`SELECT ${THREAD_COLUMNS} FROM threads WHERE id = $1`, [id]);
    return rows[0];
  }

  async modifyThread(
    id: string,
    changes: { tool_resources?: ToolResources | undefined; metadata?: Metadata | null | undefined },
  ): Promise<ThreadObject | undefined> {
    const { rows } = await this.sql.query<ThreadObject>(
      `UPDATE threads SET
         tool_resources = CASE WHEN $2 THEN $3::json ELSE tool_resources END,
         metadata = CASE WHEN $4 THEN $5::json ELSE metadata END
       WHERE id = $1 RETURNING ${THREAD_COLUMNS}`,
      [
        id,
        changes.tool_resources !== undefined,
        json(normalizeToolResources(changes.tool_resources)),
        changes.metadata !== undefined,
        json(changes.metadata ?? {}),
      ],
    );
    return rows[0];
  }

  /** Deletes the thread; its messages (and later its runs) go with it by foreign-key cascade. */
  async deleteThread(id: string): Promise<boolean> {
    const { rowCount } = await this.sql.query('DELETE FROM threads WHERE id = $1', [id]);
    return rowCount > 0;
  }

  // ---- messages

  /**
   * Adds a message to a thread. With `unlessRunActive`, nothing is written while the thread has an
   * active run (the result is then undefined): the check and the insert are one statement.
   */
  async createMessage(threadId: string, message: NewMessage): Promise<MessageObject>;
  async createMessage(threadId: string, message: NewMessage, unlessRunActive: true): Promise<MessageObject | undefined>;
  async createMessage(threadId: string, message: NewMessage, unlessRunActive = false): Promise<MessageObject | undefined> {
    const now = nowSeconds();
    const status = message.status ?? 'completed';
    const guard = unlessRunActive
      ? `WHERE NOT EXISTS (SELECT 1 FROM runs WHERE runs.thread_id = $2
           AND runs.status IN ${ACTIVE_RUN_STATUS_SQL})`
      : '';
    const { rows } = await this.sql.query<MessageObject>(
      `INSERT INTO messages (id, thread_id, created_at, status, completed_at, role, content, assistant_id, run_id,
         attachments, metadata)
       SELECT $1::text, $2::text, $3::bigint, $4::text, $5::bigint, $6::text, $7::json, $8::text, $9::text, $10::json, $11::json
       ${guard}
       RETURNING ${MESSAGE_COLUMNS}`,
      [
        newId('message'),
        threadId,
        now,
        status,
        status === 'completed' ? now : null,
        message.role,
        json(message.content),
        message.assistantId ?? null,
        message.runId ?? null,
        json(message.attachments),
        json(message.metadata),
      ],
    );
    return rows[0];
  }

  async getMessage(threadId: string, id: string): Promise<MessageObject | undefined> {
    const { rows } = await this.sql.query<MessageObject>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND thread_id = $2`,
      [id, threadId],
    );
    return rows[0];
  }

  async modifyMessage(threadId: string, id: string, metadata: Metadata | null | undefined): Promise<MessageObject | undefined> {
    const { rows } = await this.sql.query<MessageObject>(
      `UPDATE messages SET metadata = CASE WHEN $3 THEN $4::json ELSE metadata END
       WHERE id = $1 AND thread_id = $2 RETURNING ${MESSAGE_COLUMNS}`,
      [id, threadId, metadata !== undefined, json(metadata ?? {})],
    );
    return rows[0];
  }

  async deleteMessage(threadId: string, id: string): Promise<boolean> {
    const { rowCount } = await this.sql.query('DELETE FROM messages WHERE id = $1 AND thread_id = $2', [id, threadId]);
    return rowCount > 0;
  }

  async listMessages(threadId: string, page: PageRequest & { runId?: string | undefined }): Promise<ListObject<MessageObject>> {
    const { rows, hasMore } =
      page.runId === undefined
        ? await listPage<MessageObject>(this.sql, 'messages', MESSAGE_COLUMNS, 'thread_id = $1', [threadId], page)
        : await listPage<MessageObject>(this.sql, 'messages', MESSAGE_COLUMNS, 'thread_id = $1 AND run_id = $2', [threadId, page.runId], page);
    return toList(rows, hasMore);
  }
}

/** Empty resource lists are dropped and absent ones read back as `{}`, as OpenAI returns them. */
function normalizeToolResources(resources: ToolResources | undefined): Record<string, unknown> | null {
  if (!resources) return null;
  const out: Record<string, unknown> = {};
  if (resources.code_interpreter) out.code_interpreter = { file_ids: resources.code_interpreter.file_ids ?? [] };
  if (resources.file_search) out.file_search = { vector_store_ids: resources.file_search.vector_store_ids ?? [] };
  return out;
}

