// auth-oauth-client.mjs is the TypeScript SDK side of mcpgate's gateway-auth end-to-end test
// (test/e2e/auth_test.go). Usage:
//
//	node auth-oauth-client.mjs <mcp-url> <echo-text>
//
// It connects to an MCP route of mcpgate protected by open-id-jwt-auth-inbound with an
// OAuthClientProvider: the SDK gets 401 + WWW-Authenticate resource_metadata from mcpgate,
// reads mcpgate's protected-resource metadata, discovers the authorization server (Ory Hydra),
// registers dynamically, and asks for authorization; the provider plays the browser headlessly
// (following redirects through Hydra's login and consent app with its own cookie jar) and the
// script finishes the flow, reconnects, lists tools and calls echo. It prints one JSON report on
// stdout, never a token: what it learned on the way (the challenge, the registered client, the
// granted audience) and the results.
//
// Hydra interop (test-infrastructure.md): the registration carries a valid client_uri and
// non-empty contacts (Hydra echoes "" and null otherwise, which the SDK's schema rejects), and the
// provider implements state() (Hydra requires at least 8 characters; the SDK sends none otherwise).
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const [url, text] = process.argv.slice(2);
if (!url || text === undefined) {
  process.stderr.write('usage: node auth-oauth-client.mjs <mcp-url> <echo-text>\n');
  process.exit(2);
}

const report = { challenges: [], metadataFetches: [] };
const redirectUrl = 'http://127.0.0.1:1/callback'; // never contacted: the provider stops at it

// fetchLogged records what the SDK saw of mcpgate (401 challenges, metadata documents).
const fetchLogged = async (input, init) => {
  const res = await fetch(input, init);
  const u = String(input instanceof Request ? input.url : input);
  if (res.status === 401) {
    report.challenges.push({ url: u, wwwAuthenticate: res.headers.get('www-authenticate') });
  }
  if (u.includes('/.well-known/oauth-protected-resource')) {
    report.metadataFetches.push({ url: u, status: res.status });
    if (res.ok) report.resourceMetadata = await res.clone().json();
  }
  return res;
};

class HeadlessProvider {
  constructor() {
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this.code = undefined;
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
      client_uri: 'https://mcpgate.example/e2e',
      contacts: ['e2e@mcpgate.example'],
      scope: 'mcp',
    };
  }
  state() {
    return randomBytes(16).toString('hex');
  }
  clientInformation() {
    return this._client;
  }
  saveClientInformation(info) {
    this._client = info;
    report.registeredClient = { hasClientId: Boolean(info.client_id), tokenEndpointAuthMethod: info.token_endpoint_auth_method };
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
    report.tokenType = tokens.token_type;
    report.scope = tokens.scope;
    report.audience = jwtClaims(tokens.access_token)?.aud ?? null;
  }
  saveCodeVerifier(v) {
    this._verifier = v;
  }
  codeVerifier() {
    return this._verifier;
  }
  // redirectToAuthorization plays the user's browser: it follows the authorization server's
  // redirects (login, consent) with a cookie jar and stops at redirect_uri, keeping the code.
  async redirectToAuthorization(authorizationUrl) {
    report.authorizationRequest = {
      resource: authorizationUrl.searchParams.get('resource'),
      codeChallengeMethod: authorizationUrl.searchParams.get('code_challenge_method'),
      hasState: authorizationUrl.searchParams.has('state'),
    };
    const jar = new Map(); // host -> Map(name -> value)
    let next = authorizationUrl.href;
    for (let hop = 0; hop < 20; hop++) {
      const u = new URL(next);
      const cookies = jar.get(u.host);
      const headers = cookies ? { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {};
      const res = await fetch(u, { redirect: 'manual', headers });
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(';');
        const i = pair.indexOf('=');
        if (!jar.has(u.host)) jar.set(u.host, new Map());
        jar.get(u.host).set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
      }
      const loc = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !loc) {
        throw new Error(`authorization: ${u.origin}${u.pathname} answered ${res.status}, not a redirect: ${(await res.text()).slice(0, 500)}`);
      }
      next = new URL(loc, u).href;
      if (next.startsWith(redirectUrl)) {
        const back = new URL(next);
        if (back.searchParams.get('error')) throw new Error(`authorization refused: ${back.searchParams.get('error')}`);
        this.code = back.searchParams.get('code');
        return;
      }
    }
    throw new Error('authorization: too many redirects');
  }
}

function jwtClaims(token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) return null;
  try {
    return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return null;
  }
}

const texts = (result) => (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text);

async function connect(provider) {
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider, fetch: fetchLogged });
  const client = new Client({ name: 'mcpgate-e2e-ts-oauth-client', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

try {
  const provider = new HeadlessProvider();
  let conn;
  try {
    conn = await connect(provider);
    report.authorizedWithoutLogin = true;
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
    if (!provider.code) throw new Error(`no authorization code after UnauthorizedError: ${err}`);
    const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider, fetch: fetchLogged });
    await transport.finishAuth(provider.code);
    conn = await connect(provider);
  }
  const { client, transport } = conn;
  report.serverInfo = client.getServerVersion();
  const tools = await client.listTools();
  report.tools = tools.tools.map((t) => t.name);
  report.echo = texts(await client.callTool({ name: 'echo', arguments: { text } }));
  await transport.terminateSession().catch(() => {});
  await client.close();
  process.stdout.write(JSON.stringify(report) + '\n');
} catch (err) {
  report.error = String(err?.stack ?? err);
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exit(1);
}
