import { execFileSync } from 'node:child_process'
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'

/**
 * One small tmpfs per node, so the nemesis can fill a node's disk for real
 * (LevelDB then gets ENOSPC on its writes) and free it again. Mounting
 * needs the privilege to mount; where the machine does not allow it,
 * create() says why and the disk-full fault is left out.
 */
export class SmallDisks {
  private readonly mounts: string[] = []

  private constructor(
    private readonly root: string,
    private readonly sizeMb: number,
  ) {}

  /** Mounts `count` tmpfs of `sizeMb` under root, or returns why it cannot. */
  static create(root: string, count: number, sizeMb = 64): SmallDisks | string {
    const disks = new SmallDisks(root, sizeMb)
    try {
      for (let i = 0; i < count; i++) disks.mount(i)
      return disks
    } catch (err) {
      disks.unmountAll()
      return `cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]})`
    }
  }

  private mount(i: number): void {
    const dir = join(this.root, `disk-${i}`)
    mkdirSync(dir, { recursive: true })
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${this.sizeMb}m`, 'tmpfs', dir], { stdio: 'pipe' })
    this.mounts.push(dir)
  }

  dataDir(i: number): string {
    return join(this.mounts[i], 'data')
  }

  /** Fills node i's disk until writes fail with ENOSPC; returns the bytes it took. */
  fill(i: number): number {
    const fd = openSync(join(this.mounts[i], 'filler'), 'a')
    let written = 0
    try {
      for (const size of [1 << 20, 1 << 12, 1]) {
        const chunk = Buffer.alloc(size)
        for (;;) {
          try {
            written += writeSync(fd, chunk)
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break
            throw err
          }
        }
      }
    } finally {
      closeSync(fd)
    }
    return written
  }

  free(i: number): void {
    rmSync(join(this.mounts[i], 'filler'), { force: true })
  }

  unmountAll(): void {
    for (const dir of this.mounts.splice(0)) {
      try {
        execFileSync('umount', ['-l', dir], { stdio: 'pipe' })
      } catch {
        // already gone
      }
    }
  }
}
