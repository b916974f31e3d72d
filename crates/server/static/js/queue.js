// queue.js: the venue scanner's offline queue of scans, kept in IndexedDB so that scans made
// while the network is down survive a reload and are uploaded, in order, when it returns.
//
// A scan is `{ token, scanned_at, seq }`: the code's text, the time of the scan as an RFC 3339
// string, and a sequence number that only grows on this device (kept in IndexedDB too, so it
// survives reloads), by which the server orders a device's scans and recognises repeats. The
// numbers follow the clock in milliseconds (one more than the last when the clock is behind), so
// a device key set up again on another tablet, or after the browser's data was cleared, does not
// reuse numbers the server already holds for the device: it would take those scans for repeats.
// Every method resolves only once its transaction has completed, so a resolved `add` is on disk.

const SCANS = 'scans'
const META = 'meta'
const SEQ_KEY = 'seq'
const VERSION = 1

/** A promise for an IDBRequest's result. */
function request (req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
  })
}

/**
 * Runs `work(stores)` in one transaction over `names` and resolves with what `work` returned
 * once the transaction has completed; rejects if it aborts or fails.
 */
function inTransaction (db, names, mode, work) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(names, mode)
    const stores = Object.fromEntries(names.map((n) => [n, tx.objectStore(n)]))
    let result
    tx.oncomplete = () => resolve(result)
    tx.onerror = () => reject(tx.error)
    tx.onabort = () => reject(tx.error ?? new Error('the transaction was aborted'))
    Promise.resolve(work(stores)).then((r) => { result = r }, (e) => {
      try { tx.abort() } catch {}
      reject(e)
    })
  })
}

/** The number after `current`: the clock in milliseconds, or `current + 1` if that is larger. */
function after (current) {
  return Math.max(Date.now(), current + 1)
}

/** Takes the next sequence number inside a transaction over the meta store. */
async function takeSeq (meta) {
  const seq = after((await request(meta.get(SEQ_KEY))) ?? 0)
  meta.put(seq, SEQ_KEY)
  return seq
}

function checkScan (scan) {
  if (scan === null || typeof scan !== 'object') throw new TypeError('a scan is an object')
  if (typeof scan.token !== 'string' || scan.token === '') throw new TypeError('a scan needs its token text')
  if (typeof scan.scanned_at !== 'string' || Number.isNaN(Date.parse(scan.scanned_at))) {
    throw new TypeError('a scan needs scanned_at, an RFC 3339 time')
  }
  if (scan.seq !== undefined && !(Number.isSafeInteger(scan.seq) && scan.seq > 0)) {
    throw new TypeError('a scan\'s seq is a positive integer')
  }
}

/**
 * Opens (creating it if needed) the queue stored in the IndexedDB database `name`.
 *
 * Resolves to an object with:
 * - `nextSeq()` → the next sequence number of this device (growing, from the clock), persisted;
 * - `add(scan)` → stores `{ token, scanned_at, seq }` and resolves with the stored scan. Without
 *   `seq`, the next sequence number is taken in the same transaction; with one, the device's
 *   counter is moved past it so later numbers stay larger;
 * - `pending()` → every queued scan, in the order they were added;
 * - `remove(seqs)` → deletes the scans with these sequence numbers (after the server took
 *   them), resolving with how many were deleted; unknown numbers are ignored;
 * - `count()` → how many scans are queued;
 * - `close()` → closes the database.
 */
export async function openQueue (name = 'healthcode-scanner') {
  const open = indexedDB.open(name, VERSION)
  open.onupgradeneeded = () => {
    const db = open.result
    // Scans are kept under an increasing key, so reading the store in key order is insertion
    // order; a unique index on seq finds them for removal.
    const scans = db.createObjectStore(SCANS, { autoIncrement: true })
    scans.createIndex(SEQ_KEY, SEQ_KEY, { unique: true })
    db.createObjectStore(META)
  }
  const db = await new Promise((resolve, reject) => {
    open.onsuccess = () => resolve(open.result)
    open.onerror = () => reject(open.error)
    open.onblocked = () => reject(new Error(`the queue database ${name} is held open by an older version of this page`))
  })
  // Another tab upgrading the database asks this one to let go.
  db.onversionchange = () => db.close()

  return {
    nextSeq () {
      return inTransaction(db, [META], 'readwrite', ({ meta }) => takeSeq(meta))
    },

    async add (scan) {
      checkScan(scan)
      return inTransaction(db, [SCANS, META], 'readwrite', async ({ scans, meta }) => {
        const current = (await request(meta.get(SEQ_KEY))) ?? 0
        const seq = scan.seq ?? after(current)
        if (seq > current) meta.put(seq, SEQ_KEY)
        const stored = { ...scan, seq }
        await request(scans.add(stored))
        return stored
      })
    },

    pending () {
      return inTransaction(db, [SCANS], 'readonly', ({ scans }) => request(scans.getAll()))
    },

    remove (seqs) {
      const wanted = [...seqs]
      return inTransaction(db, [SCANS], 'readwrite', async ({ scans }) => {
        const index = scans.index(SEQ_KEY)
        let removed = 0
        for (const seq of wanted) {
          const key = await request(index.getKey(seq))
          if (key === undefined) continue
          await request(scans.delete(key))
          removed++
        }
        return removed
      })
    },

    count () {
      return inTransaction(db, [SCANS], 'readonly', ({ scans }) => request(scans.count()))
    },

    close () {
      db.close()
    }
  }
}
