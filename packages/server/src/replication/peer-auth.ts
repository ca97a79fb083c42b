import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * Challenge-response on the shared token for links between nodes
 * (replication, fail-over and multi-master peers). The listener sends a nonce; the dialler
 * answers with its own nonce and a proof; the listener answers with its
 * proof. A proof is HMAC-SHA256(token, link | role | listener nonce |
 * dialler nonce):
 *
 * - the token never crosses the link, so an impostor at a peer's address
 *   learns only an HMAC over nonces it will never see again;
 * - both nonces are fresh per connection, so a recorded proof replays
 *   nowhere;
 * - the role is part of what is signed, so a dialler's proof cannot be
 *   reflected back to it as the listener's, nor a replication proof be
 *   used on a fail-over link.
 *
 * This authenticates the two ends and keeps the token secret. It does not
 * protect the frames that follow from a man in the middle who relays the
 * handshake between two real nodes: that is what --tls-cert/--tls-ca are for.
 */

type LinkKind = 'replication' | 'cluster' | 'peer'
type LinkRole = 'dialer' | 'listener'

const NONCE_BYTES = 32

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES)
}

/** This node's proof for its role on a link; null when it has no token (the link is then open to anyone). */
export function proveToken(
  token: string | undefined,
  link: LinkKind,
  role: LinkRole,
  listenerNonce: Uint8Array,
  dialerNonce: Uint8Array,
): Buffer | null {
  if (token === undefined) return null
  return createHmac('sha256', token)
    .update(`tandem ${link} ${role}\n`)
    .update(listenerNonce)
    .update(dialerNonce)
    .digest()
}

/**
 * Whether the other end's proof shows it holds this node's token. A node
 * without a token accepts any peer; a node with one accepts only a valid
 * proof (a null proof from a peer with no token fails).
 */
export function proofHolds(
  token: string | undefined,
  link: LinkKind,
  role: LinkRole,
  listenerNonce: Uint8Array,
  dialerNonce: Uint8Array,
  proof: Uint8Array | null | undefined,
): boolean {
  const expected = proveToken(token, link, role, listenerNonce, dialerNonce)
  if (expected === null) return true
  if (!proof || proof.byteLength !== expected.length) return false
  return timingSafeEqual(expected, proof)
}
