// The SPHEREx Data Explorer: wires the search form, the results table, the sky view, the image
// viewer, the spectrum and the downloads to the archive's API.
import './style.css';
import { ApiError, ROOT, apiUrl, getBytes, getJson } from './api.js';
import { COLLECTIONS } from './constants.js';
import { formatPosition, parseTime } from './format.js';
import { ResultsTable } from './results.js';
import { parseCsv } from './spectrum.js';
import {
  DEFAULT_STATE, buildForm, clearErrors, fromUrl, readForm, showError, targetLines, toUrl, validate, writeForm,
} from './search.js';
import { SkyView } from './sky.js';
import { decodeFootprints } from './footprints.js';
import { ImageViewer } from './viewer.js';
import { SpectrumPanel } from './spectrum.js';
import { DownloadPanel } from './download.js';

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

let state = structuredClone(DEFAULT_STATE);
let constraints = null; // the validated search constraints (API units)
let positions = []; // resolved targets [{name, ra, dec, resolver}]
let searchController = null;
const resolved = new Map(); // text -> position, so paging never asks again

/** The `explorer:rows-painted` mark of a page: when the browser painted its first row's text,
 * from its Element Timing record where the browser keeps such records; otherwise (or for a
 * page with no rows, or if no record comes) two frames after the rows went into the table,
 * when the first frame after them has been painted, which counts up to a frame more. */
const rowsPainted = (() => {
  const timed = PerformanceObserver.supportedEntryTypes?.includes('element');
  let waiting = false;
  let since = 0;
  let page = 0; // which page a pending fallback belongs to
  const mark = (startTime) => {
    waiting = false;
    performance.mark('explorer:rows-painted', { startTime });
  };
  if (timed) {
    new PerformanceObserver((list) => {
      // a record of an earlier page's row can come late: only a paint after these rows counts
      const painted = list.getEntries()
        .filter((e) => e.identifier === 'explorer-rows' && e.renderTime >= since)
        .map((e) => e.renderTime);
      if (painted.length && waiting) mark(Math.min(...painted));
    }).observe({ type: 'element' });
  }
  return {
    /** The page's rows are in the table. */
    expect(hasRows) {
      waiting = Boolean(timed && hasRows);
      since = performance.now();
      page += 1;
    },
    /** Two frames later (also marked as such: the benchmark reports both). */
    framesLater() {
      const now = performance.now();
      performance.mark('explorer:rows-two-frames', { startTime: now });
      if (!timed || !waiting) {
        if (!timed || performance.getEntriesByName('explorer:rows-painted').length === 0) mark(now);
        return;
      }
      const mine = page;
      setTimeout(() => waiting && page === mine && mark(now), 1000);
    },
  };
})();

/** Put the search in the address (a deep link). Only when it changed: a history call costs a
 * round trip to the browser, tens of milliseconds on a busy machine. */
function rememberUrl() {
  const url = toUrl(state);
  if (url !== window.location.search) history.replaceState(null, '', url);
}

function status(message, isError = false) {
  const p = $('status');
  p.textContent = message;
  p.classList.toggle('is-error', isError);
}

// ---------------------------------------------------------------------------------------------
// Tabs of the workspace (Image viewer, Spectrum, Download): WAI-ARIA tabs with arrow keys.

function selectTab(name, focus = false) {
  for (const tab of document.querySelectorAll('.workspace > [role=tablist] [role=tab]')) {
    const on = tab.id === `tab-${name}`;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    $(tab.getAttribute('aria-controls')).hidden = !on;
    if (on && focus) tab.focus();
  }
}

function wireTabs() {
  const list = document.querySelector('.workspace > [role=tablist]');
  const names = ['image', 'spectrum', 'download'];
  list.addEventListener('click', (e) => {
    const tab = e.target.closest('[role=tab]');
    if (tab) selectTab(tab.id.slice(4));
  });
  list.addEventListener('keydown', (e) => {
    const i = names.indexOf(document.activeElement.id.slice(4));
    if (e.key === 'ArrowRight') selectTab(names[(i + 1) % 3], true);
    else if (e.key === 'ArrowLeft') selectTab(names[(i + 2) % 3], true);
  });
}

// ---------------------------------------------------------------------------------------------
// Targets: plain decimal coordinates are read here (no round trip); anything else goes to the
// archive's resolver (built-in names, sexagesimal, Sesame when the server allows it).

const DECIMAL_PAIR = /^\s*(\d+(?:\.\d*)?)\s*[,\s]\s*([+-]?\d+(?:\.\d*)?)\s*$/;

async function resolve(text, signal) {
  if (resolved.has(text)) return resolved.get(text);
  const m = DECIMAL_PAIR.exec(text);
  let position;
  if (m && +m[1] <= 360 && Math.abs(+m[2]) <= 90) {
    position = { name: text, ra: +m[1] % 360, dec: +m[2], resolver: 'coordinates' };
  } else {
    position = await getJson(apiUrl('resolve', { name: text }), { signal });
  }
  resolved.set(text, position);
  return position;
}

async function resolveTargets(s, signal) {
  if (s.mode === 'single') {
    try {
      const p = await resolve(s.target, signal);
      const line = $('target-resolved');
      line.textContent = `${p.name} → ${formatPosition(p.ra, p.dec)}${p.resolver && p.resolver !== 'coordinates' ? ` (${p.resolver})` : ''}`;
      line.hidden = false;
      return [p];
    } catch (error) {
      if (error.name === 'AbortError') throw error;
      $('target-resolved').hidden = true;
      showError('target-error', describeResolveError(s.target, error), $('target'));
      $('target').focus();
      return null;
    }
  }
  const lines = targetLines(s.targets);
  if (lines.length > 1000) {
    showError('targets-error', `${lines.length} objects: at most 1000 at a time.`, $('targets'));
    return null;
  }
  const out = [];
  const failed = [];
  // a few at a time: the built-in table answers at once, Sesame may take a second each
  for (let i = 0; i < lines.length; i += 8) {
    const batch = lines.slice(i, i + 8);
    const answers = await Promise.allSettled(batch.map((t) => resolve(t, signal)));
    answers.forEach((a, k) => (a.status === 'fulfilled' ? out.push(a.value) : failed.push(`${batch[k]}: ${describeResolveError(batch[k], a.reason)}`)));
  }
  if (failed.length) {
    showError('targets-error', `Could not read ${failed.length} of ${lines.length} objects — ${failed.slice(0, 3).join('; ')}${failed.length > 3 ? '; …' : ''}`, $('targets'));
    if (!out.length) return null;
  }
  return out;
}

function describeResolveError(text, error) {
  if (error instanceof ApiError) {
    if (error.status === 404) return `No object called “${text}” is known: ${error.message}. Check the spelling, or give coordinates such as 10.68 +41.27.`;
    if (error.status === 503) return `The name service is not reachable from the archive (${error.message}). Give coordinates instead, or a name from the built-in list.`;
    return error.message;
  }
  return String(error.message || error);
}

// ---------------------------------------------------------------------------------------------
// The search

function searchParams() {
  const p = { ...constraints };
  if (positions.length === 1) {
    p.ra = positions[0].ra;
    p.dec = positions[0].dec;
  } else {
    p.target = positions.map((t) => `${t.ra},${t.dec}`);
  }
  return p;
}

/** The table's columns unless the user chose others: the detector and time first, the long
 * dataset id last. */
const DEFAULT_COLUMNS = [
  'obs_id', 'energy_bandpassname', 'obs_collection', 't_min', 't_exptime', 'em_min', 'em_max',
  's_ra', 's_dec', 'access_estsize', 'obs_publisher_did',
];

function pageParams() {
  return {
    sort: state.sort || undefined,
    order: state.sort ? state.order : undefined,
    offset: state.page * state.pageSize,
    limit: state.pageSize,
    filter: state.filters,
    columns: (state.columns.length ? state.columns : DEFAULT_COLUMNS).join(','),
  };
}

/** From the form: validate, resolve, then fetch the first page and the footprints. */
async function runSearch() {
  performance.clearMarks();
  performance.mark('explorer:search-start');
  const s = readForm(state);
  const checked = validate(s);
  if (!checked) {
    status('The search was not run: see the messages in the form.', true);
    return;
  }
  searchController?.abort();
  const controller = (searchController = new AbortController());
  document.body.dataset.search = 'running';
  status('Searching…');
  $('search-button').disabled = true;
  try {
    const found = await resolveTargets(s, controller.signal);
    if (!found) {
      document.body.dataset.search = 'error';
      status('The search was not run: the target could not be found.', true);
      return;
    }
    state = { ...s, page: 0, filters: [], sort: s.sort };
    constraints = checked;
    positions = found;
    table.clearSelection();
    // the previous answer's footprints go at once: the sky view draws nothing stale, and
    // its frames stay cheap while the rows are painted
    sky.clearFootprints();
    rememberUrl();
    // rows first: the footprints (up to 20 000 polygons) are fetched once the table is painted,
    // so drawing never delays the rows; the server reads them from the moment it answered the
    // page (prefetch), not from when they are asked for
    const footprints = loadFootprints(controller.signal, loadPage(controller.signal, { footprints: true }));
    await footprints;
  } catch (error) {
    if (error.name !== 'AbortError') {
      document.body.dataset.search = 'error';
      status(error.message, true);
    }
  } finally {
    $('search-button').disabled = false;
  }
}

/** One page of rows (paging, sorting, filtering and columns are all the server's job). With
 * `footprints`, the server starts reading the whole answer's footprints as it answers, for
 * loadFootprints to find them ready. */
async function loadPage(signal = searchController?.signal, { footprints = false } = {}) {
  const t0 = performance.now();
  $('results-table').setAttribute('aria-busy', 'true');
  let answer;
  try {
    const prefetch = footprints ? 'footprints' : undefined;
    answer = await getJson(apiUrl('search', { ...searchParams(), ...pageParams(), prefetch }), { signal });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    $('results-table').removeAttribute('aria-busy');
    if (state.filters.length && error.status === 400) {
      table.showFilterError(`The filter was not accepted: ${error.message}`);
      return;
    }
    document.body.dataset.search = 'error';
    status(`The search failed: ${error.message}`, true);
    $('results-summary').textContent = `The search failed: ${error.message}`;
    return;
  }
  table.cutoutCentre = positions.length === 1 ? positions[0] : null;
  table.render(answer, state);
  table.restoreFocus();
  $('results-table').removeAttribute('aria-busy');
  const where = positions.length === 1 ? positions[0].name : `${positions.length} objects`;
  const how = constraints.query === 'intersects' ? `within ${state.radius} ${state.unit} of` : 'containing';
  $('results-summary').textContent = `${answer.total.toLocaleString('en')} image${answer.total === 1 ? '' : 's'} ${how} ${where}` +
    ` · ${answer.elapsed_ms != null ? `${Math.round(answer.elapsed_ms)} ms on the server, ` : ''}${Math.round(performance.now() - t0)} ms in all`;
  rememberUrl(); // a new search's address is already there: nothing to do
  rowsPainted.expect(answer.rows.length > 0);
  requestAnimationFrame(() => requestAnimationFrame(() => {
    rowsPainted.framesLater();
    document.body.dataset.search = 'done';
    // the rows' own footprints, after the rows: the sky view may still be loading Aladin
    if (answer.footprints) sky.showPage(answer.links.map((l) => l.id), answer.footprints.detectors, answer.footprints.polygons);
  }));
  status(`${answer.total.toLocaleString('en')} image${answer.total === 1 ? '' : 's'} found.`);
  if (answer.query?.adql) $('results-table').dataset.adql = answer.query.adql;
}

async function loadFootprints(signal, after = Promise.resolve()) {
  const p = searchParams();
  try {
    await after;
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    sky.showTargets(positions, constraints.sr);
    sky.showCoverage(state.collections);
    // one binary block mapped onto typed arrays: nothing to parse but the ids
    const fp = decodeFootprints(await getBytes(apiUrl('footprints', { ...p, filter: state.filters, format: 'binary' }), { signal }));
    await sky.showFootprints(fp);
    performance.mark('explorer:footprints-drawn');
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    $('sky-note').textContent = `Footprints could not be drawn: ${error.message}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Spectrum constraints from the search form (TIME, BAND, COLLECTION as SIA reads them)

function spectrumFilters() {
  const s = readForm(state);
  const p = {};
  try {
    const lo = parseTime(s.timeMin), hi = parseTime(s.timeMax);
    if (lo != null || hi != null) p.TIME = `${lo ?? '-Inf'} ${hi ?? '+Inf'}`;
  } catch {
    // a bad time is reported by the search itself
  }
  if (s.spectral === 'wavelength' && (s.wlMin || s.wlMax)) {
    p.BAND = `${s.wlMin ? Number(s.wlMin) * 1e-6 : '-Inf'} ${s.wlMax ? Number(s.wlMax) * 1e-6 : '+Inf'}`;
  }
  if (s.collections.length && s.collections.length < COLLECTIONS.length) p.COLLECTION = s.collections;
  return p;
}

async function spectrumAtTarget() {
  const s = readForm(state);
  clearErrors();
  if (s.mode !== 'single' || !s.target) {
    showError('target-error', 'Give one target (name or coordinates) to measure its spectrum.', $('target'));
    $('target').focus();
    return;
  }
  const found = await resolveTargets(s);
  if (!found) return;
  selectTab('spectrum');
  spectrum.run(found[0].ra, found[0].dec, found[0].name);
}

// ---------------------------------------------------------------------------------------------
// Wiring

const table = new ResultsTable({
  onSort(column) {
    if (state.sort === column) state.order = state.order === 'asc' ? 'desc' : 'asc';
    else Object.assign(state, { sort: column, order: 'asc' });
    state.page = 0;
    loadPage().then(() => $('results-table').querySelector(`button[data-sort="${CSS.escape(column)}"]`)?.focus());
  },
  onFilter(filters) {
    state.filters = filters;
    state.page = 0;
    sky.clearFootprints();
    // the footprints after the page, whose search keeps the order and count they reuse
    loadFootprints(searchController?.signal, loadPage(undefined, { footprints: true })).catch(() => {});
  },
  onPage(delta, size) {
    if (size) {
      state.pageSize = size;
      state.page = 0;
    } else if (delta === -Infinity) state.page = 0;
    else if (delta === Infinity) state.page = table.pages - 1;
    else state.page = Math.max(0, Math.min(table.pages - 1, state.page + delta));
    loadPage();
  },
  onActivate(id, from) {
    table.setActive(id, { scroll: from !== 'table' });
    const info = table.rowInfo(id);
    selectTab('image');
    viewer.open(id, info?.label);
    sky.select(id, { centre: from === 'table' });
  },
  onHover(id) {
    sky.highlight(id);
  },
  onSelectionChange(selected) {
    downloads.update(selected);
  },
  onColumns(columns) {
    state.columns = columns;
    if (positions.length) loadPage();
  },
});

const sky = new SkyView($('sky'), {
  onClickFootprint(id) {
    table.setActive(id);
    sky.select(id, { centre: false });
    const info = table.rowInfo(id);
    if (info) {
      selectTab('image');
      viewer.open(id, info.label);
    } else {
      status('That footprint is on another page of the results: sort or filter to bring it here.');
    }
  },
  onHoverFootprint(id) {
    table.setHovered(id);
  },
});

const viewer = new ImageViewer($('panel-image'), {
  status,
  onSpectrumAt(ra, dec, label) {
    selectTab('spectrum');
    spectrum.run(ra, dec, label);
  },
});
const spectrum = new SpectrumPanel($('panel-spectrum'), { status, searchFilters: spectrumFilters });
const downloads = new DownloadPanel($('panel-download'), { status });

async function loadNames() {
  try {
    const names = await getJson(apiUrl('names'));
    const list = Array.isArray(names) ? names : names.names || [];
    $('target-names').innerHTML = list.flatMap((n) => (typeof n === 'string' ? [n] : [n.name, ...(n.aliases || [])]))
      .map((n) => `<option value="${esc(n)}"></option>`).join('');
  } catch {
    // autocomplete is a convenience; typing a name still works
  }
}

/** Every column of spherex.obscore for the column chooser, from TAP_SCHEMA (once). */
let columnsLoaded = false;
async function loadAllColumns() {
  if (columnsLoaded) return;
  columnsLoaded = true;
  const body = new URLSearchParams({
    LANG: 'ADQL',
    FORMAT: 'csv',
    QUERY: "SELECT column_name, datatype, unit, description FROM TAP_SCHEMA.columns WHERE table_name = 'spherex.obscore' ORDER BY column_index",
  });
  try {
    const response = await fetch(`${ROOT}/TAP/sync`, { method: 'POST', body });
    if (!response.ok) throw new Error(String(response.status));
    const rows = parseCsv(await response.text());
    table.addKnownColumns(rows.map((r) => ({ name: r.column_name, datatype: r.datatype, unit: r.unit, description: r.description })));
  } catch {
    columnsLoaded = false; // the chooser still lists the columns shown
  }
}

async function readUpload(file) {
  if (file.size > 5e6) {
    showError('targets-error', 'The file is larger than 5 MB: upload at most 1000 objects.', $('targets-file'));
    return;
  }
  $('targets').value = await file.text();
  $('targets').dispatchEvent(new Event('input', { bubbles: true }));
}

function init() {
  $('home-link').href = `${ROOT}/`;
  buildForm();
  wireTabs();
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    runSearch();
  });
  $('spectrum-at-target').addEventListener('click', spectrumAtTarget);
  $('reset-button').addEventListener('click', () => {
    state = structuredClone(DEFAULT_STATE);
    writeForm(state);
    clearErrors();
    $('target-resolved').hidden = true;
    history.replaceState(null, '', window.location.pathname);
    $('target').focus();
  });
  $('targets-file').addEventListener('change', (e) => e.target.files[0] && readUpload(e.target.files[0]));
  // the search position is the default cutout centre
  const showCentre = () => positions.length && downloads.setCentre(positions[0]);
  $('tab-download').addEventListener('click', showCentre);
  new MutationObserver(showCentre).observe(document.body, { attributes: true, attributeFilter: ['data-search'] });
  loadNames();
  $('column-chooser').addEventListener('toggle', (e) => e.target.open && loadAllColumns());
  const { state: fromLink, execute } = fromUrl(window.location.search);
  state = fromLink;
  writeForm(state);
  if (execute) {
    const { sort, order, page, pageSize, filters, columns } = fromLink;
    runSearch().then(() => {
      // a deep link may carry a page, a sort and filters beyond the first page
      if (sort !== DEFAULT_STATE.sort || order !== DEFAULT_STATE.order || page || filters.length || columns.length || pageSize !== DEFAULT_STATE.pageSize) {
        Object.assign(state, { sort, order, page, pageSize, filters, columns });
        if (positions.length) loadPage();
      }
    });
  } else {
    // start the sky view while the user types: Aladin is ready by the first search
    sky.load().then(() => sky.showCoverage(state.collections));
  }
  document.body.dataset.ready = 'true';
}

init();
