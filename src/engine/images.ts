import { buffer } from 'node:stream/consumers';
import type { Storage } from '../storage/index.js';

/** Vision models take images up to this size (OpenAI's limit); larger image files are left out. */
const MAX_IMAGE_BYTES = 20 * 1024 * 1024;

/** The image type `bytes` start with: uploads seldom say (the SDKs send application/octet-stream). */
function imageType(bytes: Buffer): string | undefined {
  if (bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (bytes.subarray(0, 4).toString('latin1') === 'GIF8') return 'image/gif';
  if (bytes.subarray(0, 4).toString('latin1') === 'RIFF' && bytes.subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  return undefined;
}

/**
 * Data URLs for the image files `ids` name, read once per run (`cache`). A file that is gone, too
 * large or not an image is left out; the prompt then says so in text.
 */
export async function imageDataUrls(storage: Pick<Storage, 'files' | 'blobs'>, ids: readonly string[], cache: Map<string, string | null>): Promise<Map<string, string>> {
  for (const id of ids) {
    if (cache.has(id)) continue;
    const stored = await storage.files.getStoredFile(id);
    if (!stored || stored.file.bytes > MAX_IMAGE_BYTES) {
      cache.set(id, null);
      continue;
    }
    const bytes = await buffer(storage.blobs.get(stored.blobId));
    const type = imageType(bytes) ?? (stored.mimeType?.startsWith('image/') ? stored.mimeType : undefined);
    cache.set(id, type ? `data:${type};base64,${bytes.toString('base64')}` : null);
  }
  const urls = new Map<string, string>();
  for (const id of ids) {
    const url = cache.get(id);
    if (url) urls.set(id, url);
  }
  return urls;
}
