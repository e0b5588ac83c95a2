// Vigil status page: refreshes each [data-section] from /ui/section/<name> (HTML rendered by the
// agent from its own /api/v1 JSON) every 5 seconds, and creates and expires silences through
// /api/v1/silences. Plain JS, no build step, no dependencies.
(function () {
  'use strict';
  var REFRESH_MS = 5000;
  var updated = document.getElementById('updated');
  // The last HTML each section got, to leave unchanged sections (and their focus) alone.
  var last = new WeakMap();

  function stamp(ok) {
    if (!updated) return;
    var t = new Date();
    updated.textContent = ok
      ? 'Updated ' + t.toLocaleTimeString()
      : 'Agent unreachable, retrying (' + t.toLocaleTimeString() + ')';
    updated.className = ok ? 'updated' : 'updated crit-text';
  }

  function refresh() {
    var sections = document.querySelectorAll('[data-section]');
    var jobs = Array.prototype.map.call(sections, function (el) {
      var url = '/ui/section/' + encodeURIComponent(el.getAttribute('data-section'));
      var slo = el.getAttribute('data-slo');
      if (slo) url += '?slo=' + encodeURIComponent(slo);
      return fetch(url, { headers: { Accept: 'text/html' }, cache: 'no-store' })
        .then(function (r) {
          if (!r.ok) throw new Error(url + ': ' + r.status);
          return r.text();
        })
        .then(function (html) {
          if (last.get(el) !== html) {
            el.innerHTML = html;
            last.set(el, html);
          }
        });
    });
    return Promise.all(jobs).then(function () { stamp(true); }, function () { stamp(false); });
  }

  // Alertmanager matcher syntax: name="value", name!="v", name=~"re", name!~"re", comma-separated.
  function parseMatchers(text) {
    var out = [];
    var re = /\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("((?:[^"\\]|\\.)*)"|[^,]*)\s*(,|$)/g;
    var m;
    var pos = 0;
    text = text.trim().replace(/^\{/, '').replace(/\}$/, '');
    while (pos < text.length && (m = re.exec(text)) !== null && m.index === pos) {
      var value = m[4] !== undefined ? m[4].replace(/\\(.)/g, '$1') : m[3].trim();
      out.push({ name: m[1], value: value, isRegex: m[2].indexOf('~') >= 0, isEqual: m[2][0] !== '!' });
      pos = re.lastIndex;
      if (m[0] === '') break;
    }
    if (pos < text.length || out.length === 0) {
      throw new Error('cannot read the matchers near "' + text.slice(pos, pos + 20) + '"; write name="value", separated by commas');
    }
    return out;
  }

  function showStatus(text, error) {
    var el = document.getElementById('silence-status');
    if (!el) return;
    el.textContent = text;
    el.className = 'form-status' + (error ? ' error' : '');
  }

  var form = document.getElementById('silence-form');
  if (form) {
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var body;
      try {
        var now = new Date();
        var secs = parseInt(form.elements.duration.value, 10);
        body = {
          matchers: parseMatchers(form.elements.matchers.value),
          startsAt: now.toISOString(),
          endsAt: new Date(now.getTime() + secs * 1000).toISOString(),
          createdBy: form.elements.createdBy.value.trim(),
          comment: form.elements.comment.value.trim()
        };
      } catch (e) {
        showStatus(e.message, true);
        return;
      }
      showStatus('Creating…', false);
      fetch('/api/v1/silences', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body)
      })
        .then(function (r) {
          return r.json().then(function (j) {
            if (!r.ok) throw new Error(j.error || ('HTTP ' + r.status));
            return j;
          });
        })
        .then(function (s) {
          showStatus('Silence ' + s.id + ' created.', false);
          form.elements.matchers.value = '';
          form.elements.comment.value = '';
          return refresh();
        })
        .catch(function (e) { showStatus(e.message, true); });
    });
  }

  document.addEventListener('click', function (ev) {
    var t = ev.target;
    if (!(t instanceof Element)) return;
    var expire = t.closest('[data-expire]');
    if (expire) {
      var id = expire.getAttribute('data-expire');
      if (!window.confirm('Expire silence ' + id + '?')) return;
      expire.disabled = true;
      fetch('/api/v1/silences/' + encodeURIComponent(id), { method: 'DELETE' })
        .then(function (r) {
          if (!r.ok) return r.json().then(function (j) { throw new Error(j.error || ('HTTP ' + r.status)); });
          return refresh();
        })
        .catch(function (e) { window.alert(e.message); expire.disabled = false; });
      return;
    }
    var silence = t.closest('[data-silence]');
    if (silence && form) {
      form.elements.matchers.value = silence.getAttribute('data-silence');
      var details = document.getElementById('new-silence');
      if (details) details.open = true;
      form.scrollIntoView({ behavior: 'smooth', block: 'center' });
      form.elements.comment.focus();
    }
  });

  stamp(true);
  setInterval(function () {
    if (!document.hidden) refresh();
  }, REFRESH_MS);
})();
