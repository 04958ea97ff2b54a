// Progressive enhancement only: every page works without this file. It adds drag and drop on the
// board, a board filter that hides cards as you type, the page's one stream of server-sent events
// (on every page with the header: the inbox badge, handed on to notify.js with new notifications;
// live pages (board, inbox, ticket) also apply the ticket changes in place: moves, new tickets, run
// starts and ends), live transcripts over server-sent events (entries arrive as HTML the server
// rendered with the page's own template), a quiet refresh of the queues page, a live markdown
// preview of prompts, confirm dialogs, the inbox's keys and the bulk bar's count and shift-click
// ranges. Writes reuse the page's own forms and form token. Text from events is only ever set with
// textContent and attributes, never as HTML.
'use strict';

(function () {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || '';

  function post(url, fields) {
    const body = new URLSearchParams({ _csrf: csrf(), ...fields });
    return fetch(url, {
      method: 'POST',
      body,
      credentials: 'same-origin',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
  }

  // --- refresh of [data-live-region] blocks from a fresh copy of the page, left alone while the
  // user is typing in one. A live page asks for it when an event brings something only the server
  // can render (an inbox row with its forms); the queues page, whose jobs are not ticket changes,
  // refreshes every 10 s ---
  const regions = document.querySelectorAll('[data-live-region]');
  const status = document.querySelector('[data-live-status]');
  const liveSince = document.querySelector('meta[name="live-since"]');
  const live = Boolean(liveSince) && 'EventSource' in window;
  // every page with the header opens the stream, except a live transcript's, whose own stream is its one
  const streamUrl = document.querySelector('meta[name="live-events"]');
  const streamed = Boolean(streamUrl) && 'EventSource' in window && !document.querySelector('#transcript[data-events]');
  function busy(region) {
    if (region.contains(document.activeElement) && document.activeElement !== document.body) return true;
    // an open reply form (an inbox row's <details>) would close under the user, ticked boxes would clear
    if (region.querySelector('details[open], input[data-bulk]:checked')) return true;
    return Array.from(region.querySelectorAll('textarea, input[type=text], input:not([type])')).some((el) => el.value.trim() !== '');
  }
  let retry = null;
  async function refresh() {
    if (document.querySelector('.dragging')) return;
    try {
      const res = await fetch(location.href, { credentials: 'same-origin', headers: { accept: 'text/html' } });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      let held = false;
      regions.forEach((region) => {
        const fresh = doc.querySelector(`[data-live-region="${region.dataset.liveRegion}"]`);
        if (!fresh || fresh.innerHTML === region.innerHTML) return;
        if (busy(region)) held = true;
        else region.innerHTML = fresh.innerHTML;
      });
      markSelected();
      updateBulkBar();
      filterCards();
      const freshCount = doc.getElementById('inbox-count');
      if (freshCount) setBadge(freshCount.textContent);
      // a region the user is busy in is tried again a little later, until it is free
      clearTimeout(retry);
      if (held && live) retry = setTimeout(refresh, 2000);
      if (status && !live) status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (_) {
      if (status) status.textContent = 'Refresh paused: the daemon did not answer.';
    }
  }
  let refreshTimer = null;
  function refreshSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 100);
  }
  if (regions.length && !live) setInterval(() => document.hidden || refresh(), 10000);
  function setBadge(n) {
    const count = document.getElementById('inbox-count');
    if (!count || count.textContent === String(n)) return;
    count.textContent = String(n);
    count.setAttribute('aria-label', `${n} waiting`);
  }

  // --- board drag and drop: a drop posts the same move the card's buttons post; the card moves at
  // once and its column counts follow the live event the stored move sends ---
  const board = document.querySelector('[data-board]');
  if (board) {
    board.addEventListener('dragstart', (e) => {
      const card = e.target instanceof Element && e.target.closest('.card[draggable]');
      if (!card) return;
      card.classList.add('dragging');
      e.dataTransfer.setData('text/plain', card.dataset.key);
      e.dataTransfer.effectAllowed = 'move';
    });
    board.addEventListener('dragend', (e) => {
      const card = e.target instanceof Element && e.target.closest('.card');
      if (card) card.classList.remove('dragging');
    });
    board.querySelectorAll('.column').forEach((col) => {
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
        col.querySelector('.cards').prepend(card);
        if (status) status.textContent = `Moving ${key}…`;
        const fields = { column: col.dataset.column, from: from.dataset.column, return_to: location.pathname };
        const res = await post(`/tickets/${encodeURIComponent(key)}/move`, fields);
        if (res.ok) {
          if (status) status.textContent = `Moved ${key}.`;
        } else {
          from.querySelector('.cards').prepend(card);
          if (status) status.textContent = `Could not move ${key} (${res.status}).`;
        }
      });
    });
  }

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
  function cardMatches(text, key, title, priority) {
    const t = text.trim().toLowerCase();
    const k = key.toLowerCase();
    const number = k.slice(k.lastIndexOf('-') + 1);
    return t === '' || title.toLowerCase().includes(t) || [k, number, `#${number}`, priority].includes(t);
  }
  function filterCards() {
    if (!cardFilter) return;
    document.querySelectorAll('[data-board] .card').forEach((card) => {
      const title = (card.querySelector('.card-title') || {}).textContent || '';
      card.hidden = !cardMatches(cardFilter.value, card.dataset.key || '', title, card.dataset.priority || '');
    });
  }
  if (cardFilter) cardFilter.addEventListener('input', filterCards);

  // --- live pages: ticket changes pushed by the daemon (web/live.ts), applied in place ---
  const liveBoard = document.querySelector('[data-live-board]');
  // the inbox list is replaced by each refresh of its region: looked up afresh every time
  const inboxList = () => document.querySelector('[data-inbox-list]');
  const liveTicket = document.querySelector('[data-live-ticket]');
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  /** The running marker after `anchor`: `tag.running-flag` with a link to the run's transcript, or none. */
  function setRunning(anchor, tag, run) {
    const parent = anchor.parentNode;
    let flag = parent.querySelector(':scope > .running-flag');
    if (!run) {
      if (flag) flag.remove();
      return;
    }
    if (!flag) {
      flag = el(tag, 'running-flag');
      const dot = el('span', 'dot');
      dot.setAttribute('aria-hidden', 'true');
      flag.append(dot, ' running · ', el('a', '', 'transcript'));
      anchor.after(flag);
    }
    flag.querySelector('a').setAttribute('href', `/runs/${encodeURIComponent(run)}`);
  }
  function setPriority(badge, priority) {
    badge.className = `prio prio-${priority}`;
    badge.textContent = priority;
  }
  function columnCount(id, delta) {
    const count = liveBoard.querySelector(`.column[data-column="${CSS.escape(id)}"] .column-head .count`);
    if (!count) return;
    const n = Math.max(0, Number(count.textContent) + delta);
    count.textContent = String(n);
    count.setAttribute('aria-label', `${n} tickets`);
  }
  function newCard(key) {
    const card = el('li', 'card');
    card.dataset.key = key;
    card.dataset.column = '';
    card.setAttribute('draggable', 'true');
    const top = el('div', 'card-top');
    const link = el('a', 'key', key);
    link.setAttribute('href', `/tickets/${encodeURIComponent(key)}`);
    top.append(link, el('span', 'prio'));
    const title = el('a', 'card-title');
    title.setAttribute('href', `/tickets/${encodeURIComponent(key)}`);
    card.append(top, title);
    return card;
  }
  /** The card's ← and → buttons for its column, posting that column's move form (as the server renders them). */
  function moveButtons(card, col) {
    const columns = Array.from(liveBoard.querySelectorAll('.column'));
    const i = columns.indexOf(col);
    const old = card.querySelector('.card-move');
    if (old) old.remove();
    const button = (to, label) => {
      const b = el('button', 'small-btn', label);
      b.setAttribute('form', `move-${col.dataset.column}`);
      b.setAttribute('formaction', `/tickets/${encodeURIComponent(card.dataset.key)}/move`);
      b.name = 'column';
      b.value = to.dataset.column;
      b.setAttribute('aria-label', `Move ${card.dataset.key} to ${to.dataset.columnName}`);
      return b;
    };
    const prev = columns[i - 1];
    const next = columns[i + 1];
    if (!prev && !next) return;
    const box = el('div', 'card-move');
    if (prev) box.append(button(prev, `← ${prev.dataset.columnName}`));
    if (next) box.append(button(next, `${next.dataset.columnName} →`));
    card.append(box);
  }
  function applyCard(t) {
    if (t.project !== liveBoard.dataset.liveBoard) return;
    let card = liveBoard.querySelector(`.card[data-key="${CSS.escape(t.key)}"]`);
    const col = liveBoard.querySelector(`.column[data-column="${CSS.escape(t.column)}"]`);
    if (t.gone || !col || !cardMatches(liveBoard.dataset.filter || '', t.key, t.title, t.priority)) {
      if (card) {
        columnCount(card.dataset.column, -1);
        card.remove();
      }
      return;
    }
    if (!card) card = newCard(t.key);
    if (card.dataset.column !== t.column) {
      if (card.dataset.column) columnCount(card.dataset.column, -1);
      columnCount(t.column, 1);
      card.dataset.column = t.column;
      col.querySelector('.cards').prepend(card);
      moveButtons(card, col);
    }
    card.dataset.priority = t.priority;
    card.querySelector('.card-title').textContent = t.title;
    setPriority(card.querySelector('.card-top .prio'), t.priority);
    setRunning(card.querySelector('.card-title'), 'div', t.running);
    card.classList.toggle('is-running', Boolean(t.running));
  }
  function applyInbox(t) {
    const list = inboxList().dataset;
    const wanted =
      t.inbox === list.tab && (!list.project || list.project === t.project) && (!list.priority || list.priority === t.priority);
    const row = inboxList().querySelector(`.inbox-item[data-key="${CSS.escape(t.key)}"]`);
    if (!wanted && !row) return;
    if (!wanted) row.remove();
    else if (row) {
      row.querySelector('.title').textContent = t.title;
      setPriority(row.querySelector('.prio'), t.priority);
    }
    // new rows, the order, the notes and the tab counts come from the server's own page
    refreshSoon();
  }
  function applyTicket(t) {
    if (t.key !== liveTicket.dataset.liveTicket) return;
    liveTicket.querySelector('h1').textContent = t.title;
    liveTicket.querySelector('.ticket-column').textContent = t.columnName;
    const prio = liveTicket.querySelector('.meta .prio');
    setPriority(prio, t.priority);
    setRunning(prio, 'span', t.running);
    if (t.column !== liveTicket.dataset.column && status) {
      status.replaceChildren(`Moved to ${t.columnName} since this page was loaded. `, el('a', '', 'Reload to see its history.'));
      status.querySelector('a').setAttribute('href', location.pathname);
    }
  }
  // notify.js shows the count in the tab title and favicon, and pops the notifications up
  const tell = (name, detail) => document.dispatchEvent(new CustomEvent(`dispatcher:${name}`, { detail }));
  function apply(data) {
    if (data.counts) {
      setBadge(data.counts.inbox);
      tell('count', data.counts.inbox);
    }
    for (const t of data.tickets) {
      if (liveBoard) applyCard(t);
      if (inboxList()) applyInbox(t);
      if (liveTicket) applyTicket(t);
    }
    filterCards();
  }
  // A hidden tab lets its stream go (a browser holds at most 6 connections to the daemon), except one:
  // it keeps the pop-ups and its tab's count coming while the person is elsewhere. Shown again, a
  // tab catches up from the last event it got.
  let source = null;
  let lastId = live ? liveSince.content : '';
  let lost = false;
  let stopped = false;
  function sync(data) {
    apply(data);
    // what was running when the page was rendered (or the stream left) may have ended since
    const running = new Set(data.running);
    if (liveBoard) {
      liveBoard.querySelectorAll('.card.is-running').forEach((card) => {
        if (running.has(card.dataset.key)) return;
        setRunning(card.querySelector('.card-title'), 'div', null);
        card.classList.remove('is-running');
      });
    }
    if (liveTicket && !running.has(liveTicket.dataset.liveTicket)) setRunning(liveTicket.querySelector('.meta .prio'), 'span', null);
  }
  function listen() {
    source = new EventSource(lastId ? `${streamUrl.content}?since=${encodeURIComponent(lastId)}` : streamUrl.content);
    const on = (name, fn) =>
      source.addEventListener(name, (e) => {
        if (e.lastEventId) lastId = e.lastEventId;
        fn(e.data ? JSON.parse(e.data) : null);
      });
    on('sync', sync);
    on('tickets', apply);
    on('notifications', (data) => tell('notifications', data.notifications));
    // too much changed since the page was rendered to catch up: a fresh page, unless the user is typing
    // (a page that shows no tickets has nothing to catch up, and listens on)
    on('reset', () => {
      if (!live) return;
      stopped = true;
      source.close();
      if (!Array.from(regions).some(busy) && !document.querySelector('textarea:focus, input:focus')) location.reload();
      else if (status) status.textContent = 'Much has changed since this page was loaded: reload it.';
    });
    // the status line of a live page says whether its changes arrive (other pages use theirs for other things)
    source.addEventListener('open', () => {
      if (lost && status && live) status.textContent = '';
      lost = false;
    });
    source.addEventListener('error', () => {
      lost = true;
      if (!status || !live) return;
      status.textContent =
        source.readyState === EventSource.CLOSED
          ? 'Live updates stopped: reload the page.'
          : 'Live updates paused: reconnecting to the daemon…';
    });
  }
  let keepHidden = null;
  function letGo() {
    if (!document.hidden || !source || keepHidden) return;
    source.close();
    source = null;
  }
  if (streamed) {
    listen();
    document.addEventListener('visibilitychange', () => {
      if (stopped) return;
      if (!document.hidden) {
        if (keepHidden) keepHidden();
        keepHidden = null;
        if (!source) listen();
      } else if (source && navigator.locks) {
        // one lock for the whole browser profile: held by the hidden tab that keeps its stream, until it is shown or closed
        navigator.locks.request('dispatcher-hidden-stream', { ifAvailable: true }, (lock) => {
          if (!lock) return letGo();
          if (!document.hidden) return undefined;
          return new Promise((resolve) => (keepHidden = resolve));
        });
      } else letGo();
    });
  }

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
