// The public HTTP API (/api/v1), nothing else. Every call carries the pasted API key; every error
// becomes an ApiError holding the API's own message, for the page to show where it happened.

export const API = "/api/v1";
// API Gateway + Lambda carry about 6 MB; the API takes multipart uploads up to 4 MB (its 413 says so).
export const MULTIPART_LIMIT_BYTES = 4 * 1024 * 1024;
// Room for the multipart boundaries and the other form fields.
const MULTIPART_OVERHEAD_BYTES = 16 * 1024;
const KEY_STORAGE = "audiomixer.apiKey";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${getKey()}`, ...extra };
}

async function errorFrom(response) {
  let code = "http_" + response.status;
  let message = `${response.status} ${response.statusText || "error"}`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message);
}

/** JSON request to the API; resolves to the parsed body (null for 204). */
export async function call(method, path, body) {
  const init = { method, headers: authHeaders() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch (err) {
    throw new ApiError(0, "network", `cannot reach the API (${err.message})`);
  }
  if (!response.ok) throw await errorFrom(response);
  return response.status === 204 ? null : response.json();
}

/** Every item of a paginated list (bounded: `pages` pages of 100). */
export async function listAll(path, pages = 5) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < pages; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const query = `${sep}limit=100` + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : "");
    const page = await call("GET", path + query);
    items.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return items;
}

/** A download link of the API (a 307 to a presigned URL), fetched as a Blob. The browser drops the
 *  Authorization header when the redirect leaves this origin, as the presigned URL needs. */
export async function fetchBlob(path) {
  let response;
  try {
    response = await fetch(path, { headers: authHeaders() });
  } catch (err) {
    throw new ApiError(0, "network", `cannot download (${err.message})`);
  }
  if (!response.ok) throw await errorFrom(response);
  return response.blob();
}

export async function fetchJson(path) {
  const blob = await fetchBlob(path);
  return JSON.parse(await blob.text());
}

/** POST a FormData with upload progress (fetch cannot report it). */
function postForm(url, form, { headers = {}, onProgress } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "the upload was interrupted (network error)"));
    xhr.onload = () => resolve(xhr);
    xhr.send(form);
  });
}

function xhrError(xhr) {
  let code = "http_" + xhr.status;
  let message = `${xhr.status} ${xhr.statusText || "error"}`;
  try {
    const body = JSON.parse(xhr.responseText);
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // S3 answers XML: take its <Message>
    const match = /<Message>([^<]*)<\/Message>/.exec(xhr.responseText || "");
    if (match) message = `storage refused the upload: ${match[1]}`;
  }
  return new ApiError(xhr.status, code, message);
}

function contentType(file) {
  return /^audio\/[A-Za-z0-9.+-]+$/.test(file.type) ? file.type : "application/octet-stream";
}

/** Upload through a presigned S3 POST: ask the API for a form, then send the file straight to S3. */
async function presignedUpload(file, kind, name, onProgress) {
  const created = await call("POST", "/uploads", {
    filename: file.name || "upload",
    content_type: contentType(file),
    size: file.size,
    kind,
    project_name: name || null,
  });
  const form = new FormData();
  for (const [field, value] of Object.entries(created.upload.fields)) form.append(field, value);
  form.append("file", file);
  const xhr = await postForm(created.upload.url, form, { onProgress });
  if (xhr.status < 200 || xhr.status >= 300) throw xhrError(xhr);
  return created.id;
}

async function multipartUpload(path, form, onProgress) {
  const xhr = await postForm(API + path, form, { headers: authHeaders(), onProgress });
  if (xhr.status < 200 || xhr.status >= 300) throw xhrError(xhr);
  return JSON.parse(xhr.responseText);
}

function fitsMultipart(bytes) {
  return bytes + MULTIPART_OVERHEAD_BYTES <= MULTIPART_LIMIT_BYTES;
}

/** Whether a file of this size goes straight to storage (presigned) rather than through the API. */
export function goesPresigned(bytes) {
  return !fitsMultipart(bytes);
}

/** Upload a song; small files through the API, large ones presigned. Resolves to the project id. */
export async function uploadSong(file, name, onProgress) {
  if (fitsMultipart(file.size)) {
    const form = new FormData();
    form.append("file", file);
    if (name) form.append("project_name", name);
    try {
      return (await multipartUpload("/upload/base-track", form, onProgress)).project_id;
    } catch (err) {
      if (err.status !== 413) throw err; // a server with a smaller limit: go presigned
    }
  }
  return presignedUpload(file, "base-track", name, onProgress);
}

/** Bring-your-own stems: {drums: File, bass: File, ...} (1-4). Resolves to the project id. Over the
 *  multipart limit each stem goes straight to storage with a presigned form of its own. */
export async function uploadStems(stems, name, onProgress) {
  const entries = Object.entries(stems);
  const total = entries.reduce((sum, [, f]) => sum + f.size, 0);
  if (fitsMultipart(total)) {
    const form = new FormData();
    for (const [stem, file] of entries) form.append(stem, file);
    if (name) form.append("project_name", name);
    return (await multipartUpload("/upload/stems", form, onProgress)).project_id;
  }
  const types = new Set(entries.map(([, f]) => contentType(f)));
  const type = types.size === 1 ? [...types][0] : "application/octet-stream"; // one type per upload
  const created = await call("POST", "/uploads", {
    filename: entries[0][1].name || "stems",
    content_type: type,
    size: total,
    kind: "stems",
    project_name: name || null,
    stems: Object.fromEntries(entries.map(([stem, f]) => [stem, f.size])),
  });
  let done = 0;
  for (const [stem, file] of entries) {
    const target = (created.stem_uploads || {})[stem];
    if (!target) throw new ApiError(502, "no_form", `the API answered without an upload form for ${stem}`);
    const form = new FormData();
    for (const [field, value] of Object.entries(target.fields)) form.append(field, value);
    form.append("file", new File([file], file.name, { type }));
    const before = done;
    const xhr = await postForm(target.url, form, { onProgress: (f) => onProgress && onProgress((before + f * file.size) / total) });
    if (xhr.status < 200 || xhr.status >= 300) throw xhrError(xhr);
    done += file.size;
  }
  return created.id;
}

/** Add style sounds to the library; resolves to the new sound ids. */
export async function uploadStyleSounds(files, onProgress) {
  const ids = [];
  const small = files.filter((f) => fitsMultipart(f.size));
  const large = files.filter((f) => !fitsMultipart(f.size));
  const total = files.reduce((sum, f) => sum + f.size, 0) || 1;
  let done = 0;
  const report = (bytes) => (fraction) => onProgress && onProgress((done + fraction * bytes) / total);
  // As few multipart requests as the limit allows.
  let batch = [];
  let batchBytes = 0;
  const flush = async () => {
    if (!batch.length) return;
    const form = new FormData();
    for (const f of batch) form.append("files", f);
    const body = await multipartUpload("/upload/style-sound", form, report(batchBytes));
    ids.push(...body.sounds.map((s) => s.sound_id));
    done += batchBytes;
    batch = [];
    batchBytes = 0;
  };
  for (const f of small) {
    if (!fitsMultipart(batchBytes + f.size) || batch.length >= 20) await flush();
    batch.push(f);
    batchBytes += f.size;
  }
  await flush();
  for (const f of large) {
    ids.push(await presignedUpload(f, "style-sound", f.name, report(f.size)));
    done += f.size;
  }
  return ids;
}
