// The sky view: Aladin Lite (bundled, loaded on demand so the table paints first) over a dark
// sky HiPS shipped in the bundle, with the results' footprints (footprints.js: drawn in
// Aladin's overlay pass, hovered and clicked through its mouse callbacks) and the collections'
// coverage MOCs. Nothing here reaches beyond the archive: the Aladin options switch off the
// remote HiPS list, the startup logger and SAMP, and the build rewrites Aladin's remote URLs
// away.
import { ROOT } from './api.js';
import { COLLECTIONS, detectorColour } from './constants.js';
import { FootprintLayer, FootprintSet } from './footprints.js';

const HIPS = new URL('assets/hips/dark', document.baseURI).href;
const MOC_COLOURS = { spherex_qr2: '#6c8ebf', spherex_qr2_deep: '#b07cc6', spherex_qr2_cal: '#7fae7f' };

export class SkyView {
  constructor(element, { onClickFootprint, onHoverFootprint }) {
    this.element = element;
    this.onClickFootprint = onClickFootprint;
    this.onHoverFootprint = onHoverFootprint;
    this.layer = new FootprintLayer({ onCount: (counts) => this._note(counts) });
    this.loaded = null; // {total, truncated, n} of the answer's footprints
    this.mocs = new Map();
    element.skyView = this; // for the browser tests: where a footprint lies on screen
    this.ready = null;
    this.queue = Promise.resolve();
  }

  /** Aladin's WebAssembly core must not be re-entered while it works (it panics with
   * "recursive use of an object"): every change of the view goes through this queue. */
  _serial(work) {
    const run = this.queue.then(() => this.load()).then((aladin) => (aladin ? work(aladin) : undefined));
    this.queue = run.catch(() => {});
    return run;
  }

  /** Load Aladin (once). Resolves to the Aladin instance, or null when WebGL2 is missing. */
  load() {
    this.ready ??= import('aladin-lite').then(async ({ default: A }) => {
      await A.init;
      this.A = A;
      this.aladin = A.aladin(this.element, {
        survey: HIPS,
        hipsList: [], // no remote survey catalogue
        log: false, // no startup telemetry
        samp: false,
        showLayersControl: false,
        showSettingsControl: false,
        showShareControl: false,
        showSimbadPointerControl: false,
        showContextMenu: false,
        showFullscreenControl: true,
        showCooGrid: true,
        showReticle: false,
        gridOptions: { color: '#5a6478', opacity: 0.6, labelSize: 11, showLabels: true },
        target: '0 +0',
        fov: 180,
        projection: 'SIN',
        backgroundColor: 'rgb(8, 10, 16)',
        mode: 'dark',
      });
      // An overlay holding no shapes, drawn by the footprint layer: Aladin calls its draw in
      // the overlay pass of every frame it renders, and its own hover search (a projection
      // per vertex of every shape on every mouse move) finds nothing to walk through.
      this.footprints = A.graphicOverlay({ name: 'Footprints', color: '#ffd54a', lineWidth: 1 });
      this.aladin.addOverlay(this.footprints);
      this.footprints.draw = () => this._drawFootprints();
      // The layer draws on a canvas of its own, beneath Aladin's overlay canvas (targets, grid
      // labels) and blind to the pointer. Asked for willReadFrequently, its 2D context is
      // rastered by the CPU: a GPU-backed one tessellates every new path, and under software
      // GL (headless Chromium) 3 000 footprints took 1.7 s each time the view moved, against
      // 20 ms here; a real GPU gains little on a few thousand thin lines either.
      this.canvas = document.createElement('canvas');
      this.canvas.className = 'footprint-canvas';
      this.canvas.setAttribute('aria-hidden', 'true');
      this.aladin.view.catalogCanvas.before(this.canvas);
      this.ctx = this.canvas.getContext('2d', { willReadFrequently: true });
      this.targets = A.graphicOverlay({ name: 'Targets', color: '#ff5252', lineWidth: 2 });
      this.aladin.addOverlay(this.targets);
      this.aladin.on('click', ({ x, y, isDragging }) => {
        if (isDragging) return;
        const id = this.layer.idAt(x, y);
        if (id) this.onClickFootprint(id);
      });
      this.aladin.on('mouseMove', ({ x, y }) => {
        const id = this.layer.idAt(x, y);
        if (id !== this._pointed) {
          this._pointed = id;
          this._highlight(id);
          this.onHoverFootprint(id);
        }
      });
      this.element.addEventListener('mouseleave', () => {
        if (this._pointed) {
          this._pointed = null;
          this._highlight(null);
          this.onHoverFootprint(null);
        }
      });
      this.element.dataset.ready = 'true';
      return this.aladin;
    }).catch((error) => {
      this.element.innerHTML = `<p class="error sky-error">The sky view needs WebGL 2, which this browser does not offer (${String(error)}). The table and every other tool still work.</p>`;
      return null;
    });
    return this.ready;
  }

  _drawFootprints() {
    const { width, height } = this.aladin.view;
    const scale = window.devicePixelRatio || 1;
    const canvas = this.canvas;
    if (canvas.width !== Math.round(width * scale) || canvas.height !== Math.round(height * scale)) {
      canvas.width = Math.round(width * scale);
      canvas.height = Math.round(height * scale);
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
    }
    this.ctx.setTransform(scale, 0, 0, scale, 0, 0);
    this.ctx.clearRect(0, 0, width, height);
    if (this.footprints.isShowing) this.layer.draw(this.ctx, this.aladin);
  }

  /** Every result's footprints (api/footprints, decoded): resolves once they are on screen. */
  showFootprints(decoded) {
    return this._serial(() => {
      const set = FootprintSet.fromBinary(decoded);
      this.loaded = { total: decoded.total, truncated: decoded.truncated, n: set.n };
      this.layer.counted = ''; // the note is written again at the next frame
      return this._setLayer('all', set);
    });
  }

  /** Say what the view holds when it is not every footprint of the answer. */
  _note({ inView, drawn }) {
    const n = (x) => x.toLocaleString('en');
    const parts = [];
    if (this.loaded?.truncated) parts.push(`Footprints of the first ${n(this.loaded.n)} of ${n(this.loaded.total)} images are loaded; those of the rows on screen always are.`);
    if (drawn < inView) parts.push(`${n(drawn)} of the ${n(inView)} in view are drawn: zoom in to see them all.`);
    const note = document.getElementById('sky-note');
    if (note) note.textContent = parts.join(' ');
    this.element.dataset.drawn = String(drawn);
    this.element.dataset.inView = String(inView);
  }

  /** The footprints of the rows on screen (the search answer's own `footprints`), drawn on top
   * of the others: the rows on screen stay linked whatever part of the answer `all` holds. */
  showPage(ids, detectors, polygons) {
    // nobody waits for these to reach the screen: the queue goes on at once
    return this._serial(() => { this._setLayer('page', FootprintSet.fromPage(ids, detectors, polygons)); });
  }

  /** Forget every footprint (a new search): the previous answer is not drawn meanwhile. */
  clearFootprints() {
    if (!this.aladin) return;
    this.loaded = null;
    this.layer.all = this.layer.page = this.layer.hovered = this.layer.selected = null;
    this.footprints.reportChange();
  }

  async _setLayer(name, set) {
    const layer = this.layer;
    layer[name] = set;
    // the hovered and selected footprints follow their id into the new sets
    for (const which of ['hovered', 'selected']) if (layer[which]) layer[which] = layer.find(layer[which][0].ids[layer[which][1]]);
    if (name === 'all') this.element.dataset.footprints = String(set?.n ?? 0);
    this.footprints.reportChange();
    // drawn in Aladin's next frame (at most a second: a hidden sky view may not draw), then
    // one more frame for it to reach the screen
    await Promise.race([layer.nextFrame(), new Promise((resolve) => setTimeout(resolve, 1000))]);
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }

  showTargets(positions, radiusDeg) {
    return this._serial((aladin) => this._showTargets(aladin, positions, radiusDeg));
  }

  _showTargets(aladin, positions, radiusDeg) {
    const A = this.A;
    this.targets.removeAll();
    for (const p of positions) {
      const r = radiusDeg > 0 ? radiusDeg : 0.01;
      this.targets.add(A.circle(p.ra, p.dec, r, { color: '#ff5252', lineWidth: 2 }));
    }
    if (positions.length === 1) {
      aladin.gotoRaDec(positions[0].ra, positions[0].dec);
      aladin.setFoV(Math.max(0.5, Math.min(30, radiusDeg * 6 || 0.75)));
    } else if (positions.length > 1) {
      aladin.setFoV(180);
    }
  }

  /** Coverage MOCs of the chosen collections, from /coverage/<collection>.json. */
  /** Coverage MOCs of the chosen collections, from /coverage/<collection>.json (fetched in
   * parallel, added one at a time). */
  async showCoverage(collections) {
    this._legend(collections);
    const fetched = await Promise.all(collections.map(async (id) => {
      if (this.mocs.has(id)) return [id, null];
      try {
        const response = await fetch(`${ROOT}/coverage/${encodeURIComponent(id)}.json`);
        // a collection with nothing released has no MOC yet: coverage is context, not the answer
        return [id, response.ok ? await response.json() : null];
      } catch {
        return [id, null];
      }
    }));
    return this._serial(async (aladin) => {
      const wanted = new Set(collections);
      for (const [id, moc] of this.mocs) {
        if (!wanted.has(id)) {
          aladin.removeLayer(moc);
          this.mocs.delete(id);
        }
      }
      for (const [id, json] of fetched) {
        // an empty MOC ({"11": []}: nothing released yet) makes Aladin's core panic
        if (!json || !Object.values(json).some((cells) => cells.length) || this.mocs.has(id)) continue;
        const colour = MOC_COLOURS[id] || '#888';
        await new Promise((resolve) => {
          const moc = this.A.MOCFromJSON(json, { name: `${id} coverage`, color: colour, opacity: 0.22, lineWidth: 1, fill: true, edge: true }, resolve, resolve);
          this.mocs.set(id, moc);
          aladin.addMOC(moc);
        });
      }
    });
  }

  _legend(collections) {
    const legend = collections.map((id) => {
      const colour = MOC_COLOURS[id] || '#888';
      return `<span><span class="swatch moc" style="border-color:${colour};background:${colour}55"></span>${COLLECTIONS.find((c) => c.id === id)?.label ?? id} coverage</span>`;
    });
    legend.push('<span class="fp-legend">Footprints: ' +
      [1, 2, 3, 4, 5, 6].map((d) => `<span class="swatch" style="background:${detectorColour(d)}"></span>D${d}`).join(' ') + '</span>');
    document.getElementById('sky-legend').innerHTML = legend.join(' ');
  }

  /** Highlight a footprint (hover) without moving the view. */
  highlight(id) {
    if (!this.aladin) return;
    try {
      this._highlight(id);
    } catch (error) {
      console.warn('sky view:', error); // the sky view is context: never break the table
    }
  }

  _highlight(id) {
    this.layer.hovered = id ? this.layer.find(id) : null;
    this.footprints.reportChange();
  }

  /** Select a footprint (click in the table or the sky) and centre it. */
  select(id, options = {}) {
    if (!this.aladin) return;
    try {
      this._select(id, options);
    } catch (error) {
      console.warn('sky view:', error);
    }
  }

  _select(id, { centre = true } = {}) {
    const found = this.layer.find(id);
    this.layer.selected = found;
    this.footprints.reportChange();
    if (!found) return;
    if (centre) this.aladin.gotoRaDec(...found[0].centre(found[1]));
    this.element.dataset.selected = id;
  }

  /** Where the outline of footprint `id` lies in the page's viewport ([x, y] in CSS pixels),
   * or null when it is not drawn: what a pointer must reach to hover or click it. */
  edgePoint(id) {
    const found = this.layer.find(id);
    const point = found && found[0].edgePoint(found[1]);
    if (!point) return null;
    const box = this.canvas.getBoundingClientRect();
    return [box.left + point[0], box.top + point[1]];
  }

  /** The footprint a pointer at (x, y) in the viewport would hover, as edgePoint's inverse. */
  idAt(x, y) {
    const box = this.canvas.getBoundingClientRect();
    return this.layer.idAt(x - box.left, y - box.top);
  }
}
