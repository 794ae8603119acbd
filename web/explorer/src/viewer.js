// The image viewer: the server renders each HDU as a PNG (FITS orientation: PNG row 0 is the
// top, i.e. FITS row NAXIS2); we draw it on a canvas with our own zoom and pan, put the FLAGS
// mask over IMAGE, and read pixel values, RA/Dec and wavelength under the cursor from
// image/pixel (one request in flight at a time, the latest position wins).
import { apiUrl, getJson } from './api.js';
import { formatDec, formatRa } from './format.js';

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const PLANES = ['IMAGE', 'FLAGS', 'VARIANCE', 'ZODI', 'PSF'];
const HINTS = {
  IMAGE: 'Surface brightness',
  FLAGS: 'Flagged pixels over the image; the legend names each bit',
  VARIANCE: 'Variance of each pixel',
  ZODI: 'Zodiacal light model (not subtracted)',
  PSF: 'PSF of each zone of the detector (no sky coordinates)',
};

export class ImageViewer {
  constructor(panel, { onSpectrumAt, status }) {
    this.panel = panel;
    this.onSpectrumAt = onSpectrumAt;
    this.status = status;
    this.hdu = 'IMAGE';
    this.stretch = 'zscale';
    this.view = { scale: 1, x: 0, y: 0 };
    this.cursor = null; // image pixel (0-based PNG coordinates) under the crosshair
    this.images = {};
    panel.innerHTML = `<p class="placeholder">Choose a row of the results (click it, or press Enter on it) to look at its image here.</p>`;
  }

  async open(id, label) {
    this.id = id;
    this.label = label;
    this.panel.innerHTML = `<p class="placeholder" aria-busy="true">Loading ${esc(label || id)}…</p>`;
    try {
      this.info = await getJson(apiUrl('image/info', { id }));
    } catch (error) {
      this.panel.innerHTML = `<p class="error" role="alert">Could not open ${esc(label || id)}: ${esc(error.message)}</p>`;
      return;
    }
    if (this.id !== id) return;
    this.images = {};
    this.hdu = 'IMAGE';
    this._build();
    await this._load();
    this.fit();
  }

  _build() {
    const info = this.info;
    const planes = PLANES.filter((p) => !info.hdus || info.hdus.includes(p));
    this.panel.innerHTML = `
      <div class="viewer-head">
        <h3>${esc(this.label || info.id)}</h3>
        <span class="meta">D${esc(info.detector)} · ${esc(info.width)}×${esc(info.height)} px · ${esc(info.bunit || '')}</span>
      </div>
      <div class="viewer-tools">
        <div role="tablist" aria-label="Image extension" class="hdu-tabs">
          ${planes.map((p) => `<button role="tab" type="button" data-hdu="${p}" aria-selected="${p === this.hdu}" tabindex="${p === this.hdu ? 0 : -1}" title="${HINTS[p]}">${p}</button>`).join('')}
        </div>
        <label>Stretch <select id="viewer-stretch">
          ${['zscale', 'asinh', 'linear', 'log'].map((s) => `<option${s === this.stretch ? ' selected' : ''}>${s}</option>`).join('')}
        </select></label>
        <div class="zoom" role="group" aria-label="Zoom">
          <button type="button" data-zoom="out" aria-label="Zoom out">−</button>
          <button type="button" data-zoom="fit">Fit</button>
          <button type="button" data-zoom="in" aria-label="Zoom in">+</button>
        </div>
      </div>
      <div class="viewer-body">
        <div class="canvas-wrap">
          <canvas id="viewer-canvas" tabindex="0" width="560" height="400"
            aria-label="Image: arrow keys move the cursor, Shift+arrows pan, + and − zoom, 0 fits, Enter gets the spectrum at the cursor"
            aria-describedby="viewer-help"></canvas>
          <p id="viewer-help" class="help">Wheel or +/− to zoom, drag to pan, click a position for its spectrum. Keyboard: arrows move the cursor, Shift+arrows pan, Enter measures the spectrum.</p>
        </div>
        <div class="viewer-side">
          <dl id="readout" class="readout" aria-live="polite">
            <dt>Pixel</dt><dd data-r="pixel">–</dd>
            <dt>RA, Dec</dt><dd data-r="radec">–</dd>
            <dt>Wavelength</dt><dd data-r="wavelength">–</dd>
            <dt>Value</dt><dd data-r="value">–</dd>
            <dt>Variance</dt><dd data-r="variance">–</dd>
            <dt>Zodi</dt><dd data-r="zodi">–</dd>
            <dt>Flags</dt><dd data-r="flags">–</dd>
          </dl>
          <div id="flag-legend" class="flag-legend" hidden></div>
        </div>
      </div>`;
    this.canvas = this.panel.querySelector('canvas');
    this.ctx = this.canvas.getContext('2d');
    this._wire();
    this._legend();
  }

  _legend() {
    const bits = this.info.flag_bits || [];
    const legend = this.panel.querySelector('#flag-legend');
    legend.innerHTML = `<h4>Flag bits</h4><ul>${bits.map((b) => `<li title="${esc(b.description || '')}">
        <span class="swatch" style="background:${esc(b.colour)}"></span>
        <span class="bit">${b.bit}</span> ${esc(b.name)}${b.unusable ? '' : ' <span class="info-tag" title="informational: the pixel stays usable">(info)</span>'}</li>`).join('')}</ul>`;
    legend.hidden = this.hdu !== 'FLAGS';
  }

  _wire() {
    const tabs = this.panel.querySelector('.hdu-tabs');
    tabs.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-hdu]');
      if (b) this.showHdu(b.dataset.hdu);
    });
    tabs.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
      const buttons = [...tabs.querySelectorAll('button')];
      const i = buttons.indexOf(document.activeElement);
      const next = buttons[(i + (e.key === 'ArrowRight' ? 1 : buttons.length - 1)) % buttons.length];
      next.focus();
      this.showHdu(next.dataset.hdu);
    });
    this.panel.querySelector('#viewer-stretch').addEventListener('change', async (e) => {
      this.stretch = e.target.value;
      this.images = {};
      await this._load();
      this.draw();
    });
    this.panel.querySelector('.zoom').addEventListener('click', (e) => {
      const z = e.target.closest('button')?.dataset.zoom;
      if (z === 'fit') this.fit();
      else if (z) this.zoomBy(z === 'in' ? 2 : 0.5);
    });
    const c = this.canvas;
    c.addEventListener('wheel', (e) => {
      e.preventDefault();
      const r = c.getBoundingClientRect();
      this.zoomBy(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    let drag = null;
    c.addEventListener('pointerdown', (e) => {
      drag = { x: e.clientX, y: e.clientY, vx: this.view.x, vy: this.view.y, moved: false };
      c.setPointerCapture(e.pointerId);
    });
    c.addEventListener('pointermove', (e) => {
      const r = c.getBoundingClientRect();
      if (drag) {
        const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
        if (drag.moved) {
          this.view.x = drag.vx + dx;
          this.view.y = drag.vy + dy;
          this.draw();
          return;
        }
      }
      this._pointAt(e.clientX - r.left, e.clientY - r.top);
    });
    c.addEventListener('pointerup', (e) => {
      const wasDrag = drag?.moved;
      drag = null;
      if (!wasDrag && this._readable()) {
        const r = c.getBoundingClientRect();
        this._pointAt(e.clientX - r.left, e.clientY - r.top);
        this._spectrumAtCursor();
      }
    });
    c.addEventListener('pointerleave', () => {
      if (!drag) this.draw();
    });
    c.addEventListener('keydown', (e) => this._key(e));
  }

  _key(e) {
    const step = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[e.key];
    if (step) {
      e.preventDefault();
      if (e.shiftKey) {
        this.view.x -= step[0] * 40;
        this.view.y -= step[1] * 40;
        this.draw();
      } else {
        const img = this._base();
        const cur = this.cursor || { px: Math.floor(img.width / 2), py: Math.floor(img.height / 2) };
        this.cursor = {
          px: Math.min(img.width - 1, Math.max(0, cur.px + step[0])),
          py: Math.min(img.height - 1, Math.max(0, cur.py + step[1])),
        };
        this.draw();
        this._readout();
      }
    } else if (e.key === '+' || e.key === '=') {
      this.zoomBy(1.5);
    } else if (e.key === '-' || e.key === '_') {
      this.zoomBy(1 / 1.5);
    } else if (e.key === '0') {
      this.fit();
    } else if (e.key === 'Enter' && this.cursor) {
      e.preventDefault();
      this._spectrumAtCursor();
    } else {
      return;
    }
  }

  async showHdu(hdu) {
    this.hdu = hdu;
    for (const b of this.panel.querySelectorAll('.hdu-tabs button')) {
      const on = b.dataset.hdu === hdu;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
    }
    this.panel.querySelector('#flag-legend').hidden = hdu !== 'FLAGS';
    const before = this._base();
    await this._load();
    if (this._base() !== before && this._base().width !== before?.width) this.fit();
    else this.draw();
    this.panel.dataset.hdu = hdu;
  }

  _planeUrl(hdu) {
    return apiUrl('image/plane.png', { id: this.id, hdu, stretch: this.stretch });
  }

  _image(hdu) {
    this.images[hdu] ??= new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error(`the ${hdu} plane could not be drawn`));
      img.src = this._planeUrl(hdu);
    });
    return this.images[hdu];
  }

  async _load() {
    const wanted = this.hdu === 'FLAGS' ? ['IMAGE', 'FLAGS'] : [this.hdu];
    try {
      const loaded = await Promise.all(wanted.map((h) => this._image(h)));
      this.loaded = Object.fromEntries(wanted.map((h, i) => [h, loaded[i]]));
      this.panel.dataset.loaded = this.hdu;
    } catch (error) {
      this.status(`Image viewer: ${error.message}.`, true);
    }
  }

  _base() {
    return this.loaded?.[this.hdu === 'FLAGS' ? 'IMAGE' : this.hdu];
  }

  /** Readout applies to planes on the image's pixel grid (not the PSF cube). */
  _readable() {
    const img = this._base();
    return this.hdu !== 'PSF' && img && img.width === this.info.width && img.height === this.info.height;
  }

  fit() {
    const img = this._base();
    if (!img) return;
    const c = this.canvas;
    const scale = Math.min(c.width / img.width, c.height / img.height);
    this.view = { scale, x: (c.width - img.width * scale) / 2, y: (c.height - img.height * scale) / 2 };
    this.draw();
  }

  zoomBy(factor, cx = this.canvas.width / 2, cy = this.canvas.height / 2) {
    const v = this.view;
    const scale = Math.min(64, Math.max(0.05, v.scale * factor));
    const f = scale / v.scale;
    this.view = { scale, x: cx - (cx - v.x) * f, y: cy - (cy - v.y) * f };
    this.draw();
  }

  draw() {
    const img = this._base();
    if (!img) return;
    const { ctx, canvas } = this;
    const v = this.view;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#0b0e14';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.imageSmoothingEnabled = false; // show pixels as pixels when zoomed in
    ctx.setTransform(v.scale, 0, 0, v.scale, v.x, v.y);
    ctx.drawImage(img, 0, 0);
    if (this.hdu === 'FLAGS' && this.loaded.FLAGS) ctx.drawImage(this.loaded.FLAGS, 0, 0);
    if (this.cursor) {
      ctx.strokeStyle = '#00e5ff';
      ctx.lineWidth = 2 / v.scale;
      ctx.strokeRect(this.cursor.px, this.cursor.py, 1, 1);
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
  }

  _pointAt(sx, sy) {
    const img = this._base();
    if (!img) return;
    // CSS pixels -> canvas pixels (the canvas may be drawn smaller than its width)
    const r = this.canvas.getBoundingClientRect();
    const kx = this.canvas.width / r.width, ky = this.canvas.height / r.height;
    const px = Math.floor((sx * kx - this.view.x) / this.view.scale);
    const py = Math.floor((sy * ky - this.view.y) / this.view.scale);
    if (px < 0 || py < 0 || px >= img.width || py >= img.height) return;
    if (this.cursor && this.cursor.px === px && this.cursor.py === py) return;
    this.cursor = { px, py };
    this.draw();
    this._readout();
  }

  /** FITS pixel (1-based, y = 1 at the bottom) of the cursor. */
  _fitsPixel() {
    return { x: this.cursor.px + 1, y: this.info.height - this.cursor.py };
  }

  _readout() {
    const out = (k, v) => { this.panel.querySelector(`[data-r=${k}]`).textContent = v; };
    if (!this._readable()) {
      out('pixel', this.hdu === 'PSF' ? 'PSF zones: no sky position' : '–');
      return;
    }
    const { x, y } = this._fitsPixel();
    out('pixel', `x ${x}, y ${y}`);
    this._wanted = { x, y };
    if (this._inFlight) return; // the answer in flight will ask for the latest position
    this._fetchPixel();
  }

  async _fetchPixel() {
    const { x, y } = this._wanted;
    this._inFlight = true;
    try {
      const p = await getJson(apiUrl('image/pixel', { id: this.id, x, y }));
      this._lastPixel = p;
      this._show(p);
    } catch (error) {
      this.panel.querySelector('[data-r=value]').textContent = error.message;
    } finally {
      this._inFlight = false;
    }
    if (this._wanted.x !== x || this._wanted.y !== y) this._fetchPixel();
  }

  _show(p) {
    const out = (k, v) => { this.panel.querySelector(`[data-r=${k}]`).textContent = v; };
    const num = (v) => (v === null || v === undefined || Number.isNaN(v) ? 'blank' : Number(v).toPrecision(5));
    out('pixel', `x ${p.x}, y ${p.y}`);
    out('radec', `${p.ra.toFixed(5)}, ${p.dec.toFixed(5)} (${formatRa(p.ra)} ${formatDec(p.dec)})`);
    out('wavelength', p.wavelength_um != null ? `${p.wavelength_um.toFixed(4)} µm (bandwidth ${p.bandwidth_um?.toFixed(4)} µm)` : '–');
    out('value', `${num(p.image)} ${p.unit || ''}`);
    out('variance', num(p.variance));
    out('zodi', num(p.zodi));
    out('flags', p.flags ? `${p.flags}: ${(p.flag_names || []).join(', ')}` : '0 (none)');
  }

  async _spectrumAtCursor() {
    if (!this._readable() || !this.cursor) return;
    const { x, y } = this._fitsPixel();
    let p = this._lastPixel;
    if (!p || p.x !== x || p.y !== y) {
      try {
        p = await getJson(apiUrl('image/pixel', { id: this.id, x, y }));
      } catch (error) {
        this.status(`Could not read the position under the cursor: ${error.message}`, true);
        return;
      }
    }
    this.onSpectrumAt(p.ra, p.dec, `pixel ${x}, ${y} of ${this.label || this.id}`);
  }
}
