import { createLogger, loadConfig, TandemServer } from '@tandem/server'
import { afterEach, describe, expect, it } from 'vitest'
import { tempDir } from '../helpers/temp-dir.js'

/**
 * /metrics is answered after its request listener returned (prom-client
 * collects every figure in a promise), so the listener's guard does not
 * cover it. A figure whose source throws or rejects, with an Error or with
 * a value a log line cannot hold as JSON, must fail that scrape with 500
 * INTERNAL and an error body: an unhandled rejection would end the node.
 * A real server in this process (its HTTP port on 127.0.0.1, port 0, its
 * LevelDB on disk), so that a failing source can be added to its registry.
 */
describe('/metrics with a failing metric source', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  it('answers 500 INTERNAL with an error body, logs and counts it, and serves the next scrape', async () => {
    const rejections: unknown[] = []
    const onRejection = (reason: unknown) => rejections.push(reason)
    process.on('unhandledRejection', onRejection)
    cleanups.push(() => void process.off('unhandledRejection', onRejection))
    const dir = tempDir('tandem-metrics-')
    cleanups.push(() => dir.remove())
    const lines: string[] = []
    const logger = createLogger({ level: 'error', format: 'json', write: (line) => lines.push(line) })
    const server = await TandemServer.start(loadConfig(['--port', '0', '--data-dir', dir.path], {}), logger)
    cleanups.push(() => server.close())

    let failure: 'none' | 'throw' | 'reject' | 'unloggable' = 'none'
    const cyclic: Record<string, unknown> = { why: 'a source failed with a cycle' }
    cyclic.self = cyclic
    server.metrics.gauge('tandem_test_source', 'A figure the test makes fail.', () => {
      if (failure === 'throw') throw new Error('the source threw')
      return 1
    })
    // A metric as prom-client takes it, whose collection rejects after a turn.
    server.metrics.registry.registerMetric({
      name: 'tandem_test_async_source',
      help: 'A figure the test makes reject.',
      type: 'gauge',
      aggregator: 'sum',
      get: async () => {
        await new Promise((resolve) => setImmediate(resolve))
        if (failure === 'reject') throw new Error('the source rejected')
        if (failure === 'unloggable') throw cyclic
        return {
          name: 'tandem_test_async_source',
          help: '',
          type: 'gauge',
          aggregator: 'sum',
          values: [{ value: 2, labels: {} }],
        }
      },
    } as unknown as Parameters<typeof server.metrics.registry.registerMetric>[0])

    const scrape = async () => {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`, { signal: AbortSignal.timeout(15_000) })
      return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() }
    }
    const handlerErrors = (text: string) =>
      Number(/^tandem_handler_errors_total\{link="http"\} (\d+)$/m.exec(text)?.[1] ?? 0)

    const first = await scrape()
    expect(first.status).toBe(200)
    expect(first.text).toMatch(/^tandem_test_source 1$/m)
    expect(first.text).toMatch(/^tandem_test_async_source 2$/m)
    const errorsBefore = handlerErrors(first.text)

    for (const mode of ['throw', 'reject', 'unloggable'] as const) {
      failure = mode
      const failed = await scrape()
      expect(failed.status, mode).toBe(500)
      expect(failed.type, mode).toMatch(/application\/json/)
      expect(JSON.parse(failed.text), mode).toMatchObject({ error: { code: 'INTERNAL', message: expect.any(String) } })
    }
    failure = 'none'
    const after = await scrape()
    expect(after.status).toBe(200)
    expect(handlerErrors(after.text) - errorsBefore).toBe(3)
    const logged = lines.map((l) => JSON.parse(l) as { link?: string; err?: unknown })
    expect(logged.filter((l) => l.link === 'http')).toHaveLength(3)
    expect(JSON.stringify(logged)).toContain('the source threw')
    expect(JSON.stringify(logged)).toContain('the source rejected')
    expect(JSON.stringify(logged)).toContain('a source failed with a cycle')
    expect(rejections).toEqual([])
  })
})
