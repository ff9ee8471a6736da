// Domicile status page (DESIGN §11). Plain browser JS, no build step, served as /status.js.
// Everything shown is written with textContent: no server-provided string is ever parsed as HTML.

const REFRESH_MS = 3000;
const FETCH_TIMEOUT_MS = 2500;
// sessionStorage only: the token dies with the tab and is never sent anywhere but this origin's API.
const TOKEN_KEY = 'domicile.adminToken';

const $ = (id) => document.getElementById(id);

/** A fetch that gives up after FETCH_TIMEOUT_MS, so a hung node reads as unreachable. */
async function getJson(url, token) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
  try {
    const headers = { accept: 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(url, { headers, signal: ctl.signal, cache: 'no-store', credentials: 'omit' });
    let body = null;
    try { body = await res.json(); } catch { /* not JSON */ }
    return { status: res.status, body };
  } finally {
    clearTimeout(timer);
  }
}

/** A table cell holding `value` as text. */
function cell(value, className) {
  const td = document.createElement('td');
  td.textContent = value === undefined || value === null || value === '' ? '—' : String(value);
  if (className) td.className = className;
  return td;
}

function emptyRow(columns, text) {
  const tr = document.createElement('tr');
  const td = cell(text, 'empty');
  td.colSpan = columns;
  tr.append(td);
  return tr;
}

function setText(id, value) {
  $(id).textContent = value === undefined || value === null || value === '' ? '—' : String(value);
}

function formatLag(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

const clock = () => new Date().toLocaleTimeString();

// ---- public aggregates ------------------------------------------------------------------

let unreachableSince = null;

function renderStatus(s) {
  setText('mode', s.mode);
  const hash = typeof s.policyHash === 'string' ? s.policyHash : '';
  setText('policy', hash.slice(0, 12));
  $('policy').title = hash;
  setText('tenants-total', s.tenants);
  setText('shards-open', s.shards?.open);
  setText('shards-queued', s.shards?.queued);
  setText('shards-workers', s.shards?.workers);
  setText('replication-lag', formatLag(s.replication?.maxLagMs));
  setText('moves', s.movesInProgress);

  const regions = Array.isArray(s.regions) ? s.regions : [];
  $('regions').tBodies[0].replaceChildren(...(regions.length === 0 ? [emptyRow(4, 'no regions')] : regions.map((r) => {
    const tr = document.createElement('tr');
    tr.dataset.region = String(r.name);
    tr.append(cell(r.name), cell(r.jurisdiction), cell(Array.isArray(r.nodes) ? r.nodes.join(', ') : ''), cell(r.tenants, 'num tenants'));
    return tr;
  })));

  const nodes = Array.isArray(s.nodes) ? s.nodes : [];
  $('nodes').tBodies[0].replaceChildren(...(nodes.length === 0 ? [emptyRow(3, 'no nodes')] : nodes.map((n) => {
    const tr = document.createElement('tr');
    tr.dataset.node = String(n.id);
    const health = document.createElement('span');
    health.className = `pill ${n.healthy ? 'ok' : 'bad'}`;
    health.textContent = n.healthy ? 'healthy' : 'unhealthy';
    const td = document.createElement('td');
    td.append(health);
    tr.append(cell(n.id, 'mono'), cell(n.region), td);
    return tr;
  })));
}

function showConnection(ok, detail) {
  document.body.dataset.state = ok ? 'live' : 'unreachable';
  if (ok) {
    unreachableSince = null;
    $('conn').textContent = `Live · updated ${clock()}`;
  } else {
    unreachableSince ??= clock();
    // Health read from a node we cannot reach is no longer known.
    for (const pill of document.querySelectorAll('#nodes .pill')) {
      pill.className = 'pill unknown';
      pill.textContent = 'unknown';
    }
    $('conn').textContent = `Node unreachable since ${unreachableSince} (${detail}) · retrying every ${REFRESH_MS / 1000} s`;
  }
}

async function refreshStatus() {
  try {
    const { status, body } = await getJson('/v1/status');
    if (status !== 200 || !body) {
      showConnection(false, body?.error?.code ?? `HTTP ${status}`);
      return;
    }
    renderStatus(body);
    showConnection(true);
  } catch (err) {
    showConnection(false, err?.name === 'AbortError' ? 'timed out' : 'no connection');
  }
}

// ---- admin: per-tenant detail -----------------------------------------------------------

// cursors[i] is the cursor of page i (page 0 has none); the next page's cursor comes with each answer.
let cursors = [null];
let nextCursor = null;

const storedToken = () => sessionStorage.getItem(TOKEN_KEY);

function showAdminError(code, message) {
  const p = $('admin-error');
  const c = document.createElement('code');
  c.textContent = code;
  p.replaceChildren(c, document.createTextNode(message ? ` — ${message}` : ''));
  p.hidden = false;
}

function clearAdminError() {
  $('admin-error').hidden = true;
  $('admin-error').replaceChildren();
}

function renderTenants(page) {
  const tenants = Array.isArray(page.tenants) ? page.tenants : [];
  $('tenants').tBodies[0].replaceChildren(...(tenants.length === 0 ? [emptyRow(7, 'no tenants')] : tenants.map((t) => {
    const tr = document.createElement('tr');
    tr.dataset.tenant = String(t.id);
    tr.append(cell(t.id, 'mono'), cell(t.residency), cell(t.region), cell(t.node, 'mono'), cell(t.epoch, 'num'), cell(t.state), cell(t.durability));
    return tr;
  })));
  nextCursor = typeof page.nextCursor === 'string' && page.nextCursor !== '' ? page.nextCursor : null;
  const index = cursors.length - 1;
  $('page-info').textContent = `Page ${index + 1} · ${tenants.length} shown`;
  $('first-page').disabled = index === 0;
  $('prev-page').disabled = index === 0;
  $('next-page').disabled = nextCursor === null;
  $('tenant-view').hidden = false;
}

/**
 * Loads the current page with `token`. Returns true on success. A refused token is reported by its
 * error code and dropped from the tab, so a stale token does not keep failing every few seconds.
 */
async function loadTenants(token) {
  const params = new URLSearchParams({ limit: $('page-size').value });
  const cursor = cursors[cursors.length - 1];
  if (cursor) params.set('cursor', cursor);
  let res;
  try {
    res = await getJson(`/v1/tenants?${params}`, token);
  } catch (err) {
    showAdminError(err?.name === 'AbortError' ? 'TIMEOUT' : 'UNREACHABLE', 'the node did not answer');
    return false;
  }
  if (res.status !== 200 || !res.body) {
    showAdminError(res.body?.error?.code ?? `HTTP ${res.status}`, res.body?.error?.message ?? '');
    if (res.status === 401 || res.status === 403) {
      if (storedToken() === token) sessionStorage.removeItem(TOKEN_KEY);
      $('tenant-view').hidden = true;
      $('tenants').tBodies[0].replaceChildren();
      showTokenState();
    }
    return false;
  }
  clearAdminError();
  renderTenants(res.body);
  return true;
}

function showTokenState() {
  const has = storedToken() !== null;
  $('admin-state').textContent = has ? 'Admin token set for this tab.' : 'No token in this tab.';
  $('forget').disabled = !has;
}

async function useToken(event) {
  event.preventDefault();
  const token = $('token').value.trim();
  if (token === '') {
    showAdminError('BAD_REQUEST', 'paste an admin token first');
    return;
  }
  cursors = [null];
  // Kept only once the API accepts it.
  if (await loadTenants(token)) {
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
  }
  showTokenState();
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  cursors = [null];
  nextCursor = null;
  $('token').value = '';
  $('tenant-view').hidden = true;
  $('tenants').tBodies[0].replaceChildren();
  clearAdminError();
  showTokenState();
}

function page(move) {
  const token = storedToken();
  if (!token) return;
  if (move === 'first') cursors = [null];
  else if (move === 'prev' && cursors.length > 1) cursors.pop();
  else if (move === 'next' && nextCursor) cursors.push(nextCursor);
  void loadTenants(token);
}

// ---- loop -------------------------------------------------------------------------------

async function tick() {
  await refreshStatus();
  const token = storedToken();
  if (token && document.body.dataset.state === 'live') await loadTenants(token);
  // Chained, not setInterval: a slow answer never stacks requests.
  setTimeout(tick, REFRESH_MS);
}

$('token-form').addEventListener('submit', useToken);
$('forget').addEventListener('click', forgetToken);
$('first-page').addEventListener('click', () => page('first'));
$('prev-page').addEventListener('click', () => page('prev'));
$('next-page').addEventListener('click', () => page('next'));
$('page-size').addEventListener('change', () => page('first'));
showTokenState();
void tick();
