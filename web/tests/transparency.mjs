// Runs the browser's transparency-log checks (crates/server/static/js/transparency.js and
// hc1.js's verifyTreeHeadSignature) over proofs and a signed tree head made by the server's code
// (ct-merkle, crates/store/src/transparency.rs; the audit-log key of crates/token), written to the
// JSON file named by HC_TRANSPARENCY_CASES by crates/cli/tests/browser.rs. Each proof must verify,
// and each altered one must not. Exits non-zero naming every difference.

import { readFileSync } from 'node:fs'

import { openTrustList, verifyTreeHeadSignature } from '../../crates/server/static/js/hc1.js'
import { verifyConsistency, verifyInclusion } from '../../crates/server/static/js/transparency.js'

const cases = JSON.parse(readFileSync(process.env.HC_TRANSPARENCY_CASES, 'utf8'))
const failures = []
let passed = 0
function check (name, condition) {
  if (condition) passed++
  else failures.push(name)
}

function flip (b64) {
  const b = Buffer.from(b64, 'base64')
  b[b.length - 1] ^= 1
  return b.toString('base64')
}

for (const c of cases.inclusion) {
  const name = `inclusion of ${c.index} in ${c.tree_size}`
  check(name, await verifyInclusion(c.leaf, c.index, c.tree_size, c.root, c.proof))
  check(`${name}, another leaf`, !await verifyInclusion(flip(c.leaf), c.index, c.tree_size, c.root, c.proof))
  check(`${name}, another root`, !await verifyInclusion(c.leaf, c.index, c.tree_size, flip(c.root), c.proof))
  if (c.tree_size > 1) {
    check(`${name}, another place`, !await verifyInclusion(c.leaf, (c.index + 1) % c.tree_size, c.tree_size, c.root, c.proof))
  }
  if (c.proof.length > 0) {
    check(`${name}, a cut proof`, !await verifyInclusion(c.leaf, c.index, c.tree_size, c.root, c.proof.slice(1)))
  }
}
for (const c of cases.consistency) {
  const name = `consistency from ${c.first} to ${c.second}`
  check(name, await verifyConsistency(c.first, c.first_root, c.second, c.second_root, c.proof))
  check(`${name}, a rewritten old tree`, !await verifyConsistency(c.first, flip(c.first_root), c.second, c.second_root, c.proof))
  check(`${name}, another new root`, !await verifyConsistency(c.first, c.first_root, c.second, flip(c.second_root), c.proof))
  for (let i = 0; i < c.proof.length; i++) {
    const altered = c.proof.map((h, j) => (j === i ? flip(h) : h))
    check(`${name}, hash ${i} altered`, !await verifyConsistency(c.first, c.first_root, c.second, c.second_root, altered))
  }
}

const list = await openTrustList(cases.trust_list, cases.root_public_key)
check('the signed head verifies', await verifyTreeHeadSignature(cases.head, list))
check('a larger size does not', !await verifyTreeHeadSignature({ ...cases.head, tree_size: cases.head.tree_size + 1 }, list))
check('another root does not', !await verifyTreeHeadSignature({ ...cases.head, root_hash: flip(cases.head.root_hash) }, list))
check('another signature does not', !await verifyTreeHeadSignature({ ...cases.head, signature: flip(cases.head.signature) }, list))
check('a head by the holder-code key does not', !await verifyTreeHeadSignature(cases.head_by_issuer_key, list))

console.log(`${passed} passed, ${failures.length} failed`)
for (const f of failures) console.log(`FAILED: ${f}`)
process.exit(failures.length ? 1 : 0)
