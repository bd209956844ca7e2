// Ed25519 through Node's crypto module (where Node has one) and through WebCrypto (browsers) are the
// same signatures: each side verifies what the other signed, and both refuse what is not signed.
import test from 'ava'
import { generateIdentity, sign, utf8, verify } from '../shared/index.js'

const ED25519 = { name: 'Ed25519' } as const

test('a signature made here verifies under WebCrypto, and one made by WebCrypto verifies here', async (t) => {
  const id = await generateIdentity(false)
  const data = utf8('cohort/signing-interop') as Uint8Array<ArrayBuffer>
  const ours = await sign(id, data)
  t.is(ours.length, 64)
  const publicKey = await crypto.subtle.importKey(
    'raw',
    id.publicKey as Uint8Array<ArrayBuffer>,
    ED25519,
    false,
    ['verify'],
  )
  t.true(await crypto.subtle.verify(ED25519, publicKey, ours as Uint8Array<ArrayBuffer>, data))
  const theirs = new Uint8Array(await crypto.subtle.sign(ED25519, id.privateKey, data))
  t.true(await verify(id.publicKey, theirs, data))
})

test('verify refuses other data, another key, a flipped bit, wrong sizes and a key that is not a point', async (t) => {
  const id = await generateIdentity(false)
  const other = await generateIdentity(false)
  const data = utf8('cohort/signing-refusals')
  const sig = await sign(id, data)
  t.true(await verify(id.publicKey, sig, data))
  t.false(await verify(id.publicKey, sig, utf8('cohort/signing-refusalS')))
  t.false(await verify(other.publicKey, sig, data))
  const flipped = sig.slice()
  flipped[10]! ^= 1
  t.false(await verify(id.publicKey, flipped, data))
  t.false(await verify(id.publicKey, sig.slice(0, 63), data))
  t.false(await verify(id.publicKey.slice(0, 31), sig, data))
  // y = 2 is not the y coordinate of any point of the curve.
  const notAPoint = new Uint8Array(32)
  notAPoint[0] = 2
  t.false(await verify(notAPoint, sig, data))
})
