// Progressive enhancement only: every page works without this file. It adds drag and drop on the
// board, a board filter that hides cards as you type, a quiet live refresh of the inbox and board,
// live transcripts over server-sent events (entries arrive as HTML the server rendered with the
// page's own template), and a live markdown preview of prompts. Writes reuse the page's own forms
// and form token.
'use strict';

(function () {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || '';

  function post(url, fields) {
    const body = new URLSearchParams({ _csrf: csrf(), ...fields });
    return fetch(url, { method: 'POST', body, credentials: 'same-origin', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  }

  // --- live refresh of [data-live-region] blocks, paused while the user is typing in one ---
  const regions = document.querySelectorAll('[data-live-region]');
  const status = document.querySelector('[data-live-status]');
  function busy(region) {
    if (region.contains(document.activeElement) && document.activeElement !== document.body) return true;
    return Array.from(region.querySelectorAll('textarea, input[type=text], input:not([type])')).some((el) => el.value.trim() !== '');
  }
  async function refresh() {
    if (document.hidden || document.querySelector('.dragging')) return;
    try {
      const res = await fetch(location.href, { credentials: 'same-origin', headers: { accept: 'text/html' } });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      regions.forEach((region) => {
        const fresh = doc.querySelector(`[data-live-region="${region.dataset.liveRegion}"]`);
        if (fresh && !busy(region) && fresh.innerHTML !== region.innerHTML) {
          region.innerHTML = fresh.innerHTML;
          bindBoard();
          filterCards();
        }
      });
      const count = document.getElementById('inbox-count');
      const freshCount = doc.getElementById('inbox-count');
      if (count && freshCount && count.textContent !== freshCount.textContent) {
        count.textContent = freshCount.textContent;
        count.setAttribute('aria-label', freshCount.getAttribute('aria-label') || '');
      }
      if (status) status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (_) {
      if (status) status.textContent = 'Live refresh paused: the daemon did not answer.';
    }
  }
  if (regions.length) setInterval(refresh, 10000);

  // --- board drag and drop: a drop posts the same move the card's buttons post ---
  function bindBoard() {
    const board = document.querySelector('[data-board]');
    if (!board) return;
    board.querySelectorAll('.card[draggable]').forEach((card) => {
      card.addEventListener('dragstart', (e) => {
        card.classList.add('dragging');
        e.dataTransfer.setData('text/plain', card.dataset.key);
        e.dataTransfer.effectAllowed = 'move';
      });
      card.addEventListener('dragend', () => card.classList.remove('dragging'));
    });
    board.querySelectorAll('.column').forEach((col) => {
      if (col.dataset.dropBound) return;
      col.dataset.dropBound = '1';
      col.addEventListener('dragover', (e) => {
        e.preventDefault();
        col.classList.add('drop-target');
      });
      col.addEventListener('dragleave', () => col.classList.remove('drop-target'));
      col.addEventListener('drop', async (e) => {
        e.preventDefault();
        col.classList.remove('drop-target');
        const key = e.dataTransfer.getData('text/plain');
        const card = board.querySelector(`.card[data-key="${CSS.escape(key)}"]`);
        const from = card && card.closest('.column');
        if (!card || !from || from === col) return;
        col.querySelector('.cards').appendChild(card);
        if (status) status.textContent = `Moving ${key}…`;
        const res = await post(`/tickets/${encodeURIComponent(key)}/move`, { column: col.dataset.column, from: from.dataset.column, return_to: location.pathname });
        if (!res.ok && status) status.textContent = `Could not move ${key} (${res.status}).`;
        await refresh();
      });
    });
  }
  bindBoard();

  // --- board filter as you type: the same rule the server applies when the form is sent ---
  // (the text within the title, the ticket's number as 42, #42 or pd-42, or its priority)
  const cardFilter = document.querySelector('[data-card-filter]');
  function filterCards() {
    if (!cardFilter) return;
    const text = cardFilter.value.trim().toLowerCase();
    document.querySelectorAll('[data-board] .card').forEach((card) => {
      const key = (card.dataset.key || '').toLowerCase();
      const number = key.slice(key.lastIndexOf('-') + 1);
      const title = (card.querySelector('.card-title') || {}).textContent || '';
      card.hidden = text !== '' && !(title.toLowerCase().includes(text) || [key, number, `#${number}`, card.dataset.priority].includes(text));
    });
  }
  if (cardFilter) cardFilter.addEventListener('input', filterCards);

  // --- live transcript over server-sent events ---
  const transcript = document.querySelector('#transcript[data-events]');
  if (transcript && 'EventSource' in window) {
    const url = `${transcript.dataset.events}?offset=${encodeURIComponent(transcript.dataset.offset || '0')}`;
    const source = new EventSource(url);
    if (status) status.textContent = 'Live: new output appears below as the agent works.';
    source.addEventListener('entries', (e) => {
      const { html } = JSON.parse(e.data);
      const nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
      transcript.insertAdjacentHTML('beforeend', html);
      if (nearBottom) window.scrollTo(0, document.body.scrollHeight);
    });
    source.addEventListener('end', () => {
      source.close();
      location.reload();
    });
    source.addEventListener('failure', (e) => {
      source.close();
      if (status) status.textContent = `Live view stopped: ${JSON.parse(e.data).message}`;
    });
  }

  // --- live prompt preview ---
  const form = document.querySelector('form[data-preview]');
  const prompt = form && form.querySelector('textarea[name="prompt"]');
  const preview = document.getElementById('prompt-preview');
  if (form && prompt && preview) {
    let timer = null;
    const update = async () => {
      const res = await post(form.dataset.preview, { prompt: prompt.value });
      if (res.ok) preview.innerHTML = await res.text();
    };
    prompt.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(update, 400);
    });
    update();
  }
})();
