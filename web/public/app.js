// Progressive enhancement only: every page works without this file. It adds drag and drop on the
// board, a board filter that hides cards as you type, a quiet live refresh of the inbox and board,
// live transcripts over server-sent events (entries arrive as HTML the server rendered with the
// page's own template), a live markdown preview of prompts, confirm dialogs, the inbox's keys and
// the bulk bar's count and shift-click ranges.
// Writes reuse the page's own forms and form token.
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
    // an open reply form (an inbox row's <details>) would close under the user, ticked boxes would clear
    if (region.querySelector('details[open], input[data-bulk]:checked')) return true;
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
          markSelected();
          updateBulkBar();
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

  // --- inbox keys: j/k move the selection, r opens the row's reply form, e focuses its move
  // control, / the search box when the page has one; never while the user types in a field ---
  let selectedKey = null;
  const inboxRows = () => Array.from(document.querySelectorAll('[data-inbox-list] > .inbox-item'));
  function markSelected() {
    inboxRows().forEach((row) => {
      const on = row.dataset.key === selectedKey;
      row.classList.toggle('selected', on);
      if (on) row.setAttribute('aria-current', 'true');
      else row.removeAttribute('aria-current');
    });
  }
  function openRow(row, selector) {
    const details = row.querySelector('details');
    if (details) details.open = true;
    const field = row.querySelector(selector);
    if (field) field.focus();
  }
  document.addEventListener('keydown', (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    const target = e.target;
    if (target instanceof Element && target.closest('input, textarea, select, [contenteditable]:not([contenteditable="false"])')) return;
    if (e.key === '/') {
      const search = document.querySelector('input[name="q"]');
      if (!search) return;
      e.preventDefault();
      search.focus();
      return;
    }
    const rows = inboxRows();
    if (!rows.length || !['j', 'k', 'r', 'e'].includes(e.key)) return;
    let index = rows.findIndex((row) => row.dataset.key === selectedKey);
    if (e.key === 'j' || e.key === 'k') {
      index = index < 0 ? 0 : Math.max(0, Math.min(rows.length - 1, index + (e.key === 'j' ? 1 : -1)));
      selectedKey = rows[index].dataset.key;
      markSelected();
      rows[index].scrollIntoView({ block: 'nearest' });
    } else {
      if (index < 0) return;
      openRow(rows[index], e.key === 'r' ? 'textarea[name="body"]' : '[data-move-control]');
    }
    e.preventDefault();
  });

  // --- confirm steps: a form with data-confirm asks in a dialog and then posts with confirm=1;
  // without this script the server answers such a post with a confirm page instead ---
  document.addEventListener('submit', (e) => {
    const form = e.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm || form.querySelector('input[name="confirm"]')) return;
    if (!window.confirm(form.dataset.confirm)) {
      e.preventDefault();
      return;
    }
    const input = document.createElement('input');
    input.type = 'hidden';
    input.name = 'confirm';
    input.value = '1';
    form.appendChild(input);
  });
  // --- bulk selection: the cards' and rows' checkboxes belong to the bulk bar's form (form="bulk");
  // shift-click ticks or clears every visible box from the one clicked before, and the bar says how
  // many are ticked and stays pinned to the bottom of the screen while any are ---
  const bulkBar = document.querySelector('[data-bulk-bar]');
  const bulkCount = bulkBar && bulkBar.querySelector('[data-bulk-count]');
  const bulkHint = bulkCount ? bulkCount.textContent : '';
  let lastBulkKey = null;
  const bulkBoxes = () => Array.from(document.querySelectorAll('input[data-bulk]')).filter((b) => !b.closest('[hidden]'));
  function updateBulkBar() {
    if (!bulkBar) return;
    const n = document.querySelectorAll('input[data-bulk]:checked').length;
    bulkCount.textContent = n ? `${n} selected` : bulkHint;
    bulkBar.classList.toggle('is-idle', n === 0);
  }
  if (bulkBar) {
    document.addEventListener('click', (e) => {
      const box = e.target;
      if (!(box instanceof HTMLInputElement) || !box.matches('input[data-bulk]')) return;
      const boxes = bulkBoxes();
      const from = boxes.findIndex((b) => b.value === lastBulkKey);
      const to = boxes.indexOf(box);
      if (e.shiftKey && from >= 0 && to >= 0) {
        for (let i = Math.min(from, to); i <= Math.max(from, to); i++) boxes[i].checked = box.checked;
      }
      lastBulkKey = box.value;
      updateBulkBar();
    });
    document.addEventListener('change', (e) => {
      if (e.target instanceof HTMLInputElement && e.target.matches('input[data-bulk]')) updateBulkBar();
    });
    bulkBar.addEventListener('submit', (e) => {
      if (document.querySelector('input[data-bulk]:checked')) return;
      e.preventDefault();
      bulkCount.textContent = 'Tick at least one ticket first.';
    });
    updateBulkBar();
  }

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

  // --- agent CLI picker: the model list offers the chosen CLI's models ---
  for (const select of document.querySelectorAll('select[name="cli"]')) {
    const model = select.form && select.form.querySelector('input[name="model"]');
    if (!model) continue;
    let list = model.list;
    if (!list) {
      list = document.createElement('datalist');
      list.id = `${model.id}-list`;
      model.after(list);
      model.setAttribute('list', list.id);
    }
    const fill = () => {
      const models = (select.selectedOptions[0]?.dataset.models || '').split(',').filter(Boolean);
      list.replaceChildren(...models.map((m) => Object.assign(document.createElement('option'), { value: m })));
      if (models.length && !models.includes(model.value) && select.dataset.changed) model.value = models[0];
    };
    select.addEventListener('change', () => {
      select.dataset.changed = '1';
      fill();
    });
    fill();
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
