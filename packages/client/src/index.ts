export {
  type BatchOp,
  type Consistency,
  ERROR_CODES,
  type ErrorCode,
  type GetAllResult,
  type NodeStatus,
  type ReplicaStatus,
  type ScanOptions,
  TandemError,
  type Value,
  type ValueMeta,
  type WriteConcern,
  type WriteResult,
} from '@tandem/protocol'
export { TandemClient } from './client.js'
export type { ClientTls } from './connection.js'
export type {
  ClientStatus,
  CloseOptions,
  ConnectOptions,
  DelOptions,
  PutOptions,
  ReadOptions,
  RequestOptions,
  TandemClientEvents,
  Topology,
  WriteOptions,
} from './options.js'
export { parseConnectionUrl } from './url.js'
export type { Watch, WatchEvent, WatchOptions, WatchPosition } from './watch.js'
