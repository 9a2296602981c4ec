// The console is a client of thinkserve's own APIs: every call carries the key the person logged in
// with, kept in this tab's sessionStorage only (gone when the tab closes).

const STORE = "thinkserve.console.key";

export function storedKey() {
  return sessionStorage.getItem(STORE);
}

export function keepKey(key) {
  sessionStorage.setItem(STORE, key);
}

export function forgetKey() {
  sessionStorage.removeItem(STORE);
}

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(key, extra = {}) {
  return { Authorization: `Bearer ${key ?? storedKey() ?? ""}`, ...extra };
}

// An error body in either shape the server writes: {"error": {"message", "code"}} or
// DashScope's {"code", "message"}.
async function failure(response) {
  let message = `HTTP ${response.status}`;
  let code = null;
  try {
    const body = await response.json();
    const error = body.error ?? body;
    message = error.message ?? message;
    code = error.code ?? null;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message, code);
}

export async function getJson(path, params, key) {
  const query = params ? "?" + new URLSearchParams(Object.entries(params).filter(([, v]) => v != null && v !== "")) : "";
  const response = await fetch(path + query, { headers: headers(key) });
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function sendJson(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: headers(null, body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}

// POST a streaming chat completion (OpenAI-compatible) and call onChunk for every parsed
// `data:` frame; resolves when the stream ends. An error frame mid-stream throws.
export async function streamChat(body, onChunk, signal) {
  const response = await fetch("/compatible-mode/v1/chat/completions", {
    method: "POST",
    headers: headers(null, { "Content-Type": "application/json" }),
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of frame.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(200, chunk.error.message, chunk.error.code);
        onChunk(chunk);
      }
    }
  }
}
