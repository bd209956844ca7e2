// Many units under one coordinator signature. A grant of N units costs one Ed25519 signature: the
// coordinator signs a small header naming the root of a Merkle tree over the units' bodies, and each
// unit travels with its own proof (its index and the sibling hashes up to the root). A single unit
// taken out of the batch (handed to a peer, saved in a checkpoint) still verifies on its own: its
// body hashes up to the signed root, and the header's signature checks against the coordinator key.
//
// Hashes are domain-separated (RFC 6962 style): a leaf is SHA-256(0x00 ‖ body), an inner node
// SHA-256(0x01 ‖ left ‖ right), and the tree is padded to a power of two with SHA-256(0x02), which no
// body can hash to. The header names the number of real units, so a padding leaf is never a unit.
import { concatBytes, equalBytes, toBase64Url } from './bytes.js'
import { decode, encode } from './codec.js'
import { sha256 } from './digest.js'
import { ProtocolError, SignatureError } from './errors.js'
import { arrayField, bytesField, expectRecord, intField, literal } from './schema.js'
import {
  open,
  parseEnvelope,
  signDetached,
  verifyDetached,
  type Identity,
  type SignedEnvelope,
} from './signing.js'

/** Deepest tree: 2^8 = 256 units under one signature (a grant holds at most LIMITS.maxWant). */
export const MAX_BATCH_DEPTH = 8
const HASH_BYTES = 32
const MAX_HEADER_BYTES = 256

/** Where a unit sits in a signed batch: the signed header, its index, the sibling hashes up to the root. */
export interface BatchProof {
  /** msgpack of the signed header (`unit.batch`): exactly the bytes the coordinator signed. */
  header: Uint8Array
  index: number
  /** Sibling hashes from the leaf up; as many as the header's depth. */
  path: Uint8Array[]
}

/**
 * A unit as a worker receives it: a signed envelope of kind `unit`. With `batch`, `sig` signs the
 * batch header (tag `unit.batch`), not the body; the body is bound to it by the proof.
 */
export interface UnitEnvelope extends SignedEnvelope {
  batch?: BatchProof
}

interface BatchHeader {
  type: 'unit.batch'
  v: 1
  root: Uint8Array
  depth: number
  count: number
}

const hash = (...parts: Uint8Array[]): Promise<Uint8Array> => sha256(concatBytes(...parts))

const LEAF = Uint8Array.of(0)
const NODE = Uint8Array.of(1)
const PAD = Uint8Array.of(2)

const leafHash = (body: Uint8Array): Promise<Uint8Array> => hash(LEAF, body)
const nodeHash = (left: Uint8Array, right: Uint8Array): Promise<Uint8Array> => hash(NODE, left, right)

/** The levels of the tree over `bodies`, leaves first; the last level holds the root alone. */
async function buildTree(bodies: Uint8Array[]): Promise<Uint8Array[][]> {
  let depth = 0
  while (1 << depth < bodies.length) depth++
  const pad = await hash(PAD)
  const leaves = await Promise.all(bodies.map(leafHash))
  while (leaves.length < 1 << depth) leaves.push(pad)
  const levels = [leaves]
  for (let level = leaves; level.length > 1;) {
    const pairs: Promise<Uint8Array>[] = []
    for (let i = 0; i < level.length; i += 2) pairs.push(nodeHash(level[i]!, level[i + 1]!))
    level = await Promise.all(pairs)
    levels.push(level)
  }
  return levels
}

/**
 * Sign many unit payloads at once: one signature over the root of their tree, a proof per unit. One
 * payload is sealed on its own, as before batches existed.
 */
export async function sealUnits(payloads: unknown[], identity: Identity): Promise<UnitEnvelope[]> {
  const bodies = payloads.map((p) => encode(p))
  if (bodies.length > 1 << MAX_BATCH_DEPTH)
    throw new ProtocolError(`at most ${1 << MAX_BATCH_DEPTH} units go under one signature`)
  if (bodies.length === 1) {
    const body = bodies[0]!
    return [
      {
        v: 1,
        kind: 'unit',
        body,
        signer: identity.publicKey,
        sig: await signDetached('unit', body, identity),
      },
    ]
  }
  const levels = await buildTree(bodies)
  const depth = levels.length - 1
  const header: BatchHeader = {
    type: 'unit.batch',
    v: 1,
    root: levels[depth]![0]!,
    depth,
    count: bodies.length,
  }
  const headerBytes = encode(header)
  const sig = await signDetached('unit.batch', headerBytes, identity)
  return bodies.map((body, index) => ({
    v: 1,
    kind: 'unit',
    body,
    signer: identity.publicKey,
    sig,
    batch: {
      header: headerBytes,
      index,
      path: levels.slice(0, depth).map((level, d) => level[(index >> d) ^ 1]!),
    },
  }))
}

function parseHeader(bytes: Uint8Array): BatchHeader {
  const r = expectRecord(decode(bytes, MAX_HEADER_BYTES), 'unit.batch header')
  literal(r, 'type', 'unit.batch')
  literal(r, 'v', 1)
  const depth = intField(r, 'depth', 1, MAX_BATCH_DEPTH)
  return {
    type: 'unit.batch',
    v: 1,
    root: bytesField(r, 'root', HASH_BYTES, HASH_BYTES),
    depth,
    count: intField(r, 'count', 2, 1 << depth),
  }
}

function parseProof(raw: unknown): BatchProof {
  const r = expectRecord(raw, 'unit batch proof')
  return {
    header: bytesField(r, 'header', MAX_HEADER_BYTES, 1),
    index: intField(r, 'index', 0, (1 << MAX_BATCH_DEPTH) - 1),
    path: arrayField(r, 'path', MAX_BATCH_DEPTH).map((h, i) => {
      if (!(h instanceof Uint8Array) || h.length !== HASH_BYTES)
        throw new ProtocolError(`batch.path[${i}] must be ${HASH_BYTES} bytes`)
      return h
    }),
  }
}

/** Check the shape of a unit envelope received from the network (the proof too, when present). */
export function parseUnitEnvelope(value: unknown, maxBodyBytes: number): UnitEnvelope {
  const env = parseEnvelope(value, 'unit', maxBodyBytes)
  const raw = (value as Record<string, unknown>)['batch']
  return raw === undefined ? env : { ...env, batch: parseProof(raw) }
}

/** Batch headers whose signature checked out, so the rest of a grant costs no signature check. */
const verifiedHeaders = new Map<string, Promise<boolean>>()
const VERIFIED_HEADERS_MAX = 1024

function headerVerified(signer: Uint8Array, sig: Uint8Array, header: Uint8Array): Promise<boolean> {
  // The key covers every input of the check, so a hit proves exactly what a fresh check would.
  const key = `${toBase64Url(signer)}.${toBase64Url(sig)}.${toBase64Url(header)}`
  let ok = verifiedHeaders.get(key)
  if (ok === undefined) {
    if (verifiedHeaders.size >= VERIFIED_HEADERS_MAX) verifiedHeaders.clear()
    ok = verifyDetached('unit.batch', header, signer, sig)
    verifiedHeaders.set(key, ok)
  }
  return ok
}

/**
 * Verify a unit envelope, alone or from a batch, and decode its body. `trusted`, when given, must
 * contain the signer. Throws SignatureError when the signature, the proof or the signer is wrong.
 */
export async function openUnit(
  env: UnitEnvelope,
  trusted?: (signer: Uint8Array) => boolean,
): Promise<unknown> {
  if (env.batch === undefined) return open(env, trusted)
  if (trusted !== undefined && !trusted(env.signer))
    throw new SignatureError(`unit is signed by an unknown key ${toBase64Url(env.signer)}`)
  let header: BatchHeader
  let proof: BatchProof
  try {
    // Envelopes read back from a checkpoint were not parsed on receipt: check the proof's shape here.
    proof = parseProof(env.batch)
    header = parseHeader(proof.header)
  } catch (err) {
    throw new SignatureError(`unit batch proof is malformed: ${(err as Error).message}`)
  }
  const { index, path } = proof
  if (path.length !== header.depth || index >= header.count)
    throw new SignatureError('unit batch proof does not fit its header')
  let node = await leafHash(env.body)
  for (let d = 0; d < path.length; d++) {
    node = (index >> d) & 1 ? await nodeHash(path[d]!, node) : await nodeHash(node, path[d]!)
  }
  if (!equalBytes(node, header.root))
    throw new SignatureError('unit is not in the batch its coordinator signed')
  if (!(await headerVerified(env.signer, env.sig, proof.header)))
    throw new SignatureError('unit batch signature does not verify')
  return decode(env.body, env.body.length)
}
