import type { ChatTool } from '../providers/types.js';

/** The function the model calls to run Python: assistd answers it in the thread's sandbox. */
export const CODE_INTERPRETER_FUNCTION = 'code_interpreter';

export const CODE_INTERPRETER_TOOL: ChatTool = {
  type: 'function',
  function: {
    name: CODE_INTERPRETER_FUNCTION,
    description:
      'Run Python 3 code in a stateful sandbox (like a Jupyter notebook): variables, imports and files persist between calls in this conversation. ' +
      'numpy, pandas, matplotlib, scipy, sympy, openpyxl and pillow are installed; there is no internet access. ' +
      'Returns what the code prints and the value of its last expression; matplotlib figures are shown to the user as images. ' +
      'Files the user provided are in /mnt/data; files you save to /mnt/data can be offered to the user.',
    parameters: {
      type: 'object',
      properties: { code: { type: 'string', description: 'The Python source to run.' } },
      required: ['code'],
    },
  },
};

/** What the model is told, beside the run's own instructions. */
export function codeInterpreterInstructions(files: readonly string[]): string {
  const available = files.length > 0 ? ` Files available: ${files.map((name) => `/mnt/data/${name}`).join(', ')}.` : '';
  return (
    'You can run Python with the code_interpreter tool.' +
    available +
    ' To give the user a file you made, save it under /mnt/data and link it as [name](sandbox:/mnt/data/name).'
  );
}

/** The code of a call's arguments: `{"code": ...}` as asked, or the text itself when it is not that JSON. */
export function parseCode(argumentsText: string): string {
  try {
    const parsed = JSON.parse(argumentsText) as unknown;
    if (parsed && typeof parsed === 'object' && typeof (parsed as { code?: unknown }).code === 'string') return (parsed as { code: string }).code;
    if (typeof parsed === 'string') return parsed;
  } catch {
    // not JSON: below
  }
  return argumentsText;
}

const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/**
 * Reads the `code` string out of arguments still being streamed, so the step can show the input
 * as the model writes it: `feed` takes the arguments so far and returns the code not yet returned.
 * Arguments that do not start as `{"code": "` JSON are streamed as they are (parseCode agrees).
 */
export class StreamingCode {
  private raw = '';
  private position = -1;
  private mode: 'searching' | 'string' | 'raw' | 'done' = 'searching';
  private code = '';

  feed(argumentsDelta: string): string {
    this.raw += argumentsDelta;
    const before = this.code.length;
    if (this.mode === 'searching') {
      const trimmed = this.raw.trimStart();
      if (trimmed !== '' && !trimmed.startsWith('{')) {
        this.mode = 'raw';
        this.position = 0;
      } else {
        const match = /^\s*\{\s*"code"\s*:\s*"/.exec(this.raw);
        if (match) {
          this.mode = 'string';
          this.position = match[0].length;
        } else if (/^\s*\{\s*"(?:[^"c]|c(?!ode"))/.test(this.raw) || this.raw.length > 64) {
          this.mode = 'done'; // another shape of JSON: shown whole once the call is complete
        }
      }
    }
    if (this.mode === 'raw') {
      this.code = this.raw;
    } else if (this.mode === 'string') {
      while (this.position < this.raw.length) {
        const char = this.raw[this.position]!;
        if (char === '"') {
          this.mode = 'done';
          break;
        }
        if (char !== '\\') {
          this.code += char;
          this.position++;
          continue;
        }
        const next = this.raw[this.position + 1];
        if (next === undefined) break; // the escape is still arriving
        if (next === 'u') {
          const hex = this.raw.slice(this.position + 2, this.position + 6);
          if (hex.length < 4) break;
          this.code += String.fromCharCode(Number.parseInt(hex, 16));
          this.position += 6;
        } else {
          this.code += ESCAPES[next] ?? next;
          this.position += 2;
        }
      }
    }
    return this.code.slice(before);
  }
}

/** A code_interpreter output as steps show it. */
export type CodeOutput = { type: 'logs'; logs: string } | { type: 'image'; image: { file_id: string } };

/** What the model reads back from a call: the logs, and what became of images and files. */
export function formatOutputs(outputs: readonly CodeOutput[], files: readonly { path: string; fileId: string }[], error: { name: string } | null): string {
  const parts: string[] = [];
  for (const output of outputs) {
    if (output.type === 'logs' && output.logs !== '') parts.push(output.logs);
    if (output.type === 'image') parts.push(`[a figure was shown to the user (image ${output.image.file_id})]`);
  }
  for (const file of files) parts.push(`[file saved: /mnt/data/${file.path}, linkable as sandbox:/mnt/data/${file.path}]`);
  if (parts.length === 0) parts.push(error ? `[the code raised ${error.name}]` : '[the code ran and printed nothing]');
  return parts.join('\n');
}

export interface FilePathAnnotation {
  type: 'file_path';
  text: string;
  start_index: number;
  end_index: number;
  file_path: { file_id: string };
}

const LINK_PREFIX = 'sandbox:/mnt/data/';
const SANDBOX_LINK = /sandbox:\/mnt\/data\/[^\s)\]"'<>]+/g;

/** Links to files the run's code made, found in `text` from `from` on; and where the scan may resume. */
export function findFilePaths(text: string, from: number, files: ReadonlyMap<string, string>, final: boolean): { annotations: FilePathAnnotation[]; next: number } {
  const annotations: FilePathAnnotation[] = [];
  SANDBOX_LINK.lastIndex = from;
  let next = from;
  for (let match = SANDBOX_LINK.exec(text); match; match = SANDBOX_LINK.exec(text)) {
    const end = match.index + match[0].length;
    // A link that reaches the end of what has arrived may still be growing.
    if (end === text.length && !final) return { annotations, next: match.index };
    next = end;
    const link = match[0].replace(/[.,;:!?]+$/, '');
    let path = link.slice(LINK_PREFIX.length);
    try {
      path = decodeURIComponent(path);
    } catch {
      // not percent-encoded: as written
    }
    const fileId = files.get(path);
    if (fileId) annotations.push({ type: 'file_path', text: link, start_index: match.index, end_index: match.index + link.length, file_path: { file_id: fileId } });
  }
  if (final) return { annotations, next: text.length };
  // The end of the text may be the start of a link still arriving.
  let keep = 0;
  for (let length = Math.min(LINK_PREFIX.length, text.length - next); length > 0; length--) {
    if (text.endsWith(LINK_PREFIX.slice(0, length))) {
      keep = length;
      break;
    }
  }
  return { annotations, next: text.length - keep };
}
