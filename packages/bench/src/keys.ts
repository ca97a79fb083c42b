/**
 * Key choice over a keyspace of n keys, the way YCSB does it: uniform, or
 * scrambled zipfian (theta 0.99; the popular items are spread over the
 * keyspace by a hash so that they are not neighbours on disk).
 */

type KeyChooser = () => number

export function keyName(i: number): string {
  return `bench:${String(i).padStart(10, '0')}`
}

/** Keyspaces up to this many keys have their names made once (keyNamer). */
const NAMED_KEYS = 200_000

/**
 * keyName, for a load over a keyspace of n keys: each name made once,
 * when n is at most NAMED_KEYS, and then given from a table. A name made
 * per request (a padStart and a concatenation, a string of two parts) was
 * a measurable share of the harness's CPU a pipelined put, which counts as
 * much as a server's on the shared cores: the SDK's checks of the key and
 * its frame writer each read it, and flatten it first. The table's names
 * are flat strings (about 4 MB for 100,000 keys).
 */
export function keyNamer(n: number): (i: number) => string {
  if (n > NAMED_KEYS) return keyName
  const names: string[] = new Array(n)
  for (let i = 0; i < n; i++) names[i] = Buffer.from(keyName(i), 'latin1').toString('latin1')
  return (i) => names[i]
}

export function uniform(n: number, random: () => number = Math.random): KeyChooser {
  return () => Math.floor(random() * n)
}

const ZIPF_THETA = 0.99

function zeta(n: number, theta: number): number {
  let sum = 0
  for (let i = 1; i <= n; i++) sum += 1 / i ** theta
  return sum
}

// zeta(n) costs O(n); keep the values for the keyspaces seen in this thread.
const zetaCache = new Map<number, number>()

/** Gray et al., "Quickly generating billion-record synthetic databases", as in YCSB's ZipfianGenerator. */
export function zipfian(n: number, random: () => number = Math.random): KeyChooser {
  const theta = ZIPF_THETA
  let zetan = zetaCache.get(n)
  if (zetan === undefined) {
    zetan = zeta(n, theta)
    zetaCache.set(n, zetan)
  }
  const zeta2 = zeta(2, theta)
  const alpha = 1 / (1 - theta)
  const eta = (1 - (2 / n) ** (1 - theta)) / (1 - zeta2 / zetan)
  const half = 0.5 ** theta
  return () => {
    const u = random()
    const uz = u * zetan
    let rank: number
    if (uz < 1) rank = 0
    else if (uz < 1 + half) rank = 1
    else rank = Math.floor(n * (eta * u - eta + 1) ** alpha)
    if (rank >= n) rank = n - 1
    return fnv1a(rank) % n
  }
}

function fnv1a(x: number): number {
  let h = 0x811c9dc5
  for (let i = 0; i < 4; i++) {
    h ^= (x >>> (i * 8)) & 0xff
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h
}

export function chooser(distribution: 'uniform' | 'zipfian', n: number): KeyChooser {
  return distribution === 'zipfian' ? zipfian(n) : uniform(n)
}
