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
export {
  type ClientStatus,
  type CloseOptions,
  type ConnectOptions,
  type DelOptions,
  type PutOptions,
  type ReadOptions,
  type RequestOptions,
  TandemClient,
  type TandemClientEvents,
  type Topology,
  type WriteOptions,
} from './client.js'
export type { ClientTls } from './connection.js'
export { parseConnectionUrl } from './url.js'
export type { Watch, WatchEvent, WatchOptions, WatchPosition } from './watch.js'
