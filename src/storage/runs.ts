import type { FunctionToolCall, ListObject, MessageObject, RunObject, RunStatus, RunStepObject, StepDetails } from '../api/objects.js';
import { newId, nowSeconds } from '../ids.js';
import {
  ACTIVE_RUN_STATUS_SQL,
  MESSAGE_COLUMNS,
  Repositories,
  listPage,
  toList,
  type NewMessage,
  type PageRequest,
} from './repositories.js';
import type { SqlClient } from './sql.js';

const TERMINAL_SQL = `('cancelled', 'failed', 'completed', 'incomplete', 'expired')`;

// Usage is reported once the run has ended, as OpenAI does; the running total is kept meanwhile.
const RUN_COLUMNS = `id, 'thread.run' AS object, created_at, assistant_id, thread_id, status, started_at, expires_at,
  cancelled_at, failed_at, completed_at, required_action, last_error, model, instructions, tools, metadata, temperature,
  top_p, max_completion_tokens, max_prompt_tokens, truncation_strategy, incomplete_details,
  CASE WHEN status IN ${TERMINAL_SQL} THEN usage ELSE NULL END AS usage, response_format, tool_choice, parallel_tool_calls`;

const STEP_COLUMNS = `id, 'thread.run.step' AS object, created_at, run_id, assistant_id, thread_id, type, status,
  cancelled_at, completed_at, expired_at, failed_at, last_error, step_details, usage, metadata`;

/** What each table's writes return: its wire object's columns. */
const WRITE_COLUMNS: Record<RowWrite['table'], string> = { runs: RUN_COLUMNS, run_steps: STEP_COLUMNS, messages: MESSAGE_COLUMNS };

const JSON_COLUMNS = new Set([
  'required_action',
  'last_error',
  'tools',
  'metadata',
  'truncation_strategy',
  'incomplete_details',
  'usage',
  'response_format',
  'tool_choice',
  'step_details',
  'tool_state',
  'content',
  'attachments',
]);

/** What a built-in tool call was asked, kept beside its step (never on the wire). */
export interface BuiltInCallState {
  arguments: string;
  /** The number its results are cited by (file_search). */
  ordinal?: number;
  /** What the model read back (code_interpreter). */
  output?: string;
  /** Files the code made, by path under /mnt/data (code_interpreter). */
  files?: Record<string, string>;
}

/** A step as the prompt is rebuilt from it: which model call made it, and its built-in calls' state by call id. */
export type PromptStep = RunStepObject & { turn: number; tool_state: Record<string, BuiltInCallState> };

/** The database's clock in milliseconds: leases are judged by one clock, whatever the hosts'. */
export const NOW_MS = `(extract(epoch FROM clock_timestamp()) * 1000)::bigint`;

/** A value computed by the database when written. */
class SqlValue {
  constructor(
    readonly text: (parameter: string) => string,
    readonly value: unknown,
  ) {}
}

/** `locked_until` for a lease of `ms` from now, by the database's clock. */
export const leaseUntilSql = (ms: number) => new SqlValue((parameter) => `${NOW_MS} + ${parameter}::bigint`, ms);

/** The run's `usage` plus `added`, as a field of a write of the run (adding usage in the write that ends a model call). */
export const usagePlusSql = (added: NonNullable<RunObject['usage']>) =>
  new SqlValue(
    (parameter) => `json_build_object(
      'prompt_tokens', COALESCE((usage->>'prompt_tokens')::int, 0) + (${parameter}::json->>'prompt_tokens')::int,
      'completion_tokens', COALESCE((usage->>'completion_tokens')::int, 0) + (${parameter}::json->>'completion_tokens')::int,
      'total_tokens', COALESCE((usage->>'total_tokens')::int, 0) + (${parameter}::json->>'total_tokens')::int)`,
    JSON.stringify({ prompt_tokens: added.prompt_tokens, completion_tokens: added.completion_tokens, total_tokens: added.total_tokens }),
  );

/** `SET a = $n, ...` for the given fields, JSON-encoding json columns; values appended to `values`. */
function assignments(fields: Record<string, unknown>, values: unknown[]): string {
  return Object.entries(fields)
    .map(([column, value]) => {
      if (value instanceof SqlValue) {
        values.push(value.value);
        return `${column} = ${value.text(`$${values.length}`)}`;
      }
      values.push(JSON_COLUMNS.has(column) && value !== null ? JSON.stringify(value) : value);
      return `${column} = $${values.length}`;
    })
    .join(', ');
}

/** Casts for the parameters of an INSERT … SELECT, which (unlike VALUES) takes no type from the target column. */
const INSERT_CAST: Record<string, string> = {
  created_at: 'bigint',
  completed_at: 'bigint',
  incomplete_at: 'bigint',
  cancelled_at: 'bigint',
  expired_at: 'bigint',
  failed_at: 'bigint',
  turn: 'int',
};

/** A message and its message_creation step as startMessage writes them (in progress, empty). */
export interface NewMessageRows {
  message: MessageObject;
  step: RunStepObject;
}

/** The rows a turn's message starts as, with new ids, before anything is written. */
export function newMessageRows(run: Pick<RunObject, 'id' | 'thread_id' | 'assistant_id'>): NewMessageRows {
  const createdAt = nowSeconds();
  const messageId = newId('message');
  return {
    message: {
      id: messageId,
      object: 'thread.message',
      created_at: createdAt,
      thread_id: run.thread_id,
      status: 'in_progress',
      incomplete_details: null,
      completed_at: null,
      incomplete_at: null,
      role: 'assistant',
      content: [],
      assistant_id: run.assistant_id,
      run_id: run.id,
      attachments: [],
      metadata: {},
    } as MessageObject,
    step: {
      id: newId('step'),
      object: 'thread.run.step',
      created_at: createdAt,
      run_id: run.id,
      assistant_id: run.assistant_id,
      thread_id: run.thread_id,
      type: 'message_creation',
      status: 'in_progress',
      cancelled_at: null,
      completed_at: null,
      expired_at: null,
      failed_at: null,
      last_error: null,
      step_details: { type: 'message_creation', message_creation: { message_id: messageId } },
      usage: null,
      metadata: {},
    } as RunStepObject,
  };
}

/**
 * The writes that insert a turn's new message and its step (rows from newMessageRows): every column
 * of the wire rows but `object` (not stored), the step's turn, then `fields`, which end them when
 * given (messages are inserted completed, not updated after).
 */
export function messageInserts(
  rows: NewMessageRows,
  turn: number,
  fields: { message: Record<string, unknown>; step: Record<string, unknown> } = { message: {}, step: {} },
): [RowWrite, RowWrite] {
  const { id: messageId, object: _message, ...message } = rows.message;
  const { id: stepId, object: _step, ...step } = rows.step;
  return [
    { table: 'messages', id: messageId, insert: message, fields: fields.message },
    { table: 'run_steps', id: stepId, insert: { ...step, turn }, fields: fields.step },
  ];
}

/** Sets `fields` on the row with `id` and returns it as a wire object (undefined if it is gone). */
async function updateById<Row>(client: SqlClient, table: string, columns: string, id: string, fields: Record<string, unknown>) {
  const values: unknown[] = [id];
  const { rows } = await client.query<Row>(`UPDATE ${table} SET ${assignments(fields, values)} WHERE id = $1 RETURNING ${columns}`, values);
  return rows[0];
}

/** The run fields fixed at creation (the rest start null or are bookkeeping). */
export interface NewRun {
  threadId: string;
  assistantId: string;
  model: string;
  instructions: string | null;
  additionalInstructions: string | null;
  tools: unknown[];
  metadata: Record<string, string>;
  temperature: number | null;
  topP: number | null;
  maxCompletionTokens: number | null;
  maxPromptTokens: number | null;
  truncationStrategy: RunObject['truncation_strategy'];
  responseFormat: unknown;
  toolChoice: unknown;
  parallelToolCalls: boolean;
  reasoningEffort: string | null;
  /** The run expires this long after it is created unless it has ended (OpenAI: 10 minutes). */
  expiresAfterSeconds: number;
  /** The process that will execute the run, holding it for `leaseMs`. */
  lockedBy: string;
  leaseMs: number;
}

export class ActiveRunError extends Error {
  constructor(
    readonly threadId: string,
    readonly runId: string | null,
  ) {
    super(runId ? `Thread ${threadId} already has an active run ${runId}.` : `Thread ${threadId} already has an active run.`);
  }
}

const UNIQUE_VIOLATION = '23505';
export const FOREIGN_KEY_VIOLATION = '23503';
export class ThreadGoneError extends Error {}

/** One row update of `writeTogether`: a message, a step, or the run (moved from one of `from` to `status`). */
export type RowWrite =
  /** `insert`: the row is new, written whole (its columns, then `fields`) rather than updated. */
  | { table: 'messages' | 'run_steps'; id: string; fields: Record<string, unknown>; insert?: Record<string, unknown> }
  | { table: 'runs'; id: string; fields: Record<string, unknown>; from?: readonly RunStatus[]; status?: RunStatus };

/** What an execution pass starts from: the run as its claim left it, and the engine-only fields. */
export interface ExecutionLoad {
  run: RunObject;
  /** The status before the claim: 'queued' means the claim itself moved the run to in_progress. */
  previousStatus: RunStatus;
  additionalInstructions: string | null;
  reasoningEffort: string | null;
  usageTotal: RunObject['usage'];
  /**
   * Read with the claim when the run had never started (queued, no started_at): the thread's
   * messages, which is all its first prompt needs. Such a run has no steps, and no message joins a
   * thread while its run is active, so no later read would differ. Otherwise undefined.
   */
  threadMessages?: MessageObject[];
}

/** A process's claim on a run: its id, and the fencing token that claim took. */
export interface RunClaim {
  runId: string;
  owner: string;
  token: number;
}

/** A write was refused because the claim it was made under is no longer the run's current, unexpired lease. */
export class LeaseLostError extends Error {
  constructor(readonly runId: string) {
    super(`The lease on run ${runId} was lost; this process no longer executes it.`);
  }
}

/** The claim's lease holds: the run's token is still the claim's and its lease has not lapsed. */
const LEASE_HELD = (tokenParameter: string) => `lease_token = ${tokenParameter}::bigint AND locked_until >= ${NOW_MS}`;

/** What a claim writes (owner $2, lease $3 ms, the next token), and where a run can be claimed: no other owner's live lease. */
const CLAIM_SET = `locked_by = $2, locked_until = ${NOW_MS} + $3::bigint, lease_token = lease_token + 1`;
const CLAIMABLE = `runs.status IN ('queued', 'in_progress', 'cancelling')
  AND (runs.locked_by IS NULL OR runs.locked_by = $2 OR runs.locked_until < ${NOW_MS})`;

/** The thread's messages in order as one JSON array, without those run `runId` wrote (they come from its steps). */
const THREAD_MESSAGES_JSON = (threadId: string, runId: string) =>
  `SELECT COALESCE(json_agg(m ORDER BY m.seq), '[]'::json) FROM (
     SELECT ${MESSAGE_COLUMNS}, seq FROM messages WHERE thread_id = ${threadId} AND run_id IS DISTINCT FROM ${runId}) m`;

const withoutSeq = <Row extends { seq?: number }>(row: Row) => {
  delete row.seq;
  return row;
};

/**
 * A client whose every write holds `claim` (fencing). Reads go straight through. A write, alone or
 * a whole transaction, first locks the run's row where the claim's token and lease still hold; a
 * claim taken since (which takes the next token) waits for that lock, so a write either commits
 * before the new claim or finds its token stale and writes nothing, failing with LeaseLostError.
 * Statements on the run's own row condition themselves (`client.fence`), saving the round trips.
 */
export function fencedClient(sql: SqlClient, claim: RunClaim): SqlClient {
  const lock = async (tx: SqlClient) => {
    const { rows } = await tx.query(`SELECT 1 FROM runs WHERE id = $1 AND ${LEASE_HELD('$2')} FOR NO KEY UPDATE`, [claim.runId, claim.token]);
    if (rows.length === 0) throw new LeaseLostError(claim.runId);
  };
  const fenced: SqlClient = {
    kind: sql.kind,
    fence: { claim, base: sql },
    query: (text, values) =>
      READ_ONLY.test(text)
        ? sql.query(text, values)
        : sql.transaction(async (tx) => {
            await lock(tx);
            return tx.query(text, values);
          }),
    exec: (script) =>
      sql.transaction(async (tx) => {
        await lock(tx);
        await tx.exec(script);
      }),
    transaction: (work) =>
      sql.transaction(async (tx) => {
        await lock(tx);
        return work(tx);
      }),
    close: async () => {},
  };
  return fenced;
}
const READ_ONLY = /^\s*SELECT\b(?![\s\S]*\bFOR\s+(?:NO\s+KEY\s+)?(?:UPDATE|SHARE)\b)/i;

/**
 * For a statement on the run's own row made through a fenced client: the unfenced client to send it
 * on, and the condition (appended to `values`' parameters) that keeps it to the claim's lease, so it
 * needs no lock of its own. Other clients (and a fenced transaction, already holding the lock) get
 * no condition.
 */
function selfFenced(client: SqlClient, runId: string, values: unknown[]): { runner: SqlClient; condition: string } {
  const fence = client.fence;
  if (!fence || fence.claim.runId !== runId) return { runner: client, condition: '' };
  values.push(fence.claim.token);
  return { runner: fence.base, condition: ` AND ${LEASE_HELD(`$${values.length}`)}` };
}

/** Throws LeaseLostError unless the run's lease is still held under `token` (after a conditioned write matched nothing). */
async function assertLeaseHeld(client: SqlClient, runId: string, token: number): Promise<void> {
  const { rows } = await client.query(`SELECT 1 FROM runs WHERE id = $1 AND ${LEASE_HELD('$2')}`, [runId, token]);
  if (rows.length === 0) throw new LeaseLostError(runId);
}

/** Runs, run steps and the messages runs write. */
export class RunRepository {
  constructor(readonly sql: SqlClient) {}

  async activeRunId(threadId: string, client: SqlClient = this.sql): Promise<string | null> {
    const { rows } = await client.query<{ id: string }>(
      `SELECT id FROM runs WHERE thread_id = $1 AND status IN ${ACTIVE_RUN_STATUS_SQL} LIMIT 1`,
      [threadId],
    );
    return rows[0]?.id ?? null;
  }

  /**
   * Inserts the run (and the messages it brings) in one transaction. The partial unique index on
   * active runs makes a second active run on the thread fail here, whoever races.
   */
  async createRun(run: NewRun, additionalMessages: NewMessage[], client: SqlClient = this.sql): Promise<RunObject> {
    const work = async (tx: SqlClient) => {
      const messages = new Repositories(tx);
      for (const message of additionalMessages) await messages.createMessage(run.threadId, message);
      const createdAt = nowSeconds();
      const { rows } = await tx.query<RunObject>(
        `INSERT INTO runs (id, thread_id, assistant_id, created_at, status, expires_at, model, instructions,
           additional_instructions, tools, metadata, temperature, top_p, max_completion_tokens, max_prompt_tokens,
           truncation_strategy, response_format, tool_choice, parallel_tool_calls, reasoning_effort, locked_by, locked_until)
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
           ${NOW_MS} + $21::bigint)
         RETURNING ${RUN_COLUMNS}`,
        [
          newId('run'),
          run.threadId,
          run.assistantId,
          createdAt,
          createdAt + run.expiresAfterSeconds,
          run.model,
          run.instructions,
          run.additionalInstructions,
          JSON.stringify(run.tools),
          JSON.stringify(run.metadata),
          run.temperature,
          run.topP,
          run.maxCompletionTokens,
          run.maxPromptTokens,
          JSON.stringify(run.truncationStrategy),
          JSON.stringify(run.responseFormat),
          JSON.stringify(run.toolChoice),
          run.parallelToolCalls,
          run.reasoningEffort,
          run.lockedBy,
          run.leaseMs,
        ],
      );
      return rows[0]!;
    };
    try {
      // A lone INSERT is atomic by itself: BEGIN and COMMIT only when messages come with it.
      return await (client === this.sql && additionalMessages.length > 0 ? this.sql.transaction(work) : work(client));
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === UNIQUE_VIOLATION) throw new ActiveRunError(run.threadId, await this.activeRunId(run.threadId).catch(() => null));
      if (code === FOREIGN_KEY_VIOLATION) throw new ThreadGoneError(run.threadId);
      throw error;
    }
  }

  async getRun(threadId: string, runId: string): Promise<RunObject | undefined> {
    const { rows } = await this.sql.query<RunObject>(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = $1 AND thread_id = $2`, [
      runId,
      threadId,
    ]);
    return rows[0];
  }

  async getRunById(runId: string): Promise<RunObject | undefined> {
    const { rows } = await this.sql.query<RunObject>(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = $1`, [runId]);
    return rows[0];
  }

  async listRuns(threadId: string, page: PageRequest): Promise<ListObject<RunObject>> {
    const { rows, hasMore } = await listPage<RunObject>(this.sql, 'runs', RUN_COLUMNS, 'thread_id = $1', [threadId], page);
    return toList(rows, hasMore);
  }

  async modifyRunMetadata(threadId: string, runId: string, metadata: Record<string, string> | null | undefined): Promise<RunObject | undefined> {
    const { rows } = await this.sql.query<RunObject>(
      `UPDATE runs SET metadata = CASE WHEN $3 THEN $4::json ELSE metadata END
       WHERE id = $1 AND thread_id = $2 RETURNING ${RUN_COLUMNS}`,
      [runId, threadId, metadata !== undefined, JSON.stringify(metadata ?? {})],
    );
    return rows[0];
  }

  /**
   * Moves a run from one of `from` to `to`, setting `fields`, in one statement: the status check
   * and the write are atomic, so of two racing writers exactly one wins. Undefined when the run
   * was not in any of `from` (or is gone).
   */
  async transition(
    runId: string,
    from: readonly RunStatus[],
    to: RunStatus,
    fields: Record<string, unknown> = {},
    client: SqlClient = this.sql,
  ): Promise<RunObject | undefined> {
    const values: unknown[] = [runId, from, to];
    const set = assignments(fields, values);
    const { runner, condition } = selfFenced(client, runId, values);
    const { rows } = await runner.query<RunObject>(
      `UPDATE runs SET status = $3${set ? `, ${set}` : ''} WHERE id = $1 AND status = ANY($2::text[])${condition} RETURNING ${RUN_COLUMNS}`,
      values,
    );
    if (!rows[0] && condition) await assertLeaseHeld(runner, runId, values.at(-1) as number);
    return rows[0];
  }

  // ---- steps

  async createStep(
    run: Pick<RunObject, 'id' | 'thread_id' | 'assistant_id'>,
    details: StepDetails,
    turn: number,
    client: SqlClient = this.sql,
  ): Promise<RunStepObject> {
    const { rows } = await client.query<RunStepObject>(
      `INSERT INTO run_steps (id, run_id, thread_id, assistant_id, created_at, type, status, step_details, turn)
       VALUES ($1, $2, $3, $4, $5, $6, 'in_progress', $7, $8) RETURNING ${STEP_COLUMNS}`,
      [newId('step'), run.id, run.thread_id, run.assistant_id, nowSeconds(), details.type, JSON.stringify(details), turn],
    );
    return rows[0]!;
  }

  /**
   * The assistant message a model call starts writing (in_progress, empty) and its message_creation
   * step, in one statement (atomic as a transaction is, in one round trip). Through a fenced client
   * the statement holds the claim itself: it locks the run's row where the claim's lease holds, and
   * inserts nothing (LeaseLostError) where it does not.
   */
  async startMessage(
    run: Pick<RunObject, 'id' | 'thread_id' | 'assistant_id'>,
    turn: number,
    client: SqlClient = this.sql,
    fresh: NewMessageRows = newMessageRows(run),
  ): Promise<NewMessageRows> {
    const [message, step] = (await this.writeTogether(run.id, messageInserts(fresh, turn), client)) as [MessageObject?, RunStepObject?];
    // Nothing inserted: the run is gone (or, fenced, its lease lost).
    if (!message || !step) throw new LeaseLostError(run.id);
    return { message, step };
  }

  /**
   * Several row writes of one run (updates of its messages, steps and the run itself, inserts of new
   * messages and steps) in one statement: atomic
   * as a transaction, in one round trip. Each write's row comes back in the write's place (undefined
   * where nothing matched: a run write whose `from` did not hold, a row gone). Through a fenced
   * client the statement holds the claim (LeaseLostError, nothing written, when it does not).
   */
  async writeTogether(runId: string, writes: readonly RowWrite[], client: SqlClient = this.sql): Promise<unknown[]> {
    const values: unknown[] = [runId];
    const { runner, condition } = selfFenced(client, runId, values);
    const parts = writes.map((write, index) => {
      if (write.table !== 'runs' && write.insert) {
        const columns: Record<string, unknown> = { id: write.id, ...write.insert, ...write.fields };
        const params = Object.entries(columns).map(([column, value]) => {
          values.push(JSON_COLUMNS.has(column) && value !== null ? JSON.stringify(value) : value);
          return `$${values.length}::${JSON_COLUMNS.has(column) ? 'json' : (INSERT_CAST[column] ?? 'text')}`;
        });
        return `w${index} AS (INSERT INTO ${write.table} (${Object.keys(columns).join(', ')}) SELECT ${params.join(', ')} FROM fence RETURNING ${WRITE_COLUMNS[write.table]})`;
      }
      const fields = write.table === 'runs' && write.status ? { status: write.status, ...write.fields } : write.fields;
      const set = assignments(fields, values);
      values.push(write.id);
      let where = `id = $${values.length} AND EXISTS (SELECT 1 FROM fence)`;
      if (write.table === 'runs' && write.from) {
        values.push(write.from);
        where += ` AND status = ANY($${values.length}::text[])`;
      }
      return `w${index} AS (UPDATE ${write.table} SET ${set} WHERE ${where} RETURNING ${WRITE_COLUMNS[write.table]})`;
    });
    const { rows } = await runner.query<Record<string, unknown>>(
      `WITH fence AS (SELECT 1 FROM runs WHERE id = $1${condition} FOR NO KEY UPDATE), ${parts.join(', ')}
       SELECT EXISTS (SELECT 1 FROM fence) AS fenced${writes.map((_, index) => `, (SELECT row_to_json(w${index}) FROM w${index}) AS w${index}`).join('')}`,
      values,
    );
    const row = rows[0]!;
    if (!row.fenced && condition) throw new LeaseLostError(runId);
    return writes.map((_, index) => row[`w${index}`] ?? undefined);
  }

  updateStep(stepId: string, fields: Record<string, unknown>, client: SqlClient = this.sql): Promise<RunStepObject | undefined> {
    return updateById<RunStepObject>(client, 'run_steps', STEP_COLUMNS, stepId, fields);
  }

  /** Ends every unfinished step of the run with `status` (cancelled, failed, expired). */
  async endOpenSteps(
    runId: string,
    status: 'cancelled' | 'failed' | 'expired',
    fields: Record<string, unknown>,
    client: SqlClient = this.sql,
  ): Promise<RunStepObject[]> {
    const values: unknown[] = [runId, status];
    const set = assignments(fields, values);
    const { rows } = await client.query<RunStepObject>(
      `UPDATE run_steps SET status = $2${set ? `, ${set}` : ''} WHERE run_id = $1 AND status = 'in_progress' RETURNING ${STEP_COLUMNS}`,
      values,
    );
    return rows;
  }

  async getStep(threadId: string, runId: string, stepId: string): Promise<RunStepObject | undefined> {
    const { rows } = await this.sql.query<RunStepObject>(
      `SELECT ${STEP_COLUMNS} FROM run_steps WHERE id = $1 AND run_id = $2 AND thread_id = $3`,
      [stepId, runId, threadId],
    );
    return rows[0];
  }

  async listSteps(runId: string, page: PageRequest): Promise<ListObject<RunStepObject>> {
    const { rows, hasMore } = await listPage<RunStepObject>(this.sql, 'run_steps', STEP_COLUMNS, 'run_id = $1', [runId], page);
    return toList(rows, hasMore);
  }

  /**
   * What a run's prompt is rebuilt from, in one read: every step of the run in order, with the model
   * call that produced it, and the thread's messages in order except those this run wrote (they
   * come from its steps).
   */
  async promptHistory(runId: string, threadId: string): Promise<{ steps: PromptStep[]; threadMessages: MessageObject[] }> {
    const { rows } = await this.sql.query<{ steps: (PromptStep & { seq?: number })[]; messages: (MessageObject & { seq?: number })[] }>(
      `SELECT
         (SELECT COALESCE(json_agg(s ORDER BY s.seq), '[]'::json) FROM (
            SELECT ${STEP_COLUMNS}, turn, COALESCE(tool_state, '{}'::json) AS tool_state, seq FROM run_steps WHERE run_id = $1) s) AS steps,
         (${THREAD_MESSAGES_JSON('$2', '$1')}) AS messages`,
      [runId, threadId],
    );
    return { steps: rows[0]!.steps.map(withoutSeq), threadMessages: rows[0]!.messages.map(withoutSeq) };
  }

  async getMessagesByIds(messageIds: string[]): Promise<MessageObject[]> {
    if (messageIds.length === 0) return [];
    const { rows } = await this.sql.query<MessageObject>(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE id = ANY($1::text[])`, [
      messageIds,
    ]);
    return rows;
  }

  updateMessage(messageId: string, fields: Record<string, unknown>, client: SqlClient = this.sql): Promise<MessageObject | undefined> {
    return updateById<MessageObject>(client, 'messages', MESSAGE_COLUMNS, messageId, fields);
  }

  /**
   * Removes what an interrupted model call left half-done: every step of a turn that has an open
   * step, with the messages those steps wrote, so a resumed run redoes the whole model call and
   * writes each message once.
   */
  async discardUnfinishedWork(runId: string): Promise<string[]> {
    return this.sql.transaction(async (tx) => {
      const openTurns = `SELECT turn FROM run_steps WHERE run_id = $1 AND status = 'in_progress'`;
      // Files code made in those steps go too (their blobs are returned for the caller to delete).
      const { rows: files } = await tx.query<{ blob_id: string }>(
        `DELETE FROM files WHERE made_by_step IN (SELECT id FROM run_steps WHERE run_id = $1 AND turn IN (${openTurns})) RETURNING blob_id`,
        [runId],
      );
      await tx.query(
        `DELETE FROM messages WHERE id IN (
           SELECT step_details->'message_creation'->>'message_id' FROM run_steps
           WHERE run_id = $1 AND type = 'message_creation' AND turn IN (${openTurns}))`,
        [runId],
      );
      await tx.query(`DELETE FROM run_steps WHERE run_id = $1 AND turn IN (${openTurns})`, [runId]);
      return files.map((file) => file.blob_id);
    });
  }

  /** Writes submitted outputs into the run's open tool-call step and completes it. */
  async recordToolOutputs(runId: string, outputs: Map<string, string>, now: number, client: SqlClient): Promise<RunStepObject | undefined> {
    const { rows } = await client.query<{ id: string; step_details: { tool_calls: FunctionToolCall[] } }>(
      `SELECT id, step_details FROM run_steps WHERE run_id = $1 AND type = 'tool_calls' AND status = 'in_progress' ORDER BY seq DESC LIMIT 1`,
      [runId],
    );
    const open = rows[0];
    if (!open) return undefined;
    const calls = open.step_details.tool_calls.map((call) =>
      outputs.has(call.id) ? { ...call, function: { ...call.function, output: outputs.get(call.id)! } } : call,
    );
    return this.updateStep(open.id, { step_details: { type: 'tool_calls', tool_calls: calls }, status: 'completed', completed_at: now }, client);
  }

  // ---- ownership (leases) and sweeping

  /**
   * Takes the run for `owner` for `leaseMs` unless another owner's lease is still running, with the
   * next fencing token: every earlier claim's writes are refused from now on. Undefined when not taken.
   */
  async claim(runId: string, owner: string, leaseMs: number): Promise<RunClaim | undefined> {
    const { rows } = await this.sql.query<{ lease_token: number }>(
      `UPDATE runs SET ${CLAIM_SET} WHERE id = $1 AND ${CLAIMABLE} RETURNING lease_token`,
      [runId, owner, leaseMs],
    );
    return rows[0] ? { runId, owner, token: rows[0].lease_token } : undefined;
  }

  /**
   * claim, the run's read and queued → in_progress in one statement: takes the run as `claim` does
   * (with the next fencing token), moves a queued run to in_progress (started_at kept, or set to
   * `startedAt`), and returns the claim with the run as it is now, the status it had and the
   * engine-only fields. Undefined when the run cannot be claimed.
   */
  async claimForExecution(runId: string, owner: string, leaseMs: number, startedAt: number): Promise<{ claim: RunClaim; load: ExecutionLoad } | undefined> {
    const { rows } = await this.sql.query<
      RunObject & {
        x_previous_status: RunStatus;
        x_additional_instructions: string | null;
        x_reasoning_effort: string | null;
        x_usage_total: RunObject['usage'];
        x_lease_token: number;
        x_messages: (MessageObject & { seq?: number })[] | null;
      }
    >(
      // The row lock returns the run as last committed (a claim that waited sees the writer's
      // changes); the messages are read in the statement's snapshot, which holds every message
      // written before the run was, so they are only taken for a run that never started.
      `WITH previous AS (SELECT id AS previous_id, status AS previous_status, started_at AS previous_started_at FROM runs WHERE id = $1 FOR NO KEY UPDATE)
       UPDATE runs SET ${CLAIM_SET},
         status = CASE WHEN runs.status = 'queued' THEN 'in_progress' ELSE runs.status END,
         started_at = CASE WHEN runs.status = 'queued' THEN COALESCE(runs.started_at, $4::bigint) ELSE runs.started_at END
       FROM previous
       WHERE runs.id = previous.previous_id AND ${CLAIMABLE}
       RETURNING ${RUN_COLUMNS}, previous.previous_status AS x_previous_status, additional_instructions AS x_additional_instructions,
         reasoning_effort AS x_reasoning_effort, usage AS x_usage_total, lease_token AS x_lease_token,
         CASE WHEN previous.previous_status = 'queued' AND previous.previous_started_at IS NULL THEN (${THREAD_MESSAGES_JSON('runs.thread_id', '$1')}) END AS x_messages`,
      [runId, owner, leaseMs, startedAt],
    );
    const row = rows[0];
    if (!row) return undefined;
    const { x_previous_status, x_additional_instructions, x_reasoning_effort, x_usage_total, x_lease_token, x_messages, ...run } = row;
    return {
      claim: { runId, owner, token: x_lease_token },
      load: {
        run,
        previousStatus: x_previous_status,
        additionalInstructions: x_additional_instructions,
        reasoningEffort: x_reasoning_effort,
        usageTotal: x_usage_total,
        ...(x_messages ? { threadMessages: x_messages.map(withoutSeq) } : {}),
      },
    };
  }

  /**
   * Extends the leases of these claims on runs still executing; returns the run ids whose lease
   * held (the rest were lost: taken over, lapsed, cancelled elsewhere or gone).
   */
  async extendLeases(claims: readonly RunClaim[], leaseMs: number): Promise<string[]> {
    if (claims.length === 0) return [];
    const { rows } = await this.sql.query<{ id: string }>(
      `UPDATE runs r SET locked_until = ${NOW_MS} + $3::bigint
       FROM unnest($1::text[], $2::bigint[]) AS held (id, token)
       WHERE r.id = held.id AND r.lease_token = held.token AND r.locked_until >= ${NOW_MS} AND r.status IN ('queued', 'in_progress')
       RETURNING r.id`,
      [claims.map((claim) => claim.runId), claims.map((claim) => claim.token), leaseMs],
    );
    return rows.map((row) => row.id);
  }

  /** Gives up the run `claim` holds (nothing, when the claim is no longer current). */
  async release(claim: RunClaim): Promise<void> {
    await this.sql.query('UPDATE runs SET locked_by = NULL, locked_until = NULL WHERE id = $1 AND lease_token = $2::bigint', [claim.runId, claim.token]);
  }

  /** Gives up a run held unclaimed (created held by `owner`); `owner` null releases it whoever holds it (a dead process's runs). */
  async releaseHeld(runId: string, owner: string | null): Promise<void> {
    await this.sql.query(
      'UPDATE runs SET locked_by = NULL, locked_until = NULL WHERE id = $1 AND ($2::text IS NULL OR locked_by = $2)',
      [runId, owner],
    );
  }

  /**
   * Runs that should be executing but whose owner is gone: the lease lapsed, or a run was never
   * claimed for `unclaimedGraceSeconds`. `includeHeld` takes every such run (an embedded store,
   * whose only other process must be dead).
   */
  async orphanedRuns(unclaimedGraceSeconds: number, options: { includeHeld?: boolean; limit?: number } = {}): Promise<string[]> {
    const { rows } = await this.sql.query<{ id: string }>(
      `SELECT id FROM runs
       WHERE status IN ('queued', 'in_progress', 'cancelling')
         AND ($3 OR (locked_by IS NULL AND created_at <= $1) OR locked_until < ${NOW_MS})
       ORDER BY seq LIMIT $2`,
      [nowSeconds() - unclaimedGraceSeconds, options.limit ?? 1000, options.includeHeld ?? false],
    );
    return rows.map((row) => row.id);
  }

  /**
   * Runs past their expires_at that nobody executes: waiting for tool outputs, or queued with no
   * process holding them (no worker took them: a deployment of API replicas alone, say).
   */
  async runsAwaitingExpiry(nowSecondsValue: number): Promise<string[]> {
    const { rows } = await this.sql.query<{ id: string }>(
      `SELECT id FROM runs WHERE expires_at <= $1
         AND (status = 'requires_action' OR (status = 'queued' AND (locked_by IS NULL OR locked_until < ${NOW_MS})))`,
      [nowSecondsValue],
    );
    return rows.map((row) => row.id);
  }
}
