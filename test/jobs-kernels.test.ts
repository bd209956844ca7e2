// The kernels against independent references: trial division, Miller-Rabin, and the known Q(n).
import test from 'ava'
import { ValidationError } from '../shared/errors.js'
import { nqueens, primes } from '../jobs/index.js'
import { countCompletions, validPrefixes } from '../jobs/nqueens-search.js'
import { countPrimes } from '../jobs/primes-sieve.js'
import { parseParams } from '../coordinator/schema/index.js'

function isPrimeSmall(n: number): boolean {
  if (n < 2) return false
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false
  return true
}

function powMod(base: bigint, exp: bigint, mod: bigint): bigint {
  let result = 1n
  base %= mod
  for (; exp > 0n; exp >>= 1n) {
    if ((exp & 1n) === 1n) result = (result * base) % mod
    base = (base * base) % mod
  }
  return result
}

/** Miller-Rabin with bases 2..13: deterministic below 3.4 * 10^12. */
function isPrimeLarge(value: number): boolean {
  const n = BigInt(value)
  if (n % 2n === 0n) return n === 2n
  let d = n - 1n
  let s = 0
  for (; d % 2n === 0n; s++) d /= 2n
  for (const a of [2n, 3n, 5n, 7n, 11n, 13n]) {
    if (a % n === 0n) continue
    let x = powMod(a, d, n)
    if (x === 1n || x === n - 1n) continue
    let composite = true
    for (let r = 1; r < s && composite; r++) {
      x = (x * x) % n
      if (x === n - 1n) composite = false
    }
    if (composite) return false
  }
  return true
}

test('primes - counts every small range like trial division', (t) => {
  const prefix = [0]
  for (let n = 0; n < 400; n++) prefix.push(prefix[n]! + (isPrimeSmall(n) ? 1 : 0))
  for (let from = 0; from < 400; from++) {
    for (let to = from; to <= 400; to++) {
      if (countPrimes(from, to) !== prefix[to]! - prefix[from]!) return t.fail(`[${from}, ${to})`)
    }
  }
  t.pass()
})

test('primes - counts across segment boundaries additively', (t) => {
  const segment = 2 * 2 ** 17
  const whole = countPrimes(1, 5 * segment + 7)
  for (const cut of [segment - 1, segment, segment + 1, 3 * segment + 2, 17 * 17, 1000003]) {
    t.is(countPrimes(1, cut) + countPrimes(cut, 5 * segment + 7), whole, `cut at ${cut}`)
  }
})

test('primes - counts primes just below 10^12 like Miller-Rabin', (t) => {
  const from = 1e12 - 30_001
  let expected = 0
  for (let n = from; n < 1e12; n++) if (isPrimeLarge(n)) expected++
  t.is(countPrimes(from, 1e12), expected)
  t.true(expected > 1000)
})

test('primes - splits into contiguous units of the default size', (t) => {
  const params = parseParams(primes, { from: 5, to: 25_000_010 })
  t.is(params.unitSize, 1e7)
  const units = primes.split(params)
  t.deepEqual(units, [
    { from: 5, to: 10_000_005 },
    { from: 10_000_005, to: 20_000_005 },
    { from: 20_000_005, to: 25_000_010 },
  ])
  t.is(primes.split(parseParams(primes, { to: 1e12 })).length, primes.maxUnits)
})

test('primes - explains refused params in the message', (t) => {
  const negative = t.throws(() => parseParams(primes, { to: -1 }), { instanceOf: ValidationError })
  t.regex(negative?.message ?? '', /^params\.to: must be an integer/)
  const unknown = t.throws(() => parseParams(primes, { to: 10, foo: 1 }), { instanceOf: ValidationError })
  t.is(unknown?.message, 'params.foo: unknown field')
  const tooMany = t.throws(() => parseParams(primes, { to: 1e9, unitSize: 1000 }), {
    instanceOf: ValidationError,
  })
  t.regex(tooMany?.message ?? '', /^params\.unitSize: gives 1000000 units/)
})

test('nqueens - counts Q(1..12) at every depth', (t) => {
  const known = [1, 0, 0, 2, 10, 4, 40, 92, 352, 724, 2680, 14200]
  for (let n = 1; n <= 12; n++) {
    for (let depth = 0; depth <= Math.min(n, 4); depth++) {
      let total = 0
      for (const prefix of validPrefixes(n, depth)) total += countCompletions(n, prefix)
      t.is(total, known[n - 1]!, `n=${n} depth=${depth}`)
    }
  }
})

test('nqueens - picks the default depth from n', (t) => {
  t.deepEqual(parseParams(nqueens, { n: 6 }), { n: 6, depth: 1 })
  t.deepEqual(parseParams(nqueens, { n: 13 }), { n: 13, depth: 2 })
  t.deepEqual(parseParams(nqueens, { n: 14 }), { n: 14, depth: 3 })
  t.true(nqueens.estimateCost(parseParams(nqueens, { n: 18, depth: 4 })).units <= nqueens.maxUnits)
})
