// hookflow console: progressive enhancement only. Every page works without this file.
document.addEventListener('click', (event) => {
  const button = event.target.closest('[data-copy]');
  if (!button) return;
  const input = button.parentElement.querySelector('input, textarea');
  if (!input) return;
  input.select();
  (navigator.clipboard ? navigator.clipboard.writeText(input.value) : Promise.reject())
    .catch(() => document.execCommand('copy'))
    .finally(() => { button.textContent = 'Copied'; });
});
// Destructive actions ask first.
document.addEventListener('submit', (event) => {
  const message = event.target.getAttribute('data-confirm');
  if (message && !window.confirm(message)) event.preventDefault();
});
document.addEventListener('change', (event) => {
  if (event.target.matches('select[data-autosubmit]')) event.target.form.submit();
});
// The events picker's search box hides the events that do not match.
document.addEventListener('input', (event) => {
  const box = event.target.closest('input[data-filter]');
  if (!box) return;
  const needle = box.value.trim().toLowerCase();
  document.querySelectorAll(box.getAttribute('data-filter') + ' label').forEach((label) => {
    label.hidden = needle !== '' && !label.textContent.toLowerCase().includes(needle);
  });
});
// New destination: the Test webhook dropdown follows the events picked (every event while none is).
document.addEventListener('change', (event) => {
  const box = event.target;
  if (!box.matches('input[type=checkbox][name=event]') || !box.form) return;
  const select = box.form.querySelector('select[data-follows-picker]');
  if (!select) return;
  const boxes = [...box.form.querySelectorAll('input[type=checkbox][name=event]')];
  const picked = boxes.filter((b) => b.checked);
  const keep = select.value;
  select.replaceChildren(...(picked.length ? picked : boxes).map((b) => {
    const [source, name] = b.value.split('|');
    return new Option(source + ' · ' + name, b.value, false, b.value === keep);
  }));
});
// Plugin upload: the component goes to the API as raw bytes with the session's CSRF token.
document.addEventListener('submit', async (event) => {
  const form = event.target.closest('form[data-upload-to]');
  if (!form) return;
  event.preventDefault();
  const file = form.querySelector('input[type=file]').files[0];
  const result = form.querySelector('[data-upload-result]');
  if (!file) { result.textContent = 'Choose a .wasm file first.'; return; }
  const response = await fetch(form.getAttribute('data-upload-to'), {
    method: 'POST', credentials: 'same-origin', body: file,
    headers: { 'content-type': 'application/wasm', 'x-csrf-token': form.getAttribute('data-csrf') },
  });
  const body = await response.json().catch(() => ({}));
  if (response.ok) { window.location.search = '?notice=' + encodeURIComponent('Installed ' + body.name + '@' + body.version); }
  else { result.textContent = body.detail || ('Upload failed: ' + response.status); }
});
