// The results table: server-side paging, sorting and filtering (the page holds at most `limit`
// rows, so 100 000 results cost what 50 do), a column chooser, per-row links and selection.
import { formatCell } from './format.js';

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

const OPS = [
  ['>=', 'ge'], ['<=', 'le'], ['!=', 'ne'], ['<>', 'ne'], ['>', 'gt'], ['<', 'lt'], ['=', 'eq'],
];
const NUMERIC = /^(short|int|long|float|double|boolean)$/;

/** What a user types in a column's filter box -> the API's `column:op:value`.
 * "> 3", "<= 60800", "!= 2", "= D3"; text alone means "contains" for text columns and
 * "equals" for numbers; * or % are wildcards. */
export function parseFilter(column, text) {
  let t = text.trim();
  if (!t) return null;
  let op = null;
  for (const [symbol, name] of OPS) {
    if (t.startsWith(symbol)) {
      op = name;
      t = t.slice(symbol.length).trim();
      break;
    }
  }
  const numeric = NUMERIC.test(column.datatype);
  if (!op) {
    if (/[*%]/.test(t)) op = 'like';
    else if (numeric) op = 'eq';
    else {
      op = 'like';
      t = `%${t}%`;
    }
  }
  if (op === 'like') t = t.replaceAll('*', '%');
  if (numeric && op !== 'like' && !Number.isFinite(Number(t))) {
    throw new Error(`${column.name} holds numbers: type a number, optionally after =, <, >, <=, >= or !=.`);
  }
  return `${column.name}:${op}:${t}`;
}

/** The filter text shown for an API filter (inverse of parseFilter, roughly). */
function filterText(filter) {
  const [, op, ...rest] = filter.split(':');
  const value = rest.join(':');
  const symbol = { ge: '>=', le: '<=', ne: '!=', gt: '>', lt: '<', eq: '=' }[op];
  if (symbol) return `${symbol} ${value}`;
  return /^%[^%]*%$/.test(value) ? value.slice(1, -1) : value;
}

export class ResultsTable {
  constructor({ onSort, onFilter, onPage, onActivate, onHover, onSelectionChange, onColumns }) {
    Object.assign(this, { onSort, onFilter, onPage, onActivate, onHover, onSelectionChange, onColumns });
    this.table = $('results-table');
    this.selected = new Map(); // id -> {id, label, links, row} across pages
    this.columns = [];
    this.rows = [];
    this.links = [];
    this.known = new Map(); // every column ever seen, for the chooser
    this.activeId = null;
    this.cutoutCentre = null; // the search position: row cutouts are centred on it
    this.cutoutSize = 120; // arcsec
    this._wire();
  }

  _wire() {
    const thead = this.table.tHead;
    thead.addEventListener('click', (e) => {
      const button = e.target.closest('button[data-sort]');
      if (button) this.onSort(button.dataset.sort);
    });
    thead.addEventListener('change', (e) => {
      if (e.target.id === 'select-page') this._selectPage(e.target.checked);
    });
    thead.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && e.target.matches('input[data-filter]')) {
        e.preventDefault();
        this._applyFilters(e.target);
      }
    });
    thead.addEventListener('change', (e) => {
      if (e.target.matches('input[data-filter]')) this._applyFilters(e.target);
    });
    const tbody = this.table.tBodies[0];
    tbody.addEventListener('change', (e) => {
      if (e.target.matches('input[data-select]')) this._toggle(e.target.dataset.select, e.target.checked);
    });
    tbody.addEventListener('click', (e) => {
      if (e.target.closest('a, input, button, label')) return;
      const tr = e.target.closest('tr[data-id]');
      if (tr) this.onActivate(tr.dataset.id, 'table');
    });
    tbody.addEventListener('keydown', (e) => {
      const tr = e.target.closest('tr[data-id]');
      if (!tr || e.target !== tr) return;
      if (e.key === 'Enter') this.onActivate(tr.dataset.id, 'table');
      else if (e.key === ' ') {
        e.preventDefault();
        const box = tr.querySelector('input[data-select]');
        box.checked = !box.checked;
        this._toggle(tr.dataset.id, box.checked);
      } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        (e.key === 'ArrowDown' ? tr.nextElementSibling : tr.previousElementSibling)?.focus();
      }
    });
    tbody.addEventListener('focusin', (e) => {
      const tr = e.target.closest('tr[data-id]');
      if (tr) this.onHover(tr.dataset.id);
    });
    tbody.addEventListener('mouseover', (e) => {
      const tr = e.target.closest('tr[data-id]');
      if (tr && tr.dataset.id !== this._hovered) {
        this._hovered = tr.dataset.id;
        this.onHover(tr.dataset.id);
      }
    });
    tbody.addEventListener('mouseleave', () => {
      this._hovered = null;
      this.onHover(null);
    });
    for (const [id, delta] of [['page-first', -Infinity], ['page-prev', -1], ['page-next', 1], ['page-last', Infinity]]) {
      $(id).addEventListener('click', () => this.onPage(delta));
    }
    $('page-size').addEventListener('change', (e) => this.onPage(0, Number(e.target.value)));
    $('column-list').addEventListener('change', () => {
      const chosen = [...$('column-list').querySelectorAll('input:checked')].map((i) => i.value);
      this.onColumns(chosen);
    });
    $('clear-filters').addEventListener('click', () => this.onFilter([]));
  }

  /** Draw a page of the search answer. */
  render(answer, state) {
    this.columns = answer.columns;
    this.rows = answer.rows;
    this.links = answer.links;
    this.total = answer.total;
    for (const c of answer.columns) if (!this.known.has(c.name)) this.known.set(c.name, c);
    if (answer.available_columns) for (const c of answer.available_columns) this.known.set(c.name, c);
    this._renderHead(state);
    this._renderBody();
    this._renderPager(answer, state);
    this._renderChooser();
    $('clear-filters').disabled = !state.filters.length;
  }

  _renderHead(state) {
    const filters = new Map(state.filters.map((f) => [f.split(':')[0], f]));
    const head = this.columns.map((c) => {
      const sort = state.sort === c.name ? (state.order === 'desc' ? 'descending' : 'ascending') : 'none';
      const arrow = sort === 'ascending' ? '▲' : sort === 'descending' ? '▼' : '';
      const title = [c.description, c.unit && `unit: ${c.unit}`].filter(Boolean).join(' — ');
      return `<th scope="col" aria-sort="${sort}" title="${esc(title)}"><button type="button" data-sort="${esc(c.name)}">${esc(c.name)}${c.unit ? ` <span class="unit">[${esc(c.unit)}]</span>` : ''}<span class="arrow" aria-hidden="true">${arrow}</span></button></th>`;
    }).join('');
    const filterCells = this.columns.map((c) => {
      const value = filters.has(c.name) ? filterText(filters.get(c.name)) : '';
      return `<td><input type="text" data-filter="${esc(c.name)}" value="${esc(value)}" aria-label="Filter ${esc(c.name)}"
        placeholder="${NUMERIC.test(c.datatype) ? '> 0, = 3…' : 'contains…'}"></td>`;
    }).join('');
    this.table.tHead.innerHTML = `<tr>
        <th scope="col" class="select"><input type="checkbox" id="select-page" aria-label="Select all rows on this page"></th>
        <th scope="col" class="links-col">Links</th>${head}</tr>
      <tr class="filters"><td></td><td><span class="filter-hint" title="Type a value, or an operator (=, !=, <, <=, >, >=) and a value; press Enter">Filter:</span></td>${filterCells}</tr>`;
    const errorRow = document.createElement('tr');
    errorRow.className = 'filter-error-row';
    errorRow.hidden = true;
    errorRow.innerHTML = `<td colspan="${this.columns.length + 2}"><p id="filter-error" class="error" role="alert"></p></td>`;
    this.table.tHead.appendChild(errorRow);
  }

  _renderBody() {
    const idIndex = this.columns.findIndex((c) => c.name === 'obs_publisher_did');
    const html = this.rows.map((row, i) => {
      const link = this.links[i] || {};
      const id = link.id ?? row[idIndex];
      const label = this._label(row);
      const checked = this.selected.has(id) ? ' checked' : '';
      const active = id === this.activeId ? ' class="active"' : '';
      // the first row's first cell carries an Element Timing name: the browser records when
      // its text is painted (main.js marks the rows painted from that record)
      const timed = i === 0 ? ' elementtiming="explorer-rows"' : '';
      const cells = row.map((v, j) => `<td${j === 0 ? timed : ''}>${esc(formatCell(v, this.columns[j]))}</td>`).join('');
      return `<tr data-id="${esc(id)}" tabindex="-1"${active}>
        <td class="select"><input type="checkbox" data-select="${esc(id)}" aria-label="Select ${esc(label)}"${checked}></td>
        <td class="links">${this._linkCell(link, label)}</td>${cells}</tr>`;
    }).join('');
    this.table.tBodies[0].innerHTML = html ||
      `<tr class="empty"><td colspan="${this.columns.length + 2}">No image matches the search. Try a larger radius, another time range or more detectors.</td></tr>`;
    // rows are focusable one at a time: the first (or active) row takes Tab, arrows move
    const first = this.table.tBodies[0].querySelector('tr.active') || this.table.tBodies[0].querySelector('tr[data-id]');
    if (first) first.tabIndex = 0;
    this._syncPageBox();
  }

  _label(row) {
    const get = (name) => row[this.columns.findIndex((c) => c.name === name)];
    const obs = get('obs_id');
    const det = get('energy_bandpassname') ?? get('detector');
    return [obs, det].filter((v) => v !== undefined && v !== null).join(' ') || 'this image';
  }

  _linkCell(link, label) {
    const items = [
      link.file && `<a href="${esc(link.file)}" download title="The FITS file of ${esc(label)}">file</a>`,
      link.datalink && `<a href="${esc(link.datalink)}" target="_blank" rel="noopener" title="DataLink document of ${esc(label)}">DataLink</a>`,
      link.cutout && this.cutoutCentre &&
        `<a href="${esc(`${link.cutout}?center=${this.cutoutCentre.ra.toFixed(6)},${this.cutoutCentre.dec.toFixed(6)}&size=${this.cutoutSize}arcsec`)}" download title="Cutout of ${esc(label)}, ${this.cutoutSize} arcsec around the target">cutout</a>`,
      link.preview && `<a href="${esc(link.preview)}" target="_blank" rel="noopener" title="Preview image of ${esc(label)}">preview</a>`,
    ].filter(Boolean);
    return items.join(' ');
  }

  _renderPager(answer, state) {
    const pages = Math.max(1, Math.ceil(answer.total / state.pageSize));
    $('pager').hidden = false;
    const from = answer.total ? answer.offset + 1 : 0;
    const to = answer.offset + answer.rows.length;
    $('page-info').textContent = `Rows ${from.toLocaleString('en')}–${to.toLocaleString('en')} of ${answer.total.toLocaleString('en')} · page ${state.page + 1} of ${pages.toLocaleString('en')}`;
    $('page-first').disabled = $('page-prev').disabled = state.page <= 0;
    $('page-next').disabled = $('page-last').disabled = state.page >= pages - 1;
    $('page-size').value = String(state.pageSize);
    this.pages = pages;
    this._renderSelectionInfo();
  }

  _renderChooser() {
    const shown = new Set(this.columns.map((c) => c.name));
    $('column-list').innerHTML = [...this.known.values()].map((c) => `<label title="${esc(c.description || '')}">
        <input type="checkbox" value="${esc(c.name)}"${shown.has(c.name) ? ' checked' : ''}> ${esc(c.name)}</label>`).join('');
  }

  addKnownColumns(columns) {
    for (const c of columns) if (c.name && !this.known.has(c.name)) this.known.set(c.name, c);
    this._renderChooser();
  }

  showFilterError(message) {
    const row = this.table.tHead.querySelector('.filter-error-row');
    if (!row) return;
    row.hidden = !message;
    $('filter-error').textContent = message || '';
  }

  _applyFilters(focused) {
    const filters = [];
    try {
      for (const input of this.table.tHead.querySelectorAll('input[data-filter]')) {
        const column = this.columns.find((c) => c.name === input.dataset.filter);
        input.removeAttribute('aria-invalid');
        try {
          const f = parseFilter(column, input.value);
          if (f) filters.push(f);
        } catch (error) {
          input.setAttribute('aria-invalid', 'true');
          input.setAttribute('aria-describedby', 'filter-error');
          throw error;
        }
      }
    } catch (error) {
      this.showFilterError(error.message);
      return;
    }
    this.showFilterError('');
    this._refocus = focused?.dataset.filter;
    this.onFilter(filters);
  }

  /** After a re-render, put the focus back in the filter box the user was typing in. */
  restoreFocus() {
    if (!this._refocus) return;
    this.table.tHead.querySelector(`input[data-filter="${CSS.escape(this._refocus)}"]`)?.focus();
    this._refocus = null;
  }

  _toggle(id, on) {
    if (on) {
      const i = this.links.findIndex((l) => l.id === id);
      this.selected.set(id, { id, label: this._label(this.rows[i] || []), links: this.links[i] || { id } });
    } else {
      this.selected.delete(id);
    }
    this._syncPageBox();
    this._renderSelectionInfo();
    this.onSelectionChange(this.selected);
  }

  _selectPage(on) {
    for (const box of this.table.tBodies[0].querySelectorAll('input[data-select]')) {
      box.checked = on;
      const id = box.dataset.select;
      const i = this.links.findIndex((l) => l.id === id);
      if (on) this.selected.set(id, { id, label: this._label(this.rows[i] || []), links: this.links[i] || { id } });
      else this.selected.delete(id);
    }
    this._renderSelectionInfo();
    this.onSelectionChange(this.selected);
  }

  _syncPageBox() {
    const box = $('select-page');
    if (!box) return;
    const ids = this.links.map((l) => l.id);
    const n = ids.filter((id) => this.selected.has(id)).length;
    box.checked = ids.length > 0 && n === ids.length;
    box.indeterminate = n > 0 && n < ids.length;
  }

  _renderSelectionInfo() {
    const n = this.selected.size;
    $('selection-info').textContent = n ? `${n} selected` : '';
  }

  clearSelection() {
    this.selected.clear();
    this._renderSelectionInfo();
    this.onSelectionChange(this.selected);
  }

  /** Mark a row as the active one (from the sky view or the table) and scroll it into view. */
  setActive(id, { scroll = true } = {}) {
    this.activeId = id;
    for (const tr of this.table.tBodies[0].querySelectorAll('tr[data-id]')) {
      const on = tr.dataset.id === id;
      tr.classList.toggle('active', on);
      tr.setAttribute('aria-selected', on ? 'true' : 'false');
      if (on && scroll) tr.scrollIntoView({ block: 'nearest' });
    }
  }

  setHovered(id) {
    for (const tr of this.table.tBodies[0].querySelectorAll('tr.hovered')) tr.classList.remove('hovered');
    if (id) this.table.tBodies[0].querySelector(`tr[data-id="${CSS.escape(id)}"]`)?.classList.add('hovered');
  }

  rowInfo(id) {
    const i = this.links.findIndex((l) => l.id === id);
    if (i < 0) return null;
    const row = Object.fromEntries(this.columns.map((c, j) => [c.name, this.rows[i][j]]));
    return { id, label: this._label(this.rows[i]), links: this.links[i], row };
  }
}
