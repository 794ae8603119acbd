// Everything that talks to the archive. Paths are derived from where the page is served, so the
// explorer works behind a reverse proxy that mounts the archive under a prefix.

const APP = '/applications/spherex';
const here = window.location.pathname;
/** The archive's root path ('' when it is served at the host's root). */
export const ROOT = here.includes(APP) ? here.slice(0, here.indexOf(APP)) : '';
export const API = `${ROOT}${APP}/api`;

/** Query string with repeated keys for arrays; empty values are left out. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) if (v !== undefined && v !== null && v !== '') q.append(key, String(v));
  }
  return q.toString();
}

export function apiUrl(path, params = {}) {
  const q = query(params);
  return `${API}/${path}${q ? `?${q}` : ''}`;
}

/** An error a user can read: the server's own sentence when it sent one. */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function explain(response) {
  let text = '';
  try {
    text = await response.text();
    const body = JSON.parse(text);
    if (body && body.error) return body.error;
  } catch {
    // not JSON: SODA and UWS answer in text or XML
  }
  text = text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
  if (text && text.length < 300) return text.replace(/^(UsageError|Error):\s*/, '');
  if (response.status === 503) return 'The archive is busy or a service it needs is unavailable; try again shortly.';
  if (response.status === 404) return 'Not found in the archive.';
  return `The archive answered ${response.status} ${response.statusText}.`;
}

export async function getJson(url, { signal } = {}) {
  let response;
  try {
    response = await fetch(url, { signal, headers: { Accept: 'application/json' } });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError('The archive could not be reached: check the connection.', 0);
  }
  if (!response.ok) throw new ApiError(await explain(response), response.status);
  return response.json();
}

/** An answer's bytes (the binary footprint block), with the same readable errors. */
export async function getBytes(url, { signal } = {}) {
  let response;
  try {
    response = await fetch(url, { signal });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError('The archive could not be reached: check the connection.', 0);
  }
  if (!response.ok) throw new ApiError(await explain(response), response.status);
  return response.arrayBuffer();
}

/** Server-issued absolute URLs use the archive's configured public address; when the page was
 * opened under another name for the same server (127.0.0.1 vs localhost), keep our origin so
 * requests stay same-origin. */
export function sameOrigin(href) {
  const url = new URL(href, window.location.href);
  if (url.origin === window.location.origin) return url.href;
  return `${window.location.origin}${url.pathname}${url.search}`;
}

// ---------------------------------------------------------------------------------------------
// UWS jobs (SODA async, spectrophotometry): create with PHASE=RUN, then poll the job document.

const UWS = 'http://www.ivoa.net/xml/UWS/v1.0';
const XLINK = 'http://www.w3.org/1999/xlink';

export function parseJob(xmlText, jobUrl) {
  const doc = new DOMParser().parseFromString(xmlText, 'application/xml');
  const one = (name) => doc.getElementsByTagNameNS(UWS, name)[0];
  const text = (name) => one(name)?.textContent?.trim() ?? '';
  const results = {};
  for (const r of doc.getElementsByTagNameNS(UWS, 'result')) {
    results[r.getAttribute('id')] = {
      href: sameOrigin(r.getAttributeNS(XLINK, 'href') || `${jobUrl}/results/${r.getAttribute('id')}`),
      size: Number(r.getAttribute('size') || 0),
      mime: r.getAttribute('mime-type') || '',
    };
  }
  const progress = doc.getElementsByTagName('sx:progress')[0] ||
    [...doc.getElementsByTagName('*')].find((e) => e.localName === 'progress');
  return {
    url: jobUrl,
    id: text('jobId'),
    phase: text('phase'),
    startTime: text('startTime'),
    error: one('errorSummary') ? text('message') || 'The job failed.' : '',
    fraction: progress ? Number(progress.getAttribute('fraction')) : null,
    note: progress?.textContent?.trim() || '',
    results,
  };
}

/** POST a UWS job that starts at once; returns the job's URL. */
export async function submitJob(path, params) {
  const body = new URLSearchParams(query({ ...params, PHASE: 'RUN' }));
  let response;
  try {
    // fetch follows the 303 to the job document
    response = await fetch(`${ROOT}${path}`, { method: 'POST', body });
  } catch {
    throw new ApiError('The archive could not be reached to start the job.', 0);
  }
  if (!response.ok) throw new ApiError(await explain(response), response.status);
  const jobUrl = sameOrigin(response.url);
  return parseJob(await response.text(), jobUrl);
}

const FINAL = new Set(['COMPLETED', 'ERROR', 'ABORTED']);

/** Poll until the job ends; onUpdate(job) after each look. */
export async function waitForJob(job, onUpdate, { signal, interval = 400 } = {}) {
  let current = job;
  onUpdate(current);
  while (!FINAL.has(current.phase)) {
    await new Promise((resolve) => setTimeout(resolve, interval));
    if (signal?.aborted) throw new DOMException('stopped', 'AbortError');
    const response = await fetch(current.url, { signal });
    if (!response.ok) throw new ApiError(await explain(response), response.status);
    current = parseJob(await response.text(), current.url);
    onUpdate(current);
    interval = Math.min(interval * 1.3, 2000);
  }
  return current;
}

export async function abortJob(job) {
  await fetch(`${job.url}/phase`, { method: 'POST', body: new URLSearchParams({ PHASE: 'ABORT' }) });
}
