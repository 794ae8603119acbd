// Build-time helpers that keep the Data Explorer self-contained: it must run on an archive with
// no internet (no remote HiPS, fonts, CDNs or telemetry), and a fresh clone must be able to tell
// whether the committed bundle matches its sources.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { deflateSync } from 'node:zlib';

// ---------------------------------------------------------------------------------------------
// 1. Aladin Lite ships a catalogue of CDS/remote services (default HiPS list, Sesame, SIMBAD,
// the startup logger, a CORS proxy, SAMP icon). We never call them (our options switch them
// off), but the URLs would still sit in the bundle. Rewriting each remote host into the
// reserved `.invalid` TLD (RFC 6761: never resolves) makes any forgotten code path fail
// locally instead of phoning home, and lets tests/web/test_bundle.py assert "no remote host".
const URL_IN_CODE = /\b(https?):\/\/([A-Za-z0-9.-]+)/g;
const HARMLESS = /^(www\.w3\.org|localhost)$/; // XML namespaces (SVG, XLink) and a dev default

export function neutraliseRemoteUrls() {
  return {
    name: 'spherex-neutralise-remote-urls',
    enforce: 'pre',
    transform(code, id) {
      if (!id.includes('node_modules/aladin-lite/')) return null;
      const out = code.replace(URL_IN_CODE, (whole, scheme, host) =>
        HARMLESS.test(host) || host.endsWith('.invalid')
          ? whole
          : `${scheme}://${host.replaceAll('.', '-')}.offline.invalid`,
      );
      return { code: out, map: null };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// 2. A tiny static HiPS (a uniform dark sky, order 0: 12 tiles of 64x64 PNG) emitted into the
// bundle under assets/hips/. Aladin Lite needs a base image layer; this one is served by the
// archive itself next to the JS, so no remote survey is ever needed.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
/** A w x h RGB PNG of one colour. */
export function solidPng(w, h, [r, g, b]) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit, truecolour, deflate, no filter, no interlace
  const row = Buffer.alloc(1 + 3 * w);
  for (let x = 0; x < w; x++) row.set([r, g, b], 1 + 3 * x);
  const raw = Buffer.concat(Array.from({ length: h }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** The whole-sky MOC 2.0 (FITS, NUNIQ): the 12 cells of order 0. */
function wholeSkyMoc() {
  const block = (cards) => {
    const text = [...cards, 'END'].map((c) => c.padEnd(80)).join('');
    return Buffer.from(text.padEnd(Math.ceil(text.length / 2880) * 2880));
  };
  const kw = (key, value, comment = '') => {
    const v = typeof value === 'string' ? `'${value.padEnd(8)}'`.padEnd(20) : String(value).padStart(20);
    return `${key.padEnd(8)}= ${v}${comment ? ` / ${comment}` : ''}`.slice(0, 80);
  };
  const primary = block([kw('SIMPLE', 'T'.padStart(1)).replace("'T       '", 'T'.padStart(20)), kw('BITPIX', 8), kw('NAXIS', 0), kw('EXTEND', 'T').replace("'T       '", 'T'.padStart(20))]);
  const header = block([
    kw('XTENSION', 'BINTABLE'), kw('BITPIX', 8), kw('NAXIS', 2), kw('NAXIS1', 8), kw('NAXIS2', 12),
    kw('PCOUNT', 0), kw('GCOUNT', 1), kw('TFIELDS', 1), kw('TTYPE1', 'UNIQ'), kw('TFORM1', '1K'),
    kw('MOCVERS', '2.0'), kw('MOCDIM', 'SPACE'), kw('ORDERING', 'NUNIQ'), kw('COORDSYS', 'C'),
    kw('MOCORD_S', 0), kw('MOCORDER', 0), kw('MOCTOOL', 'spherex-explorer-build'),
  ]);
  const data = Buffer.alloc(2880);
  for (let i = 0; i < 12; i++) data.writeBigInt64BE(BigInt(4 + i), 8 * i);
  return Buffer.concat([primary, header, data]);
}

export const HIPS_DIR = 'assets/hips/dark';
const SKY = [12, 16, 26];

export function darkSkyHips() {
  return {
    name: 'spherex-dark-sky-hips',
    apply: 'build',
    generateBundle() {
      const properties = [
        'creator_did          = ivo://spherex-archive/P/explorer/dark-sky',
        'obs_title            = Dark sky (offline base layer of the SPHEREx Data Explorer)',
        'dataproduct_type     = image',
        'hips_version         = 1.4',
        'hips_release_date    = 2025-01-01T00:00Z',
        'hips_status          = public master unclonable',
        'hips_frame           = equatorial',
        'hips_order           = 0',
        'hips_order_min       = 0',
        'hips_tile_width      = 64',
        'hips_tile_format     = png',
        'moc_sky_fraction     = 1',
        '',
      ].join('\n');
      this.emitFile({ type: 'asset', fileName: `${HIPS_DIR}/properties`, source: properties });
      const tile = solidPng(64, 64, SKY);
      for (let npix = 0; npix < 12; npix++) {
        this.emitFile({ type: 'asset', fileName: `${HIPS_DIR}/Norder0/Dir0/Npix${npix}.png`, source: tile });
      }
      // Aladin also asks for the order-3 all-sky image (768 tiles, 27 a row) and the HiPS's MOC;
      // giving both avoids two 404s on every page load.
      this.emitFile({ type: 'asset', fileName: `${HIPS_DIR}/Norder3/Allsky.png`, source: solidPng(27 * 64, 29 * 64, SKY) });
      this.emitFile({ type: 'asset', fileName: `${HIPS_DIR}/Moc.fits`, source: wholeSkyMoc() });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// 3. build-info.json: a hash of every source that decides the bundle's bytes. The Python test
// recomputes it the same way (tests/web/test_bundle.py) and fails when the sources changed
// without a rebuild. Keep both in step: sorted POSIX paths; sha256 over path, NUL, bytes, NUL.
export const HASHED = ['package.json', 'package-lock.json', 'index.html', 'vite.config.js', 'src', 'plugins'];

function walk(root, path, out) {
  const full = join(root, path);
  if (statSync(full).isDirectory()) {
    for (const name of readdirSync(full)) walk(root, join(path, name), out);
  } else {
    out.push(path.split(sep).join('/'));
  }
}

export function sourceHash(root) {
  const files = [];
  for (const entry of HASHED) walk(root, entry, files);
  files.sort();
  const hash = createHash('sha256');
  for (const file of files) {
    hash.update(file);
    hash.update('\0');
    hash.update(readFileSync(join(root, file)));
    hash.update('\0');
  }
  return { sha256: hash.digest('hex'), files };
}

export function buildInfo(root, outDir) {
  return {
    name: 'spherex-build-info',
    apply: 'build',
    closeBundle() {
      const { sha256, files } = sourceHash(root);
      const pkg = JSON.parse(readFileSync(join(root, 'node_modules/aladin-lite/package.json'), 'utf8'));
      mkdirSync(outDir, { recursive: true });
      const info = {
        source_sha256: sha256,
        hashed: HASHED,
        files: files.length,
        aladin_lite: pkg.version,
        rebuild: 'cd web/explorer && npm ci && npm run build',
      };
      writeFileSync(join(outDir, 'build-info.json'), JSON.stringify(info, null, 2) + '\n');
      console.log(`build-info.json: ${files.length} source files, sha256 ${sha256.slice(0, 12)}… (${relative(root, outDir)})`);
    },
  };
}
