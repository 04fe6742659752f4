// fallback-ts-client.mjs is the TypeScript SDK's MCP client against a token-exchange route whose
// upstream the caller has not connected yet; the Go test (test/e2e/fallback_test.go) asserts on the
// one JSON report it prints on stdout. Usage:
//
//	node fallback-ts-client.mjs <mcp-url> <api-key> <url|none>
//
// With "url" the client declares URL elicitation (capabilities.elicitation.url), with "none" it
// declares no elicitation at all. It sends the API key as a bearer token, connects (initialize),
// and when that succeeds lists the tools, calls whoami and pings. The report holds the
// capabilities its initialize actually sent, the error of connect (code, message and data as the
// SDK has them, and the error's class) or the initialize result (server name, instructions, the Mcp-Session-Id), the tool
// list and the whoami result.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [url, apiKey, mode] = process.argv.slice(2);
if (!url || !apiKey || (mode !== 'url' && mode !== 'none')) {
  process.stderr.write('usage: node fallback-ts-client.mjs <mcp-url> <api-key> <url|none>\n');
  process.exit(2);
}

const report = { declared: null };
// Record the capabilities of the initialize request as it goes over the wire.
const recordingFetch = async (input, init) => {
  if (typeof init?.body === 'string' && init.body.includes('"initialize"')) {
    try {
      const m = JSON.parse(init.body);
      if (m.method === 'initialize') report.declared = m.params?.capabilities ?? null;
    } catch {
      // Not JSON: nothing to record.
    }
  }
  return fetch(input, init);
};

const capabilities = mode === 'url' ? { elicitation: { url: {} } } : {};
const client = new Client({ name: 'mcpgate-e2e-fallback-ts-client', version: '1.0.0' }, { capabilities });
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${apiKey}` } },
  fetch: recordingFetch,
});
const texts = (result) => (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');

try {
  try {
    await client.connect(transport);
  } catch (err) {
    report.connectError = { class: err?.constructor?.name ?? null, code: err?.code ?? null, message: String(err?.message ?? err), data: err?.data ?? null };
    process.stdout.write(JSON.stringify(report) + '\n');
    process.exit(0);
  }
  report.serverInfo = client.getServerVersion() ?? null;
  report.instructions = client.getInstructions() ?? null;
  report.sessionId = transport.sessionId ?? null;
  report.tools = (await client.listTools()).tools.map((t) => ({ name: t.name, description: t.description ?? '' }));
  const call = await client.callTool({ name: 'whoami', arguments: {} });
  report.call = { isError: call.isError === true, text: texts(call) };
  await client.ping();
  report.ping = true;
  await client.close();
  process.stdout.write(JSON.stringify(report) + '\n');
} catch (err) {
  report.error = String(err?.stack ?? err);
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exit(1);
}
