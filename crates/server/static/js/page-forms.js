// Forms and buttons that call the JSON API, declared in the page's HTML:
//   <form data-api="/api/v1/..." data-then="reload|message|show">  posts the fields as JSON;
//     a field's data-type says how to send it (number, bool, datetime, list); a dotted name
//     ("purpose.case") builds a nested object; empty fields are left out; the button that
//     submitted the form adds its own name and value.
//   <button data-post="/api/v1/..." data-then="..."> and <button data-get=...> call without a body.
// "reload" reloads the page on success, "message" says done (or the summary of a trace),
// "show" shows the answer's fields in the form's <output>.
//   <button type="button" data-otp-for="phone-field-id" data-challenge="field-name"> sends a
//     one-time code to the phone in that field and keeps the answer's challenge in the form's
//     field of that name (the person reads the code out; the officer types it).
import { api, failure, say, t } from './common.js';

function convert(el, value) {
  switch (el.dataset.type) {
    case 'number':
      return Number(value);
    case 'bool':
      return value === 'true';
    case 'datetime':
      // The field is read in the policy's zone (the one the pages show times in), whatever the
      // browser's own zone is.
      return new Date(`${value.length === 16 ? `${value}:00` : value}${document.body.dataset.offset}`).toISOString();
    default:
      return value;
  }
}

function put(obj, name, value, list) {
  const parts = name.split('.');
  let o = obj;
  for (const p of parts.slice(0, -1)) o = o[p] ??= {};
  const last = parts.at(-1);
  if (list) (o[last] ??= []).push(value);
  else o[last] = value;
}

function collect(form, submitter) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled || el.type === 'submit' || el.tagName === 'BUTTON') continue;
    if (el.closest('[hidden]')) continue;
    const list = el.dataset.type === 'list';
    if (el.type === 'checkbox') {
      if (list) body[el.name] ??= [];
      if (!el.checked) continue;
    }
    if (el.type === 'radio' && !el.checked) continue;
    const raw = el.value.trim();
    if (raw === '') continue;
    put(body, el.name, list ? raw : convert(el, raw), list);
  }
  if (submitter && submitter.name) put(body, submitter.name, convert(submitter, submitter.value), false);
  return body;
}

function show(output, data) {
  if (!output) return;
  output.replaceChildren();
  const dl = document.createElement('dl');
  const add = (k, v) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
    dl.append(dt, dd);
  };
  for (const [k, v] of Object.entries(data || {})) {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v)) add(`${k}.${k2}`, v2);
    } else {
      add(k, v);
    }
  }
  output.append(dl);
}

function summary(data) {
  if (data && typeof data === 'object' && 'exposures' in data && 'close_contacts' in data) {
    return t('trace_summary', {
      close: data.close_contacts,
      same: data.same_place_contacts,
      new: data.new_exposures,
      venues: data.venues,
      ms: Math.round(data.millis),
    });
  }
  return t('sent');
}

async function done(el, then, data, status) {
  if (then === 'reload') {
    location.reload();
  } else if (then === 'show') {
    say(status, t('sent'));
    show(el.querySelector('output') || el.parentElement.querySelector('output'), data);
  } else {
    say(status, summary(data));
  }
}

for (const form of document.querySelectorAll('form[data-api]')) {
  // In a form whose buttons decide (apply or dismiss, uphold or reject), Enter in a field must
  // not pick the first button.
  if ('noEnter' in form.dataset) {
    form.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && ev.target.tagName === 'INPUT') ev.preventDefault();
    });
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const status = form.querySelector('.status');
    say(status, t('sending'));
    try {
      const data = await api(form.dataset.method || 'POST', form.dataset.api, collect(form, ev.submitter));
      await done(form, form.dataset.then, data, status);
    } catch (e) {
      say(status, failure(e), true);
    }
  });
}

for (const b of document.querySelectorAll('button[data-post], button[data-get]')) {
  b.addEventListener('click', async () => {
    const status = b.parentElement.querySelector('.status');
    say(status, t('sending'));
    try {
      const data = b.dataset.post ? await api('POST', b.dataset.post) : await api('GET', b.dataset.get);
      await done(b.parentElement, b.dataset.then, data, status);
    } catch (e) {
      say(status, failure(e), true);
    }
  });
}

for (const b of document.querySelectorAll('button[data-otp-for]')) {
  b.addEventListener('click', async () => {
    const form = b.closest('form');
    const status = form.querySelector('.status');
    say(status, t('sending'));
    try {
      const phone = document.getElementById(b.dataset.otpFor).value.trim();
      const data = await api('POST', '/api/v1/otp', { phone });
      form.querySelector(`[name="${b.dataset.challenge}"]`).value = data.challenge;
      say(status, t('code_sent', { to: data.to, minutes: Math.round(data.expires_in_seconds / 60) }));
    } catch (e) {
      say(status, failure(e), true);
    }
  });
}
