/** Size in bytes as stored: UTF-8 length for strings, byte length for binary. */
export function byteLength(value: string | Uint8Array): number {
  return typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.byteLength
}
