// SPHEREx facts the form needs before any answer arrives. Band edges are those of
// src/spherex_archive/products/detectors.py (tests/web/test_bundle.py checks they agree).
export const DETECTORS = [
  { number: 1, min: 0.75, max: 1.09, colour: '#4053d3' },
  { number: 2, min: 1.1, max: 1.62, colour: '#00b25d' },
  { number: 3, min: 1.63, max: 2.41, colour: '#b51d14' },
  { number: 4, min: 2.42, max: 3.82, colour: '#ddb310' },
  { number: 5, min: 3.83, max: 4.41, colour: '#fb49b0' },
  { number: 6, min: 4.42, max: 5.0, colour: '#00beff' },
];
// Colours are the spectrophotometry plot's (protocols/spectrophotometry.py DETECTOR_COLOURS),
// so the browser plot and the job's PNG agree.

export const COLLECTIONS = [
  { id: 'spherex_qr2', label: 'Wide survey' },
  { id: 'spherex_qr2_deep', label: 'Deep fields' },
  { id: 'spherex_qr2_cal', label: 'Calibration' },
];

export const RADIUS_UNITS = { arcsec: 1 / 3600, arcmin: 1 / 60, deg: 1 };

export function detectorColour(n) {
  return DETECTORS[(Number(n) || 1) - 1]?.colour ?? '#999';
}
