import type { CreateMessage } from '../api/schemas.js';
import { fileNotFound } from '../errors.js';
import type { NewMessage } from '../storage/repositories.js';

/** Expands a create-message request into the stored message: text shorthand, image details, defaults. */
export function toNewMessage(request: CreateMessage): NewMessage {
  const content =
    typeof request.content === 'string'
      ? [{ type: 'text', text: { value: request.content, annotations: [] } }]
      : request.content.map((part) => {
          switch (part.type) {
            case 'text':
              return { type: 'text', text: { value: part.text, annotations: [] } };
            case 'image_url':
              return { type: 'image_url', image_url: { url: part.image_url.url, detail: part.image_url.detail ?? 'auto' } };
            case 'image_file':
              return {
                type: 'image_file',
                image_file: { file_id: part.image_file.file_id, detail: part.image_file.detail ?? 'auto' },
              };
          }
        });
  return {
    role: request.role,
    content,
    attachments: request.attachments ?? [],
    metadata: request.metadata ?? {},
  };
}

/**
 * Refuses messages that name files (attachments, image_file parts) the server does not have. No
 * file exists until the Files API is served, so any such reference is refused rather than stored
 * as if it pointed somewhere. `paramPrefix` names the list the messages came in (`messages`).
 */
export function rejectUnknownFiles(messages: readonly CreateMessage[], paramPrefix = ''): void {
  for (const [index, message] of messages.entries()) {
    const at = paramPrefix ? `${paramPrefix}[${index}].` : '';
    const [attachment] = message.attachments ?? [];
    if (attachment) throw fileNotFound(attachment.file_id, `${at}attachments[0].file_id`);
    if (typeof message.content === 'string') continue;
    const position = message.content.findIndex((part) => part.type === 'image_file');
    const part = message.content[position];
    if (part?.type === 'image_file') throw fileNotFound(part.image_file.file_id, `${at}content[${position}].image_file.file_id`);
  }
}
