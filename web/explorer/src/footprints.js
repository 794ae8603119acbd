// Footprints for the sky view: the archive's binary footprint block decoded onto typed arrays
// (no parsing), and a layer drawn whenever Aladin Lite draws its overlays. Aladin's own shapes
// cost one projection call per vertex and one canvas stroke per polygon on every frame it
// renders (11 000 footprints took seconds a frame under software WebGL); this layer projects
// every vertex in one batch call, strokes one path per detector colour, and draws at most
// MAX_DRAWN of the answer's footprints at once.
import { DETECTORS, detectorColour } from './constants.js';

const MAGIC = 0x31465853; // "SXF1" read as a little-endian uint32

/** The archive's binary footprint answer (api/footprints?format=binary, docs/explorer.md):
 * "SXF1", uint32 header length H, a JSON header of H bytes, float32 ra/dec of every vertex,
 * uint16 vertex counts, uint8 detectors. */
export function decodeFootprints(buffer) {
  const view = new DataView(buffer);
  if (buffer.byteLength < 8 || view.getUint32(0, true) !== MAGIC) {
    throw new Error('The archive sent footprints in a format this page does not read.');
  }
  const size = view.getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, size)));
  const n = header.count;
  let at = 8 + size;
  const coords = new Float32Array(buffer, at, 2 * header.vertices);
  at += 8 * header.vertices;
  const counts = new Uint16Array(buffer, at, n);
  at += 2 * n;
  const detectors = new Uint8Array(buffer, at, n);
  return { total: header.total, truncated: header.truncated, ids: header.ids, counts, detectors, coords };
}

/** Polygons ready to project: ra/dec as float64 (what Aladin's batch projection takes), where
 * each polygon's vertices start, and the polygons grouped by detector so that a frame strokes
 * each colour once. Made from the binary block (fromBinary) or from a page of the search
 * answer (fromPage). */
export class FootprintSet {
  constructor(ids, counts, detectors, coords) {
    this.ids = ids;
    this.n = ids.length;
    this.starts = new Uint32Array(this.n + 1);
    for (let i = 0; i < this.n; i++) this.starts[i + 1] = this.starts[i] + counts[i];
    const nv = this.starts[this.n];
    this.ra = new Float64Array(nv);
    this.dec = new Float64Array(nv);
    for (let k = 0; k < nv; k++) {
      this.ra[k] = coords[2 * k];
      this.dec[k] = coords[2 * k + 1];
    }
    this.index = new Map(ids.map((id, i) => [id, i]));
    // polygon numbers ordered by detector (0: none), and where each detector's run starts
    const detector = (i) => (detectors[i] <= DETECTORS.length ? detectors[i] : 0);
    this.byDetector = new Uint32Array(this.n);
    this.runs = new Uint32Array(DETECTORS.length + 2);
    for (let i = 0; i < this.n; i++) this.runs[detector(i) + 1]++;
    for (let d = 1; d < this.runs.length; d++) this.runs[d] += this.runs[d - 1];
    const next = this.runs.slice(0, -1);
    for (let i = 0; i < this.n; i++) this.byDetector[next[detector(i)]++] = i;
    this.screen = null; // [x, y, ...] of every vertex at the last frame
    this.box = new Float32Array(4 * this.n); // screen bounding boxes at the last frame
    this.seen = new Uint8Array(this.n); // in view at the last frame
    this.shown = new Uint8Array(this.n); // drawn at the last frame
    // The order in which footprints in view are drawn up to the cap: shuffled once, so that a
    // capped view samples the whole answer evenly and keeps its footprints while it pans.
    this.priority = shuffled(this.n);
  }

  static fromBinary(decoded) {
    return new FootprintSet(decoded.ids, decoded.counts, decoded.detectors, decoded.coords);
  }

  /** A page of the search answer: ids, detectors (1-6) and footprints (flat lists or null). */
  static fromPage(ids, detectors, polygons) {
    const keep = [];
    polygons.forEach((p, i) => p && p.length >= 6 && keep.push(i));
    const counts = keep.map((i) => polygons[i].length >> 1);
    const coords = keep.flatMap((i) => polygons[i]);
    return new FootprintSet(keep.map((i) => ids[i]), counts, Uint8Array.from(keep, (i) => detectors[i] || 0), coords);
  }

  /** Project every vertex (one call to Aladin's core) and choose what to draw: the polygons in
   * view, at most `cap` of them. Returns how many are in view. */
  project(aladin, cap = Infinity) {
    if (!this.n) return 0;
    const wasm = aladin.view?.wasm;
    if (wasm?.worldToScreenVec) {
      this.screen = wasm.worldToScreenVec(this.ra, this.dec);
    } else { // an Aladin without the batch call: one vertex at a time
      const xy = new Float64Array(2 * this.ra.length);
      for (let k = 0; k < this.ra.length; k++) {
        const p = aladin.world2pix(this.ra[k], this.dec[k]);
        if (p) [xy[2 * k], xy[2 * k + 1]] = p;
      }
      this.screen = xy;
    }
    // (0, 0) marks a vertex Aladin cannot project (behind the sphere)
    const xy = this.screen;
    const { width, height } = aladin.view;
    let inView = 0;
    for (let i = 0; i < this.n; i++) {
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity, hidden = false;
      for (let k = this.starts[i]; k < this.starts[i + 1]; k++) {
        const x = xy[2 * k], y = xy[2 * k + 1];
        if (x === 0 && y === 0) hidden = true;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
      // a polygon with a vertex behind the sphere is left out (SIN: its edges would be wrong)
      const seen = !(hidden || x1 < 0 || y1 < 0 || x0 > width || y0 > height);
      this.seen[i] = this.shown[i] = seen ? 1 : 0;
      inView += seen;
      this.box[4 * i] = x0;
      this.box[4 * i + 1] = y0;
      this.box[4 * i + 2] = x1;
      this.box[4 * i + 3] = y1;
    }
    if (inView > cap) {
      let left = cap;
      for (let r = 0; r < this.n; r++) {
        const i = this.priority[r];
        if (!this.shown[i]) continue;
        if (left > 0) left--;
        else this.shown[i] = 0;
      }
    }
    return inView;
  }

  /** Add polygon i to the current path (screen positions of the last projection). */
  trace(ctx, i) {
    const xy = this.screen;
    const a = this.starts[i], b = this.starts[i + 1];
    ctx.moveTo(xy[2 * a], xy[2 * a + 1]);
    for (let k = a + 1; k < b; k++) ctx.lineTo(xy[2 * k], xy[2 * k + 1]);
    ctx.closePath();
  }

  /** The polygon whose outline passes nearest (x, y), within `tolerance` pixels: [i, distance]. */
  nearest(x, y, tolerance) {
    let best = -1, bestDistance = tolerance;
    if (!this.screen) return [best, Infinity];
    const xy = this.screen, box = this.box;
    for (let i = 0; i < this.n; i++) {
      if (!this.shown[i]) continue;
      if (x < box[4 * i] - tolerance || x > box[4 * i + 2] + tolerance || y < box[4 * i + 1] - tolerance || y > box[4 * i + 3] + tolerance) continue;
      const a = this.starts[i], b = this.starts[i + 1];
      for (let k = a; k < b; k++) {
        const m = k + 1 < b ? k + 1 : a;
        const d = segmentDistance(x, y, xy[2 * k], xy[2 * k + 1], xy[2 * m], xy[2 * m + 1]);
        if (d <= bestDistance) {
          bestDistance = d;
          best = i;
        }
      }
    }
    return [best, best < 0 ? Infinity : bestDistance];
  }

  /** A point on the outline of polygon i on screen (the middle of its first edge), or null. */
  edgePoint(i) {
    if (!this.screen || !this.shown[i]) return null;
    const a = this.starts[i];
    return [(this.screen[2 * a] + this.screen[2 * a + 2]) / 2, (this.screen[2 * a + 1] + this.screen[2 * a + 3]) / 2];
  }

  /** The centre of polygon i: the mean of its unit vectors (safe at RA = 0 and the poles). */
  centre(i) {
    let x = 0, y = 0, z = 0;
    for (let k = this.starts[i]; k < this.starts[i + 1]; k++) {
      const r = (this.ra[k] * Math.PI) / 180, d = (this.dec[k] * Math.PI) / 180;
      x += Math.cos(d) * Math.cos(r);
      y += Math.cos(d) * Math.sin(r);
      z += Math.sin(d);
    }
    return [((Math.atan2(y, x) * 180) / Math.PI + 360) % 360, (Math.atan2(z, Math.hypot(x, y)) * 180) / Math.PI];
  }
}

/** 0 ... n - 1 in a fixed pseudo-random order (Fisher-Yates over a seeded generator). */
function shuffled(n) {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let seed = 0x9e3779b9;
  for (let i = n - 1; i > 0; i--) {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    const j = (seed >>> 0) % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

function segmentDistance(px, py, ax, ay, bx, by) {
  const dx = bx - ax, dy = by - ay;
  const length = dx * dx + dy * dy;
  const t = length ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / length)) : 0;
  return Math.hypot(px - ax - t * dx, py - ay - t * dy);
}

const NO_DETECTOR = '#999999';
const STYLES = {
  all: { lineWidth: 1, alpha: 0.55 }, // every result's footprint
  page: { lineWidth: 2, alpha: 1 }, // the rows on screen
};

/** Footprints of the whole answer drawn at once, at most: a frame's cost grows with them (on
 * the CPU-rastered canvas of the sky view, 20 ms for 3 000 and 100 ms for 11 000 on a busy
 * 2-core machine, and every frame of a pan or a zoom pays it). Beyond it the view shows an
 * even sample of those in view, and zooming in shows them all. */
export const MAX_DRAWN = 3000;

/** What the sky view draws: every result's footprints (`all`, from api/footprints; those in
 * view, at most MAX_DRAWN), those of the rows on screen on top (`page`, from the search answer
 * itself, so they are there whatever part of a large answer `all` holds), then the hovered and
 * the selected one in white. `onCount({inView, drawn})` is told when those numbers change. */
export class FootprintLayer {
  constructor({ cap = MAX_DRAWN, onCount = () => {} } = {}) {
    this.cap = cap;
    this.onCount = onCount;
    this.counted = '';
    this.all = null;
    this.page = null;
    this.hovered = null; // [set, i]
    this.selected = null;
    this.waiting = []; // who waits for the next frame drawn
  }

  find(id) {
    for (const set of [this.page, this.all]) {
      const i = set?.index.get(id);
      if (i !== undefined) return [set, i];
    }
    return null;
  }

  /** The next frame Aladin draws. */
  nextFrame() {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  draw(ctx, aladin) {
    ctx.save();
    if (!this.all?.n) this._count(0, 0);
    for (const name of ['all', 'page']) {
      const set = this[name];
      if (!set?.n) continue;
      const inView = set.project(aladin, name === 'all' ? this.cap : Infinity);
      if (name === 'all') this._count(inView, Math.min(inView, this.cap));
      const style = STYLES[name];
      ctx.lineWidth = style.lineWidth;
      ctx.globalAlpha = style.alpha;
      for (let d = 0; d + 1 < set.runs.length; d++) {
        if (set.runs[d] === set.runs[d + 1]) continue;
        ctx.beginPath();
        for (let r = set.runs[d]; r < set.runs[d + 1]; r++) {
          const i = set.byDetector[r];
          if (set.shown[i]) set.trace(ctx, i);
        }
        ctx.strokeStyle = d ? detectorColour(d) : NO_DETECTOR;
        ctx.stroke();
      }
    }
    ctx.globalAlpha = 1;
    ctx.strokeStyle = '#ffffff';
    for (const [found, width] of [[this.hovered, 3], [this.selected, 3.5]]) {
      if (!found || !found[0].seen[found[1]]) continue; // drawn even when left out of a sample
      ctx.lineWidth = width;
      ctx.beginPath();
      found[0].trace(ctx, found[1]);
      ctx.stroke();
    }
    ctx.restore();
    const waiting = this.waiting;
    this.waiting = [];
    waiting.forEach((resolve) => resolve());
  }

  _count(inView, drawn) {
    const key = `${inView}/${drawn}`;
    if (key !== this.counted) {
      this.counted = key;
      this.onCount({ inView, drawn });
    }
  }

  /** The id of the drawn footprint whose outline passes within `tolerance` pixels of (x, y);
   * the rows on screen first. */
  idAt(x, y, tolerance = 5) {
    const [p, dp] = this.page ? this.page.nearest(x, y, tolerance) : [-1, Infinity];
    if (p >= 0) return this.page.ids[p];
    const [a, da] = this.all ? this.all.nearest(x, y, tolerance) : [-1, Infinity];
    return a >= 0 && da <= dp ? this.all.ids[a] : null;
  }
}
