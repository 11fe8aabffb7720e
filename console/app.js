// The smcd console: a thin client of the public API. Every request is V1-signed
// here, in the browser, with the access key held in this tab's sessionStorage.
// No innerHTML anywhere: server data only ever reaches the page as text nodes.
import { canSign, signedForm } from './sign-v1.js';

const KEY_ID = 'smcd.accessKeyId';
const KEY_SECRET = 'smcd.accessKeySecret';

/** Errors that mean the stored key itself no longer works. */
const AUTH_CODES = new Set(['InvalidAccessKeyId.NotFound', 'InvalidAccessKeyId.Inactive', 'SignatureDoesNotMatch', 'IncompleteSignature']);

const $ = (id) => document.getElementById(id);

class SmcError extends Error {
  constructor(code, message, requestId = '', status = 0) {
    super(message);
    this.code = code;
    this.requestId = requestId;
    this.status = status;
  }
}

// ---- session -------------------------------------------------------------

function credentials() {
  const accessKeyId = sessionStorage.getItem(KEY_ID);
  const accessKeySecret = sessionStorage.getItem(KEY_SECRET);
  return accessKeyId && accessKeySecret ? { accessKeyId, accessKeySecret } : null;
}

/** One signed API call; an SMC error answer becomes an SmcError with its Code and Message. */
async function call(action, params = {}, creds = credentials()) {
  if (!creds) throw new SmcError('NotSignedIn', 'Sign in first.');
  let res;
  let text;
  try {
    const body = await signedForm(action, params, creds);
    res = await fetch('/', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
      cache: 'no-store',
      credentials: 'omit',
    });
    text = await res.text();
  } catch (err) {
    throw new SmcError('NetworkError', `The smcd server could not be reached (${err.message}).`);
  }
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new SmcError('InvalidResponse', `The server answered HTTP ${res.status} without an SMC response.`, '', res.status);
  }
  if (!res.ok || typeof json.Code === 'string') {
    throw new SmcError(String(json.Code ?? `HTTP ${res.status}`), String(json.Message ?? ''), String(json.RequestId ?? ''), res.status);
  }
  return json;
}

// ---- small DOM helpers ---------------------------------------------------

/** h('td', { class: 'x' }, 'text', child): attributes by setAttribute, children as nodes or text. */
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child);
  }
  return node;
}

function showError(box, err) {
  const parts = [h('strong', {}, err.code || 'Error'), h('span', {}, err.message || '')];
  if (AUTH_CODES.has(err.code) && credentials())
    parts.push(h('span', { class: 'alert-hint' }, 'This access key no longer works here: sign out and sign in with a valid key.'));
  if (err.code === 'InvalidTimeStamp.Expired')
    parts.push(h('span', { class: 'alert-hint' }, "Requests are signed with this computer's clock: check that it is correct."));
  if (err.code === 'Forbidden.RAM')
    parts.push(h('span', { class: 'alert-hint' }, 'This access key is not allowed to do that; ask for a key with this action.'));
  if (err.requestId) parts.push(h('small', { class: 'request-id' }, `RequestId ${err.requestId}`));
  box.replaceChildren(...parts);
  box.hidden = false;
}

function hideError(box) {
  box.hidden = true;
  box.replaceChildren();
}

let toastTimer;
function toast(message) {
  const box = $('toast');
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    box.hidden = true;
  }, 4000);
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

function formatDate(value) {
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? value || '-' : dateFormat.format(ms);
}

function relative(value) {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) return '';
  const seconds = Math.round((ms - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 60) return relativeFormat.format(seconds, 'second');
  if (abs < 3600) return relativeFormat.format(Math.round(seconds / 60), 'minute');
  if (abs < 86400) return relativeFormat.format(Math.round(seconds / 3600), 'hour');
  return relativeFormat.format(Math.round(seconds / 86400), 'day');
}

function timeCell(value) {
  return h('td', { class: 'time', title: value }, h('div', {}, formatDate(value)), h('div', { class: 'sub' }, relative(value)));
}

function nameCell(name, id, extra) {
  return h(
    'td',
    { class: 'name-cell' },
    h('div', { class: name ? 'name' : 'name unnamed' }, name || 'Unnamed'),
    h('div', { class: 'mono sub' }, id),
    extra ? h('div', { class: 'sub desc', title: extra }, extra) : null,
  );
}

const BADGES = {
  activated: 'ok',
  Available: 'ok',
  unactivated: 'off',
  expired: 'warn',
  Unavailable: 'bad',
  Pending: 'warn',
  Approved: 'ok',
};

const badge = (text, title) => h('span', { class: `badge ${BADGES[text] ?? 'off'}`, title }, text);

/** Pager under a table: position, previous/next, page size. */
function renderPager(box, res, state, reload) {
  const pages = Math.max(1, Math.ceil(res.TotalCount / state.pageSize));
  const first = res.TotalCount === 0 ? 0 : (res.PageNumber - 1) * res.PageSize + 1;
  const last = Math.min(res.TotalCount, res.PageNumber * res.PageSize);
  const size = h(
    'select',
    {
      'aria-label': 'Rows per page',
      onchange: (e) => {
        state.pageSize = Number(e.target.value);
        state.page = 1;
        reload();
      },
    },
    [10, 20, 50].map((n) => h('option', { value: n, selected: n === state.pageSize }, `${n} per page`)),
  );
  box.replaceChildren(
    h('span', { class: 'pager-info' }, res.TotalCount === 0 ? 'Nothing to show' : `${first}–${last} of ${res.TotalCount}`),
    h('span', { class: 'spacer' }),
    size,
    h(
      'button',
      {
        type: 'button',
        class: 'button small subtle',
        disabled: state.page <= 1,
        onclick: () => {
          state.page -= 1;
          reload();
        },
      },
      '‹ Previous',
    ),
    h('span', { class: 'pager-page' }, `Page ${res.PageNumber} of ${pages}`),
    h(
      'button',
      {
        type: 'button',
        class: 'button small subtle',
        disabled: state.page >= pages,
        onclick: () => {
          state.page += 1;
          reload();
        },
      },
      'Next ›',
    ),
  );
}

// ---- tags ----------------------------------------------------------------------

/** `env=prod, team` → Tag.1.Key=env, Tag.1.Value=prod, Tag.2.Key=team (a key alone: any value, where it filters). */
function tagParams(text) {
  const params = {};
  const items = String(text ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  items.forEach((item, i) => {
    const at = item.indexOf('=');
    params[`Tag.${i + 1}.Key`] = (at < 0 ? item : item.slice(0, at)).trim();
    if (at >= 0) params[`Tag.${i + 1}.Value`] = item.slice(at + 1).trim();
  });
  return params;
}

const tagText = (t) => (t.Value === '' ? t.Key : `${t.Key}=${t.Value}`);

function tagsCell(tags) {
  const list = tags?.Tag ?? [];
  return h(
    'td',
    { class: 'tags' },
    list.length
      ? h(
          'div',
          { class: 'chips' },
          list.map((t) => h('span', { class: 'chip mono', title: tagText(t) }, tagText(t))),
        )
      : h('span', { class: 'sub' }, '—'),
  );
}

/** The resource whose tags the dialog edits: { type, id, list }. */
let tagging = null;

function openTags(type, id, label, tags, list) {
  tagging = { type, id, list };
  $('tags-title').textContent = `Tags of ${label}`;
  $('tags-id').textContent = id;
  $('tags-form').reset();
  hideError($('tags-error'));
  renderTagList((tags?.Tag ?? []).map((t) => ({ key: t.Key, value: t.Value })));
  $('tags-dialog').showModal();
  $('tags-key').focus();
}

function renderTagList(tags) {
  $('tags-none').hidden = tags.length > 0;
  $('tags-list').replaceChildren(
    ...tags.map((t) =>
      h(
        'li',
        {},
        h('span', { class: 'chip mono' }, tagText({ Key: t.key, Value: t.value })),
        h(
          'button',
          {
            type: 'button',
            class: 'button small danger-text',
            'aria-label': `Remove tag ${t.key}`,
            onclick: () => changeTags('UntagResources', { 'TagKey.1': t.key }),
          },
          'Remove',
        ),
      ),
    ),
  );
}

/** Tags or untags the resource in the dialog, then shows its tags as the server has them now. */
async function changeTags(action, params) {
  const { type, id, list } = tagging;
  hideError($('tags-error'));
  $('tags-add').disabled = true;
  try {
    await call(action, { ResourceType: type, 'ResourceId.1': id, ...params });
    const res = await call('ListTagResources', { ResourceType: type, 'ResourceId.1': id });
    renderTagList(res.TagResources.TagResource.map((r) => ({ key: r.TagKey, value: r.TagValue })));
    $('tags-form').reset();
    await list.load();
  } catch (err) {
    showError($('tags-error'), err);
  } finally {
    $('tags-add').disabled = false;
  }
}

function submitTag(e) {
  e.preventDefault();
  const key = $('tags-key').value.trim();
  if (!key) return;
  return changeTags('TagResources', { 'Tag.1.Key': key, 'Tag.1.Value': $('tags-value').value.trim() });
}

// ---- paged lists -----------------------------------------------------------

/**
 * A table filled from one List/Describe action, a page at a time: both tabs are one of these.
 * `state` holds the filters (named like the filter form's fields), `page` and `pageSize`;
 * `params(state)` turns the filters into the action's parameters; `row(item)` makes one <tr>.
 */
function pagedList({ action, listKey, itemKey, params, state, table, empty, pager, error, row }) {
  // Loads are numbered and only the latest one's answer reaches the page: a slow answer to an
  // older filter or page must not overwrite the newer one.
  let latest = 0;

  async function load() {
    if (!credentials()) return;
    const seq = ++latest;
    const wrap = table.parentElement;
    wrap.classList.add('loading');
    try {
      const res = await call(action, { ...params(state), PageNumber: state.page, PageSize: state.pageSize });
      if (seq !== latest) return;
      const pages = Math.max(1, Math.ceil(res.TotalCount / state.pageSize));
      if (state.page > pages) {
        state.page = pages; // the last page emptied (a delete): show the one before
        return load();
      }
      hideError(error);
      render(res);
    } catch (err) {
      if (seq === latest) showError(error, err);
    } finally {
      if (seq === latest) wrap.classList.remove('loading');
    }
  }

  function render(res) {
    const items = res[listKey]?.[itemKey] ?? [];
    table.tBodies[0].replaceChildren(...items.map(row));
    empty.hidden = items.length > 0;
    renderPager(pager, res, state, load);
  }

  /** Empties the list and drops every answer still on its way (signing out). */
  function clear() {
    latest++;
    table.parentElement.classList.remove('loading');
    table.tBodies[0].replaceChildren();
    pager.replaceChildren();
    hideError(error);
  }

  return { state, load, clear };
}

/** Wires a filter bar to its list; the form's field names are the list's filter keys. */
function wireFilters(form, refresh, list) {
  const apply = () => {
    for (const [name, value] of new FormData(form)) list.state[name] = String(value).trim();
    list.state.page = 1;
    list.load();
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    apply();
  });
  // The reset event comes before the fields are reset: read them a task later, once they are.
  form.addEventListener('reset', () => setTimeout(apply));
  refresh.addEventListener('click', () => list.load());
}

// ---- confirmation --------------------------------------------------------

/** Asks before a destructive call and runs it inside the dialog, so a refusal is shown right there. */
function confirmThen({ title, message, ok, action }) {
  const dialog = $('confirm-dialog');
  const button = $('confirm-ok');
  $('confirm-title').textContent = title;
  $('confirm-message').textContent = message;
  button.textContent = ok;
  button.disabled = false;
  hideError($('confirm-error'));
  dialog.querySelector('form').onsubmit = async (e) => {
    e.preventDefault();
    button.disabled = true;
    try {
      await action();
      dialog.close();
    } catch (err) {
      showError($('confirm-error'), err);
    } finally {
      button.disabled = false;
    }
  };
  $('confirm-cancel').onclick = () => dialog.close();
  dialog.showModal();
  $('confirm-cancel').focus();
}

// ---- activation codes ----------------------------------------------------

const codes = pagedList({
  action: 'ListAccessTokens',
  listKey: 'AccessTokens',
  itemKey: 'AccessToken',
  params: (f) => ({ Status: f.status || undefined, Name: f.name || undefined, ...tagParams(f.tag) }),
  state: { status: '', name: '', tag: '', page: 1, pageSize: 20 },
  table: $('codes-table'),
  empty: $('codes-empty'),
  pager: $('codes-pager'),
  error: $('codes-error'),
  row: codeRow,
});

function codeRow(t) {
  const count = Number(t.Count);
  const used = Number(t.RegisteredCount);
  const label = t.Name || t.AccessTokenId;
  const ranges = t.IpAddressRange ? t.IpAddressRange.split(',').filter(Boolean) : [];
  // ListAccessTokens says "unactivated" both for a disabled code and for a used-up one; the counts tell them apart.
  const full = used >= count;
  const disabled = t.Status === 'unactivated' && t.Disabled === 'true';
  const canDisable = t.Status === 'activated' || (t.Status === 'unactivated' && full);
  return h(
    'tr',
    { 'data-id': t.AccessTokenId },
    nameCell(t.Name, t.AccessTokenId, t.Description),
    h('td', {}, badge(t.Status), t.Status === 'unactivated' ? h('div', { class: 'sub' }, disabled ? 'disabled' : 'all used') : null),
    h(
      'td',
      { class: 'usage' },
      h('div', {}, `${used} / ${count} used`),
      h('progress', { max: count, value: used, 'aria-label': `${used} of ${count} used` }),
      h('div', { class: 'sub' }, `${Math.max(0, count - used)} remaining`),
    ),
    timeCell(t.ExpirationTime),
    h(
      'td',
      {},
      ranges.length
        ? h(
            'div',
            { class: 'chips' },
            ranges.map((r) => h('span', { class: 'chip mono' }, r)),
          )
        : h('span', { class: 'sub' }, 'Any address'),
      t.RequireApproval === 'true' ? h('div', { class: 'sub' }, 'approval required') : null,
    ),
    tagsCell(t.Tags),
    timeCell(t.CreationTime),
    h(
      'td',
      { class: 'actions' },
      h('button', { type: 'button', class: 'button small subtle', onclick: () => showSourcesOf(t.AccessTokenId) }, 'Sources'),
      h(
        'button',
        { type: 'button', class: 'button small subtle', onclick: () => openTags('accesstoken', t.AccessTokenId, label, t.Tags, codes) },
        'Tags',
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'button small',
          disabled: !canDisable,
          title: canDisable ? 'Stop this code from importing more machines' : `The code is ${disabled ? 'disabled' : t.Status}`,
          onclick: () =>
            confirmThen({
              title: 'Disable activation code?',
              message: `“${label}” (${t.AccessTokenId}) will import no more machines. Source servers already imported with it stay. This cannot be undone.`,
              ok: 'Disable',
              action: async () => {
                await call('DisableAccessToken', { AccessTokenId: t.AccessTokenId });
                toast(`Activation code ${t.AccessTokenId} disabled.`);
                await codes.load();
              },
            }),
        },
        'Disable',
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'button small danger-text',
          onclick: () =>
            confirmThen({
              title: 'Delete activation code?',
              message: `“${label}” (${t.AccessTokenId}) will be deleted. Source servers imported with it stay and keep its id.`,
              ok: 'Delete',
              action: async () => {
                await call('DeleteAccessToken', { AccessTokenId: t.AccessTokenId });
                toast(`Activation code ${t.AccessTokenId} deleted.`);
                await codes.load();
              },
            }),
        },
        'Delete',
      ),
    ),
  );
}

function showSourcesOf(tokenId) {
  showSources({ token: tokenId });
}

/** The sources tab with exactly these filters (the others cleared). */
function showSources(filters) {
  Object.assign(sources.state, { state: '', name: '', token: '', approval: '', tag: '', ...filters, page: 1 });
  $('sources-state').value = sources.state.state;
  $('sources-name').value = sources.state.name;
  $('sources-token').value = sources.state.token;
  $('sources-approval').value = sources.state.approval;
  $('sources-tag').value = sources.state.tag;
  if (location.hash === '#sources') sources.load();
  else location.hash = '#sources';
}

// ---- create dialog: the code is on the page only while the dialog is open ----

function openCreate() {
  const dialog = $('create-dialog');
  $('create-form').reset();
  $('create-form').hidden = false;
  $('create-result').hidden = true;
  $('create-submit').disabled = false;
  hideError($('create-error'));
  dialog.showModal();
  $('create-name').focus();
}

async function submitCreate(e) {
  e.preventDefault();
  const form = new FormData($('create-form'));
  const text = (name) => String(form.get(name) ?? '').trim();
  hideError($('create-error'));
  $('create-submit').disabled = true;
  try {
    const res = await call('CreateAccessToken', {
      Name: text('name') || undefined,
      Description: text('description') || undefined,
      Count: text('count'),
      TimeToLiveInDays: text('ttl'),
      IpAddressRange: text('ipRange') || undefined,
      RequireApproval: form.get('requireApproval') ? 'true' : undefined,
      ...tagParams(text('tags')),
    });
    // Everything the result shows is ready before any of it is: the dialog shows the result whole.
    const url = await publicUrl();
    $('created-id').textContent = res.AccessTokenId;
    $('created-code').textContent = res.AccessTokenCode;
    const pair = `SMCD_CODE_ID=${res.AccessTokenId} SMCD_CODE=${res.AccessTokenCode}`;
    $('created-command').textContent = `curl -fsSL ${url}/agent/smcd-agent.sh | ${pair} sh -s -- import`;
    $('created-command-wget').textContent = `wget -qO- ${url}/agent/smcd-agent.sh | ${pair} sh -s -- import`;
    $('created-command-node').textContent = `${pair} smcd agent import --endpoint ${url}`;
    $('create-form').hidden = true;
    $('create-result').hidden = false;
    $('copy-code').focus();
  } catch (err) {
    showError($('create-error'), err);
  } finally {
    $('create-submit').disabled = false;
  }
}

/**
 * The URL machines reach this server at (smcd serve --public-url): behind a tunnel or a proxy
 * it is not this page's origin, which is the fallback.
 */
async function publicUrl() {
  try {
    const res = await fetch('/agent/info.json', { cache: 'no-store' });
    const info = await res.json();
    if (typeof info.PublicUrl === 'string' && /^https?:\/\/[^\s'"]+$/.test(info.PublicUrl)) return info.PublicUrl;
  } catch {
    /* an older server: fall back */
  }
  return location.origin;
}

/** Leaves no trace of the code in the document once the dialog is closed. */
function clearCreated() {
  const shown = !$('create-result').hidden;
  for (const id of ['created-id', 'created-code', 'created-command', 'created-command-wget', 'created-command-node']) $(id).replaceChildren();
  $('create-result').hidden = true;
  $('create-form').hidden = false;
  $('create-form').reset();
  if (shown) {
    codes.state.page = 1;
    codes.load();
  }
}

async function copyFrom(sourceId, button) {
  const text = $(sourceId).textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch {
    // No clipboard permission: select the text so that Ctrl+C / Cmd+C copies it.
    const range = document.createRange();
    range.selectNodeContents($(sourceId));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    button.textContent = 'Press Ctrl+C';
  }
  setTimeout(() => {
    button.textContent = 'Copy';
  }, 2000);
}

// ---- source servers --------------------------------------------------------

const sources = pagedList({
  action: 'DescribeSourceServers',
  listKey: 'SourceServers',
  itemKey: 'SourceServer',
  params: (f) => ({
    State: f.state || undefined,
    Name: f.name || undefined,
    AccessTokenId: f.token || undefined,
    ApprovalStatus: f.approval || undefined,
    ...tagParams(f.tag),
  }),
  state: { state: '', name: '', token: '', approval: '', tag: '', page: 1, pageSize: 10 },
  table: $('sources-table'),
  empty: $('sources-empty'),
  pager: $('sources-pager'),
  error: $('sources-error'),
  row: sourceRow,
});

function disksCell(s) {
  const data = s.DataDisks?.DataDisk ?? [];
  const lines = [h('div', {}, s.SystemDiskSize ? `System ${s.SystemDiskSize} GiB` : 'System —')];
  for (const d of data.slice(0, 3)) lines.push(h('div', { class: 'sub' }, `Data ${d.Size} GiB${d.Path ? ` ${d.Path}` : ''}`));
  if (data.length > 3) {
    const rest = data.slice(3).reduce((sum, d) => sum + Number(d.Size || 0), 0);
    lines.push(h('div', { class: 'sub' }, `+${data.length - 3} more, ${rest} GiB`));
  }
  return h('td', { class: 'disks' }, lines);
}

function sourceRow(s) {
  const label = s.Name || s.SourceId;
  return h(
    'tr',
    { 'data-id': s.SourceId },
    nameCell(s.Name, s.SourceId, s.Description || (s.Hostname && s.Hostname !== s.Name ? `host ${s.Hostname}` : '')),
    h('td', {}, badge(s.State, s.ErrorCode || undefined), s.ErrorCode ? h('div', { class: 'sub' }, s.ErrorCode) : null),
    h('td', {}, badge(s.ApprovalStatus, s.ApprovalStatus === 'Pending' ? 'Imported with a code that requires approval' : undefined)),
    h('td', {}, h('div', {}, s.Platform || '—'), s.KernelLevel ? h('div', { class: 'sub' }, `kernel ${s.KernelLevel}`) : null),
    h('td', { class: 'mono' }, s.Architecture || '—'),
    disksCell(s),
    s.LastHeartbeatTime ? timeCell(s.LastHeartbeatTime) : h('td', { class: 'sub' }, 'never'),
    h(
      'td',
      {},
      s.AccessTokenId
        ? h(
            'button',
            { type: 'button', class: 'link mono', title: 'Show the sources imported with this code', onclick: () => showSourcesOf(s.AccessTokenId) },
            s.AccessTokenId,
          )
        : '—',
    ),
    tagsCell(s.Tags),
    h(
      'td',
      { class: 'actions' },
      s.ApprovalStatus === 'Pending'
        ? [
            h(
              'button',
              {
                type: 'button',
                class: 'button small primary',
                onclick: async (e) => {
                  e.currentTarget.disabled = true;
                  try {
                    await call('ApproveSourceServers', { 'SourceId.1': s.SourceId });
                    toast(`Source server ${s.SourceId} approved.`);
                    await sources.load();
                  } catch (err) {
                    showError($('sources-error'), err);
                  }
                },
              },
              'Approve',
            ),
            h(
              'button',
              {
                type: 'button',
                class: 'button small danger-text',
                onclick: () =>
                  confirmThen({
                    title: 'Reject source server?',
                    message: `“${label}” (${s.SourceId}) will be deleted and its key refused from now on. The import it used stays counted on its activation code.`,
                    ok: 'Reject',
                    action: async () => {
                      await call('RejectSourceServers', { 'SourceId.1': s.SourceId });
                      toast(`Source server ${s.SourceId} rejected.`);
                      await sources.load();
                    },
                  }),
              },
              'Reject',
            ),
          ]
        : null,
      h(
        'button',
        { type: 'button', class: 'button small subtle', onclick: () => openTags('sourceserver', s.SourceId, label, s.Tags, sources) },
        'Tags',
      ),
      h('button', { type: 'button', class: 'button small', onclick: () => openModify(s) }, 'Edit'),
      h(
        'button',
        {
          type: 'button',
          class: 'button small danger-text',
          onclick: () =>
            confirmThen({
              title: 'Delete source server?',
              message: `“${label}” (${s.SourceId}) will be deleted and its key stops working. The import it used stays counted on its activation code. Its MachineId is then free: any machine with that id (for example a clone, or this machine after losing its key) can import it again with a code, as a new source.`,
              ok: 'Delete',
              action: async () => {
                await call('DeleteSourceServer', { SourceId: s.SourceId });
                toast(`Source server ${s.SourceId} deleted.`);
                await sources.load();
              },
            }),
        },
        'Delete',
      ),
    ),
  );
}

let modifying = null;

function openModify(s) {
  modifying = s;
  $('modify-id').textContent = s.SourceId;
  $('modify-name').value = s.Name;
  $('modify-description').value = s.Description;
  hideError($('modify-error'));
  $('modify-dialog').showModal();
  $('modify-name').focus();
}

async function submitModify(e) {
  e.preventDefault();
  const name = $('modify-name').value.trim();
  const description = $('modify-description').value.trim();
  const params = { SourceId: modifying.SourceId };
  if (name !== modifying.Name) params.Name = name;
  if (description !== modifying.Description) params.Description = description;
  if (params.Name === '') {
    showError($('modify-error'), new SmcError('MissingName', 'A source server keeps a name: enter 2-128 characters.'));
    return;
  }
  if (Object.keys(params).length === 1) return $('modify-dialog').close();
  $('modify-submit').disabled = true;
  try {
    await call('ModifySourceServerAttribute', params);
    $('modify-dialog').close();
    toast(`Source server ${modifying.SourceId} saved.`);
    await sources.load();
  } catch (err) {
    showError($('modify-error'), err);
  } finally {
    $('modify-submit').disabled = false;
  }
}

// ---- audit events ----------------------------------------------------------

/** The event types DescribeAuditEvents and CreateWebhook take (API.md 5.5, 5.6). */
const EVENT_TYPES = [
  'AccessToken.Create',
  'AccessToken.Disable',
  'AccessToken.Delete',
  'AccessToken.Tag',
  'AccessToken.ExpiringSoon',
  'AccessToken.Exhausted',
  'SourceServer.Import',
  'SourceServer.ImportRefused',
  'SourceServer.Modify',
  'SourceServer.Delete',
  'SourceServer.Approve',
  'SourceServer.Reject',
  'SourceServer.Tag',
  'SourceServer.Offline',
  'SourceServer.Online',
  'AccessKey.Create',
  'AccessKey.Enable',
  'AccessKey.Disable',
  'AccessKey.Delete',
];

const EVENT_BADGES = {
  ImportRefused: 'bad',
  Offline: 'bad',
  Online: 'ok',
  Create: 'ok',
  Import: 'ok',
  Delete: 'warn',
  Disable: 'warn',
  Approve: 'ok',
  Reject: 'warn',
};

/** Detail as `Key: value` lines; it is a JSON object string, shown as text either way. */
function detailCell(detail) {
  let fields;
  try {
    fields = Object.entries(JSON.parse(detail));
  } catch {
    return h('td', { class: 'mono sub' }, detail);
  }
  if (fields.length === 0) return h('td', { class: 'sub' }, '—');
  return h(
    'td',
    { class: 'detail' },
    fields.map(([k, v]) => h('div', { class: 'sub' }, `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)),
  );
}

function eventRow(e) {
  const kind = e.EventType.split('.')[1] ?? '';
  return h(
    'tr',
    { 'data-id': e.EventId },
    timeCell(e.EventTime),
    h('td', {}, h('span', { class: `badge ${EVENT_BADGES[kind] ?? 'off'}` }, e.EventType), h('div', { class: 'mono sub' }, e.EventId)),
    h('td', {}, h('div', { class: 'mono' }, e.ResourceId), h('div', { class: 'sub' }, e.ResourceType)),
    h('td', { class: 'mono' }, e.ActorKeyId || h('span', { class: 'sub' }, 'smcd')),
    h('td', { class: 'mono' }, e.ClientIp || '—'),
    detailCell(e.Detail),
  );
}

/** Newest first, a page at a time; "Older events" follows NextToken and adds the next page below. */
const audit = (() => {
  const state = { type: '', resource: '' };
  let latest = 0;
  let next = '';

  async function load(more = false) {
    if (!credentials()) return;
    const seq = ++latest;
    const wrap = $('audit-table').parentElement;
    wrap.classList.add('loading');
    try {
      const res = await call('DescribeAuditEvents', {
        'EventType.1': state.type || undefined,
        ResourceId: state.resource || undefined,
        PageSize: 50,
        NextToken: more ? next : undefined,
      });
      if (seq !== latest) return;
      hideError($('audit-error'));
      const rows = res.Events.Event.map(eventRow);
      if (more) $('audit-table').tBodies[0].append(...rows);
      else $('audit-table').tBodies[0].replaceChildren(...rows);
      next = res.NextToken;
      $('audit-more').hidden = !next;
      $('audit-empty').hidden = $('audit-table').tBodies[0].rows.length > 0;
    } catch (err) {
      if (seq === latest) showError($('audit-error'), err);
    } finally {
      if (seq === latest) wrap.classList.remove('loading');
    }
  }

  function clear() {
    latest++;
    next = '';
    $('audit-table').parentElement.classList.remove('loading');
    $('audit-table').tBodies[0].replaceChildren();
    $('audit-more').hidden = true;
    hideError($('audit-error'));
  }

  return { state, load: () => load(false), more: () => load(true), clear };
})();

// ---- webhooks --------------------------------------------------------------

const webhooks = (() => {
  let latest = 0;

  async function load() {
    if (!credentials()) return;
    const seq = ++latest;
    const wrap = $('webhooks-table').parentElement;
    wrap.classList.add('loading');
    try {
      const res = await call('ListWebhooks');
      if (seq !== latest) return;
      hideError($('webhooks-error'));
      const items = res.Webhooks.Webhook;
      $('webhooks-table').tBodies[0].replaceChildren(...items.map(webhookRow));
      $('webhooks-empty').hidden = items.length > 0;
    } catch (err) {
      if (seq === latest) showError($('webhooks-error'), err);
    } finally {
      if (seq === latest) wrap.classList.remove('loading');
    }
  }

  function clear() {
    latest++;
    $('webhooks-table').parentElement.classList.remove('loading');
    $('webhooks-table').tBodies[0].replaceChildren();
    hideError($('webhooks-error'));
    closeDeliveries();
  }

  return { load, clear };
})();

function webhookRow(w) {
  return h(
    'tr',
    { 'data-id': w.WebhookId },
    h('td', { class: 'name-cell' }, h('div', { class: 'name mono' }, w.Url), h('div', { class: 'mono sub' }, w.WebhookId)),
    h(
      'td',
      {},
      h(
        'div',
        { class: 'chips' },
        w.EventTypes.EventType.map((t) => h('span', { class: 'chip mono' }, t)),
      ),
    ),
    timeCell(w.CreationTime),
    h(
      'td',
      { class: 'actions' },
      h('button', { type: 'button', class: 'button small subtle', onclick: () => showDeliveries(w.WebhookId) }, 'Deliveries'),
      h(
        'button',
        {
          type: 'button',
          class: 'button small danger-text',
          onclick: () =>
            confirmThen({
              title: 'Delete webhook?',
              message: `${w.Url} (${w.WebhookId}) will receive no more events; what it has not received yet is dropped.`,
              ok: 'Delete',
              action: async () => {
                await call('DeleteWebhook', { WebhookId: w.WebhookId });
                toast(`Webhook ${w.WebhookId} deleted.`);
                if (deliveries.state.webhook === w.WebhookId) closeDeliveries();
                await webhooks.load();
              },
            }),
        },
        'Delete',
      ),
    ),
  );
}

const DELIVERY_BADGES = { delivered: 'ok', pending: 'warn', failed: 'bad' };

const deliveries = pagedList({
  action: 'DescribeWebhookDeliveries',
  listKey: 'Deliveries',
  itemKey: 'Delivery',
  params: (f) => ({ WebhookId: f.webhook, Status: f.status || undefined }),
  state: { webhook: '', status: '', page: 1, pageSize: 20 },
  table: $('deliveries-table'),
  empty: $('deliveries-empty'),
  pager: $('deliveries-pager'),
  error: $('deliveries-error'),
  row: (d) =>
    h(
      'tr',
      { 'data-id': d.EventId },
      h('td', {}, h('div', {}, d.EventType), h('div', { class: 'mono sub' }, d.EventId)),
      h('td', {}, h('span', { class: `badge ${DELIVERY_BADGES[d.Status] ?? 'off'}` }, d.Status)),
      h('td', {}, String(d.Attempts)),
      d.LastAttemptTime ? timeCell(d.LastAttemptTime) : h('td', { class: 'sub' }, 'not yet'),
      h('td', { class: 'mono' }, d.Attempts === 0 ? '—' : d.LastStatusCode ? `HTTP ${d.LastStatusCode}` : 'no answer'),
    ),
});

function showDeliveries(webhookId) {
  Object.assign(deliveries.state, { webhook: webhookId, status: '', page: 1 });
  $('deliveries-status').value = '';
  $('deliveries-of').textContent = webhookId;
  $('deliveries-panel').hidden = false;
  deliveries.load();
}

function closeDeliveries() {
  deliveries.clear();
  deliveries.state.webhook = '';
  $('deliveries-panel').hidden = true;
}

// ---- create webhook dialog: the secret is on the page only while the dialog is open ----

function openWebhook() {
  $('webhook-form').reset();
  $('webhook-form').hidden = false;
  $('webhook-result').hidden = true;
  $('webhook-submit').disabled = false;
  hideError($('webhook-error'));
  $('webhook-dialog').showModal();
  $('webhook-url').focus();
}

async function submitWebhook(e) {
  e.preventDefault();
  const form = new FormData($('webhook-form'));
  const types = form.getAll('types').map(String);
  const params = { Url: String(form.get('url') ?? '').trim(), ExpiringSoonDays: String(form.get('days') ?? '').trim() || undefined };
  types.forEach((t, i) => {
    params[`EventType.${i + 1}`] = t;
  });
  hideError($('webhook-error'));
  if (types.length === 0) {
    showError($('webhook-error'), new SmcError('MissingEventType', 'Choose at least one event.'));
    return;
  }
  $('webhook-submit').disabled = true;
  try {
    const res = await call('CreateWebhook', params);
    $('webhook-created-id').textContent = res.WebhookId;
    $('webhook-created-secret').textContent = res.WebhookSecret;
    $('webhook-form').hidden = true;
    $('webhook-result').hidden = false;
    $('copy-webhook-secret').focus();
  } catch (err) {
    showError($('webhook-error'), err);
  } finally {
    $('webhook-submit').disabled = false;
  }
}

/** Leaves no trace of the secret in the document once the dialog is closed. */
function clearWebhookCreated() {
  const shown = !$('webhook-result').hidden;
  $('webhook-created-id').replaceChildren();
  $('webhook-created-secret').replaceChildren();
  $('webhook-result').hidden = true;
  $('webhook-form').hidden = false;
  $('webhook-form').reset();
  if (shown) webhooks.load();
}

// ---- sign in / out and routing -----------------------------------------------

function showSignIn() {
  for (const id of ['codes-view', 'sources-view', 'audit-view', 'webhooks-view', 'tabs', 'session']) $(id).hidden = true;
  $('signin-view').hidden = false;
  if (!canSign()) {
    showError(
      $('signin-error'),
      new SmcError(
        'InsecureContext',
        'This browser allows Web Crypto signing only on HTTPS pages or on localhost. Open the console over HTTPS (a TLS proxy in front of smcd) or through an SSH tunnel to 127.0.0.1.',
      ),
    );
    $('signin-submit').disabled = true;
  }
  $('signin-id').focus();
}

async function signIn(e) {
  e.preventDefault();
  const creds = { accessKeyId: $('signin-id').value.trim(), accessKeySecret: $('signin-secret').value.trim() };
  hideError($('signin-error'));
  $('signin-submit').disabled = true;
  try {
    await call('ListAccessTokens', { PageSize: 1 }, creds);
  } catch (err) {
    // A key that may not list codes has still proven its signature; the other tab may work.
    if (err.code !== 'Forbidden.RAM') {
      showError($('signin-error'), err);
      $('signin-submit').disabled = false;
      return;
    }
  }
  sessionStorage.setItem(KEY_ID, creds.accessKeyId);
  sessionStorage.setItem(KEY_SECRET, creds.accessKeySecret);
  $('signin-form').reset();
  $('signin-submit').disabled = false;
  route();
}

function signOut() {
  sessionStorage.clear();
  for (const id of ['create-dialog', 'confirm-dialog', 'modify-dialog', 'tags-dialog', 'webhook-dialog']) if ($(id).open) $(id).close();
  // An answer still on its way must not fill the page of the next session.
  codes.clear();
  sources.clear();
  audit.clear();
  webhooks.clear();
  $('session-key').replaceChildren();
  // Resetting a filter form empties its list's filters and goes back to page 1 too (wireFilters).
  $('codes-filters').reset();
  $('sources-filters').reset();
  $('audit-filters').reset();
  history.replaceState(null, '', location.pathname);
  showSignIn();
}

function route() {
  const creds = credentials();
  if (!creds) return showSignIn();
  const tab = ['#sources', '#audit', '#webhooks'].includes(location.hash) ? location.hash.slice(1) : 'codes';
  $('signin-view').hidden = true;
  $('tabs').hidden = false;
  $('session').hidden = false;
  $('session-key').textContent = creds.accessKeyId;
  for (const link of $('tabs').querySelectorAll('a')) {
    if (link.dataset.tab === tab) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  for (const view of ['codes', 'sources', 'audit', 'webhooks']) $(`${view}-view`).hidden = tab !== view;
  return { codes, sources, audit, webhooks }[tab].load();
}

function wire() {
  $('signin-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);

  wireFilters($('codes-filters'), $('codes-refresh'), codes);
  wireFilters($('sources-filters'), $('sources-refresh'), sources);

  $('create-open').addEventListener('click', openCreate);
  $('create-form').addEventListener('submit', submitCreate);
  $('create-cancel').addEventListener('click', () => $('create-dialog').close());
  // Cleared before closing: the dialog's close event comes a task later, and until then the code would still be in the page.
  $('create-done').addEventListener('click', () => {
    clearCreated();
    $('create-dialog').close();
  });
  $('create-dialog').addEventListener('close', clearCreated);
  $('create-dialog').addEventListener('cancel', (e) => {
    // Escape must not throw away a code nobody has copied yet: closing takes the explicit button.
    if (!$('create-result').hidden) e.preventDefault();
  });
  $('copy-code').addEventListener('click', (e) => copyFrom('created-code', e.currentTarget));
  $('copy-command').addEventListener('click', (e) => copyFrom('created-command', e.currentTarget));
  $('copy-command-wget').addEventListener('click', (e) => copyFrom('created-command-wget', e.currentTarget));
  $('copy-command-node').addEventListener('click', (e) => copyFrom('created-command-node', e.currentTarget));

  $('sources-pending').addEventListener('click', () => showSources({ approval: 'Pending' }));
  $('tags-form').addEventListener('submit', submitTag);
  $('tags-close').addEventListener('click', () => $('tags-dialog').close());
  for (const type of EVENT_TYPES) {
    $('audit-type').append(h('option', { value: type }, type));
    $('webhook-types').append(
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'types', value: type }), h('span', { class: 'mono' }, type)),
    );
  }
  wireFilters($('audit-filters'), $('audit-refresh'), audit);
  $('audit-more').addEventListener('click', () => audit.more());
  wireFilters($('deliveries-filters'), $('deliveries-refresh'), deliveries);
  $('webhook-open').addEventListener('click', openWebhook);
  $('webhook-form').addEventListener('submit', submitWebhook);
  $('webhook-cancel').addEventListener('click', () => $('webhook-dialog').close());
  $('webhook-done').addEventListener('click', () => {
    clearWebhookCreated();
    $('webhook-dialog').close();
  });
  $('webhook-dialog').addEventListener('close', clearWebhookCreated);
  $('webhook-dialog').addEventListener('cancel', (e) => {
    if (!$('webhook-result').hidden) e.preventDefault();
  });
  $('copy-webhook-secret').addEventListener('click', (e) => copyFrom('webhook-created-secret', e.currentTarget));

  $('modify-form').addEventListener('submit', submitModify);
  $('modify-cancel').addEventListener('click', () => $('modify-dialog').close());
}

wire();
route();
