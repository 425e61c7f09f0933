import type { CreateMessage } from '../api/schemas.js';
import { fileNotFound } from '../errors.js';
import type { FileRepository } from '../storage/files.js';
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
 * Refuses messages that name files (attachments, image_file parts) the server does not have,
 * naming the first such reference. `paramPrefix` names the list the messages came in (`messages`).
 */
export async function rejectUnknownFiles(
  files: Pick<FileRepository, 'missingFiles'>,
  messages: readonly CreateMessage[],
  paramPrefix = '',
): Promise<void> {
  const references: { id: string; param: string }[] = [];
  for (const [index, message] of messages.entries()) {
    const at = paramPrefix ? `${paramPrefix}[${index}].` : '';
    for (const [position, attachment] of (message.attachments ?? []).entries()) {
      references.push({ id: attachment.file_id, param: `${at}attachments[${position}].file_id` });
    }
    if (typeof message.content === 'string') continue;
    for (const [position, part] of message.content.entries()) {
      if (part.type === 'image_file') references.push({ id: part.image_file.file_id, param: `${at}content[${position}].image_file.file_id` });
    }
  }
  if (references.length === 0) return;
  const missing = new Set(await files.missingFiles([...new Set(references.map((reference) => reference.id))]));
  const first = references.find((reference) => missing.has(reference.id));
  if (first) throw fileNotFound(first.id, first.param);
}
