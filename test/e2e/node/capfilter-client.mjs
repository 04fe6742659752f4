// capfilter-client.mjs connects to an MCP route with a bearer token, using the TypeScript SDK's
// Streamable HTTP client, and prints one JSON report on stdout for the capability-filter test
// (test/e2e/capfilter_test.go). Usage:
//
//	node capfilter-client.mjs <mcp-url> <bearer-token> <tool-to-call> [<arguments-json>]
//
// It lists the tools and calls <tool-to-call>, reporting the result's texts or the JSON-RPC error
// (code and message) the call got.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [url, token, tool, args = '{}'] = process.argv.slice(2);
if (!url || !token || !tool) {
  process.stderr.write('usage: node capfilter-client.mjs <mcp-url> <bearer-token> <tool-to-call> [<arguments-json>]\n');
  process.exit(2);
}

const report = {};
const client = new Client({ name: 'mcpgate-e2e-capfilter-client', version: '1.0.0' });
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
try {
  await client.connect(transport);
  report.tools = (await client.listTools()).tools.map((t) => t.name);
  try {
    const res = await client.callTool({ name: tool, arguments: JSON.parse(args) });
    const texts = (res.content ?? []).filter((c) => c.type === 'text').map((c) => c.text);
    report.call = { isError: res.isError ?? false, texts };
  } catch (err) {
    if (typeof err?.code !== 'number') throw err;
    report.call = { code: err.code, message: String(err.message) };
  }
  await client.close();
  process.stdout.write(JSON.stringify(report) + '\n');
} catch (err) {
  report.error = String(err?.stack ?? err);
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exit(1);
}
