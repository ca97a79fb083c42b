import { type ReadOptions, TandemClient, type WriteOptions } from '@tandem/client'
import type { Driver, DriverSpec } from './driver.js'

export class TandemDriver implements Driver {
  private constructor(
    private readonly client: TandemClient,
    private readonly writeOptions: WriteOptions,
    private readonly readOptions: ReadOptions,
  ) {}

  static async open(spec: DriverSpec): Promise<TandemDriver> {
    const client = await TandemClient.connect({
      servers: spec.servers,
      authToken: spec.authToken,
      direct: spec.direct,
      readFrom: spec.direct ? 'any' : 'master',
      timeoutMs: 30_000,
    })
    return new TandemDriver(
      client,
      spec.w === undefined ? {} : { w: spec.w },
      spec.consistency === undefined ? {} : { consistency: spec.consistency },
    )
  }

  get(key: string): Promise<unknown> {
    return this.client.get(key, this.readOptions)
  }

  put(key: string, value: Uint8Array): Promise<unknown> {
    return this.client.put(key, value, this.writeOptions)
  }

  async putMany(entries: [string, Uint8Array][]): Promise<void> {
    await this.client.batch(entries.map(([key, value]) => ({ type: 'put' as const, key, value })))
  }

  /** The node's status (seq, commit stats, replicas); tandem only. */
  status(): ReturnType<TandemClient['status']> {
    return this.client.status()
  }

  close(): Promise<void> {
    return this.client.close()
  }
}
