// signin-client.mjs is the TypeScript SDK side of mcpgate's sign-in end-to-end test
// (test/e2e/signin_test.go): an MCP client whose OAuthClientProvider signs a person in at mcpgate,
// the route's own authorization server. The Go test drives it line by line and plays the person in
// Chromium. Usage:
//
//	node signin-client.mjs <mcp-url>
//
//  1. It listens on 127.0.0.1 (a free port) for its redirect URI, /callback, and connects. The SDK
//     gets 401, reads the gateway's protected-resource and authorization-server metadata, registers
//     (DCR) and calls redirectToAuthorization: the script prints {"phase":"authorize","url"} and
//     waits for the authorization response at its redirect URI (the browser lands there after
//     Authorize on the gateway's consent page).
//  2. It checks state and iss, exchanges the code (transport.finishAuth), connects again, lists
//     the tools, calls whoami and prints {"phase":"result",…}: the text, the first 401 challenge,
//     the resource metadata, the client id, and the shape of the tokens (prefixes, type, lifetime,
//     scope — never a token).
//  3. On the line "refresh" it calls the SDK's auth(), which refreshes with the stored refresh
//     token (what the transport does when a call gets 401), calls whoami again and prints
//     {"phase":"refreshed","result","accessChanged","refreshChanged","text"}.
//  4. On the line "revoke" it revokes its refresh token at the metadata's revocation_endpoint
//     (RFC 7009) and calls whoami: the gateway answers 401, the SDK tries to refresh (refused),
//     drops its tokens and starts a new authorization, which the script records instead of
//     printing; the call fails with UnauthorizedError. It prints {"phase":"revoked",…}.
//  5. It exits 0 when stdin closes.
//
// Anything unexpected prints {"phase":"error","error"} and exits 1.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { auth, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const [url] = process.argv.slice(2);
if (!url) {
  process.stderr.write('usage: node signin-client.mjs <mcp-url>\n');
  process.exit(2);
}

const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const nextCommand = async (want) => {
  const { value, done } = await lines.next();
  if (done) throw new Error(`stdin closed before "${want}"`);
  if (value.trim() !== want) throw new Error(`got command ${JSON.stringify(value)}, want "${want}"`);
};

// The redirect URI: each authorization response is handed to whoever waits for it.
const responses = [];
let waiting;
const server = createServer((req, res) => {
  const u = new URL(req.url, 'http://127.0.0.1');
  if (u.pathname !== '/callback') {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end('<!doctype html><title>Signed in</title><h1>Signed in</h1><p>Return to the application; you can close this tab.</p>');
  responses.push(u.searchParams);
  waiting?.();
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const redirectUrl = `http://127.0.0.1:${server.address().port}/callback`;
const nextResponse = () =>
  new Promise((resolve) => {
    const check = () => {
      if (responses.length) {
        waiting = undefined;
        resolve(responses.shift());
      }
    };
    waiting = check;
    check();
  });

// What the SDK did over HTTP: 401 challenges, the metadata it read, the refresh requests.
const seen = { challenges: [], refreshStatuses: [] };
const fetchLogged = async (input, init) => {
  const res = await fetch(input, init);
  const u = new URL(String(input instanceof Request ? input.url : input));
  if (res.status === 401) seen.challenges.push(res.headers.get('www-authenticate'));
  if (u.pathname.startsWith('/.well-known/oauth-protected-resource') && res.ok && !seen.resourceMetadata) {
    seen.resourceMetadata = await res.clone().json();
  }
  if (u.pathname.endsWith('/oauth/token') && String(init?.body ?? '').includes('grant_type=refresh_token')) {
    seen.refreshStatuses.push(res.status);
  }
  return res;
};

// The provider keeps everything in memory, as the SDK hands it over (issuer stamps included).
class Provider {
  constructor() {
    this.signingIn = true;
    this.invalidated = [];
  }
  get redirectUrl() {
    return redirectUrl;
  }
  get clientMetadata() {
    return {
      client_name: 'mcpgate e2e TypeScript client',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    this._state = randomBytes(16).toString('hex');
    return this._state;
  }
  clientInformation() {
    return this._client;
  }
  saveClientInformation(info) {
    this._client = info;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
  }
  saveCodeVerifier(v) {
    this._verifier = v;
  }
  codeVerifier() {
    return this._verifier;
  }
  saveDiscoveryState(s) {
    this._discovery = s;
  }
  discoveryState() {
    return this._discovery;
  }
  invalidateCredentials(scope) {
    this.invalidated.push(scope);
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'client') this._client = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this._discovery = undefined;
  }
  // redirectToAuthorization "opens the browser": the first time the test does it; later (after
  // the revocation) the script only records that a new sign-in was asked for.
  redirectToAuthorization(authorizationUrl) {
    if (this.signingIn) {
      this.signingIn = false;
      print({ phase: 'authorize', url: authorizationUrl.href });
    } else {
      this.reauthorization = authorizationUrl.href;
    }
  }
}

const texts = (result) => (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text);
const whoami = async (client) => texts(await client.callTool({ name: 'whoami', arguments: {} })).join('\n');
const prefix = (token) => /^[a-z]+_[a-z]+_/.exec(String(token ?? ''))?.[0] ?? '';

async function connect(provider) {
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider, fetch: fetchLogged });
  const client = new Client({ name: 'mcpgate-e2e-signin-ts-client', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

let conn;
try {
  const provider = new Provider();
  try {
    conn = await connect(provider);
    throw new Error('connected without signing in');
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  const back = await nextResponse();
  if (back.get('error')) throw new Error(`authorization refused: ${back.get('error')}: ${back.get('error_description')}`);
  if (back.get('state') !== provider._state) throw new Error('the authorization response carries another state');
  if (back.get('iss') !== url) throw new Error(`the authorization response's iss is ${back.get('iss')}, want ${url}`);
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider, fetch: fetchLogged });
  await transport.finishAuth(back.get('code'));
  conn = await connect(provider);
  const { client } = conn;
  const tools = (await client.listTools()).tools.map((t) => t.name);
  const text = await whoami(client);
  const tk = provider._tokens;
  print({
    phase: 'result',
    text,
    tools,
    challenge: seen.challenges[0] ?? null,
    resourceMetadata: seen.resourceMetadata ?? null,
    clientId: provider._client?.client_id ?? null,
    tokens: { accessPrefix: prefix(tk.access_token), refreshPrefix: prefix(tk.refresh_token), tokenType: tk.token_type, expiresIn: tk.expires_in, scope: tk.scope },
  });

  await nextCommand('refresh');
  const before = provider._tokens;
  const result = await auth(provider, { serverUrl: new URL(url), fetchFn: fetchLogged });
  const after = provider._tokens;
  print({
    phase: 'refreshed',
    result,
    accessChanged: Boolean(after?.access_token) && after.access_token !== before.access_token,
    refreshChanged: Boolean(after?.refresh_token) && after.refresh_token !== before.refresh_token,
    text: await whoami(client),
  });

  await nextCommand('revoke');
  const revocation = provider._discovery?.authorizationServerMetadata?.revocation_endpoint;
  if (!revocation) throw new Error('the authorization server metadata names no revocation_endpoint');
  const revoked = await fetch(revocation, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: provider._tokens.refresh_token, token_type_hint: 'refresh_token', client_id: provider._client.client_id }),
  });
  const challengesBefore = seen.challenges.length;
  const refreshesBefore = seen.refreshStatuses.length;
  let callError;
  try {
    await whoami(client);
  } catch (err) {
    callError = err;
  }
  print({
    phase: 'revoked',
    revokeStatus: revoked.status,
    challenges: seen.challenges.slice(challengesBefore),
    refreshStatuses: seen.refreshStatuses.slice(refreshesBefore),
    invalidated: provider.invalidated,
    reauthorization: provider.reauthorization ?? '',
    unauthorizedError: callError instanceof UnauthorizedError,
    error: callError && !(callError instanceof UnauthorizedError) ? String(callError?.stack ?? callError) : undefined,
  });

  // Done: wait for the test to close stdin.
  while (!(await lines.next()).done) {
    // ignore
  }
  await conn.client.close().catch(() => {});
  server.close();
} catch (err) {
  print({ phase: 'error', error: String(err?.stack ?? err) });
  await conn?.client.close().catch(() => {});
  server.close();
  process.exit(1);
}
