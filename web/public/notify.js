// Browser notifications, progressive enhancement only: the tab title and the favicon show how many
// tickets wait in the inbox, and a new notification (a ticket an agent or the daemon put in the
// inbox, a pause) pops up through the Notification API once the person allowed it with a click on
// the Settings page. It polls /notifications/recent every 15 s (the same answer as
// /api/notifications/recent, under a page path so the login cookie works); this poll is meant to
// move onto the pages' live event stream. Quiet hours and muted projects pop nothing up; the
// count still changes.
'use strict';

(function () {
  const POLL_MS = 15000;
  const baseTitle = document.title;
  const icon = document.querySelector('link[rel="icon"]');
  const baseIcon = icon ? icon.href : null;
  let since = null;
  let shownCount = -1;

  function setTitle(n) {
    document.title = n > 0 ? `(${n}) ${baseTitle}` : baseTitle;
  }

  // the favicon with a red badge holding the count, drawn on a canvas from the page's own icon
  function setFavicon(n) {
    if (!icon || !baseIcon) return;
    if (n <= 0) {
      icon.href = baseIcon;
      return;
    }
    const img = new Image();
    img.onload = () => {
      const canvas = document.createElement('canvas');
      canvas.width = canvas.height = 64;
      const c = canvas.getContext('2d');
      if (!c) return;
      c.drawImage(img, 0, 0, 64, 64);
      c.fillStyle = '#d92d20';
      c.beginPath();
      c.arc(44, 20, 20, 0, 2 * Math.PI);
      c.fill();
      c.fillStyle = '#fff';
      c.font = 'bold 26px sans-serif';
      c.textAlign = 'center';
      c.textBaseline = 'middle';
      c.fillText(n > 99 ? '99' : String(n), 44, 21);
      icon.type = 'image/png';
      icon.href = canvas.toDataURL('image/png');
      icon.dataset.count = String(n);
    };
    img.src = baseIcon;
  }

  function popUp(n) {
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    const note = new Notification(n.title, { body: n.text, tag: `dispatcher-${n.id}` });
    note.onclick = () => {
      window.focus();
      location.href = n.url;
    };
  }

  async function poll() {
    try {
      const url = since === null ? '/notifications/recent' : `/notifications/recent?since=${since}`;
      const res = await fetch(url, { credentials: 'same-origin', headers: { accept: 'application/json' } });
      if (!res.ok || !(res.headers.get('content-type') || '').includes('json')) return;
      const data = await res.json();
      if (data.browser && !data.quiet) data.notifications.forEach(popUp);
      since = data.latest;
      if (data.inbox !== shownCount) {
        shownCount = data.inbox;
        setTitle(data.inbox);
        setFavicon(data.inbox);
        const count = document.getElementById('inbox-count');
        if (count) {
          count.textContent = String(data.inbox);
          count.setAttribute('aria-label', `${data.inbox} waiting`);
        }
      }
    } catch (_) {
      // the daemon is away; the next poll tries again
    }
  }

  // Settings: the permission is asked on a click, never on page load; the test shows one at once
  const status = document.querySelector('[data-browser-notify-status]');
  function say(text) {
    if (status) status.textContent = text;
  }
  document.querySelectorAll('[data-browser-notify]').forEach((button) => {
    button.hidden = false;
    button.addEventListener('click', async () => {
      if (!('Notification' in window)) return say('This browser has no notifications.');
      const permission = Notification.permission === 'default' ? await Notification.requestPermission() : Notification.permission;
      if (permission !== 'granted') return say('Notifications are blocked for this page in the browser settings.');
      if (button.dataset.browserNotify === 'test') {
        popUp({ id: 'test', title: 'Dispatcher test', text: 'Browser notifications work.', url: '/settings' });
        say('Test shown.');
      } else say('Browser notifications allowed for this page.');
    });
  });
  if (status && 'Notification' in window) {
    const words = { granted: 'Allowed in this browser.', denied: 'Blocked in this browser.' };
    say(words[Notification.permission] || 'Not asked yet.');
  }

  poll();
  setInterval(poll, POLL_MS);
})();
