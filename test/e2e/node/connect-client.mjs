// connect-client.mjs is an MCP client (the TypeScript SDK's Streamable HTTP client) that meets
// mcpgate's connect-required answer. The Go test (test/e2e/connect_test.go) drives it line by line:
//
//	node connect-client.mjs <mcp-url> <api-key> <tool>
//
//  1. It connects and calls <tool>, sending the API key as a bearer token. Not connected yet, the
//     upstream refuses and mcpgate answers -32042; the script prints one JSON line
//     {"phase":"connect-required","code","message","data","raw"}: code, message and data as the
//     SDK's error has them, raw the JSON-RPC error as it came over the wire (the SDK keeps only the
//     elicitations of the data).
//  2. It waits for a line on stdin (the test has connected in a browser meanwhile).
//  3. It connects again, calls <tool> and prints {"phase":"result","text"}.
//
// Anything unexpected prints {"phase":"error","error"} and exits 1.
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [url, apiKey, tool] = process.argv.slice(2);
if (!url || !apiKey || !tool) {
  process.stderr.write('usage: node connect-client.mjs <mcp-url> <api-key> <tool>\n');
  process.exit(2);
}

const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');
const stdin = createInterface({ input: process.stdin });
const nextLine = () =>
  new Promise((resolve, reject) => {
    stdin.once('line', resolve);
    stdin.once('close', () => reject(new Error('stdin closed before the test said to retry')));
  });

// rawErrors collects the JSON-RPC errors of the gateway's JSON answers, read from a copy of each
// response so the SDK still gets the original.
const rawErrors = [];
const recordingFetch = async (input, init) => {
  const response = await fetch(input, init);
  if ((response.headers.get('content-type') ?? '').includes('application/json')) {
    try {
      const body = await response.clone().json();
      for (const m of Array.isArray(body) ? body : [body]) {
        if (m?.error) rawErrors.push(m.error);
      }
    } catch {
      // Not JSON after all: nothing to record.
    }
  }
  return response;
};

async function connectAndCall() {
  // The client declares URL elicitation, so the gateway answers connect-required with -32042 (a
  // client that does not declare it gets the gateway's fallback answers instead; fallback_test.go).
  const client = new Client({ name: 'mcpgate-e2e-connect-client', version: '1.0.0' },
    { capabilities: { elicitation: { url: {} } } });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${apiKey}` } },
    fetch: recordingFetch,
  });
  try {
    await client.connect(transport);
    const result = await client.callTool({ name: tool, arguments: {} });
    return (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
  } finally {
    await client.close().catch(() => {});
  }
}

try {
  try {
    const text = await connectAndCall();
    throw new Error(`the first call succeeded before connecting: ${text}`);
  } catch (err) {
    if (err?.code !== -32042) throw err;
    print({ phase: 'connect-required', code: err.code, message: err.message, data: err.data ?? null, raw: rawErrors.at(-1) ?? null });
  }
  await nextLine();
  print({ phase: 'result', text: await connectAndCall() });
  stdin.close();
} catch (err) {
  print({ phase: 'error', error: String(err?.stack ?? err) });
  process.exit(1);
}
