// What every page's script shares: the page's strings, calls to the JSON API with the browser's
// session cookie, and the sign-out buttons.

const strings = JSON.parse(document.body.dataset.strings || '{}');

/** The page-language string `key`, with `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const s = strings[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : `{${k}}`));
}

/** An API refusal: the problem document's detail, and its status. */
export class ApiError extends Error {
  constructor(status, detail, problem) {
    super(detail);
    this.status = status;
    this.problem = problem;
  }
}

/**
 * Calls the JSON API. Changes carry the web header, without which the server refuses a cookie
 * session (the defence against cross-site requests). Resolves to the parsed answer (or null
 * when it has no body); rejects with ApiError on a problem, or TypeError when offline.
 */
export async function api(method, path, body, headers = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    headers: { 'x-healthcode-web': '1', accept: 'application/json', ...headers },
  };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!res.ok) {
    const detail = (data && data.detail) || res.statusText || String(res.status);
    throw new ApiError(res.status, detail, data);
  }
  return data;
}

/** `next` when it names a page of this site, else `fallback`. */
export function localPath(next, fallback) {
  try {
    const u = new URL(next || fallback, location.origin);
    return u.origin === location.origin ? u.pathname + u.search : fallback;
  } catch {
    return fallback;
  }
}

/** Shows a message in a status element, as an error or not. */
export function say(el, message, isError = false) {
  if (!el) return;
  el.textContent = message;
  el.classList.toggle('error', isError);
}

/** The message for a failed call. */
export function failure(e) {
  if (e instanceof ApiError) return t('failed', { detail: e.message });
  return t('network');
}

/** Registers the service worker that keeps this page for when the network is down. */
export function keepOffline() {
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});
}

// Sign-out buttons post to their page route, which ends the session and clears the cookie; the
// code kept on the phone goes with it.
for (const b of document.querySelectorAll('[data-signout]')) {
  b.addEventListener('click', async () => {
    try {
      await api('POST', b.dataset.signout);
    } catch {
      // Signed out already, or offline: the start page shows which.
    }
    localStorage.removeItem('healthcode.code');
    navigator.serviceWorker?.controller?.postMessage('forget-me');
    location.href = b.dataset.signout.startsWith('/console') ? '/console/signin' : '/';
  });
}
