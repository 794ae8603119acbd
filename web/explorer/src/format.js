// Small formatting and parsing helpers (angles, times, numbers).

const pad = (n, w) => String(n).padStart(w, '0');

/** RA in degrees as "hh:mm:ss.ss". */
export function formatRa(ra) {
  let s = (((ra % 360) + 360) % 360) / 15 * 3600;
  s = Math.round(s * 100) / 100;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s - h * 3600) / 60);
  const sec = s - h * 3600 - m * 60;
  return `${pad(h % 24, 2)}:${pad(m, 2)}:${sec.toFixed(2).padStart(5, '0')}`;
}

/** Dec in degrees as "+dd:mm:ss.s". */
export function formatDec(dec) {
  const sign = dec < 0 ? '-' : '+';
  let s = Math.round(Math.abs(dec) * 36000) / 10;
  const d = Math.floor(s / 3600);
  const m = Math.floor((s - d * 3600) / 60);
  const sec = s - d * 3600 - m * 60;
  return `${sign}${pad(d, 2)}:${pad(m, 2)}:${sec.toFixed(1).padStart(4, '0')}`;
}

export function formatPosition(ra, dec) {
  return `${ra.toFixed(5)}, ${dec >= 0 ? '+' : ''}${dec.toFixed(5)} (${formatRa(ra)} ${formatDec(dec)})`;
}

const MJD_EPOCH_MS = Date.UTC(1858, 10, 17);

export function mjdToIso(mjd) {
  return new Date(MJD_EPOCH_MS + mjd * 86400000).toISOString().replace('.000Z', 'Z');
}

/** "2025-05-01", "2025-05-01T12:00", or an MJD such as "60796.5"; null when empty. Throws a
 * readable Error when it is neither. */
export function parseTime(text) {
  const t = text.trim();
  if (!t) return null;
  if (/^\d{4,6}(\.\d*)?$/.test(t) && !/^\d{4}$/.test(t)) return Number(t);
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?)?Z?$/.exec(t);
  if (m) {
    const ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), 0) + (+(m[6] || 0)) * 1000;
    if (!Number.isNaN(ms)) return (ms - MJD_EPOCH_MS) / 86400000;
  }
  throw new Error(`"${t}" is not a date (YYYY-MM-DD, optionally with hh:mm) nor an MJD (e.g. 60800.5).`);
}

/** A table cell: numbers with sensible precision, null as empty. */
export function formatCell(value, column) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') {
    if (Number.isInteger(value)) return String(value);
    const name = column?.name ?? '';
    if (/^(s_ra|s_dec|ra|dec)$/.test(name)) return value.toFixed(5);
    if (/^t_(min|max)$/.test(name)) return value.toFixed(5);
    if (/^em_(min|max)$/.test(name)) return value.toExponential(4);
    const abs = Math.abs(value);
    if (abs !== 0 && (abs < 1e-3 || abs >= 1e7)) return value.toExponential(4);
    return String(Number(value.toPrecision(6)));
  }
  return String(value);
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} kB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

export function formatSeconds(s) {
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
