// The browser's identity: an Ed25519 key made by WebCrypto as non-extractable and kept in IndexedDB
// (CryptoKey objects are structured-clonable), so a returning volunteer keeps its id and its credit
// while the private key never leaves the browser's key store, not even to this page's own code.
import {
  generateIdentity,
  keyIdOf,
  PUBLIC_KEY_BYTES,
  sign,
  toBase64Url,
  utf8,
  verify,
  type Identity,
} from '../shared/index.js'
import type { CredentialStore, StoredCredentials } from '../worker/portable.js'

const DB_NAME = 'cohort'
const STORE = 'identity'
const KEY = 'self'

interface StoredIdentity {
  publicKey: Uint8Array
  privateKey: CryptoKey
}

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error ?? new Error('IndexedDB request failed'))
  })
}

function openDb(idb: IDBFactory): Promise<IDBDatabase> {
  const open = idb.open(DB_NAME, 1)
  open.onupgradeneeded = () => open.result.createObjectStore(STORE)
  return request(open)
}

function isStored(v: unknown): v is StoredIdentity {
  const r = v as Partial<StoredIdentity> | undefined
  return (
    r?.publicKey instanceof Uint8Array &&
    r.publicKey.length === PUBLIC_KEY_BYTES &&
    r.privateKey instanceof CryptoKey &&
    r.privateKey.algorithm.name === 'Ed25519'
  )
}

/** The identity of a stored pair, or undefined when its halves do not belong together. */
async function identityOf(s: StoredIdentity): Promise<Identity | undefined> {
  const identity: Identity = {
    publicKey: s.publicKey,
    id: toBase64Url(s.publicKey),
    keyId: await keyIdOf(s.publicKey),
    privateKey: s.privateKey,
  }
  const probe = utf8('cohort/identity-check')
  return (await verify(s.publicKey, await sign(identity, probe), probe)) ? identity : undefined
}

/**
 * The identity stored in this browser profile, or a new one stored now. Two tabs opening at once
 * end up with the same identity: the write checks, in one transaction, that no other tab stored one.
 */
export async function loadOrCreateBrowserIdentity(
  idb: IDBFactory = indexedDB,
): Promise<{ identity: Identity; created: boolean }> {
  const db = await openDb(idb)
  try {
    const existing: unknown = await request(db.transaction(STORE, 'readonly').objectStore(STORE).get(KEY))
    if (isStored(existing)) {
      const identity = await identityOf(existing)
      if (identity !== undefined) return { identity, created: false }
    }
    const fresh = await generateIdentity(false)
    const tx = db.transaction(STORE, 'readwrite')
    const store = tx.objectStore(STORE)
    const raced: unknown = await request(store.get(KEY))
    // Another tab stored a key since the first read: use that one. A pair that failed the check above
    // (the same public key as before) is replaced.
    const keep =
      isStored(raced) &&
      !(isStored(existing) && toBase64Url(raced.publicKey) === toBase64Url(existing.publicKey))
    if (!keep)
      store.put({ publicKey: fresh.publicKey, privateKey: fresh.privateKey } satisfies StoredIdentity, KEY)
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve()
      tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'))
      tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'))
    })
    if (keep) {
      const identity = await identityOf(raced)
      if (identity !== undefined) return { identity, created: false }
    }
    return { identity: fresh, created: true }
  } finally {
    db.close()
  }
}

const CREDENTIALS_KEY = 'nats'

/**
 * The NATS credentials this browser signed up for (worker/volunteer-credentials.ts), kept in the
 * same IndexedDB store as the identity: an nkey seed and a JWT, readable by this origin's pages only.
 */
export function createBrowserCredentialStore(idb: IDBFactory = indexedDB): CredentialStore {
  const run = async <T>(
    mode: IDBTransactionMode,
    fn: (store: IDBObjectStore) => IDBRequest<T>,
  ): Promise<T> => {
    const db = await openDb(idb)
    try {
      return await request(fn(db.transaction(STORE, mode).objectStore(STORE)))
    } finally {
      db.close()
    }
  }
  return {
    load: () => run('readonly', (s) => s.get(CREDENTIALS_KEY) as IDBRequest<unknown>),
    async save(credentials: StoredCredentials) {
      await run('readwrite', (s) => s.put(credentials, CREDENTIALS_KEY))
    },
  }
}
