import type { ChatTool } from '../providers/types.js';
import type { SearchHit } from '../ingest/search.js';

/** The function the model calls to search: it never reaches the client, assistd answers it. */
export const FILE_SEARCH_FUNCTION = 'file_search';

export const FILE_SEARCH_TOOL: ChatTool = {
  type: 'function',
  function: {
    name: FILE_SEARCH_FUNCTION,
    description:
      "Search the files the user provided (documents uploaded to this assistant or conversation) for passages relevant to the question. " +
      'Returns the best matching passages, each headed by a source marker such as 【0:1†report.pdf】.',
    parameters: {
      type: 'object',
      properties: {
        queries: {
          type: 'array',
          items: { type: 'string' },
          description: 'One to five search queries: the question, and the same need put in other words.',
        },
      },
      required: ['queries'],
    },
  },
};

/** What the model is told about searching and citing, beside the run's own instructions. */
export const FILE_SEARCH_INSTRUCTIONS =
  'You can search the files the user provided with the file_search tool. When your answer uses what a search returned, ' +
  'cite each passage you rely on by writing its source marker, exactly as it appears (for example 【0:1†report.pdf】), right after the sentence it supports.';

/** Most results a search hands the model unless the tool says otherwise (OpenAI's default for its GPT-4 models). */
export const DEFAULT_MAX_RESULTS = 20;
export const DEFAULT_RANKER = 'default_2024_08_21';
/** The most queries one call may make. */
const MAX_QUERIES = 5;

export interface FileSearchOptions {
  maxResults: number;
  ranker: string;
  scoreThreshold: number;
}

/** The file_search tool's options on a run, defaults filled in. */
export function fileSearchOptions(tools: readonly unknown[]): FileSearchOptions | null {
  const tool = (tools as { type: string; file_search?: { max_num_results?: number; ranking_options?: { ranker?: string; score_threshold?: number } } }[]).find(
    (candidate) => candidate.type === 'file_search',
  );
  if (!tool) return null;
  return {
    maxResults: tool.file_search?.max_num_results ?? DEFAULT_MAX_RESULTS,
    ranker: tool.file_search?.ranking_options?.ranker === 'auto' || !tool.file_search?.ranking_options?.ranker ? DEFAULT_RANKER : tool.file_search.ranking_options.ranker,
    scoreThreshold: tool.file_search?.ranking_options?.score_threshold ?? 0,
  };
}

/** The queries of a call's arguments; text that is not the JSON asked for is taken as one query. */
export function parseQueries(argumentsText: string): string[] {
  try {
    const parsed = JSON.parse(argumentsText) as { queries?: unknown; query?: unknown };
    const list = Array.isArray(parsed.queries) ? parsed.queries : parsed.query !== undefined ? [parsed.query] : [];
    const queries = list.filter((query): query is string => typeof query === 'string' && query.trim() !== '').slice(0, MAX_QUERIES);
    if (queries.length > 0) return queries;
  } catch {
    // not JSON: below
  }
  return argumentsText.trim() === '' ? [] : [argumentsText.trim().slice(0, 1_000)];
}

/** The marker a result is cited by: the call's number in the run, the result's in the call, the file. */
export const citationMarker = (ordinal: number, index: number, filename: string) => `【${ordinal}:${index}†${filename}】`;
const MARKER = /【(\d+):(\d+)†[^】]*】/g;
/** Longer than any marker (numbers and a file name): an unclosed bracket further back is just text. */
const MAX_MARKER_LENGTH = 300;

/** A result as the step shows it (content kept, shown only when a request asks for it). */
export interface StoredResult {
  file_id: string;
  file_name: string;
  score: number;
  content: { type: 'text'; text: string }[];
}

export function toStoredResults(hits: SearchHit[]): StoredResult[] {
  return hits.map((hit) => ({ file_id: hit.fileId, file_name: hit.filename, score: hit.score, content: [{ type: 'text', text: hit.text }] }));
}

/** The tool output the model reads: each passage under its marker. */
export function formatResults(ordinal: number, results: readonly StoredResult[]): string {
  if (results.length === 0) return 'No passages in the provided files matched the search.';
  return results
    .map((result, index) => `${citationMarker(ordinal, index, result.file_name)}\n${result.content.map((part) => part.text).join('\n')}`)
    .join('\n\n');
}

export interface FileCitation {
  type: 'file_citation';
  text: string;
  start_index: number;
  end_index: number;
  file_citation: { file_id: string };
}

/**
 * Finds complete citation markers in `text` from `from` on and the file each names (by the
 * run's results: `results[ordinal][index]`). Returns them and where the scan may resume: past
 * the last complete marker, or at a marker still being written.
 */
export function findCitations(text: string, from: number, results: ReadonlyMap<number, readonly StoredResult[]>): { citations: FileCitation[]; next: number } {
  const citations: FileCitation[] = [];
  MARKER.lastIndex = from;
  let next = from;
  for (let match = MARKER.exec(text); match; match = MARKER.exec(text)) {
    next = match.index + match[0].length;
    const result = results.get(Number(match[1]))?.[Number(match[2])];
    if (result) citations.push({ type: 'file_citation', text: match[0], start_index: match.index, end_index: next, file_citation: { file_id: result.file_id } });
  }
  // An opening bracket near the end may start a marker still arriving; one further back is not a marker.
  const open = text.lastIndexOf('【');
  return { citations, next: open >= next && text.length - open <= MAX_MARKER_LENGTH ? open : text.length };
}
