// Enrolling the second factor: a secret is offered (as a QR code the server drew, and as text),
// confirmed with the app's code; the recovery codes are then shown once.
import { api, failure, localPath, say, t } from './common.js';

const section = document.getElementById('enrol');
const status = section.querySelector('.status');
const next = localPath(section.dataset.next, '/console');

document.getElementById('enrol-start').addEventListener('click', async (ev) => {
  say(status, t('sending'));
  try {
    const offer = await api('POST', '/api/v1/admin/me/second-factor', {});
    // The SVG is the server's own drawing of the otpauth URI, not text anyone typed.
    const svg = new DOMParser().parseFromString(offer.qr_svg, 'image/svg+xml').documentElement;
    document.getElementById('enrol-qr').replaceChildren(document.importNode(svg, true));
    document.getElementById('enrol-text').textContent = offer.secret;
    document.getElementById('enrol-secret').hidden = false;
    ev.target.hidden = true;
    say(status, '');
    document.getElementById('enrol-code').focus();
  } catch (e) {
    say(status, failure(e), true);
  }
});

document.getElementById('enrol-confirm').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  say(status, t('sending'));
  try {
    const done = await api('POST', '/api/v1/admin/me/second-factor/confirm', {
      code: document.getElementById('enrol-code').value.trim(),
    });
    const list = document.getElementById('enrol-recovery');
    list.replaceChildren(
      ...done.recovery_codes.map((c) => {
        const li = document.createElement('li');
        li.textContent = c;
        return li;
      }),
    );
    document.getElementById('enrol-secret').hidden = true;
    document.getElementById('enrol-done').hidden = false;
    document.getElementById('enrol-continue').href = next;
    say(status, t('enrolled'));
  } catch (e) {
    say(status, failure(e), true);
  }
});
