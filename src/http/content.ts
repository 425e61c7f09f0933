import type { CreateMessage } from '../api/schemas.js';
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
