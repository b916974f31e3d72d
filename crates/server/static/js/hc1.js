// hc1.js: an offline verifier for healthcode holder codes (`HC1:`) and trust lists (`HCTL1:`),
// implementing docs/token-format.md: strict Base32 and base64url text forms, the untagged
// COSE_Sign1 envelope (RFC 9052) with EdDSA, the CWT claims of §4, the trust list of §5 checked
// against the configured root key, and the verification steps of §6 in their order, reporting the
// same error kinds as the reference implementation (crates/token) and the test vectors.
//
// Ed25519 comes from WebCrypto (`crypto.subtle`, in browsers and in Node 20+). The specification
// asks for the strict check of ed25519-dalek's `verify_strict`; WebCrypto implementations differ
// in what they accept beyond RFC 8032, so this module adds the strict conditions itself before
// calling WebCrypto: S must be canonical (S < L), and neither the public key A nor the signature's
// R may be a point of small order. It also refuses, as the reference does, a trust-list key whose
// bytes are not a point on the curve.
//
// CBOR is decoded with the vendored cborg library, with strict options: one item, nothing after
// it, no tags, no indefinite lengths, no duplicate map keys, valid UTF-8 in text strings, and
// shortest-form lengths in the envelope.

import { decodeFirst, encode, Tokenizer } from '../vendor/cborg/cborg.js'

/** The prefix of a holder code's text form; the digit is the format version. */
export const TEXT_PREFIX = 'HC1:'
/** The prefix of a trust list's text form. */
export const TRUST_LIST_PREFIX = 'HCTL1:'
/** The clock-skew leeway verifiers allow by default, in seconds. */
export const DEFAULT_LEEWAY = 60
/** The `typ` values of the protected header (§3). */
export const PURPOSES = Object.freeze({ 'holder-code': 65001, 'venue-poster': 65002, 'trust-list': 65003, 'audit-log': 65004 })
/** The colours, indexed by their value in claim -2. */
export const COLOURS = Object.freeze(['green', 'yellow', 'red'])

const PURPOSE_OF_TYP = new Map(Object.entries(PURPOSES).map(([name, typ]) => [typ, name]))
const HEADER_ALG = 1
const HEADER_KID = 4
const HEADER_TYP = 16
const ALG_EDDSA = -8
const CLAIM = { iss: 1, exp: 4, iat: 6, subject: -1, colour: -2, nameHint: -3, greenFrom: -4 }
const MAX_TTL_SECONDS = 7 * 24 * 3600
// Times and dates must lie between 1970 and the end of the year 9000 (§4 and the reference).
const END_OF_9000_SECONDS = Date.UTC(9001, 0, 1) / 1000
const END_OF_9000_DAYS = END_OF_9000_SECONDS / 86400
// Key validity times must be representable dates (years -9999 to 9999), as in the reference.
const MIN_TIME = Date.UTC(-9999, 0, 1) / 1000
const MAX_TIME = Date.UTC(10000, 0, 1) / 1000 - 1
const ISSUER_RE = /^[A-Z]{2}(?:-[A-Z0-9]{1,3})?$/

/** The colour name for a claim value (0, 1, 2), or null for any other value. */
export function colourOf (n) {
  return Number.isInteger(n) && n >= 0 && n < COLOURS.length ? COLOURS[n] : null
}

/** A refusal: `kind` is one of the specification's error kinds (or a trust-list kind). */
export class Hc1Error extends Error {
  constructor (kind, message, details = {}) {
    super(message)
    this.name = 'Hc1Error'
    this.kind = kind
    Object.assign(this, details)
  }
}

function malformed (offset, reason) {
  return new Hc1Error('malformed', `malformed at byte ${offset}: ${reason}`, { offset })
}

function badClaims (reason) {
  return new Hc1Error('bad-claims', `malformed claims: ${reason}`)
}

// ---------------------------------------------------------------------------------------------
// Text forms

const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/**
 * Strict RFC 4648 decoding without padding, for an alphabet of 2^bits symbols. `offset` is the
 * position of `text` in the whole input, for messages. The checks come in the reference's order:
 * the length, then each character, then the unused low bits of the last character, which must be
 * zero (one text per byte string).
 */
function decodeRfc4648 (text, alphabet, bits, offset) {
  const badLengths = bits === 5 ? [1, 3, 6] : [1]
  const block = bits === 5 ? 8 : 4
  if (badLengths.includes(text.length % block)) {
    throw new Hc1Error('bad-text', `malformed at character ${offset + text.length}: invalid length`,
      { position: offset + text.length })
  }
  const out = new Uint8Array(Math.floor((text.length * bits) / 8))
  let acc = 0
  let held = 0
  let n = 0
  for (let i = 0; i < text.length; i++) {
    const value = alphabet.indexOf(text[i])
    if (value < 0) {
      const character = String.fromCodePoint(text.codePointAt(i))
      throw new Hc1Error('bad-character',
        `malformed at character ${offset + i}: ${JSON.stringify(character)} is not allowed in a code`,
        { position: offset + i, character })
    }
    acc = ((acc << bits) | value) & 0xffff
    held += bits
    if (held >= 8) {
      held -= 8
      out[n++] = (acc >> held) & 0xff
    }
  }
  if ((acc & ((1 << held) - 1)) !== 0) {
    const position = offset + text.length - 1
    throw new Hc1Error('bad-text', `malformed at character ${position}: non-zero trailing bits`, { position })
  }
  return out
}

/** Base64url without padding, strictly (the trust list's and the keys' form). */
function base64urlDecode (text, offset = 0) {
  return decodeRfc4648(text, BASE64URL_ALPHABET, 6, offset)
}

// Leading and trailing ASCII white space (a hardware scanner's line end) is ignored; nothing else.
const ASCII_SPACE = /^[ \t\n\f\r]+|[ \t\n\f\r]+$/g

/** Step 1: the text form to the COSE bytes. */
function codeBytes (text) {
  const trimmed = String(text ?? '').replace(ASCII_SPACE, '')
  if (trimmed === '') throw new Hc1Error('empty', 'the code is empty')
  if (!trimmed.startsWith(TEXT_PREFIX)) {
    const found = [...trimmed].slice(0, 4).join('')
    throw new Hc1Error('unknown-prefix', `not a health code: it starts with ${JSON.stringify(found)}, not "HC1:"`)
  }
  const bytes = decodeRfc4648(trimmed.slice(TEXT_PREFIX.length), BASE32_ALPHABET, 5, TEXT_PREFIX.length)
  if (bytes.length === 0) throw new Hc1Error('empty', 'the code is empty')
  return bytes
}

// ---------------------------------------------------------------------------------------------
// CBOR

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * cborg decodes text leniently (invalid UTF-8 becomes U+FFFD); this tokenizer keeps each text
 * string's bytes and refuses invalid UTF-8, as the specification's CBOR requires. It also refuses
 * floating-point numbers, which the format never uses and which cborg would otherwise return as
 * ordinary numbers (a float 1.0 would pass for the integer 1), and remembers where the token
 * being read starts, for error offsets.
 */
class StrictTokenizer extends Tokenizer {
  next () {
    this.at = this.pos()
    const token = super.next()
    if (token.type.name === 'float') throw new Error('a floating-point number where an integer belongs')
    if (token.byteValue !== undefined) {
      try {
        fatalUtf8.decode(token.byteValue)
      } catch {
        throw new Error('text string is not valid UTF-8')
      }
    }
    return token
  }
}

const CBOR_OPTIONS = {
  allowIndefinite: false,
  allowUndefined: false,
  allowNaN: false,
  allowInfinity: false,
  allowBigInt: true,
  useMaps: true,
  rejectDuplicateMapKeys: true,
  retainStringBytes: true,
  tags: []
}

/**
 * Decodes exactly one CBOR item. `strict` also requires every integer and length in its shortest
 * form. Returns `{ value, rest }` (the bytes after the item) or throws `fail(offset, reason)`.
 */
function cborItem (bytes, { strict }, fail) {
  const tokenizer = new StrictTokenizer(bytes, { ...CBOR_OPTIONS, strict })
  tokenizer.at = 0
  try {
    const [value, rest] = decodeFirst(bytes, { ...CBOR_OPTIONS, strict, tokenizer })
    return { value, rest: rest.length }
  } catch (e) {
    const ended = /not enough data|did not find any content|not enough entries/.test(e.message)
    throw fail(ended ? bytes.length : tokenizer.at,
      ended ? 'the data ends in the middle of an item' : e.message.replace(/^CBOR decode error: /, ''))
  }
}

function isInteger (v) {
  return (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint'
}

/** The header length of a CBOR byte string of `len` bytes in its shortest form. */
function bstrHeaderLength (len) {
  return len < 24 ? 1 : len < 256 ? 2 : len < 65536 ? 3 : 5
}

/**
 * Step 2: the COSE_Sign1 envelope. Returns the kid, the purpose name, and the byte strings the
 * signature covers. Throws malformed, wrong-algorithm or unknown-purpose.
 */
function parseEnvelope (bytes) {
  if ((bytes[0] >> 5) === 6) throw malformed(0, 'tagged object; the format is untagged')
  if ((bytes[0] >> 5) !== 4) throw malformed(0, 'expected a COSE_Sign1 array')
  const { value, rest } = cborItem(bytes, { strict: true }, malformed)
  if (rest > 0) {
    throw malformed(bytes.length - rest, `${rest} bytes after the end of the object`)
  }
  if (!Array.isArray(value) || value.length !== 4) {
    throw malformed(0, 'a COSE_Sign1 is a definite array of four items')
  }
  const [protectedBytes, unprotected, payload, signature] = value
  if (!(protectedBytes instanceof Uint8Array)) throw malformed(1, 'protected header is not a byte string')
  const at = 1 + bstrHeaderLength(protectedBytes.length) + protectedBytes.length
  if (!(unprotected instanceof Map) || unprotected.size !== 0) {
    throw malformed(at, 'unprotected header is not an empty map')
  }
  if (payload === null) throw malformed(at + 1, 'payload is detached')
  if (!(payload instanceof Uint8Array)) throw malformed(at + 1, 'payload is not a byte string')
  if (!(signature instanceof Uint8Array) || signature.length !== 64) {
    throw malformed(at + 1 + bstrHeaderLength(payload.length) + payload.length, 'signature is not 64 bytes')
  }
  const { kid, purpose } = parseProtected(protectedBytes, 1 + bstrHeaderLength(protectedBytes.length))
  return { kid, purpose, protectedBytes, payload, signature }
}

/**
 * The protected header: exactly alg, kid and typ, each once, in any order. Read token by token,
 * as the reference does, so that the first problem met is the one reported.
 */
function parseProtected (bytes, base) {
  const exactly = 'protected header must hold exactly alg, kid and typ'
  const fail = (offset, reason) => malformed(base + offset, reason)
  const tokenizer = new StrictTokenizer(bytes, { ...CBOR_OPTIONS, strict: false })
  const next = () => {
    if (tokenizer.done()) throw fail(bytes.length, 'the data ends in the middle of an item')
    try {
      return tokenizer.next()
    } catch (e) {
      throw fail(tokenizer.at, e.message.replace(/^CBOR decode error: /, ''))
    }
  }
  const head = next()
  if (head.type.name !== 'map' || head.value !== 3) throw fail(0, exactly)
  const found = new Map()
  for (let i = 0; i < 3; i++) {
    const labelAt = tokenizer.pos()
    const label = next()
    if (label.type.name !== 'uint' && label.type.name !== 'negint') throw fail(labelAt, exactly)
    const at = tokenizer.pos()
    const item = next()
    const int = item.type.name === 'uint' || item.type.name === 'negint'
    let v
    switch (Number(label.value)) {
      case HEADER_ALG:
        if (!int) throw new Hc1Error('wrong-algorithm', 'the signature algorithm is not EdDSA')
        v = Number(item.value)
        break
      case HEADER_KID:
        if (item.type.name !== 'bytes') throw fail(at, 'key id is not a byte string')
        if (item.value.length !== 8) throw fail(at, `key id is ${item.value.length} bytes, not 8`)
        v = item.value
        break
      case HEADER_TYP:
        if (!int) throw fail(at, 'typ is not an integer')
        v = Number(item.value)
        break
      default:
        throw fail(at, exactly)
    }
    if (found.has(Number(label.value))) throw fail(at, `header ${label.value} appears twice`)
    found.set(Number(label.value), v)
  }
  if (!tokenizer.done()) throw fail(tokenizer.pos(), 'bytes after the protected header map')
  if (found.get(HEADER_ALG) !== ALG_EDDSA) {
    throw new Hc1Error('wrong-algorithm', 'the signature algorithm is not EdDSA')
  }
  if (!found.has(HEADER_KID) || !found.has(HEADER_TYP)) throw fail(0, exactly)
  const typ = found.get(HEADER_TYP)
  const purpose = PURPOSE_OF_TYP.get(typ)
  if (purpose === undefined) throw new Hc1Error('unknown-purpose', `unknown object type ${typ}`, { typ })
  return { kid: hex(found.get(HEADER_KID)), purpose }
}

/** The COSE Sig_structure without external data: ["Signature1", protected, h'', payload]. */
function sigStructure (protectedBytes, payload) {
  return encode(['Signature1', protectedBytes, new Uint8Array(0), payload])
}

// ---------------------------------------------------------------------------------------------
// Strict Ed25519

const P = 2n ** 255n - 19n
const L = 2n ** 252n + 27742317777372353535851937790883648493n
const mod = (a) => ((a % P) + P) % P
function powMod (b, e) {
  let r = 1n
  b = mod(b)
  while (e > 0n) {
    if (e & 1n) r = (r * b) % P
    b = (b * b) % P
    e >>= 1n
  }
  return r
}
const D = mod(-121665n * powMod(121666n, P - 2n))
// The y-coordinate of the points of order 8 (the other one is P minus it). With 0 (order 4),
// 1 (the identity) and P - 1 (order 2) these are all the y values of the eight small-order
// points; comparing y modulo P also catches their non-canonical encodings and either sign bit.
const Y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022n
const SMALL_ORDER_Y = new Set([0n, 1n, P - 1n, Y8, P - Y8])

function littleEndian (bytes) {
  let n = 0n
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i])
  return n
}

/** The y-coordinate (mod P) of a 32-byte point encoding. */
function pointY (bytes) {
  return mod(littleEndian(bytes) & ((1n << 255n) - 1n))
}

/** Whether a point encoding decodes to a point of small order (order 1, 2, 4 or 8). */
function isSmallOrder (bytes) {
  return SMALL_ORDER_Y.has(pointY(bytes))
}

/** Whether a 32-byte encoding is a point on the curve: x² = (y² − 1) / (d·y² + 1) has a root. */
function isCurvePoint (bytes) {
  const y2 = (pointY(bytes) ** 2n) % P
  const u = mod(y2 - 1n)
  if (u === 0n) return true
  const x2 = (u * powMod(D * y2 + 1n, P - 2n)) % P
  return powMod(x2, (P - 1n) / 2n) === 1n
}

/**
 * Step 4: Ed25519 with the strict conditions, then WebCrypto's RFC 8032 check.
 * `key` is { publicKey: Uint8Array(32), cryptoKey: CryptoKey }.
 */
async function verifyStrict (key, signature, message) {
  const r = signature.subarray(0, 32)
  const s = littleEndian(signature.subarray(32, 64))
  if (s >= L || isSmallOrder(r) || isSmallOrder(key.publicKey)) return false
  return globalThis.crypto.subtle.verify({ name: 'Ed25519' }, key.cryptoKey, signature, message)
}

async function importEd25519 (publicKey) {
  return globalThis.crypto.subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify'])
}

// ---------------------------------------------------------------------------------------------
// Helpers

function hex (bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

/** The key id: the first 8 bytes of SHA-256 over the 32-byte public key, in lower-case hex. */
async function keyId (publicKey) {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', publicKey))
  return hex(digest.subarray(0, 8))
}

/** Days since 1970-01-01 as an ISO date (YYYY-MM-DD). */
function epochDaysToIso (days) {
  return new Date(days * 86400000).toISOString().slice(0, 10)
}

// Zero-width and bidirectional formatting characters, which could make a hint read differently
// on a guard's screen than its bytes say; and control characters (general category Cc).
const INVISIBLE_OR_CONTROL = /[\u0000-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/
// White space as the reference trims it (Unicode White_Space).
const EDGE_SPACE = /^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]|[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/

function checkNameHint (s) {
  const chars = [...s].length
  if (chars === 0) throw badClaims('name hint is empty')
  if (chars > 16 || new TextEncoder().encode(s).length > 48) {
    throw badClaims(`name hint ${JSON.stringify(s)} is longer than 16 characters or 48 bytes`)
  }
  if (INVISIBLE_OR_CONTROL.test(s)) {
    throw badClaims('name hint contains a control or invisible formatting character')
  }
  if (EDGE_SPACE.test(s)) throw badClaims('name hint starts or ends with white space')
  if (!s.includes('*')) {
    throw badClaims(`name hint ${JSON.stringify(s)} is not masked: it must hide part of the name with '*'`)
  }
}

/** An unsigned integer claim as a Number, refusing negative, non-integer and huge values. */
function uintClaim (v, name) {
  if (!isInteger(v)) throw badClaims(`${name} is not an integer`)
  if (v < 0) throw badClaims(`${name} is negative`)
  if (typeof v === 'bigint') throw badClaims(`${name} is out of range`)
  return v
}

/** Step 5: the claims of §4. */
function decodeClaims (payload) {
  const { value: map, rest } = cborItem(payload, { strict: false }, (_, reason) => badClaims(reason))
  if (!(map instanceof Map) || map.size > 7) {
    throw badClaims('claims are not a definite map of at most 7 entries')
  }
  if (rest > 0) throw badClaims(`${rest} bytes after the claims`)
  const c = {}
  for (const [key, v] of map) {
    if (!isInteger(key)) throw badClaims('a claim key is not an integer')
    switch (Number(key)) {
      case CLAIM.iss:
        if (typeof v !== 'string') throw badClaims('issuer is not text')
        if (!ISSUER_RE.test(v)) {
          throw badClaims(`issuer ${JSON.stringify(v)} is not an ISO 3166 region code such as CN or CN-ZJ`)
        }
        c.issuer = v
        break
      case CLAIM.iat:
        c.issuedAt = uintClaim(v, 'issued-at')
        break
      case CLAIM.exp:
        c.expires = uintClaim(v, 'expiry')
        break
      case CLAIM.subject:
        if (!(v instanceof Uint8Array)) throw badClaims('subject is not a byte string')
        if (v.length < 8 || v.length > 16) throw badClaims(`subject must be 8 to 16 bytes, got ${v.length}`)
        c.subject = hex(v)
        break
      case CLAIM.colour: {
        const code = uintClaim(v, 'colour')
        c.colour = colourOf(code)
        if (c.colour === null) throw badClaims(`colour ${code} is not 0, 1 or 2`)
        break
      }
      case CLAIM.nameHint:
        if (typeof v !== 'string') throw badClaims('name hint is not text')
        checkNameHint(v)
        c.nameHint = v
        break
      case CLAIM.greenFrom:
        c.greenFromDays = uintClaim(v, 'green-from')
        break
      default:
        throw badClaims(`unknown claim ${key}`)
    }
  }
  for (const [field, name] of [['issuer', 'issuer'], ['subject', 'subject'], ['issuedAt', 'issued-at'],
    ['expires', 'expiry'], ['colour', 'colour']]) {
    if (c[field] === undefined) throw badClaims(`${name} is missing`)
  }
  if (c.issuedAt >= END_OF_9000_SECONDS || c.expires >= END_OF_9000_SECONDS ||
      (c.greenFromDays !== undefined && c.greenFromDays >= END_OF_9000_DAYS)) {
    throw badClaims('dates must lie between 1970 and 9000')
  }
  const ttl = c.expires - c.issuedAt
  if (ttl <= 0) throw badClaims('expiry is not after the time of issue')
  if (ttl > MAX_TTL_SECONDS) {
    throw badClaims(`validity of ${ttl} s is longer than the allowed ${MAX_TTL_SECONDS} s`)
  }
  if (c.colour === 'green' && c.greenFromDays !== undefined) {
    throw badClaims('a green code cannot carry a green-from date')
  }
  return c
}

function isoTime (seconds) {
  const d = new Date(seconds * 1000)
  return Number.isNaN(d.getTime()) ? String(seconds) : d.toISOString().replace('.000Z', 'Z')
}

// ---------------------------------------------------------------------------------------------
// The trust list (§5)

const BODY_FIELDS = ['version', 'issued_at', 'next_update', 'keys']
const JWK_FIELDS = ['kty', 'crv', 'kid', 'x', 'alg', 'use', 'iss', 'purposes', 'nbf', 'exp']

function badBody (reason) {
  return new Hc1Error('bad-body', `trust list content is invalid: ${reason}`)
}

function timeField (v, name) {
  if (!Number.isSafeInteger(v)) throw badBody(`${name} is not an integer`)
  if (v < MIN_TIME || v > MAX_TIME) throw badBody(`time ${v} out of range`)
  return v
}

/**
 * Opens a trust list: checks its text form, its envelope (typ 65003), that the root key signed
 * it, and its content, and refuses a list older than `previous` (a list opened before, or its
 * `issued_at` in seconds).
 *
 * Returns `{ version, issued_at, next_update, root_kid, keys, text }` where `keys` is an array of
 * `{ kid, iss, purposes, nbf, exp, x, publicKey, cryptoKey }` (times in seconds since the epoch,
 * `publicKey` the 32 bytes, `cryptoKey` the imported WebCrypto key) and `text` the list as
 * received, trimmed, for the caller to store and open again later.
 *
 * Throws an `Hc1Error` whose `kind` is one of: not-a-trust-list, bad-text, bad-root-key,
 * malformed, wrong-algorithm, unknown-purpose, wrong-purpose, wrong-root, bad-signature,
 * bad-body, rollback.
 */
export async function openTrustList (text, rootPublicKeyB64url, previous) {
  const trimmed = String(text ?? '').trim()
  if (!trimmed.startsWith(TRUST_LIST_PREFIX)) {
    throw new Hc1Error('not-a-trust-list', `not a trust list: it does not start with "${TRUST_LIST_PREFIX}"`)
  }
  let bytes
  try {
    bytes = base64urlDecode(trimmed.slice(TRUST_LIST_PREFIX.length), TRUST_LIST_PREFIX.length)
  } catch (e) {
    throw new Hc1Error('bad-text', `malformed trust list at character ${e.position}`, { position: e.position })
  }
  if (bytes.length === 0) throw malformed(0, 'the trust list is empty')

  let rootKey
  try {
    rootKey = base64urlDecode(String(rootPublicKeyB64url ?? '').trim().replace(/=+$/, ''))
  } catch {
    rootKey = null
  }
  if (rootKey === null || rootKey.length !== 32 || !isCurvePoint(rootKey)) {
    throw new Hc1Error('bad-root-key', 'the configured root key is not an Ed25519 public key in base64url')
  }

  const envelope = parseEnvelope(bytes)
  if (envelope.purpose !== 'trust-list') {
    throw new Hc1Error('wrong-purpose', `wrong purpose: this is a ${envelope.purpose}, not a trust-list`)
  }
  const rootKid = await keyId(rootKey)
  if (envelope.kid !== rootKid) {
    throw new Hc1Error('wrong-root',
      `trust list is signed by key ${envelope.kid}, not by the configured root key ${rootKid}`)
  }
  const root = { publicKey: rootKey, cryptoKey: await importEd25519(rootKey) }
  if (!await verifyStrict(root, envelope.signature, sigStructure(envelope.protectedBytes, envelope.payload))) {
    throw new Hc1Error('bad-signature', 'bad signature: the trust list was altered or forged')
  }

  let body
  try {
    body = JSON.parse(fatalUtf8.decode(envelope.payload))
  } catch (e) {
    throw badBody(e.message)
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badBody('not a JSON object')
  for (const f of Object.keys(body)) if (!BODY_FIELDS.includes(f)) throw badBody(`unknown field ${f}`)
  for (const f of BODY_FIELDS) if (!(f in body)) throw badBody(`missing field ${f}`)
  if (body.version !== 1) throw badBody(`unsupported version ${body.version}`)
  const issuedAt = timeField(body.issued_at, 'issued_at')
  const nextUpdate = timeField(body.next_update, 'next_update')
  if (!Array.isArray(body.keys)) throw badBody('keys is not an array')

  const keys = []
  for (const jwk of body.keys) {
    if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) throw badBody('a key is not an object')
    for (const f of JWK_FIELDS) if (!(f in jwk)) throw badBody(`a key has no ${f}`)
    const name = typeof jwk.kid === 'string' ? jwk.kid : '?'
    if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || jwk.alg !== 'EdDSA' || jwk.use !== 'sig') {
      throw badBody(`key ${name} is not an Ed25519 signing key`)
    }
    let publicKey = null
    try {
      publicKey = base64urlDecode(String(jwk.x).trim().replace(/=+$/, ''))
    } catch {}
    if (publicKey === null || publicKey.length !== 32 || !isCurvePoint(publicKey)) {
      throw badBody(`key ${name} has an invalid x`)
    }
    const kid = await keyId(publicKey)
    if (jwk.kid !== kid) throw badBody(`kid ${name} does not match its key`)
    if (typeof jwk.iss !== 'string' || !ISSUER_RE.test(jwk.iss)) throw badBody(`key ${kid} has an invalid iss`)
    if (!Array.isArray(jwk.purposes) || !jwk.purposes.every((p) => Object.hasOwn(PURPOSES, p))) {
      throw badBody(`key ${kid} has an unknown purpose`)
    }
    const nbf = timeField(jwk.nbf, 'nbf')
    const exp = timeField(jwk.exp, 'exp')
    if (exp < nbf) throw badBody(`key ${kid} ends before it begins`)
    if (keys.some((k) => k.kid === kid)) throw badBody(`key ${kid} is listed twice`)
    keys.push({
      kid,
      iss: jwk.iss,
      purposes: [...jwk.purposes],
      nbf,
      exp,
      x: jwk.x,
      publicKey,
      cryptoKey: await importEd25519(publicKey)
    })
  }
  if (nextUpdate < issuedAt) throw badBody('next_update is before issued_at')

  if (previous !== undefined && previous !== null) {
    const held = typeof previous === 'number' ? previous : previous.issued_at
    if (typeof held === 'number' && issuedAt < held) {
      throw new Hc1Error('rollback',
        `trust list issued ${isoTime(issuedAt)} is older than the copy held, issued ${isoTime(held)}`,
        { offered: issuedAt, held })
    }
  }
  return Object.freeze({
    version: 1,
    issued_at: issuedAt,
    next_update: nextUpdate,
    root_kid: rootKid,
    keys: Object.freeze(keys),
    text: trimmed
  })
}

const TREE_HEAD_CONTEXT = new TextEncoder().encode('healthcode tree head v1\n')

/**
 * Whether a signed tree head of the audit log (`{ tree_size, timestamp, root_hash, key_id,
 * signature }`, hashes and signature in base64, timestamp in milliseconds) is signed by a key of
 * `trustList` whose purpose is `audit-log`, valid at the head's time, over
 * "healthcode tree head v1\n" ‖ timestamp ‖ tree_size ‖ root_hash (u64s big-endian).
 */
export async function verifyTreeHeadSignature (head, trustList) {
  const key = trustList.keys.find((k) => k.kid === head.key_id)
  if (!key || !key.purposes.includes('audit-log')) return false
  const seconds = Math.floor(Number(head.timestamp) / 1000)
  if (!(seconds >= key.nbf && seconds <= key.exp)) return false
  let root, signature
  try {
    root = Uint8Array.from(atob(head.root_hash), (c) => c.charCodeAt(0))
    signature = Uint8Array.from(atob(head.signature), (c) => c.charCodeAt(0))
  } catch {
    return false
  }
  if (root.length !== 32 || signature.length !== 64) return false
  const message = new Uint8Array(TREE_HEAD_CONTEXT.length + 48)
  message.set(TREE_HEAD_CONTEXT, 0)
  const view = new DataView(message.buffer)
  view.setBigUint64(TREE_HEAD_CONTEXT.length, BigInt(head.timestamp))
  view.setBigUint64(TREE_HEAD_CONTEXT.length + 8, BigInt(head.tree_size))
  message.set(root, TREE_HEAD_CONTEXT.length + 16)
  return verifyStrict(key, signature, message)
}

/** Whether, at `nowSeconds`, the list is past its next update (it still verifies, but is stale). */
export function isStale (trustList, nowSeconds) {
  return nowSeconds > trustList.next_update
}

// ---------------------------------------------------------------------------------------------
// Verification (§6)

/**
 * Verifies a holder code's text at `nowSeconds` against a trust list from `openTrustList`,
 * performing the steps of §6 in order and reporting the first failure.
 *
 * `leeway` is the clock-skew allowance in seconds; `issuers`, when given (an array or a Set of
 * region codes), is the set of issuers this verifier accepts.
 *
 * Resolves to `{ ok: true, colour, nameHint, greenFrom, expires, issuedAt, issuer, subject, kid,
 * stale }` (greenFrom an ISO date or null, nameHint a string or null, times in seconds since the
 * epoch, subject in hex, stale true when the trust list is past its next update), or to
 * `{ ok: false, kind, message }` with one of the specification's error kinds. It does not reject.
 */
export async function verifyCode (text, trustList, nowSeconds, { leeway = DEFAULT_LEEWAY, issuers } = {}) {
  try {
    return await verify(text, trustList, nowSeconds, leeway, issuers)
  } catch (e) {
    if (e instanceof Hc1Error) {
      const failure = { ok: false, kind: e.kind, message: e.message }
      if (e.offset !== undefined) failure.offset = e.offset
      if (e.position !== undefined) failure.position = e.position
      return failure
    }
    throw e
  }
}

async function verify (text, trustList, now, leeway, issuers) {
  // 1. Text.
  const bytes = codeBytes(text)
  // 2. Envelope.
  const envelope = parseEnvelope(bytes)
  if (envelope.purpose !== 'holder-code') {
    throw new Hc1Error('wrong-purpose', `wrong purpose: this is a ${envelope.purpose}, not a holder-code`)
  }
  // 3. Key.
  const kid = envelope.kid
  const key = trustList.keys.find((k) => k.kid === kid)
  if (key === undefined) throw new Hc1Error('unknown-key', `unknown key ${kid}: not in the trust list`)
  if (!key.purposes.includes('holder-code')) {
    throw new Hc1Error('key-not-for-purpose', `key ${kid} may not sign a holder-code`)
  }
  if (now >= key.exp) throw new Hc1Error('retired-key', `retired key ${kid}: its validity ended ${isoTime(key.exp)}`)
  if (now + leeway < key.nbf) {
    throw new Hc1Error('key-not-yet-valid', `key ${kid} is not valid until ${isoTime(key.nbf)}`)
  }
  // 4. Signature.
  if (!await verifyStrict(key, envelope.signature, sigStructure(envelope.protectedBytes, envelope.payload))) {
    throw new Hc1Error('bad-signature', 'bad signature: the code was altered or forged')
  }
  // 5. Claims.
  const claims = decodeClaims(envelope.payload)
  // 6. Issuer.
  if (claims.issuer !== key.iss) {
    throw new Hc1Error('wrong-issuer',
      `wrong issuer: the code says ${claims.issuer} but key ${kid} belongs to ${key.iss}`)
  }
  if (issuers !== undefined && issuers !== null && !new Set(issuers).has(claims.issuer)) {
    throw new Hc1Error('untrusted-issuer', `untrusted issuer ${claims.issuer}`)
  }
  if (claims.issuedAt + leeway < key.nbf || claims.issuedAt >= key.exp) {
    throw new Hc1Error('issued-outside-key-validity', `key ${kid} was not valid when the code was issued`)
  }
  // 7. Time.
  if (claims.issuedAt > now + leeway) {
    throw new Hc1Error('not-yet-valid',
      `not yet valid: issued at ${isoTime(claims.issuedAt)}, later than this device's clock`)
  }
  if (now >= claims.expires + leeway) throw new Hc1Error('expired', `expired at ${isoTime(claims.expires)}`)

  return {
    ok: true,
    colour: claims.colour,
    nameHint: claims.nameHint ?? null,
    greenFrom: claims.greenFromDays === undefined ? null : epochDaysToIso(claims.greenFromDays),
    expires: claims.expires,
    issuedAt: claims.issuedAt,
    issuer: claims.issuer,
    subject: claims.subject,
    kid,
    stale: isStale(trustList, now)
  }
}
