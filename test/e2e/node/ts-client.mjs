// ts-client.mjs drives an MCP server with the TypeScript SDK's Streamable HTTP client and prints one
// JSON report on stdout; the Go test (test/e2e) asserts on it. Usage:
//
//	node ts-client.mjs <mcp-url> <echo-message>
//
// It initializes, lists tools, calls echo, get-sum, get-structured-content and
// trigger-long-running-operation (with a progress token), recording when each progress notification
// and the final result arrived so the test can tell a streamed response from a buffered one.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [url, message] = process.argv.slice(2);
if (!url || message === undefined) {
  process.stderr.write('usage: node ts-client.mjs <mcp-url> <echo-message>\n');
  process.exit(2);
}

const texts = (result) => (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text);

const report = {};
const client = new Client({ name: 'mcpgate-e2e-ts-client', version: '1.0.0' });
const transport = new StreamableHTTPClientTransport(new URL(url));
try {
  await client.connect(transport);
  report.serverInfo = client.getServerVersion();
  report.protocolVersion = transport.protocolVersion ?? null;
  report.sessionId = transport.sessionId ?? null;

  const tools = await client.listTools();
  report.tools = tools.tools.map((t) => t.name);

  report.echo = texts(await client.callTool({ name: 'echo', arguments: { message } }));
  report.sum = texts(await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } }));
  const structured = await client.callTool({ name: 'get-structured-content', arguments: { location: 'Chicago' } });
  report.structured = structured.structuredContent ?? null;

  const start = performance.now();
  const progress = [];
  const long = await client.callTool(
    { name: 'trigger-long-running-operation', arguments: { duration: 2, steps: 4 } },
    undefined,
    {
      timeout: 30000,
      onprogress: (p) => progress.push({ progress: p.progress, total: p.total, atMs: performance.now() - start }),
    },
  );
  report.long = { text: texts(long), resultAtMs: performance.now() - start, progress };

  await transport.terminateSession().catch((err) => {
    report.terminateError = String(err);
  });
  await client.close();
  process.stdout.write(JSON.stringify(report) + '\n');
} catch (err) {
  report.error = String(err?.stack ?? err);
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exit(1);
}
