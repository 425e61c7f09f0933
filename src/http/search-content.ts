import type { RunEvent } from '../engine/events.js';

/** The include[] value that asks for the chunks file_search found, beside their scores. */
const RESULT_CONTENT = 'step_details.tool_calls[*].file_search.results[*].content';

/** Whether a request's query (`include[]=…`, as the SDKs send it, or `include=…`) asks for result content. */
export function includesResultContent(query: unknown): boolean {
  const values = query as Record<string, unknown> | undefined;
  const asked = [values?.['include[]'], values?.include].flat().filter((value) => typeof value === 'string');
  return asked.includes(RESULT_CONTENT);
}

type Details = { type?: string; tool_calls?: { type?: string; file_search?: { results?: Record<string, unknown>[] } }[] };

/** Step details without the results' content (copied where changed: the original is shared). */
function strippedDetails(details: Details | undefined): Details | undefined {
  if (!details?.tool_calls?.some((call) => call.file_search?.results?.some((result) => 'content' in result))) return details;
  return {
    ...details,
    tool_calls: details.tool_calls.map((call) =>
      call.file_search?.results
        ? { ...call, file_search: { ...call.file_search, results: call.file_search.results.map(({ content: _content, ...result }) => result) } }
        : call,
    ),
  };
}

/** A run step (object or delta) as shown when result content was not asked for. */
export function withoutResultContent<Step>(step: Step): Step {
  const value = step as { step_details?: Details; delta?: { step_details?: Details } };
  if (value.step_details) {
    const details = strippedDetails(value.step_details);
    return details === value.step_details ? step : ({ ...value, step_details: details } as Step);
  }
  if (value.delta?.step_details) {
    const details = strippedDetails(value.delta.step_details);
    return details === value.delta.step_details ? step : ({ ...value, delta: { ...value.delta, step_details: details } } as Step);
  }
  return step;
}

/** A stream event as a client that did not ask for result content sees it. */
export function streamEventFor(event: RunEvent, includeContent: boolean): RunEvent {
  if (includeContent || !event.event.startsWith('thread.run.step')) return event;
  return { event: event.event, data: withoutResultContent(event.data) };
}
