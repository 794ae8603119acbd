// The sky view: Aladin Lite (bundled, loaded on demand so the table paints first) over a dark
// sky HiPS shipped in the bundle, with the results' footprints and the collections' coverage
// MOCs. Nothing here reaches beyond the archive: the Aladin options switch off the remote
// HiPS list, the startup logger and SAMP, and the build rewrites Aladin's remote URLs away.
import { ROOT } from './api.js';
import { COLLECTIONS, detectorColour } from './constants.js';

const HIPS = new URL('assets/hips/dark', document.baseURI).href;
const MOC_COLOURS = { spherex_qr2: '#6c8ebf', spherex_qr2_deep: '#b07cc6', spherex_qr2_cal: '#7fae7f' };

export class SkyView {
  constructor(element, { onClickFootprint, onHoverFootprint }) {
    this.element = element;
    this.onClickFootprint = onClickFootprint;
    this.onHoverFootprint = onHoverFootprint;
    this.byId = new Map();
    this.mocs = new Map();
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
      this.footprints = A.graphicOverlay({ name: 'Footprints', color: '#ffd54a', lineWidth: 1.5 });
      this.aladin.addOverlay(this.footprints);
      this.targets = A.graphicOverlay({ name: 'Targets', color: '#ff5252', lineWidth: 2 });
      this.aladin.addOverlay(this.targets);
      this.aladin.on('objectClicked', (object) => {
        const id = object?.data?.id;
        if (id) this.onClickFootprint(id);
      });
      this.aladin.on('objectHovered', (object) => {
        const id = object?.data?.id;
        if (id) this.onHoverFootprint(id);
      });
      this.aladin.on('objectHoveredStop', () => this.onHoverFootprint(null));
      this.element.dataset.ready = 'true';
      return this.aladin;
    }).catch((error) => {
      this.element.innerHTML = `<p class="error sky-error">The sky view needs WebGL 2, which this browser does not offer (${String(error)}). The table and every other tool still work.</p>`;
      return null;
    });
    return this.ready;
  }

  /** Draw one polygon per result; ids[i] belongs to polygons[i]. Resolves once drawn. */
  showFootprints(answer) {
    return this._serial(() => this._showFootprints(answer));
  }

  async _showFootprints({ ids, detectors, polygons }) {
    const A = this.A;
    this.footprints.removeAll();
    this.byId.clear();
    const shapes = [];
    for (let i = 0; i < polygons.length; i++) {
      const flat = polygons[i];
      const vertices = [];
      for (let k = 0; k + 1 < flat.length; k += 2) vertices.push([flat[k], flat[k + 1]]);
      const colour = detectorColour(detectors?.[i]);
      const shape = A.polygon(vertices, {
        color: colour,
        hoverColor: '#ffffff',
        selectionColor: '#ffffff',
        lineWidth: 1.5,
      });
      shape.data = { id: ids[i] };
      this.byId.set(ids[i], shape);
      shapes.push(shape);
    }
    // one redraw for all of them
    this.footprints.addFootprints(shapes);
    this.element.dataset.footprints = String(shapes.length);
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
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
    if (this._hovered && this._hovered !== this._selected) this._hovered.setLineWidth?.(1.5);
    this._hovered = id ? this.byId.get(id) : null;
    if (this._hovered) this._hovered.setLineWidth?.(4);
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
    const shape = this.byId.get(id);
    if (this._selected && this._selected !== shape) {
      this._selected.deselect?.();
      this._selected.setLineWidth?.(1.5);
    }
    this._selected = shape || null;
    if (!shape) return;
    shape.select?.();
    shape.setLineWidth?.(3);
    if (centre) {
      const v = shape.raDecArray || [];
      if (v.length) {
        // centre on the mean unit vector (safe at RA = 0 and the poles)
        let x = 0, y = 0, z = 0;
        for (const [ra, dec] of v) {
          const r = (ra * Math.PI) / 180, d = (dec * Math.PI) / 180;
          x += Math.cos(d) * Math.cos(r); y += Math.cos(d) * Math.sin(r); z += Math.sin(d);
        }
        const ra = ((Math.atan2(y, x) * 180) / Math.PI + 360) % 360;
        const dec = (Math.atan2(z, Math.hypot(x, y)) * 180) / Math.PI;
        this.aladin.gotoRaDec(ra, dec);
      }
    }
    this.element.dataset.selected = id;
  }
}
