import { LwwResolver } from '../multimaster/lww.js'
import { Store } from './store.js'

/**
 * For tests: a multi-master store in `dataDir` that resolves conflicts by
 * last writer wins, its resolver set as the mesh sets it.
 */
export async function openLwwStore(
  dataDir: string,
  options: { sync: 'none' | 'always'; logRetention: number; lwwHeadKeys?: number },
): Promise<Store & { resolver: LwwResolver }> {
  const store = await Store.open({ dataDir, ...options, mode: 'multi', conflict: 'lww' })
  store.resolver = new LwwResolver()
  return store as Store & { resolver: LwwResolver }
}
