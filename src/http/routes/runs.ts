import type { FastifyInstance, FastifyReply } from 'fastify';
import {
  createRunSchema,
  createThreadAndRunSchema,
  modifyRunSchema,
  submitToolOutputsSchema,
} from '../../api/schemas.js';
import { parseOrThrow } from '../../api/validation.js';
import type { RunObject } from '../../api/objects.js';
import type { RunEvent } from '../../engine/events.js';
import type { RunService } from '../../engine/run-service.js';
import type { Storage } from '../../storage/index.js';
import { notFound, notFoundInThread } from '../../errors.js';
import { pageFromQuery } from '../pagination.js';
import { openEventStream } from '../sse.js';
import { includesResultContent, streamEventFor, withoutResultContent } from '../search-content.js';
import { rejectUnknownFiles } from '../content.js';
import type { VectorStoreService } from '../../ingest/vector-store-service.js';

type ThreadParams = { thread_id: string };
type RunParams = { thread_id: string; run_id: string };
type StepParams = RunParams & { step_id: string };

/**
 * Answers with the run's events as they happen: `leading` first (what the request itself did),
 * then the pass the engine runs now, then `done`. A client that goes away stops listening; the
 * run goes on.
 */
function streamRun(reply: FastifyReply, service: RunService, runId: string, leading: RunEvent[], includeContent: boolean) {
  const stream = openEventStream(reply);
  for (const event of leading) stream.send(event);
  const unsubscribe = service.stream(runId, (event) => stream.send(streamEventFor(event, includeContent)), () => stream.end());
  void stream.closed.then(unsubscribe);
  return reply;
}

export function runRoutes(app: FastifyInstance, storage: Storage, service: RunService, pollAfterMs: number, vectorStores: VectorStoreService) {
  const pollHint = (reply: FastifyReply) => reply.header('openai-poll-after-ms', String(pollAfterMs));
  /** Executes the run's next pass: streamed to this response (after `leading`), or in the background. */
  const startRun = (reply: FastifyReply, run: RunObject, stream: boolean | null | undefined, leading: RunEvent[], includeContent = false) => {
    if (stream) return streamRun(reply, service, run.id, leading, includeContent);
    service.dispatch(run.id);
    pollHint(reply);
    return run;
  };

  app.post('/threads/runs', async (request, reply) => {
    const body = parseOrThrow(createThreadAndRunSchema, request.body);
    await rejectUnknownFiles(storage.files, body.thread?.messages ?? [], 'thread.messages');
    // The run's tool_resources are its new thread's: this run is the thread's first use of them.
    const threadResources = await vectorStores.resolveToolResources(body.thread?.tool_resources, 'thread.tool_resources', 'thread');
    const runResources = await vectorStores.resolveToolResources(body.tool_resources, 'tool_resources', 'thread');
    body.thread = { ...body.thread, tool_resources: runResources || threadResources ? { ...threadResources, ...runResources } : undefined };
    const created = await service.createThreadAndRun(body);
    const run = created.run;
    await vectorStores.attachToThread(created.thread.id, body.thread.messages ?? []);
    const thread = (await storage.getThread(created.thread.id)) ?? created.thread;
    return startRun(reply, run, body.stream, [
      { event: 'thread.created', data: thread },
      { event: 'thread.run.created', data: run },
      { event: 'thread.run.queued', data: run },
    ]);
  });

  app.post<{ Params: ThreadParams }>('/threads/:thread_id/runs', async (request, reply) => {
    const body = parseOrThrow(createRunSchema, request.body);
    await rejectUnknownFiles(storage.files, body.additional_messages ?? [], 'additional_messages');
    const run = await service.createRun(request.params.thread_id, body);
    await vectorStores.attachToThread(request.params.thread_id, body.additional_messages ?? []);
    return startRun(
      reply,
      run,
      body.stream,
      [
        { event: 'thread.run.created', data: run },
        { event: 'thread.run.queued', data: run },
      ],
      includesResultContent(request.query),
    );
  });

  app.get<{ Params: ThreadParams }>('/threads/:thread_id/runs', async (request) => {
    const threadId = request.params.thread_id;
    const page = pageFromQuery(request.query);
    const list = await storage.runs.listRuns(threadId, page);
    if (list.data.length === 0 && !(await storage.getThread(threadId))) throw notFound('thread', threadId);
    return list;
  });

  app.get<{ Params: RunParams }>('/threads/:thread_id/runs/:run_id', async (request, reply) => {
    const { thread_id: threadId, run_id: runId } = request.params;
    const run = await storage.runs.getRun(threadId, runId);
    if (!run) throw await notFoundInThread(storage, threadId, 'run', runId);
    pollHint(reply);
    return run;
  });

  app.post<{ Params: RunParams }>('/threads/:thread_id/runs/:run_id', async (request) => {
    const { thread_id: threadId, run_id: runId } = request.params;
    const body = parseOrThrow(modifyRunSchema, request.body);
    return (await storage.runs.modifyRunMetadata(threadId, runId, body.metadata)) ?? Promise.reject(await notFoundInThread(storage, threadId, 'run', runId));
  });

  app.post<{ Params: RunParams }>('/threads/:thread_id/runs/:run_id/cancel', async (request, reply) => {
    const run = await service.cancel(request.params.thread_id, request.params.run_id);
    pollHint(reply);
    return run;
  });

  app.post<{ Params: RunParams }>('/threads/:thread_id/runs/:run_id/submit_tool_outputs', async (request, reply) => {
    const { thread_id: threadId, run_id: runId } = request.params;
    const body = parseOrThrow(submitToolOutputsSchema, request.body);
    const { run, step } = await service.submitToolOutputs(threadId, runId, body.tool_outputs);
    return startRun(reply, run, body.stream, [
      ...(step ? [{ event: 'thread.run.step.completed', data: step }] : []),
      { event: 'thread.run.queued', data: run },
    ]);
  });

  app.get<{ Params: RunParams }>('/threads/:thread_id/runs/:run_id/steps', async (request) => {
    const { thread_id: threadId, run_id: runId } = request.params;
    const page = pageFromQuery(request.query);
    const list = await storage.runs.listSteps(runId, page);
    if (!includesResultContent(request.query)) list.data = list.data.map(withoutResultContent);
    // Steps are listed by run id alone: the thread in the path must still be the run's own.
    if ((list.data.length === 0 || list.data[0]!.thread_id !== threadId) && !(await storage.runs.getRun(threadId, runId))) {
      throw await notFoundInThread(storage, threadId, 'run', runId);
    }
    return list;
  });

  app.get<{ Params: StepParams }>('/threads/:thread_id/runs/:run_id/steps/:step_id', async (request) => {
    const { thread_id: threadId, run_id: runId, step_id: stepId } = request.params;
    const step = await storage.runs.getStep(threadId, runId, stepId);
    if (step) return includesResultContent(request.query) ? step : withoutResultContent(step);
    if (!(await storage.runs.getRun(threadId, runId))) throw await notFoundInThread(storage, threadId, 'run', runId);
    throw notFound('run step', stepId);
  });
}
