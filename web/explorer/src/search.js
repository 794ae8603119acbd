// The search form: reading it into a plain state object, writing a state back into it (deep
// links), checking it with errors shown beside the control, and the deep-link URL format.
import { COLLECTIONS, DETECTORS, RADIUS_UNITS } from './constants.js';
import { parseTime } from './format.js';

const $ = (id) => document.getElementById(id);

export const DEFAULT_STATE = {
  mode: 'single',
  target: '',
  targets: '',
  query: 'contains',
  radius: '10',
  unit: 'arcmin',
  timeMin: '',
  timeMax: '',
  spectral: 'detector',
  detectors: [1, 2, 3, 4, 5, 6],
  wlMin: '',
  wlMax: '',
  collections: COLLECTIONS.map((c) => c.id),
  // the results view
  sort: 't_min', // the server's default order
  order: 'asc',
  page: 0,
  pageSize: 50,
  filters: [],
  columns: [],
};

export function buildForm(onChange) {
  $('detector-choice').innerHTML = DETECTORS.map(
    (d) => `<label class="detector"><input type="checkbox" name="detector" value="${d.number}" checked>
      <span class="swatch" style="background:${d.colour}" aria-hidden="true"></span>
      D${d.number} <span class="range">${d.min.toFixed(2)}–${d.max.toFixed(2)} µm</span></label>`,
  ).join('');
  $('collection-choice').innerHTML = COLLECTIONS.map(
    (c) => `<label><input type="checkbox" name="collection" value="${c.id}" checked>
      ${c.label} <code>${c.id}</code></label>`,
  ).join('');
  const form = $('search-form');
  form.addEventListener('change', () => syncVisibility());
  form.addEventListener('input', (e) => {
    clearError(e.target);
    onChange?.();
  });
  syncVisibility();
}

/** Show the controls that apply (single/multi, radius, detector/wavelength). */
export function syncVisibility() {
  const form = $('search-form');
  const multi = form.mode.value === 'multi';
  $('single-target').hidden = multi;
  $('multi-target').hidden = !multi;
  const circle = form.query.value === 'intersects';
  $('radius').disabled = !circle;
  $('radius-unit').disabled = !circle;
  const byWl = form.spectral.value === 'wavelength';
  $('detector-choice').hidden = byWl;
  $('wavelength-choice').hidden = !byWl;
}

export function readForm(previous = DEFAULT_STATE) {
  const f = $('search-form');
  const checked = (name) => [...f.querySelectorAll(`input[name=${name}]:checked`)].map((i) => i.value);
  return {
    ...previous,
    mode: f.mode.value,
    target: $('target').value.trim(),
    targets: $('targets').value,
    query: f.query.value,
    radius: $('radius').value,
    unit: $('radius-unit').value,
    timeMin: $('time-min').value.trim(),
    timeMax: $('time-max').value.trim(),
    spectral: f.spectral.value,
    detectors: checked('detector').map(Number),
    wlMin: $('wl-min').value,
    wlMax: $('wl-max').value,
    collections: checked('collection'),
  };
}

export function writeForm(s) {
  const f = $('search-form');
  f.mode.value = s.mode;
  $('target').value = s.target;
  $('targets').value = s.targets;
  f.query.value = s.query;
  $('radius').value = s.radius;
  $('radius-unit').value = s.unit;
  $('time-min').value = s.timeMin;
  $('time-max').value = s.timeMax;
  f.spectral.value = s.spectral;
  for (const box of f.querySelectorAll('input[name=detector]')) box.checked = s.detectors.includes(Number(box.value));
  $('wl-min').value = s.wlMin;
  $('wl-max').value = s.wlMax;
  for (const box of f.querySelectorAll('input[name=collection]')) box.checked = s.collections.includes(box.value);
  syncVisibility();
}

// ---------------------------------------------------------------------------------------------
// Errors beside the control: the message goes in the <p class=error> the input's
// aria-describedby names, and the input is marked aria-invalid.

export function showError(errorId, message, input) {
  const p = $(errorId);
  p.textContent = message;
  p.hidden = false;
  if (input) input.setAttribute('aria-invalid', 'true');
}

function clearError(input) {
  if (!input?.getAttribute) return;
  input.removeAttribute('aria-invalid');
  for (const id of (input.getAttribute('aria-describedby') || '').split(/\s+/)) {
    const p = id && $(id);
    if (p && p.classList.contains('error')) p.hidden = true;
  }
}

export function clearErrors() {
  for (const p of document.querySelectorAll('#search-form .error')) p.hidden = true;
  for (const i of document.querySelectorAll('#search-form [aria-invalid]')) i.removeAttribute('aria-invalid');
}

/** Checks that need no server; returns the search constraints in API units, or null after
 * showing the errors (the first invalid control gets the focus). */
export function validate(s) {
  clearErrors();
  const problems = [];
  const fail = (errorId, message, input) => {
    showError(errorId, message, input);
    problems.push(input);
  };
  if (s.mode === 'single' && !s.target) fail('target-error', 'Give a target: a name such as M31, or coordinates.', $('target'));
  if (s.mode === 'multi' && !targetLines(s.targets).length) {
    fail('targets-error', 'Give at least one object (one per line), or upload a table.', $('targets'));
  }
  let sr = 0;
  if (s.query === 'intersects') {
    const r = Number(s.radius);
    if (s.radius === '' || !Number.isFinite(r) || r <= 0) {
      fail('radius-error', 'The radius must be a number greater than zero.', $('radius'));
    } else {
      sr = r * RADIUS_UNITS[s.unit];
      if (sr > 10) fail('radius-error', `A radius of ${s.radius} ${s.unit} is larger than 10 degrees; use a smaller one.`, $('radius'));
    }
  }
  const times = {};
  for (const [key, id] of [['timeMin', 'time-min'], ['timeMax', 'time-max']]) {
    try {
      times[key] = parseTime(s[key]);
    } catch (error) {
      fail('time-error', error.message, $(id));
    }
  }
  if (times.timeMin != null && times.timeMax != null && times.timeMin > times.timeMax) {
    fail('time-error', 'The start of the time range is after its end.', $('time-min'));
  }
  let wl = {};
  if (s.spectral === 'detector') {
    if (!s.detectors.length) {
      fail('wl-error', 'Choose at least one detector.', document.querySelector('input[name=detector]'));
    }
  } else {
    const lo = s.wlMin === '' ? null : Number(s.wlMin);
    const hi = s.wlMax === '' ? null : Number(s.wlMax);
    if (lo === null && hi === null) fail('wl-error', 'Give a wavelength range in µm (SPHEREx sees 0.75–5.0 µm).', $('wl-min'));
    else if ((lo !== null && !(lo > 0)) || (hi !== null && !(hi > 0))) fail('wl-error', 'Wavelengths must be positive numbers in µm.', $('wl-min'));
    else if (lo !== null && hi !== null && lo > hi) fail('wl-error', 'The shortest wavelength is greater than the longest.', $('wl-min'));
    else if ((lo ?? 0) > 5.02 || (hi ?? 5) < 0.73) fail('wl-error', 'SPHEREx sees 0.75–5.0 µm: this range lies outside it.', $('wl-min'));
    wl = { wl_min: lo ?? undefined, wl_max: hi ?? undefined };
  }
  if (!s.collections.length) fail('collection-error', 'Choose at least one collection.', document.querySelector('input[name=collection]'));
  if (problems.length) {
    problems[0]?.focus();
    return null;
  }
  return {
    sr,
    query: s.query,
    time_min: times.timeMin ?? undefined,
    time_max: times.timeMax ?? undefined,
    detector: s.spectral === 'detector' && s.detectors.length < 6 ? s.detectors : undefined,
    ...wl,
    collection: s.collections.length < COLLECTIONS.length ? s.collections : undefined,
  };
}

/** Lines of the multi-object box: names or "ra, dec"; a CSV header naming ra/dec or name is
 * understood and skipped. Returns strings the resolver reads. */
export function targetLines(text) {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (!lines.length) return [];
  const header = lines[0].toLowerCase().split(/[,;\t|]/).map((h) => h.trim().replace(/^"|"$/g, ''));
  const ra = header.findIndex((h) => /^(ra|ra_deg|raj2000|s_ra)$/.test(h));
  const dec = header.findIndex((h) => /^(dec|dec_deg|dej2000|decj2000|s_dec)$/.test(h));
  const name = header.findIndex((h) => /^(name|target|object|id|source_id)$/.test(h));
  if (ra >= 0 && dec >= 0) {
    return lines.slice(1).map((l) => {
      const cells = l.split(/[,;\t|]/).map((c) => c.trim().replace(/^"|"$/g, ''));
      return `${cells[ra]} ${cells[dec]}`;
    });
  }
  if (name >= 0 && header.length > 0) {
    return lines.slice(1).map((l) => l.split(/[,;\t|]/)[name].trim().replace(/^"|"$/g, ''));
  }
  // one target per line; "ra, dec" in degrees is read by the resolver as coordinates
  return lines.map((l) => l.replace(/[;\t|]/g, ' '));
}

// ---------------------------------------------------------------------------------------------
// The deep link: every parameter in the query string. IRSA's
// ?api=spectral-images&ra=..&dec=..&sr=30m&execute=true is read too.

export function toUrl(s) {
  const q = new URLSearchParams();
  if (s.mode === 'multi') for (const t of targetLines(s.targets)) q.append('target', t);
  else if (s.target) q.set('target', s.target);
  if (s.mode === 'multi') q.set('multi', '1');
  q.set('query', s.query);
  if (s.query === 'intersects') {
    q.set('radius', s.radius);
    q.set('unit', s.unit);
  }
  if (s.timeMin) q.set('time_min', s.timeMin);
  if (s.timeMax) q.set('time_max', s.timeMax);
  if (s.spectral === 'wavelength') {
    if (s.wlMin) q.set('wl_min', s.wlMin);
    if (s.wlMax) q.set('wl_max', s.wlMax);
  } else if (s.detectors.length < 6) {
    for (const d of s.detectors) q.append('detector', d);
  }
  if (s.collections.length < COLLECTIONS.length) for (const c of s.collections) q.append('collection', c);
  if (s.sort && (s.sort !== DEFAULT_STATE.sort || s.order !== DEFAULT_STATE.order)) {
    q.set('sort', s.sort);
    q.set('order', s.order);
  }
  if (s.page) q.set('page', s.page + 1);
  if (s.pageSize !== DEFAULT_STATE.pageSize) q.set('size', s.pageSize);
  for (const f of s.filters) q.append('filter', f);
  if (s.columns.length) q.set('columns', s.columns.join(','));
  q.set('execute', 'true');
  return `?${q}`;
}

/** The state a URL describes, and whether it asks to run the search at once. */
export function fromUrl(search) {
  const q = new URLSearchParams(search);
  const s = structuredClone(DEFAULT_STATE);
  if (![...q.keys()].length) return { state: s, execute: false };
  const targets = q.getAll('target');
  if (q.get('api') === 'spectral-images' || (q.has('ra') && q.has('dec'))) {
    // IRSA: ra, dec in degrees; sr with an optional unit suffix (s, m, d; default degrees)
    s.target = `${q.get('ra') ?? ''} ${q.get('dec') ?? ''}`.trim();
    const sr = /^\s*([\d.]+)\s*(s|sec|arcsec|"|m|min|arcmin|'|d|deg)?\s*$/i.exec(q.get('sr') || '');
    if (sr && Number(sr[1]) > 0) {
      s.query = 'intersects';
      s.radius = sr[1];
      const unit = (sr[2] || 'd').toLowerCase();
      s.unit = /^(s|sec|arcsec|")$/.test(unit) ? 'arcsec' : /^(m|min|arcmin|')$/.test(unit) ? 'arcmin' : 'deg';
    }
  } else if (targets.length > 1 || q.get('multi') === '1') {
    s.mode = 'multi';
    s.targets = targets.join('\n');
  } else {
    s.target = targets[0] || '';
  }
  if (q.get('query') === 'intersects' || q.get('query') === 'contains') s.query = q.get('query');
  if (q.has('radius')) s.radius = q.get('radius');
  if (q.get('unit') in RADIUS_UNITS) s.unit = q.get('unit');
  s.timeMin = q.get('time_min') || '';
  s.timeMax = q.get('time_max') || '';
  const detectors = q.getAll('detector').map(Number).filter((d) => d >= 1 && d <= 6);
  if (detectors.length) s.detectors = detectors;
  if (q.has('wl_min') || q.has('wl_max')) {
    s.spectral = 'wavelength';
    s.wlMin = q.get('wl_min') || '';
    s.wlMax = q.get('wl_max') || '';
  }
  const collections = q.getAll('collection').filter((c) => COLLECTIONS.some((k) => k.id === c));
  if (collections.length) s.collections = collections;
  if (q.has('sort')) {
    s.sort = q.get('sort');
    s.order = q.get('order') === 'desc' ? 'desc' : 'asc';
  }
  s.page = Math.max(0, (Number(q.get('page')) || 1) - 1);
  s.pageSize = Number(q.get('size')) || DEFAULT_STATE.pageSize;
  s.filters = q.getAll('filter');
  s.columns = (q.get('columns') || '').split(',').filter(Boolean);
  return { state: s, execute: q.get('execute') === 'true' };
}
