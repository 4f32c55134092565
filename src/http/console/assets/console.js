// keyplane console: the few enhancements plain HTML lacks. Served from /console/assets (CSP script-src 'self').
'use strict';
document.addEventListener('click', (event) => {
  const button = event.target instanceof Element ? event.target.closest('button[data-copy]') : null;
  if (!button) return;
  const source = document.getElementById(button.getAttribute('data-copy'));
  const status = button.parentElement && button.parentElement.querySelector('.copied');
  if (!source) return;
  const done = (text) => {
    if (status) status.textContent = text;
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(source.textContent).then(() => done('Copied'), () => done('Select the key and copy it'));
  } else {
    const range = document.createRange();
    range.selectNodeContents(source);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    done(document.execCommand('copy') ? 'Copied' : 'Selected: press Ctrl+C');
  }
});
document.addEventListener('submit', (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.getAttribute('data-confirm') : null;
  if (question && !window.confirm(question)) event.preventDefault();
});
