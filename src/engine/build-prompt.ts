import { countTokens } from 'gpt-tokenizer';
import type { MessageObject, RunObject } from '../api/objects.js';
import type { PromptStep } from '../storage/runs.js';
import { CODE_INTERPRETER_FUNCTION } from '../tools/code-interpreter.js';
import { FILE_SEARCH_FUNCTION, formatResults, type StoredResult } from '../tools/file-search.js';
import type { ChatContentPart, ChatMessage, ChatTool } from '../providers/types.js';

// Chat formats spend a few tokens per message on roles and separators; images are billed by
// the upstream, this counts them at the low-detail rate.
const TOKENS_PER_MESSAGE = 4;
const TOKENS_PER_IMAGE = 85;

export function countMessageTokens(message: ChatMessage): number {
  let total = TOKENS_PER_MESSAGE;
  const content = message.content;
  if (typeof content === 'string') total += countTokens(content);
  else if (Array.isArray(content)) {
    for (const part of content) total += part.type === 'text' ? countTokens(part.text) : TOKENS_PER_IMAGE;
  }
  if (message.role === 'assistant' && message.tool_calls) {
    for (const call of message.tool_calls) total += countTokens(call.function.name) + countTokens(call.function.arguments);
  }
  return total;
}

function textOf(message: MessageObject): string {
  return message.content
    .map((part) => {
      const typed = part as { type: string; text?: { value: string }; image_file?: { file_id: string } };
      if (typed.type === 'text') return typed.text?.value ?? '';
      if (typed.type === 'image_file') return `[image file ${typed.image_file?.file_id}]`;
      return '';
    })
    .filter((text) => text !== '')
    .join('\n');
}

/** A message cut off by a failed model call: clients saw it, the model's history leaves it out. */
export const isAbandoned = (message: MessageObject) =>
  message.status === 'incomplete' && message.incomplete_details?.reason === 'run_failed';

/**
 * A stored thread message as a chat message. Image URLs pass through to vision models; image
 * files go as the data URLs `images` holds for them (a file gone since is named in text).
 */
export function toChatMessage(message: MessageObject, images: ReadonlyMap<string, string> = new Map()): ChatMessage {
  if (message.role === 'assistant') return { role: 'assistant', content: textOf(message) };
  const parts: ChatContentPart[] = [];
  for (const part of message.content) {
    const typed = part as {
      type: string;
      text?: { value: string };
      image_url?: { url: string; detail?: 'auto' | 'low' | 'high' };
      image_file?: { file_id: string };
    };
    if (typed.type === 'text' && typed.text) parts.push({ type: 'text', text: typed.text.value });
    else if (typed.type === 'image_url' && typed.image_url) {
      parts.push({ type: 'image_url', image_url: { url: typed.image_url.url, detail: typed.image_url.detail ?? 'auto' } });
    } else if (typed.type === 'image_file' && typed.image_file) {
      const url = images.get(typed.image_file.file_id);
      const detail = (typed.image_file as { detail?: 'auto' | 'low' | 'high' }).detail ?? 'auto';
      parts.push(url ? { type: 'image_url', image_url: { url, detail } } : { type: 'text', text: `[image file ${typed.image_file.file_id}: no longer available]` });
    }
  }
  const textOnly = parts.every((part) => part.type === 'text');
  return {
    role: 'user',
    content: textOnly ? parts.map((part) => (part as { text: string }).text).join('\n') : parts,
  };
}

/**
 * The run's own progress as chat messages: each model call ("turn") becomes one assistant message
 * (its text and its tool calls together) followed by one `tool` message per submitted output.
 */
export function stepsToChat(steps: PromptStep[], messages: Map<string, MessageObject>): ChatMessage[] {
  const out: ChatMessage[] = [];
  let index = 0;
  while (index < steps.length) {
    const turn = steps[index]!.turn;
    let text = '';
    const calls: NonNullable<Extract<ChatMessage, { role: 'assistant' }>['tool_calls']> = [];
    const outputs: ChatMessage[] = [];
    for (; index < steps.length && steps[index]!.turn === turn; index++) {
      // A step that failed (tool calls of a cut-off attempt) never reached the conversation.
      if (steps[index]!.status === 'failed') continue;
      const details = steps[index]!.step_details;
      if (details.type === 'message_creation') {
        const message = messages.get(details.message_creation.message_id);
        if (message && !isAbandoned(message)) text += textOf(message);
      } else {
        for (const call of details.tool_calls) {
          if (call.type === 'function') {
            calls.push({ id: call.id, type: 'function', function: { name: call.function.name, arguments: call.function.arguments } });
            outputs.push({ role: 'tool', tool_call_id: call.id, content: call.function.output ?? '' });
            continue;
          }
          // A built-in call goes back as the function the model called, its output the results as it read them.
          const state = steps[index]!.tool_state[call.id];
          if (!state) continue;
          if (call.type === 'code_interpreter') {
            calls.push({ id: call.id, type: 'function', function: { name: CODE_INTERPRETER_FUNCTION, arguments: state.arguments } });
            outputs.push({ role: 'tool', tool_call_id: call.id, content: state.output ?? '' });
            continue;
          }
          calls.push({ id: call.id, type: 'function', function: { name: FILE_SEARCH_FUNCTION, arguments: state.arguments } });
          outputs.push({ role: 'tool', tool_call_id: call.id, content: formatResults(state.ordinal ?? 0, (call.file_search.results ?? []) as StoredResult[]) });
        }
      }
    }
    if (calls.length > 0) out.push({ role: 'assistant', content: text === '' ? null : text, tool_calls: calls }, ...outputs);
    else if (text !== '') out.push({ role: 'assistant', content: text });
  }
  return out;
}

export type BuiltPrompt = { messages: ChatMessage[]; promptTokens: number } | { incomplete: 'max_prompt_tokens' };

/** What the tool definitions cost in the prompt: counted as the JSON the model is sent, which overstates a little. */
export function countToolTokens(tools: ChatTool[]): number {
  return tools.length === 0 ? 0 : countTokens(JSON.stringify(tools));
}

/**
 * System instructions, then the thread (cut by `truncation_strategy` and `max_prompt_tokens`,
 * dropping the oldest first), then this run's own turns, which are never dropped. The tool
 * definitions count against `max_prompt_tokens` too: what cannot be dropped (instructions, tools,
 * this run's turns) exceeding it alone makes the run incomplete before any model call.
 */
export function buildPrompt(input: {
  run: Pick<RunObject, 'instructions' | 'truncation_strategy' | 'max_prompt_tokens'>;
  additionalInstructions: string | null;
  /** What built-in tools tell the model (how to cite file_search's results), after the run's own. */
  toolInstructions?: string | null;
  tools: ChatTool[];
  threadMessages: MessageObject[];
  runTurns: ChatMessage[];
  /** Data URLs of the image files the thread's messages show, by file id. */
  images?: ReadonlyMap<string, string>;
}): BuiltPrompt {
  const system = [input.run.instructions, input.additionalInstructions, input.toolInstructions].filter((text) => text).join('\n\n');
  const head: ChatMessage[] = system ? [{ role: 'system', content: system }] : [];
  let history = input.threadMessages
    .filter((message) => !isAbandoned(message))
    .map((message) => toChatMessage(message, input.images))
    .filter((message) => message.content !== '');
  const strategy = input.run.truncation_strategy;
  if (strategy.type === 'last_messages' && strategy.last_messages !== null) {
    history = strategy.last_messages > 0 ? history.slice(-strategy.last_messages) : [];
  }

  const fixed = [...head, ...input.runTurns];
  let tokens = fixed.reduce((sum, message) => sum + countMessageTokens(message), countToolTokens(input.tools));
  const limit = input.run.max_prompt_tokens;
  const kept: ChatMessage[] = [];
  for (let index = history.length - 1; index >= 0; index--) {
    const message = history[index]!;
    const cost = countMessageTokens(message);
    if (limit !== null && tokens + cost > limit) break;
    tokens += cost;
    kept.unshift(message);
  }
  if (limit !== null && (tokens > limit || (kept.length === 0 && history.length > 0))) {
    return { incomplete: 'max_prompt_tokens' };
  }
  return { messages: [...head, ...kept, ...input.runTurns], promptTokens: tokens };
}

/** The image files `messages` show, by id. */
export function imageFileIds(messages: readonly MessageObject[]): string[] {
  const ids = new Set<string>();
  for (const message of messages) {
    for (const part of message.content as { type: string; image_file?: { file_id: string } }[]) {
      if (part.type === 'image_file' && part.image_file) ids.add(part.image_file.file_id);
    }
  }
  return [...ids];
}
