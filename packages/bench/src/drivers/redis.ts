import { Redis } from 'ioredis'
import type { Driver, DriverSpec } from './driver.js'

export class RedisDriver implements Driver {
  private readonly waitReplicas: number

  private constructor(
    readonly redis: Redis,
    spec: DriverSpec,
  ) {
    // Redis has no per-write concern; WAIT after the SET is its equivalent.
    // 'majority' of the replicas the harness started is not known here, so
    // it waits for one.
    this.waitReplicas = spec.w === undefined ? 0 : spec.w === 'majority' ? 1 : spec.w
  }

  static async open(spec: DriverSpec): Promise<RedisDriver> {
    const [host, port] = splitHostPort(spec.servers[0])
    const redis = new Redis({
      host,
      port,
      password: spec.authToken,
      lazyConnect: true,
      // Like tandem's SDK, send the commands issued in one turn in one write.
      enableAutoPipelining: spec.pipeline > 1,
      maxRetriesPerRequest: 2,
      enableOfflineQueue: true,
    })
    await redis.connect()
    return new RedisDriver(redis, spec)
  }

  get(key: string): Promise<unknown> {
    return this.redis.getBuffer(key)
  }

  async put(key: string, value: Uint8Array): Promise<unknown> {
    const set = this.redis.set(key, Buffer.from(value.buffer, value.byteOffset, value.byteLength))
    if (this.waitReplicas === 0) return set
    await set
    return this.redis.wait(this.waitReplicas, 30_000)
  }

  async putMany(entries: [string, Uint8Array][]): Promise<void> {
    const args: (string | Buffer)[] = []
    for (const [k, v] of entries) args.push(k, Buffer.from(v.buffer, v.byteOffset, v.byteLength))
    await this.redis.mset(...args)
  }

  async close(): Promise<void> {
    this.redis.disconnect()
  }
}

export function splitHostPort(addr: string): [string, number] {
  const i = addr.lastIndexOf(':')
  return [addr.slice(0, i), Number(addr.slice(i + 1))]
}
