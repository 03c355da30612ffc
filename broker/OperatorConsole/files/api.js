// The one place that talks to the broker: same origin, the key as a Bearer header, never in a URL.
const keyName = 'halfmsg.adminKey';

export const session = {
  get key() { return sessionStorage.getItem(keyName); },
  signIn(key) { sessionStorage.setItem(keyName, key); },
  signOut() { sessionStorage.removeItem(keyName); },
  get signedIn() { return sessionStorage.getItem(keyName) !== null; },
};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let onUnauthenticated = () => {};
export function whenUnauthenticated(callback) { onUnauthenticated = callback; }

/** Calls /v1; `reason` goes to the audit trail (percent-encoded: header values are ASCII). */
export async function api(method, path, { body, reason } = {}) {
  const headers = { Accept: 'application/json' };
  const key = session.key;
  if (key) headers.Authorization = `Bearer ${key}`;
  if (method !== 'GET') headers['Content-Type'] = 'application/json';
  if (reason) headers['X-HalfMsg-Reason'] = encodeURIComponent(reason);
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
    referrerPolicy: 'no-referrer',
  });
  if (response.status === 204) return null;
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401) onUnauthenticated();
    throw new ApiError(response.status, data);
  }
  return data;
}

export const q = encodeURIComponent;
