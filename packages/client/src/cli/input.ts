import { readFile } from 'node:fs/promises'
import type { Value } from '@tandem/protocol'

/** All of stdin, as bytes (binary-safe: nothing is decoded or trimmed). */
export async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** All of a file, as bytes. */
export function readValueFile(path: string): Promise<Buffer> {
  return readFile(path)
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Bytes read from stdin or a file as the value to store: a string when they
 * are valid UTF-8 (so `get` prints them as text), else the bytes; with
 * `binary`, always the bytes. Stored exactly as read, trailing newline
 * included, as `redis-cli -x` and `etcdctl put KEY < FILE` do.
 */
export function bytesToValue(bytes: Buffer, binary: boolean): Value {
  if (!binary) {
    try {
      return utf8.decode(bytes)
    } catch {
      // not UTF-8: store the bytes
    }
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
