// The public API as this page uses it: the staff login and its tokens, kept in memory only
// (never in localStorage or a cookie: closing the tab ends the session).
//
// The refresh token is rotated as the API does it: `POST /v1/auth/refresh` answers a new
// pair and spends the old token, so the page always keeps only the newest one. It refreshes
// a minute before the access token expires, and once more when a call answers 401; refreshes
// never run twice at once (a spent token presented again would revoke the whole login).

const API = "v1"; // relative: the page works behind a path prefix too

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

export class Session {
  constructor({ onExpired } = {}) {
    this.access = null;
    this.refreshToken = null;
    this.timer = null;
    this.refreshing = null;
    this.onExpired = onExpired || (() => {});
  }

  get active() {
    return this.access !== null;
  }

  async login(username, password) {
    const form = new URLSearchParams({ username, password, grant_type: "password" });
    const response = await fetch(`${API}/auth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: form,
    });
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    this.keep(await response.json());
  }

  keep(pair) {
    this.access = pair.access_token;
    this.refreshToken = pair.refresh_token;
    clearTimeout(this.timer);
    const early = Math.max(5, Number(pair.expires_in || 0) - 60);
    this.timer = setTimeout(() => this.refresh().catch(() => {}), early * 1000);
  }

  /** Trades the refresh token for a new pair; concurrent callers share one exchange. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.exchange().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async exchange() {
    const spent = this.refreshToken;
    if (!spent) throw new ApiError(401, null);
    this.refreshToken = null; // spent from here on, whatever the answer
    const response = await fetch(`${API}/auth/refresh`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ refresh_token: spent }),
    });
    if (!response.ok) {
      this.forget();
      this.onExpired();
      throw new ApiError(response.status, await problemOf(response));
    }
    this.keep(await response.json());
  }

  async logout() {
    const token = this.refreshToken;
    this.forget();
    if (token) {
      await fetch(`${API}/auth/revoke`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
      }).catch(() => {});
    }
  }

  forget() {
    clearTimeout(this.timer);
    this.access = null;
    this.refreshToken = null;
  }

  /** GET `path` (under /v1) as JSON; one refresh and retry on 401. */
  async get(path, params = {}) {
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""));
    const url = `${API}${path}${query.size ? `?${query}` : ""}`;
    const used = this.access;
    let response = await this.send(url);
    if (response.status === 401 && (this.refreshing || this.refreshToken || this.access !== used)) {
      // Another call may have refreshed already (or be refreshing): then only retry.
      if (this.access === used) await this.refresh();
      response = await this.send(url);
    }
    if (response.status === 401) {
      this.forget();
      this.onExpired();
    }
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    return response.json();
  }

  send(url) {
    return fetch(url, { headers: { Authorization: `Bearer ${this.access}`, Accept: "application/json" } });
  }
}
