/**
 * A driver is one connection to a target, as a user's application would
 * hold it: one TandemClient for tandem, one ioredis connection for Redis.
 * The same load generator drives both through this interface. A spec is
 * plain data so that worker threads can open their own drivers.
 */
export interface Driver {
  get(key: string): Promise<unknown>
  put(key: string, value: Uint8Array): Promise<unknown>
  /** Writes many keys at once; used to preload the keyspace. */
  putMany(entries: [string, Uint8Array][]): Promise<void>
  close(): Promise<void>
}

/**
 * floor and floor-bare are the floor server (floor/floor-server.ts), which
 * speaks the SDK's put and get: with tandem's storage, and without.
 */
export type TargetName = 'tandem' | 'redis' | 'floor' | 'floor-bare'

export interface DriverSpec {
  target: TargetName
  /** HOST:PORT of the master (tandem: every seed, master first). */
  servers: string[]
  authToken?: string
  w?: number | 'majority'
  /** Requests this connection will have in flight; lets the Redis driver turn on auto-pipelining. */
  pipeline: number
  /** Talk to exactly servers[0] whatever its role (used to read from a replica). */
  direct?: boolean
  /** tandem: read consistency of gets (default: the SDK's). */
  consistency?: 'linearizable' | 'lease' | 'local'
  /**
   * Multi-master: connection i talks to servers[i % servers.length] alone,
   * so that writes are spread evenly over the masters.
   */
  spread?: boolean
}

export async function openDriver(spec: DriverSpec): Promise<Driver> {
  if (spec.target !== 'redis') {
    const { TandemDriver } = await import('./tandem.js')
    return TandemDriver.open(spec)
  }
  const { RedisDriver } = await import('./redis.js')
  return RedisDriver.open(spec)
}
