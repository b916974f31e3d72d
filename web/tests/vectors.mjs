// Runs the browser verifier (crates/server/static/js/hc1.js) over the normative test vectors in
// testdata/vectors/vectors.json: the trust list is opened with the vectors' root key, and each
// token is verified at its own clock (verify_at). A valid vector must yield the expected colour
// and claims; an invalid one the expected error kind. Exits non-zero naming every difference.
//
//   node web/tests/vectors.mjs
//
// After the vectors, a few checks that the normative file cannot carry, built here from the test
// keys it documents (the seed of key N is 32 bytes of value N, the root's 100): the strict Ed25519
// conditions that WebCrypto alone does not enforce, trust-list rollback, a stale list, and the
// accepted-issuers setting.

import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { encode } from '../../crates/server/static/vendor/cborg/cborg.js'
import { openTrustList, verifyCode } from '../../crates/server/static/js/hc1.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const file = JSON.parse(readFileSync(join(root, 'testdata', 'vectors', 'vectors.json'), 'utf8'))

const failures = []
let passed = 0
function check (name, condition, detail) {
  if (condition) passed++
  else failures.push(`${name}: ${detail}`)
}

// What hc1.js returns, in the vectors' terms.
function asExpected (r) {
  if (!r.ok) return { valid: false, error: r.kind }
  return {
    valid: true,
    colour: r.colour,
    expires_at: r.expires,
    green_from: r.greenFrom,
    issued_at: r.issuedAt,
    issuer: r.issuer,
    kid: r.kid,
    name_hint: r.nameHint,
    subject: r.subject
  }
}

function same (a, b) {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)])
  return [...keys].every((k) => a[k] === b[k])
}

// ---- The normative vectors ----------------------------------------------------------------

const list = await openTrustList(file.trust_list, file.root_public_key)
check('trust list', list.issued_at > 0 && list.keys.length > 0, 'opened with no keys')
for (const k of file.keys) {
  const listed = list.keys.find((l) => l.kid === k.kid)
  if (k.note === 'in no trust list') check(`trust list key ${k.kid}`, !listed, 'is listed but should not be')
  else check(`trust list key ${k.kid}`, listed && listed.iss === k.issuer, 'missing or with another issuer')
}

for (const v of file.vectors) {
  const result = await verifyCode(v.token, list, v.verify_at)
  const got = asExpected(result)
  check(`vector ${v.name}`, same(got, v.expected),
    `expected ${JSON.stringify(v.expected)}, got ${JSON.stringify(got)}${result.ok ? '' : ` (${result.message})`}`)
}

// ---- Checks built from the test keys ------------------------------------------------------

const subtle = globalThis.crypto.subtle
const PKCS8_ED25519_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b,
  0x65, 0x70, 0x04, 0x22, 0x04, 0x20])

async function signerFromSeedByte (n) {
  const pkcs8 = new Uint8Array([...PKCS8_ED25519_PREFIX, ...new Uint8Array(32).fill(n)])
  const privateKey = await subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, true, ['sign'])
  const jwk = await subtle.exportKey('jwk', privateKey)
  const publicKey = Buffer.from(jwk.x, 'base64url')
  return { privateKey, publicKey, x: jwk.x, kid: await kidOf(publicKey) }
}

async function kidOf (publicKey) {
  return Buffer.from(await subtle.digest('SHA-256', publicKey)).subarray(0, 8).toString('hex')
}

function protectedHeader (kid, typ) {
  return encode(new Map([[1, -8], [4, Buffer.from(kid, 'hex')], [16, typ]]))
}

function sign1 (protectedBytes, payload, signature) {
  return encode([protectedBytes, new Map(), payload, signature])
}

async function signed (signer, typ, payload) {
  const p = protectedHeader(signer.kid, typ)
  const toSign = encode(['Signature1', p, new Uint8Array(0), payload])
  return sign1(p, payload, new Uint8Array(await subtle.sign('Ed25519', signer.privateKey, toSign)))
}

const base32 = (bytes) => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let out = ''
  let acc = 0
  let held = 0
  for (const b of bytes) {
    acc = (acc << 8) | b
    held += 8
    while (held >= 5) {
      held -= 5
      out += alphabet[(acc >> held) & 31]
    }
    acc &= (1 << held) - 1
  }
  if (held > 0) out += alphabet[(acc << (5 - held)) & 31]
  return 'HC1:' + out
}

const rootSigner = await signerFromSeedByte(file.root_seed_byte)
check('root seed', rootSigner.x === file.root_public_key, 'the documented root seed does not give the root key')

async function trustList (issuedAt, nextUpdate, keys) {
  const body = {
    version: 1,
    issued_at: issuedAt,
    next_update: nextUpdate,
    keys: keys.map((k) => ({
      kty: 'OKP', crv: 'Ed25519', kid: k.kid, x: k.x, alg: 'EdDSA', use: 'sig',
      iss: k.iss, purposes: ['holder-code'], nbf: k.nbf, exp: k.exp
    }))
  }
  const bytes = await signed(rootSigner, 65003, new TextEncoder().encode(JSON.stringify(body)))
  return 'HCTL1:' + Buffer.from(bytes).toString('base64url')
}

async function expectRefusal (name, promise, kind) {
  try {
    await promise
    check(name, false, `expected a refusal (${kind}), got a list`)
  } catch (e) {
    check(name, e.kind === kind, `expected ${kind}, got ${e.kind}: ${e.message}`)
  }
}

const now = file.vectors[0].verify_at
const claims = (issuer) => encode(new Map([[1, issuer], [6, now - 60], [4, now + 240],
  [-1, Buffer.from('0011223344556677', 'hex')], [-2, 0], [-3, '张*']]))

// A code signed by key 1 under a list made here: the baseline the strict cases below differ from.
const key1 = await signerFromSeedByte(1)
const listed1 = { kid: key1.kid, x: key1.x, iss: 'CN-ZJ', nbf: now - 86400, exp: now + 86400 }
const ownList = await openTrustList(await trustList(now - 100, now + 86400, [listed1]), file.root_public_key)
const good = await signed(key1, 65001, claims('CN-ZJ'))
const baseline = await verifyCode(base32(good), ownList, now)
check('own list: a fresh code', baseline.ok && baseline.colour === 'green' && !baseline.stale,
  JSON.stringify(baseline))

// Non-canonical S: S + L verifies under a lax check of the group equation; strict refuses it.
const L = 2n ** 252n + 27742317777372353535851937790883648493n
const sPlusL = Uint8Array.from(good)
{
  const sig = sPlusL.subarray(sPlusL.length - 32)
  let s = 0n
  for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sig[i])
  s += L
  for (let i = 0; i < 32; i++) { sig[i] = Number(s & 0xffn); s >>= 8n }
}
const nonCanonical = await verifyCode(base32(sPlusL), ownList, now)
check('strict: non-canonical S', nonCanonical.kind === 'bad-signature', JSON.stringify(nonCanonical))

// A small-order public key (the identity, y = 1) with R the identity and S = 0 satisfies the
// cofactorless equation [S]B = R + [k]A for every message: a forgery any lax verifier accepts.
// Node's WebCrypto (OpenSSL) does accept it; hc1.js refuses it by its own small-order check.
const identity = new Uint8Array(32)
identity[0] = 1
const weak = {
  kid: await kidOf(identity),
  x: Buffer.from(identity).toString('base64url'),
  iss: 'CN-ZJ',
  nbf: now - 86400,
  exp: now + 86400
}
const weakList = await openTrustList(await trustList(now - 100, now + 86400, [weak]), file.root_public_key)
const forged = sign1(protectedHeader(weak.kid, 65001), claims('CN-ZJ'), new Uint8Array([...identity, ...new Uint8Array(32)]))
const forgery = await verifyCode(base32(forged), weakList, now)
check('strict: small-order key and R', forgery.kind === 'bad-signature', JSON.stringify(forgery))

// A small-order R (the point of order 2, y = p − 1) with a good key: refused before WebCrypto.
const smallR = Uint8Array.from(good)
const rAt = smallR.length - 64
smallR.set([0xec, ...new Uint8Array(30).fill(0xff), 0x7f], rAt)
const smallROutcome = await verifyCode(base32(smallR), ownList, now)
check('strict: small-order R', smallROutcome.kind === 'bad-signature', JSON.stringify(smallROutcome))

// A float where an integer belongs (issued-at as a float64 of integer value), correctly signed:
// cborg would return it as an ordinary number; the reference refuses it, and so must hc1.js.
const floatIat = Buffer.alloc(9)
floatIat[0] = 0xfb
floatIat.writeDoubleBE(now - 60, 1)
const floatClaims = Buffer.concat([Buffer.from([0xa5]), encode(new Map([[1, 'CN-ZJ']])).subarray(1),
  Buffer.from([0x06]), floatIat,
  encode(new Map([[4, now + 240], [-1, Buffer.alloc(8)], [-2, 0]])).subarray(1)])
const floatOutcome = await verifyCode(base32(await signed(key1, 65001, floatClaims)), ownList, now)
check('claims: a float for an integer', floatOutcome.kind === 'bad-claims', JSON.stringify(floatOutcome))

// Rollback: a list older than the one held is refused, by list or by its issued_at.
const older = await trustList(now - 200, now + 86400, [listed1])
await expectRefusal('rollback against a list', openTrustList(older, file.root_public_key, ownList), 'rollback')
await expectRefusal('rollback against a time', openTrustList(older, file.root_public_key, now - 100), 'rollback')
const sameAge = await openTrustList(ownList.text, file.root_public_key, ownList)
check('same list again', sameAge.issued_at === ownList.issued_at, 'the same list was refused')

// Other refusals of a list.
await expectRefusal('list under another root', openTrustList(file.trust_list, key1.x), 'wrong-root')
await expectRefusal('list with a bad prefix', openTrustList('HCTL2:' + file.trust_list.slice(6), file.root_public_key),
  'not-a-trust-list')
const flipped = Buffer.from(file.trust_list.slice(6), 'base64url')
flipped[flipped.length - 1] ^= 1
await expectRefusal('list with an altered signature',
  openTrustList('HCTL1:' + flipped.toString('base64url'), file.root_public_key), 'bad-signature')
const badKid = await trustList(now - 100, now + 86400, [{ ...listed1, kid: '0000000000000000' }])
await expectRefusal('list with a wrong kid', openTrustList(badKid, file.root_public_key), 'bad-body')
const backwards = await trustList(now - 100, now - 200, [listed1])
await expectRefusal('list updated before issued', openTrustList(backwards, file.root_public_key), 'bad-body')

// A stale list still verifies, and says so.
const staleList = await openTrustList(await trustList(now - 7200, now - 3600, [listed1]), file.root_public_key)
const stale = await verifyCode(base32(good), staleList, now)
check('stale list', stale.ok && stale.stale === true, JSON.stringify(stale))

// Accepted issuers.
const accepted = await verifyCode(base32(good), ownList, now, { issuers: ['CN-ZJ'] })
check('accepted issuer', accepted.ok, JSON.stringify(accepted))
const refused = await verifyCode(base32(good), ownList, now, { issuers: new Set(['CN-GD']) })
check('untrusted issuer', refused.kind === 'untrusted-issuer', JSON.stringify(refused))

// White space around the text (a hardware scanner's line end) is ignored; empty text is empty.
const padded = await verifyCode(`  ${base32(good)}\r\n`, ownList, now)
check('surrounding white space', padded.ok, JSON.stringify(padded))
const empty = await verifyCode(' \n', ownList, now)
check('empty text', empty.kind === 'empty', JSON.stringify(empty))

// ---- Summary ------------------------------------------------------------------------------

if (failures.length > 0) {
  for (const f of failures) console.error(`FAIL ${f}`)
  console.error(`vectors: ${passed} passed, ${failures.length} failed`)
  process.exit(1)
}
// One line; the normative vectors are file.vectors.length of the checks counted.
console.log(`vectors: ${passed} passed, 0 failed`)
