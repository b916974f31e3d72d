// Printed codes and posters: the print button, and the printed code issued through the API
// (the server checks and records the holder's consent before it signs the code).
import { api, failure, say, t } from './common.js';
import { drawQr } from './qrdraw.js';

for (const b of document.querySelectorAll('[data-print]')) b.addEventListener('click', () => window.print());

const form = document.getElementById('print-form');
if (form) {
  const status = form.querySelector('.status');
  const card = document.getElementById('printed');
  const when = (s) => new Date(s).toLocaleString(document.documentElement.lang, { hour12: false });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    // (form.name is the form's own name attribute, so the field is asked for by id.)
    const body = { name: document.getElementById('p-name').value.trim(), consent: Number(form.consent.value.trim()) };
    for (const name of ['resident_id', 'passport', 'nationality']) {
      const v = form[name].value.trim().toUpperCase();
      if (v) body[name] = v;
    }
    say(status, t('sending'));
    try {
      const code = await api('POST', '/api/v1/admin/printed-codes', body);
      card.className = `printed ${code.colour}`;
      card.dataset.colour = code.colour;
      card.querySelector('.shape').className = `shape ${code.colour}`;
      document.getElementById('printed-colour').textContent = t(`colour_${code.colour}`);
      document.getElementById('printed-name').textContent = code.name_hint;
      document.getElementById('printed-from').textContent = when(code.issued_at);
      document.getElementById('printed-until').textContent = when(code.expires_at);
      drawQr(document.getElementById('printed-qr'), code.token, { label: t('printed_qr') });
      card.hidden = false;
      say(status, t('sent'));
    } catch (e) {
      say(status, failure(e), true);
    }
  });
}
