// Browser notifications, progressive enhancement only: the tab title and the favicon show how many
// tickets wait in the inbox, and a new notification (a ticket an agent or the daemon put in the
// inbox, a pause) pops up through the Notification API once the person allowed it with a click on
// the Settings page. Both come from the page's one event stream, which app.js holds and hands on as
// `dispatcher:count` and `dispatcher:notifications` events (web/live.ts sends them; it leaves out
// muted projects, and sends no pop-ups in the quiet hours or with browser notifications off).
'use strict';

(function () {
  const baseTitle = document.title;
  const icon = document.querySelector('link[rel="icon"]');
  const baseIcon = icon ? icon.href : null;
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
    // the same tag in every open tab: the browser shows it once
    const note = new Notification(n.title, { body: n.body, tag: `dispatcher-${n.id}` });
    note.onclick = () => {
      window.focus();
      location.href = n.url;
    };
  }

  function showCount(n) {
    if (n === shownCount) return;
    shownCount = n;
    setTitle(n);
    setFavicon(n);
  }
  const badge = document.getElementById('inbox-count');
  if (badge) showCount(Number(badge.textContent));
  document.addEventListener('dispatcher:count', (e) => showCount(e.detail));
  document.addEventListener('dispatcher:notifications', (e) => e.detail.forEach(popUp));

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
        popUp({ id: 'test', title: 'Dispatcher test', body: 'Browser notifications work.', url: '/settings' });
        say('Test shown.');
      } else say('Browser notifications allowed for this page.');
    });
  });
  if (status && 'Notification' in window) {
    const words = { granted: 'Allowed in this browser.', denied: 'Blocked in this browser.' };
    say(words[Notification.permission] || 'Not asked yet.');
  }
})();
