/**
 * Default size limits. The server enforces them (each has a flag). The client
 * checks only the frame size before sending (a node closes the connection on
 * an oversized frame, failing every call on it); key, value and batch limits
 * are the node's to judge, since nodes may be started with other numbers.
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
} as const

/**
 * The highest --max-frame-bytes a node takes. The SDK accepts frames up to
 * this size, so it can read every reply any node may send.
 */
export const MAX_FRAME_BYTES_CEILING = 256 * 1024 * 1024
