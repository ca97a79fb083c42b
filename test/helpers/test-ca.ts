import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from './temp-dir.js'

/**
 * A throwaway CA made at run time with openssl, and a certificate it signs
 * for 127.0.0.1 and localhost: what a test needs to run nodes with
 * --tls-cert/--tls-key/--tls-ca. remove() deletes the files.
 */
export function makeTestCa(): { ca: string; cert: string; key: string; remove(): void } {
  const dir = tempDir('tandem-ca-')
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir.path, stdio: 'pipe' })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl('req', '-x509', ...ec, '-days', '1', '-subj', '/CN=tandem test CA', '-keyout', 'ca.key', '-out', 'ca.crt')
  openssl('req', ...ec, '-subj', '/CN=127.0.0.1', '-keyout', 'node.key', '-out', 'node.csr')
  writeFileSync(join(dir.path, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  openssl(
    'x509',
    '-req',
    '-in',
    'node.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    'san.ext',
    '-out',
    'node.crt',
  )
  return {
    ca: join(dir.path, 'ca.crt'),
    cert: join(dir.path, 'node.crt'),
    key: join(dir.path, 'node.key'),
    remove: dir.remove,
  }
}
