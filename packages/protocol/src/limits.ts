/**
 * Default size limits. The server enforces them (each has a flag); the client
 * checks the same numbers before sending so that a mistake fails fast with
 * TOOLARGE instead of costing a round trip.
 */
export const DEFAULT_LIMITS = {
  /** Longest key, in UTF-8 bytes. Keys are compared and stored as bytes. */
  maxKeyBytes: 8 * 1024,
  /** Largest value, in bytes (UTF-8 bytes for strings). */
  maxValueBytes: 1024 * 1024,
  /** Largest WebSocket message either side accepts. Bigger ones close the socket (1009). */
  maxFrameBytes: 8 * 1024 * 1024,
  /** Most operations in one atomic batch. */
  maxBatchOps: 10_000,
  /** Most keys in one mget. */
  maxMgetKeys: 10_000,
  /** Most entries a scan page returns; the client asks for the next page. */
  maxScanPage: 1_000,
} as const

export type Limits = { -readonly [K in keyof typeof DEFAULT_LIMITS]: number }

/**
 * The highest --max-frame-bytes a node takes. The SDK accepts frames up to
 * this size, so it can read every reply any node may send.
 */
export const MAX_FRAME_BYTES_CEILING = 256 * 1024 * 1024
