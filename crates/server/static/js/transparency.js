// transparency.js: checks the audit log's transparency log in the browser (docs/governance.md,
// "Transparency log"): a signed tree head against the audit-log key of a trust list opened with
// hc1.js, and RFC 9162 §2.1.3.2 inclusion and §2.1.4.2 consistency proofs with WebCrypto SHA-256.
// Tree sizes and indexes are BigInts inside, so logs past 2^32 entries are checked right.

import { verifyTreeHeadSignature } from './hc1.js'

const subtle = () => globalThis.crypto.subtle

function b64 (s) {
  const bin = atob(String(s))
  return Uint8Array.from(bin, (c) => c.charCodeAt(0))
}

function equal (a, b) {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i]
  return d === 0
}

async function sha256 (...parts) {
  const len = parts.reduce((n, p) => n + p.length, 0)
  const all = new Uint8Array(len)
  let at = 0
  for (const p of parts) {
    all.set(p, at)
    at += p.length
  }
  return new Uint8Array(await subtle().digest('SHA-256', all))
}

const LEAF = Uint8Array.of(0)
const NODE = Uint8Array.of(1)

/** The RFC 9162 leaf hash of a leaf (an audit record's chain hash): SHA-256(0x00 ‖ leaf). */
export function leafHash (leaf) {
  return sha256(LEAF, leaf)
}

function node (left, right) {
  return sha256(NODE, left, right)
}

const lsb = (n) => (n & 1n) === 1n

/** RFC 9162 §2.1.3.2: whether `proof` (base64 hashes) puts `leaf` (base64) at `index` of the tree. */
export async function verifyInclusion (leaf, index, treeSize, rootHash, proof) {
  let fn = BigInt(index)
  let sn = BigInt(treeSize) - 1n
  if (fn > sn) return false
  let r = await leafHash(b64(leaf))
  for (const p of proof.map(b64)) {
    if (sn === 0n) return false
    if (lsb(fn) || fn === sn) {
      r = await node(p, r)
      if (!lsb(fn)) {
        while (!(lsb(fn) || fn === 0n)) {
          fn >>= 1n
          sn >>= 1n
        }
      }
    } else {
      r = await node(r, p)
    }
    fn >>= 1n
    sn >>= 1n
  }
  return sn === 0n && equal(r, b64(rootHash))
}

/** RFC 9162 §2.1.4.2: whether `proof` shows the tree of `first` leaves a prefix of that of `second`. */
export async function verifyConsistency (first, firstRoot, second, secondRoot, proof) {
  const m = BigInt(first)
  const n = BigInt(second)
  const r1 = b64(firstRoot)
  const r2 = b64(secondRoot)
  let path = proof.map(b64)
  if (m > n) return false
  if (m === 0n) return path.length === 0
  if (m === n) return path.length === 0 && equal(r1, r2)
  if (path.length === 0) return false
  if ((m & (m - 1n)) === 0n) path = [r1, ...path]
  let fn = m - 1n
  let sn = n - 1n
  while (lsb(fn)) {
    fn >>= 1n
    sn >>= 1n
  }
  let fr = path[0]
  let sr = path[0]
  for (const c of path.slice(1)) {
    if (sn === 0n) return false
    if (lsb(fn) || fn === sn) {
      fr = await node(c, fr)
      sr = await node(c, sr)
      if (!lsb(fn)) {
        while (!(lsb(fn) || fn === 0n)) {
          fn >>= 1n
          sn >>= 1n
        }
      }
    } else {
      sr = await node(sr, c)
    }
    fn >>= 1n
    sn >>= 1n
  }
  return sn === 0n && equal(fr, r1) && equal(sr, r2)
}

/** Whether a tree head (the JSON of /api/v1/transparency/head) is signed by the trust list's audit-log key. */
export function verifyTreeHead (head, trustList) {
  return verifyTreeHeadSignature(head, trustList)
}
