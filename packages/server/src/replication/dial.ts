import WebSocket from 'ws'

/**
 * How this node dials another (its upstream, or a member of its fail-over
 * group). Without TLS, plain ws://. With --tls-cert/--tls-key, wss://, the
 * node presenting its own certificate (peers started with --tls-ca require
 * one signed by their CA) and checking the peer's against --tls-ca (or the
 * system's CAs when none is given), host name or IP included.
 */
export interface PeerTls {
  cert: Buffer
  key: Buffer
  ca?: Buffer
}

export function dialPeer(
  address: string,
  path: string,
  tls: PeerTls | undefined,
  options: WebSocket.ClientOptions,
): WebSocket {
  if (!tls) return new WebSocket(`ws://${address}${path}`, options)
  return new WebSocket(`wss://${address}${path}`, {
    ...options,
    cert: tls.cert,
    key: tls.key,
    ca: tls.ca,
    rejectUnauthorized: true,
  })
}
