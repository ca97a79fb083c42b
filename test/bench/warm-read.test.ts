import { preloadResp, readEveryKeyResp } from '@tandem/bench'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PrometheusText } from '../helpers/prometheus.js'
import { startRespNode } from '../resp/helpers.js'

// The GET warm-up of `tandem-bench --driver redis-benchmark`: one read of
// every key leaves each in tandem's read cache, so that the measured run
// reads none from LevelDB for the first time.

describe('the redis-benchmark GET warm-up', () => {
  let node: Awaited<ReturnType<typeof startRespNode>>
  const cached = async () => {
    const text = await (await fetch(`http://${node.node.address}/metrics`)).text()
    return new PrometheusText(text).value('tandem_read_cache_keys', {})
  }

  beforeAll(async () => {
    node = await startRespNode(['--sync', 'periodic'])
  })
  afterAll(() => node?.stop())

  it('reads every preloaded key once, and the read cache then holds each', async () => {
    const address = `127.0.0.1:${node.port}`
    await preloadResp(address, 2500, 100)
    // The preload's writes leave nothing in the cache (readCacheWrites is off by default).
    expect(await cached()).toBe(0)
    expect(await readEveryKeyResp(address, 2500)).toBe(2500)
    expect(await cached()).toBe(2500)
  })

  it('counts the keys it found, and reads the missing ones all the same (floor-bare stores none)', async () => {
    expect(await readEveryKeyResp(`127.0.0.1:${node.port}`, 2600)).toBe(2500)
    // The 100 missing keys are kept as absent, besides the 2,500 values.
    expect(await cached()).toBe(2600)
  })
})
