// resume-client.mjs calls conformance-server.mjs's test_reconnection tool with the TypeScript SDK
// client and prints one JSON line {ok, ms, text, error}. The server closes the
// call's SSE stream before answering (SEP-1699 polling); the client must resume it with a GET
// carrying Last-Event-ID to receive the result. Usage:
//
//	node resume-client.mjs <mcp-url> <timeout-ms>
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [url, timeoutArg] = process.argv.slice(2);
const timeout = Number(timeoutArg ?? 5000);
const report = { ok: false };
const client = new Client({ name: 'mcpgate-e2e-resume-client', version: '1.0.0' });
const transport = new StreamableHTTPClientTransport(new URL(url));
try {
  await client.connect(transport);
  const start = performance.now();
  try {
    const r = await client.callTool({ name: 'test_reconnection', arguments: {} }, undefined, { timeout });
    report.ok = true;
    report.text = r.content?.[0]?.text;
  } catch (err) {
    report.error = String(err);
  }
  report.ms = Math.round(performance.now() - start);
  await client.close();
} catch (err) {
  report.error = String(err?.stack ?? err);
}
process.stdout.write(JSON.stringify(report) + '\n');
