// The service worker of the pages that must open without a network: the venue scanner (/scan)
// and the holder's code (/me). Pages are fetched from the network first and kept for when it is
// down; the scripts, styles and libraries under /static are served from the copy kept here while
// a fresh one is fetched. Nothing else is kept, and signing out removes the kept code page.
// The server fills in a digest of every static file, so a new release is a new worker, whose
// activation drops the previous release's kept files.
const CACHE = 'healthcode-__ASSETS__'
const PAGES = ['/scan', '/me']
// The scripts, styles and libraries those pages use (filled in by the server), kept at install so
// that a page opened without a network finds them all, however long ago it was last online.
const FILES = __FILES__

async function keep (cache, path) {
  try {
    const response = await fetch(path, { credentials: 'same-origin' })
    if (response.ok && !response.redirected) await cache.put(new URL(path, self.location.origin).href, response)
  } catch {
    // Offline at install: the page is kept the next time it is opened online.
  }
}

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((c) => Promise.all([c.addAll(FILES), ...PAGES.map((p) => keep(c, p))]))
      .then(() => self.skipWaiting())
  )
})

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim())
  )
})

async function networkFirst (request) {
  const cache = await caches.open(CACHE)
  try {
    const response = await fetch(request)
    // Only a page that was really shown is kept; a redirect to sign-in (the session ended)
    // removes the kept copy.
    if (response.ok && !response.redirected) await cache.put(request.url.split('?')[0], response.clone())
    else if (response.redirected) await cache.delete(request.url.split('?')[0])
    return response
  } catch (e) {
    const kept = await cache.match(request.url.split('?')[0])
    if (kept) return kept
    throw e
  }
}

async function staleWhileRevalidate (request, event) {
  const cache = await caches.open(CACHE)
  const kept = await cache.match(request)
  const fresh = fetch(request).then(async (response) => {
    if (response.ok) await cache.put(request, response.clone())
    return response
  })
  if (kept) {
    event.waitUntil(fresh.catch(() => {}))
    return kept
  }
  return fresh
}

self.addEventListener('fetch', (event) => {
  const request = event.request
  if (request.method !== 'GET') return
  const url = new URL(request.url)
  if (url.origin !== self.location.origin) return
  if (request.mode === 'navigate' && PAGES.includes(url.pathname)) {
    event.respondWith(networkFirst(request))
  } else if (url.pathname.startsWith('/static/')) {
    event.respondWith(staleWhileRevalidate(request, event))
  }
})

// A page asks to forget the kept code page (on sign-out).
self.addEventListener('message', (event) => {
  if (event.data === 'forget-me') {
    event.waitUntil(caches.open(CACHE).then((c) => c.delete(new URL('/me', self.location.origin).href)))
  }
})
