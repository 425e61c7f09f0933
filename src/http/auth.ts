import { hash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { invalidApiKey, missingApiKey } from '../errors.js';

/** SHA-256 in one call (no Hash object per request). */
const digest = (value: string) => hash('sha256', value, 'buffer');

/**
 * Checks `Authorization: Bearer <key>` (or Azure's `api-key` header) against the master key.
 * Both sides are hashed to equal length first so the comparison takes the same time whatever the
 * key; the key itself is never logged or echoed.
 */
export function createAuthCheck(masterKey: string) {
  const expected = digest(masterKey);
  return (request: FastifyRequest) => {
    const header = request.headers.authorization;
    let presented: string | undefined;
    if (typeof header === 'string' && header.length > 0) {
      presented = header.replace(/^Bearer\s+/i, '').trim();
    } else {
      const azure = request.headers['api-key'];
      if (typeof azure === 'string' && azure.length > 0) presented = azure.trim();
    }
    if (!presented) throw missingApiKey();
    if (!timingSafeEqual(digest(presented), expected)) throw invalidApiKey();
  };
}
