// The sign-up proof of work: its one-block SHA-256 is SHA-256, a found nonce checks, and the check is
// bound to the prefix (challenge and identity).
import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { checkPow, MAX_POW_BITS, powHash, powPrefix, solvePow, toBase64Url } from '../shared/index.js'

test('pow - the one-block hash equals SHA-256 of prefix and nonce', (t) => {
  for (let i = 0; i < 200; i++) {
    const prefix = new Uint8Array(randomBytes(32))
    const nonce = new Uint8Array(randomBytes(8))
    const expected = createHash('sha256').update(prefix).update(nonce).digest('hex')
    t.is(Buffer.from(powHash(prefix, nonce)).toString('hex'), expected)
  }
})

test('pow - the prefix is SHA-256 of the tag, challenge, public key and NATS key', async (t) => {
  const challenge = new Uint8Array(randomBytes(32))
  const key = new Uint8Array(randomBytes(32))
  const nats = 'U' + 'A'.repeat(55)
  const expected = createHash('sha256')
    .update('cohort/v1/signup-pow\u0000')
    .update(challenge)
    .update(key)
    .update(nats)
    .digest('hex')
  t.is(Buffer.from(await powPrefix(toBase64Url(challenge), key, nats)).toString('hex'), expected)
})

test('pow - a solved nonce checks for its prefix and difficulty, not for another prefix', async (t) => {
  const prefix = new Uint8Array(randomBytes(32))
  const { nonce, tried } = await solvePow(prefix, 12)
  t.true(tried >= 1)
  t.true(checkPow(prefix, nonce, 12))
  const hash = createHash('sha256').update(prefix).update(Buffer.from(nonce, 'hex')).digest()
  t.true(hash.readUInt32BE(0) >>> 20 === 0, 'the first 12 bits are zero')
  // Some other prefix: a nonce that fits it by chance is 1 in 4096, so look for one that does not.
  let other = new Uint8Array(randomBytes(32))
  while (checkPow(other, nonce, 12)) other = new Uint8Array(randomBytes(32))
  t.false(checkPow(other, nonce, 12))
  t.false(checkPow(prefix, 'not-hex-at-all!!', 12))
  t.false(checkPow(prefix, nonce, MAX_POW_BITS + 1))
  t.true(checkPow(prefix, '0'.repeat(16), 0))
})

test('pow - solving stops when its signal aborts', async (t) => {
  const ac = new AbortController()
  const solving = solvePow(new Uint8Array(32), MAX_POW_BITS, { signal: ac.signal, sliceHashes: 1000 })
  ac.abort(new Error('stop'))
  await t.throwsAsync(solving, { message: 'stop' })
})
