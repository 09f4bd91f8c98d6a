// Lumen's JSON API as the signed-in person sees it: every change carries the session's CSRF
// token (from the page's <meta name="csrf-token">).

export const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

/** Calls Lumen's JSON API as the signed-in person; throws an Error with the API's message. */
export async function api(method, url, body) {
  const headers = { "X-CSRF-Token": csrf };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = new Error(json?.error?.message ?? `${response.status} ${response.statusText}`);
    error.code = json?.error?.code;
    error.status = response.status;
    throw error;
  }
  return json;
}

