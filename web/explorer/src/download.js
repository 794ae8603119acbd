// Downloads of the selected rows: the files themselves, cutouts of a chosen size (one bulk SODA
// async job, progress shown, a link to the FITS result) or a wget/curl script.
import { ApiError, apiUrl, submitJob, waitForJob } from './api.js';
import { formatBytes, formatSeconds } from './format.js';

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

export class DownloadPanel {
  constructor(panel, { status, centre }) {
    this.panel = panel;
    this.status = status;
    this.centre = centre; // () => {ra, dec} of the search, or null
    this.selected = new Map();
    panel.innerHTML = `
      <div class="download-grid">
        <section aria-labelledby="dl-sel-title">
          <h3 id="dl-sel-title">Selected images</h3>
          <p id="dl-count" class="summary" aria-live="polite">Nothing selected: tick rows in the results table.</p>
          <ul id="dl-list" class="dl-list"></ul>
          <button type="button" id="dl-files" disabled>Download the files</button>
          <p class="help">Browsers may ask once before saving several files; for many files the script below is easier.</p>
        </section>
        <section aria-labelledby="dl-cut-title">
          <h3 id="dl-cut-title">Cutouts</h3>
          <div class="row"><label for="cut-size">Size</label>
            <input id="cut-size" type="number" min="6" step="any" value="120" aria-describedby="cut-error">
            <span>arcsec</span></div>
          <div class="row"><label for="cut-ra">Centre RA</label><input id="cut-ra" type="text" inputmode="decimal" aria-describedby="cut-error"><span>deg</span></div>
          <div class="row"><label for="cut-dec">Centre Dec</label><input id="cut-dec" type="text" inputmode="decimal" aria-describedby="cut-error"><span>deg</span></div>
          <p id="cut-error" class="error" role="alert" hidden></p>
          <button type="button" id="dl-cutouts" disabled>Make cutouts</button>
          <div id="cut-job" class="job" aria-live="polite" hidden>
            <progress id="cut-progress" max="1" aria-label="Cutout job progress"></progress>
            <span id="cut-phase" class="phase"></span>
          </div>
          <p id="cut-result" class="downloads"></p>
        </section>
        <section aria-labelledby="dl-script-title">
          <h3 id="dl-script-title">Script</h3>
          <fieldset class="inline"><legend class="visually-hidden">Script kind</legend>
            <label><input type="radio" name="script-kind" value="wget" checked> wget</label>
            <label><input type="radio" name="script-kind" value="curl"> curl</label>
          </fieldset>
          <label><input type="checkbox" id="script-cutouts"> Cutouts of the size and centre above instead of whole files</label>
          <p><a id="dl-script" class="button disabled" aria-disabled="true" download>Download the script</a></p>
          <p class="help">Run it with <code>sh</code> where the files should go.</p>
        </section>
      </div>`;
    this.$ = (id) => panel.querySelector(`#${id}`);
    this.$('dl-files').addEventListener('click', () => this._files());
    this.$('dl-cutouts').addEventListener('click', () => this._cutouts());
    panel.addEventListener('change', () => this._scriptLink());
    panel.addEventListener('input', () => this._scriptLink());
  }

  /** The search position is the default cutout centre. */
  setCentre(pos) {
    if (!pos) return;
    this.$('cut-ra').value = pos.ra.toFixed(6);
    this.$('cut-dec').value = pos.dec.toFixed(6);
    this._scriptLink();
  }

  update(selected) {
    this.selected = selected;
    const n = selected.size;
    this.$('dl-count').textContent = n ? `${n} image${n === 1 ? '' : 's'} selected.` : 'Nothing selected: tick rows in the results table.';
    const items = [...selected.values()];
    this.$('dl-list').innerHTML = items.slice(0, 200).map((s) => `<li>${s.links?.file ? `<a href="${esc(s.links.file)}" download>${esc(s.label)}</a>` : esc(s.label)}</li>`).join('') +
      (items.length > 200 ? `<li>… and ${items.length - 200} more</li>` : '');
    this.$('dl-files').disabled = !n;
    this.$('dl-cutouts').disabled = !n;
    this._scriptLink();
  }

  _ids() {
    return [...this.selected.keys()];
  }

  _files() {
    // one anchor click per file; the browser saves each under the server's name
    const files = [...this.selected.values()].map((s) => s.links?.file).filter(Boolean);
    files.forEach((href, i) => setTimeout(() => {
      const a = document.createElement('a');
      a.href = href;
      a.download = '';
      document.body.appendChild(a);
      a.click();
      a.remove();
    }, i * 300));
    this.status(`Downloading ${files.length} file${files.length === 1 ? '' : 's'}…`);
  }

  /** Size (arcsec) and centre from the inputs, or null after showing what is wrong. */
  _cutoutRegion() {
    const err = this.$('cut-error');
    err.hidden = true;
    for (const id of ['cut-size', 'cut-ra', 'cut-dec']) this.$(id).removeAttribute('aria-invalid');
    const size = Number(this.$('cut-size').value);
    const ra = Number(this.$('cut-ra').value);
    const dec = Number(this.$('cut-dec').value);
    const fail = (id, message) => {
      err.textContent = message;
      err.hidden = false;
      this.$(id).setAttribute('aria-invalid', 'true');
      this.$(id).focus();
      return null;
    };
    if (!(size > 0)) return fail('cut-size', 'The cutout size must be a number of arcseconds greater than zero.');
    if (size > 3600) return fail('cut-size', 'Cutouts are at most 3600 arcsec (1 degree) across.');
    if (this.$('cut-ra').value === '' || !(ra >= 0 && ra < 360)) return fail('cut-ra', 'Give the centre RA in degrees, 0 to 360 (the search position is filled in for you).');
    if (this.$('cut-dec').value === '' || !(dec >= -90 && dec <= 90)) return fail('cut-dec', 'Give the centre Dec in degrees, −90 to +90.');
    return { size, ra, dec };
  }

  async _cutouts() {
    const region = this._cutoutRegion();
    if (!region) return;
    const ids = this._ids();
    const box = this.$('cut-job');
    const phase = this.$('cut-phase');
    const bar = this.$('cut-progress');
    const result = this.$('cut-result');
    box.hidden = false;
    bar.removeAttribute('value');
    result.innerHTML = '';
    phase.textContent = 'Submitting…';
    this.panel.dataset.cutouts = 'running';
    const started = performance.now();
    try {
      const r = region.size / 2 / 3600;
      let job = await submitJob('/soda/async', { ID: ids, CIRCLE: `${region.ra} ${region.dec} ${r}` });
      this.job = job;
      job = await waitForJob(job, (j) => {
        phase.textContent = `${j.phase.charAt(0)}${j.phase.slice(1).toLowerCase()} · ${formatSeconds((performance.now() - started) / 1000)}${j.note ? ` · ${j.note}` : ''}`;
        if (j.fraction !== null && Number.isFinite(j.fraction)) bar.value = j.fraction;
      });
      if (job.phase !== 'COMPLETED') throw new ApiError(job.error || `the job ended ${job.phase.toLowerCase()}`, 0);
      bar.value = 1;
      const links = Object.entries(job.results).map(([id, r]) => {
        const label = id === 'cutouts' ? `Cutouts (FITS, ${formatBytes(r.size)})` : id === 'toc' ? 'Table of contents (VOTable)' : id;
        return `<a href="${esc(r.href)}" download data-result="${esc(id)}">${esc(label)}</a>`;
      });
      result.innerHTML = links.length ? `Ready: ${links.join(' ')}` : 'The job finished without a result.';
      this.panel.dataset.cutouts = 'done';
      this.status(`${ids.length} cutout${ids.length === 1 ? '' : 's'} ready.`);
    } catch (error) {
      this.panel.dataset.cutouts = 'error';
      phase.textContent = 'Failed.';
      result.innerHTML = `<span class="error" role="alert">The cutouts could not be made: ${esc(error.message)}</span>`;
    }
  }

  _scriptLink() {
    const a = this.$('dl-script');
    const ids = this._ids();
    const kind = this.panel.querySelector('input[name=script-kind]:checked').value;
    const params = { kind, id: ids };
    if (this.$('script-cutouts').checked) {
      const size = Number(this.$('cut-size').value);
      const ra = this.$('cut-ra').value, dec = this.$('cut-dec').value;
      if (size > 0 && ra !== '' && dec !== '') Object.assign(params, { size, ra, dec });
    }
    const on = ids.length > 0;
    a.classList.toggle('disabled', !on);
    a.setAttribute('aria-disabled', String(!on));
    if (on) a.href = apiUrl('script', params);
    else a.removeAttribute('href');
  }
}

