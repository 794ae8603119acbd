// Spectrum at a position: the spectrophotometry UWS job, its progress, and a small SVG plot
// (measurements and binned channels with error bars, coloured by detector) with the table and
// the job's downloads.
import { ApiError, submitJob, waitForJob, abortJob } from './api.js';
import { DETECTORS, detectorColour } from './constants.js';
import { formatDec, formatRa, formatSeconds } from './format.js';

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
export const SPECTRO_PATH = '/api/spherex/spectrophotometry/async';

/** CSV with quoted fields -> array of objects (numbers where they parse). */
export function parseCsv(text) {
  const rows = [];
  let row = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { row.push(field); field = ''; }
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field); field = '';
      if (row.length > 1 || row[0] !== '') rows.push(row);
      row = [];
    } else field += ch;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  const [head, ...body] = rows;
  return body.map((r) => Object.fromEntries(head.map((h, i) => [h, toValue(r[i])])));
}

function toValue(v) {
  if (v === undefined || v === '') return null;
  const n = Number(v);
  return Number.isFinite(n) || v === 'NaN' ? n : v;
}

/** A TABLEDATA VOTable -> {rows, infos}. */
export function parseVotable(text) {
  const doc = new DOMParser().parseFromString(text, 'application/xml');
  const byName = (n) => [...doc.getElementsByTagName('*')].filter((e) => e.localName === n);
  const fields = byName('FIELD').map((f) => f.getAttribute('name'));
  const infos = Object.fromEntries(byName('INFO').map((i) => [i.getAttribute('name'), i.getAttribute('value')]));
  const rows = byName('TR').map((tr) => {
    const cells = [...tr.children].filter((c) => c.localName === 'TD').map((td) => toValue(td.textContent));
    return Object.fromEntries(fields.map((f, i) => [f, cells[i]]));
  });
  return { rows, infos };
}

function niceTicks(lo, hi, n = 5) {
  const span = hi - lo || 1;
  const step0 = span / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9 * span; t += step) ticks.push(+t.toPrecision(12));
  return ticks;
}

/** The spectrum plot as SVG text: measurements (small, faint) and channels (large). */
export function plotSvg(measurements, channels, { width = 640, height = 320 } = {}) {
  const m = { l: 64, r: 16, t: 14, b: 42 };
  const good = (p) => Number.isFinite(p.flux) && Number.isFinite(p.wavelength);
  const pts = [...measurements.filter(good), ...channels.filter(good)];
  if (!pts.length) return '';
  const err = (p) => (Number.isFinite(p.flux_error) ? p.flux_error : 0);
  // the y range from the channels when there are some (single measurements scatter widely)
  const yPts = channels.filter(good).length ? channels.filter(good) : pts;
  let ylo = Math.min(...yPts.map((p) => p.flux - err(p)));
  let yhi = Math.max(...yPts.map((p) => p.flux + err(p)));
  const pad = (yhi - ylo || Math.abs(yhi) || 1) * 0.08;
  ylo -= pad; yhi += pad;
  const xlo = 0.7, xhi = 5.1;
  const X = (w) => m.l + ((w - xlo) / (xhi - xlo)) * (width - m.l - m.r);
  const Y = (f) => height - m.b - ((f - ylo) / (yhi - ylo)) * (height - m.t - m.b);
  const clampY = (f) => Math.max(m.t, Math.min(height - m.b, Y(f)));
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" role="img" aria-labelledby="plot-title plot-desc" class="spectrum-plot">`,
    `<title id="plot-title">Spectrum: flux density against wavelength</title>`,
    `<desc id="plot-desc">${channels.length} binned channels and ${measurements.length} measurements, coloured by detector</desc>`];
  // detector bands in the background
  for (const d of DETECTORS) {
    parts.push(`<rect x="${X(d.min)}" y="${m.t}" width="${X(d.max) - X(d.min)}" height="${height - m.t - m.b}" fill="${d.colour}" opacity="0.06"/>`);
    parts.push(`<text x="${(X(d.min) + X(d.max)) / 2}" y="${m.t + 11}" class="band-label" text-anchor="middle" fill="${d.colour}">D${d.number}</text>`);
  }
  parts.push(`<g class="axis">`);
  for (const t of niceTicks(xlo, xhi, 9)) {
    parts.push(`<line x1="${X(t)}" x2="${X(t)}" y1="${height - m.b}" y2="${height - m.b + 5}"/><text x="${X(t)}" y="${height - m.b + 17}" text-anchor="middle">${t}</text>`);
  }
  for (const t of niceTicks(ylo, yhi, 5)) {
    parts.push(`<line x1="${m.l - 5}" x2="${width - m.r}" y1="${Y(t)}" y2="${Y(t)}" class="grid"/><text x="${m.l - 8}" y="${Y(t) + 4}" text-anchor="end">${t}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${width - m.l - m.r}" height="${height - m.t - m.b}" fill="none" class="frame"/>`);
  parts.push(`<text x="${(m.l + width - m.r) / 2}" y="${height - 6}" text-anchor="middle" class="label">Wavelength (µm)</text>`);
  parts.push(`<text transform="translate(14 ${(m.t + height - m.b) / 2}) rotate(-90)" text-anchor="middle" class="label">Flux density (µJy)</text></g>`);
  const point = (p, r, cls) => {
    const c = detectorColour(p.detector);
    const x = X(p.wavelength), e = err(p);
    return `<g class="${cls}"><line x1="${x}" x2="${x}" y1="${clampY(p.flux - e)}" y2="${clampY(p.flux + e)}" stroke="${c}"/>` +
      `<circle cx="${x}" cy="${clampY(p.flux)}" r="${r}" fill="${c}"><title>${p.wavelength.toFixed(4)} µm: ${p.flux.toPrecision(4)} ± ${e.toPrecision(2)} µJy (D${p.detector})</title></circle></g>`;
  };
  for (const p of measurements.filter(good)) parts.push(point(p, 1.8, 'meas'));
  for (const p of channels.filter(good)) parts.push(point(p, 3.6, 'chan'));
  parts.push('</svg>');
  return parts.join('');
}

export class SpectrumPanel {
  constructor(panel, { status, searchFilters }) {
    this.panel = panel;
    this.status = status;
    this.searchFilters = searchFilters;
    panel.innerHTML = `<p class="placeholder">Press “Spectrum at target” in the search form, or click a position in the image viewer, to measure a spectrum there.</p>`;
  }

  async run(ra, dec, label) {
    this.controller?.abort();
    if (this.job && !['COMPLETED', 'ERROR', 'ABORTED'].includes(this.job.phase)) abortJob(this.job).catch(() => {});
    const controller = (this.controller = new AbortController());
    const started = performance.now();
    this.panel.innerHTML = `
      <div class="spectrum-head"><h3>Spectrum at ${esc(label || '')}</h3>
        <span class="meta">${ra.toFixed(5)}, ${dec.toFixed(5)} (${formatRa(ra)} ${formatDec(dec)})</span></div>
      <div class="job" aria-live="polite">
        <progress id="spectrum-progress" max="1" aria-label="Spectrum job progress"></progress>
        <span id="spectrum-phase" class="phase">Submitting…</span>
        <button type="button" id="spectrum-abort" class="quiet">Stop</button>
      </div>
      <div id="spectrum-body"></div>`;
    this.panel.dataset.state = 'running';
    const phase = this.panel.querySelector('#spectrum-phase');
    const bar = this.panel.querySelector('#spectrum-progress');
    this.panel.querySelector('#spectrum-abort').addEventListener('click', () => {
      controller.abort();
      if (this.job) abortJob(this.job).catch(() => {});
      phase.textContent = 'Stopped.';
      this.panel.dataset.state = 'stopped';
    });
    try {
      const params = { POINT: `${ra},${dec}`, ...this.searchFilters() };
      this.job = await submitJob(SPECTRO_PATH, params);
      const job = await waitForJob(this.job, (j) => {
        this.job = j;
        const elapsed = formatSeconds((performance.now() - started) / 1000);
        phase.textContent = `${j.phase.charAt(0)}${j.phase.slice(1).toLowerCase()} · ${elapsed}${j.note ? ` · ${j.note}` : ''}`;
        if (j.fraction !== null && Number.isFinite(j.fraction)) bar.value = j.fraction;
      }, { signal: controller.signal });
      if (job.phase !== 'COMPLETED') {
        throw new ApiError(job.error || `The job ended ${job.phase.toLowerCase()}.`, 0);
      }
      bar.value = 1;
      await this._show(job);
      this.panel.dataset.state = 'done';
      this.status(`Spectrum measured in ${formatSeconds((performance.now() - started) / 1000)}.`);
    } catch (error) {
      if (error.name === 'AbortError') return;
      this.panel.dataset.state = 'error';
      this.panel.querySelector('#spectrum-body').innerHTML = `<p class="error" role="alert">The spectrum could not be measured: ${esc(error.message)}</p>`;
      phase.textContent = 'Failed.';
    } finally {
      this.panel.querySelector('#spectrum-abort')?.setAttribute('hidden', '');
    }
  }

  async _show(job) {
    const body = this.panel.querySelector('#spectrum-body');
    const get = async (id) => {
      const r = job.results[id];
      if (!r) return null;
      const response = await fetch(r.href);
      if (!response.ok) throw new ApiError(`the ${id} result could not be read (${response.status})`, response.status);
      return response.text();
    };
    const [csv, spectrumXml] = await Promise.all([get('result-csv'), get('spectrum')]);
    const measurements = csv ? parseCsv(csv) : [];
    const { rows: channels, infos } = spectrumXml ? parseVotable(spectrumXml) : { rows: [], infos: {} };
    const downloads = [
      ['result', 'Measurements (VOTable)'],
      ['result-csv', 'Measurements (CSV)'],
      ['result-ecsv', 'Measurements (ECSV)'],
      ['spectrum', 'Binned spectrum (VOTable)'],
      ['spectrum-png', 'Plot (PNG)'],
    ].filter(([id]) => job.results[id])
      .map(([id, label]) => `<a href="${esc(job.results[id].href)}" download data-result="${id}">${label}</a>`).join(' ');
    if (!measurements.length) {
      body.innerHTML = `<p class="notice">No spectral image passing the search filters covers this position${infos.message ? ` (${esc(infos.message)})` : ''}.</p><p class="downloads">${downloads}</p>`;
      return;
    }
    const rows = channels.map((c) => `<tr><td>${c.channel}</td><td><span class="swatch" style="background:${detectorColour(c.detector)}"></span>D${c.detector}</td>
      <td>${c.wavelength?.toFixed(4)}</td><td>${c.flux?.toPrecision(5)}</td><td>${c.flux_error?.toPrecision(3)}</td><td>${c.n_used}</td><td>${c.n_rejected}</td></tr>`).join('');
    body.innerHTML = `
      <div class="spectrum-layout">
        <figure class="plot">${plotSvg(measurements, channels)}
          <figcaption>${measurements.length} measurements in ${new Set(measurements.map((m) => m.obs_publisher_did)).size} images (small points), ${channels.length} channels (large points); error bars are 1σ.</figcaption>
        </figure>
        <div class="spectrum-table-wrap">
          <table class="spectrum-table" aria-label="Binned spectrum">
            <thead><tr><th scope="col">Channel</th><th scope="col">Detector</th><th scope="col">λ (µm)</th><th scope="col">Flux (µJy)</th><th scope="col">Error (µJy)</th><th scope="col">Used</th><th scope="col">Rejected</th></tr></thead>
            <tbody>${rows}</tbody>
          </table>
        </div>
      </div>
      <p class="downloads">Download: ${downloads}</p>`;
  }
}
