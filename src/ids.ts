import { randomBytes } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const ID_LENGTH = 24;

export const ID_PREFIX = {
  assistant: 'asst_',
  thread: 'thread_',
  message: 'msg_',
  run: 'run_',
  step: 'step_',
  file: 'file-',
  vectorStore: 'vs_',
  fileBatch: 'vsfb_',
  call: 'call_',
} as const;

export type IdKind = keyof typeof ID_PREFIX;

/** OpenAI's prefix followed by 24 uniformly random base62 characters (~143 bits). */
export function newId(kind: IdKind): string {
  let out = '';
  while (out.length < ID_LENGTH) {
    for (const byte of randomBytes(ID_LENGTH * 2)) {
      // 248 = 4 * 62: skipping the top values keeps every character equally likely
      if (byte < 248 && out.length < ID_LENGTH) out += ALPHABET[byte % 62];
    }
  }
  return ID_PREFIX[kind] + out;
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);
