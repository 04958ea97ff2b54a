// Runs before every test file: each HTTP request a test sends closes its connection afterwards.
// Tests block their own event loop for seconds in spawnSync (the dispatch CLI, git); meanwhile the
// daemon closes idle keep-alive sockets, and the next fetch would take that dead socket from the
// pool and fail with "other side closed" before the daemon ever saw the request.
const realFetch = globalThis.fetch;
globalThis.fetch = (input: Parameters<typeof fetch>[0], init: RequestInit = {}) => {
  const headers = new Headers(init.headers);
  if (!headers.has('connection')) headers.set('connection', 'close');
  return realFetch(input, { ...init, headers });
};
