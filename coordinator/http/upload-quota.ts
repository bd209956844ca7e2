// Uploads and the stored-bytes quota: what an owner may still store, and recording a hold (429 when
// it would pass the quota).
import type { Uploads, UploadKind } from '../content/uploads.js'
import type { CoordinatorTuning } from '../options.js'
import type { Caller } from './auth.js'
import { quotaExceeded } from './http-error.js'

/** Seconds a caller over its stored-bytes quota is told to wait: until its oldest hold could expire. */
const retryAfterS = (tuning: CoordinatorTuning): number => Math.min(3600, tuning.uploadRetentionMs / 1000)

export function storedBytesExceeded(
  tuning: CoordinatorTuning,
  caller: Caller,
  size: number,
  used: number,
): Error {
  return quotaExceeded(
    'storedBytes',
    `storing ${size} more bytes would pass the ${caller.quota.storedBytes ?? 0} bytes allowed to ${caller.owner} ` +
      `(${used} held); uploads are deleted ${tuning.uploadRetentionMs} ms after their last use`,
    retryAfterS(tuning),
  )
}

/** Bytes `caller` may still store (Infinity without a limit). */
export async function bytesLeft(uploads: Uploads, caller: Caller): Promise<number> {
  const limit = caller.quota.storedBytes
  if (limit === null) return Infinity
  return Math.max(0, limit - (await uploads.bytes(caller.owner)))
}

/** Record that `caller` holds this upload; 'new' when it did not before. 429 past the quota. */
export async function holdUpload(
  uploads: Uploads,
  tuning: CoordinatorTuning,
  caller: Caller,
  kind: UploadKind,
  hash: string,
  size: number,
): Promise<'new' | 'held'> {
  const expiresAt = Date.now() + tuning.uploadRetentionMs
  const h = await uploads.hold(kind, hash, caller.owner, size, caller.quota.storedBytes, expiresAt)
  if (h.status === 'over-quota') throw storedBytesExceeded(tuning, caller, size, h.bytes)
  return h.status
}
