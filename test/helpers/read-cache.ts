import { metricSum } from '@tandem/bench/fixtures'
import { waitFor } from './wait.js'

type Node = Parameters<typeof metricSum>[0]
type Reader = { get(key: string): Promise<unknown> }
type Writer = { put(key: string, value: string): Promise<unknown> }

/**
 * Reads `key` through `reader` until `node` answers `value` from its read
 * cache (its hits grow): the read that first sees a write may be made
 * while the write is in flight, and is then not kept.
 */
export async function readFromCache(node: Node, reader: Reader, key: string, value: string): Promise<void> {
  const hitsBefore = await metricSum(node, 'tandem_read_cache_hits_total')
  await waitFor(
    async () =>
      (await reader.get(key)) === value && (await metricSum(node, 'tandem_read_cache_hits_total')) > hitsBefore,
    { what: `${key} = ${value} answered from the read cache` },
  )
}

/**
 * Puts `key` = v1 .. v`writes` through `writer`, one after another, while
 * `reader` reads it (at least 10 reads); answers each read that went back
 * below a value an earlier read answered (none, for a node that applies
 * the writes in order and whose cache drops what they change).
 */
export async function readsGoingBack(writer: Writer, reader: Reader, key: string, writes: number): Promise<string[]> {
  let done = false
  const writing = (async () => {
    try {
      for (let i = 1; i <= writes; i++) await writer.put(key, `v${i}`)
    } finally {
      done = true
    }
  })()
  const problems: string[] = []
  let seen = 0
  let reads = 0
  while (!done || reads < 10) {
    const n = Number(((await reader.get(key)) as string).slice(1))
    reads++
    if (n < seen) problems.push(`read v${n} after reading v${seen}`)
    seen = Math.max(seen, n)
  }
  await writing
  return problems
}
