// conformance-server.mjs is a Streamable HTTP MCP server that implements what the
// @modelcontextprotocol/conformance server scenarios ask of the server under test (their
// "Server Implementation Requirements": the test_* tools, test:// resources and test_* prompts),
// so that every scenario passes when the suite talks to it directly. server-everything passes only
// a third of them, since it has other tools; with this server, the gateway comparison in
// test/e2e covers sampling and elicitation (server-to-client requests on the POST's SSE stream,
// answered by a second POST), logging and progress notifications, and every content type.
//
//	PORT=0 node --require ./bind-localhost.cjs conformance-server.mjs
//
// It listens on 127.0.0.1 only, is stateful (Mcp-Session-Id), and refuses a request whose Host or
// Origin is not a loopback name (DNS-rebinding protection), as a local MCP server must.
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  CreateMessageResultSchema,
  ElicitResultSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';

// A 1×1 PNG and a 4-sample silent WAV, made for this file.
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGOQz98PAAH+AU7LcH9QAAAAAElFTkSuQmCC';
const WAV = 'UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQgAAAAAAAAAAAAAAA==';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (t) => ({ type: 'text', text: t });
const noArgs = { type: 'object', properties: {} };

const tools = [
  { name: 'test_simple_text', description: 'Returns one text item.', inputSchema: noArgs },
  { name: 'test_image_content', description: 'Returns one PNG image.', inputSchema: noArgs },
  { name: 'test_audio_content', description: 'Returns one WAV clip.', inputSchema: noArgs },
  { name: 'test_embedded_resource', description: 'Returns an embedded text resource.', inputSchema: noArgs },
  { name: 'test_multiple_content_types', description: 'Returns text, an image and a resource.', inputSchema: noArgs },
  { name: 'test_tool_with_logging', description: 'Logs three messages while it runs.', inputSchema: noArgs },
  { name: 'test_tool_with_progress', description: 'Reports progress 0, 50 and 100 of 100.', inputSchema: noArgs },
  { name: 'test_error_handling', description: 'Always fails with isError.', inputSchema: noArgs },
  {
    name: 'test_reconnection',
    description: 'Closes its SSE stream mid-call; the result waits for the client to resume with GET and Last-Event-ID.',
    inputSchema: noArgs,
  },
  {
    name: 'test_sampling',
    description: 'Asks the client for an LLM completion of prompt.',
    inputSchema: { type: 'object', properties: { prompt: { type: 'string' } }, required: ['prompt'] },
  },
  {
    name: 'test_elicitation',
    description: 'Asks the client for a username and an email.',
    inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] },
  },
  { name: 'test_elicitation_sep1034_defaults', description: 'Elicits a form whose fields have defaults.', inputSchema: noArgs },
  { name: 'test_elicitation_sep1330_enums', description: 'Elicits a form with every enum shape.', inputSchema: noArgs },
  {
    name: 'json_schema_2020_12_tool',
    description: 'Has a JSON Schema 2020-12 input schema with $defs.',
    inputSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      $defs: { address: { type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } } },
      properties: { name: { type: 'string' }, address: { $ref: '#/$defs/address' } },
      additionalProperties: false,
    },
  },
];

// Form schemas of the elicitation tools, as the scenarios describe them.
const forms = {
  test_elicitation: {
    type: 'object',
    properties: {
      username: { type: 'string', description: "User's response" },
      email: { type: 'string', description: "User's email address" },
    },
    required: ['username', 'email'],
  },
  test_elicitation_sep1034_defaults: {
    type: 'object',
    properties: {
      name: { type: 'string', default: 'John Doe' },
      age: { type: 'integer', default: 30 },
      score: { type: 'number', default: 95.5 },
      status: { type: 'string', enum: ['active', 'inactive', 'pending'], default: 'active' },
      verified: { type: 'boolean', default: true },
    },
  },
  test_elicitation_sep1330_enums: {
    type: 'object',
    properties: {
      untitledSingle: { type: 'string', enum: ['option1', 'option2', 'option3'] },
      titledSingle: {
        type: 'string',
        oneOf: [
          { const: 'value1', title: 'First Option' },
          { const: 'value2', title: 'Second Option' },
          { const: 'value3', title: 'Third Option' },
        ],
      },
      legacyEnum: { type: 'string', enum: ['opt1', 'opt2', 'opt3'], enumNames: ['Option One', 'Option Two', 'Option Three'] },
      untitledMulti: { type: 'array', items: { type: 'string', enum: ['option1', 'option2', 'option3'] } },
      titledMulti: {
        type: 'array',
        items: {
          anyOf: [
            { const: 'value1', title: 'First Choice' },
            { const: 'value2', title: 'Second Choice' },
            { const: 'value3', title: 'Third Choice' },
          ],
        },
      },
    },
  },
};

async function callTool(name, args, extra) {
  switch (name) {
    case 'test_simple_text':
      return { content: [text('This is a simple text response for testing.')] };
    case 'test_image_content':
      return { content: [{ type: 'image', data: PNG, mimeType: 'image/png' }] };
    case 'test_audio_content':
      return { content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }] };
    case 'test_embedded_resource':
      return {
        content: [{ type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'Embedded.' } }],
      };
    case 'test_multiple_content_types':
      return {
        content: [
          text('Multiple content types test:'),
          { type: 'image', data: PNG, mimeType: 'image/png' },
          {
            type: 'resource',
            resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: '{"test":"data","value":123}' },
          },
        ],
      };
    case 'test_tool_with_logging':
      for (const [i, msg] of ['Tool execution started', 'Tool processing data', 'Tool execution completed'].entries()) {
        if (i > 0) await sleep(50);
        // Sent on this request's own stream: through a gateway that answers GET with 405 there is no
        // standalone stream for unrelated notifications.
        await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: msg } });
      }
      return { content: [text('Tool with logging executed successfully')] };
    case 'test_tool_with_progress': {
      const progressToken = extra._meta?.progressToken;
      for (const [i, progress] of [0, 50, 100].entries()) {
        if (i > 0) await sleep(50);
        if (progressToken !== undefined) {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress, total: 100 } });
        }
      }
      return { content: [text(`progress reported for token ${progressToken}`)] };
    }
    case 'test_error_handling':
      return { isError: true, content: [text('This tool intentionally returns an error for testing')] };
    case 'test_reconnection':
      // SEP-1699 polling: end this response's connection now (the SDK sends a retry field first);
      // the result is stored in the event store and replayed when the client comes back with GET.
      extra.closeSSEStream?.();
      await sleep(100);
      return { content: [text('Reconnection test completed: the result arrived after the client resumed the stream.')] };
    case 'test_sampling': {
      const r = await extra.sendRequest(
        {
          method: 'sampling/createMessage',
          params: { messages: [{ role: 'user', content: text(String(args.prompt ?? '')) }], maxTokens: 100 },
        },
        CreateMessageResultSchema,
      );
      return { content: [text(`LLM response: ${r.content?.text ?? '(no text)'}`)] };
    }
    case 'test_elicitation':
    case 'test_elicitation_sep1034_defaults':
    case 'test_elicitation_sep1330_enums': {
      const r = await extra.sendRequest(
        {
          method: 'elicitation/create',
          params: { mode: 'form', message: String(args.message ?? 'Please fill in the form'), requestedSchema: forms[name] },
        },
        ElicitResultSchema,
      );
      return { content: [text(`Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`)] };
    }
    case 'json_schema_2020_12_tool':
      return { content: [text(`called with ${JSON.stringify(args)}`)] };
    default:
      return { isError: true, content: [text(`unknown tool ${name}`)] };
  }
}

const resources = [
  { uri: 'test://static-text', name: 'static-text', mimeType: 'text/plain' },
  { uri: 'test://static-binary', name: 'static-binary', mimeType: 'image/png' },
  { uri: 'test://watched-resource', name: 'watched-resource', mimeType: 'text/plain' },
];

function readResource(uri) {
  if (uri === 'test://static-text') {
    return { uri, mimeType: 'text/plain', text: 'This is the content of the static text resource.' };
  }
  if (uri === 'test://static-binary') return { uri, mimeType: 'image/png', blob: PNG };
  if (uri === 'test://watched-resource') return { uri, mimeType: 'text/plain', text: 'Watched resource content' };
  const m = /^test:\/\/template\/([^/]+)\/data$/.exec(uri);
  if (m) {
    return { uri, mimeType: 'application/json', text: JSON.stringify({ id: m[1], templateTest: true, data: `Data for ID: ${m[1]}` }) };
  }
  throw new Error(`resource ${uri} not found`);
}

const prompts = [
  { name: 'test_simple_prompt', description: 'No arguments.' },
  {
    name: 'test_prompt_with_arguments',
    description: 'Two required arguments.',
    arguments: [
      { name: 'arg1', required: true },
      { name: 'arg2', required: true },
    ],
  },
  {
    name: 'test_prompt_with_embedded_resource',
    description: 'Embeds the resource named by resourceUri.',
    arguments: [{ name: 'resourceUri', required: true }],
  },
  { name: 'test_prompt_with_image', description: 'Includes an image.' },
];

function getPrompt(name, args = {}) {
  const user = (content) => ({ role: 'user', content });
  switch (name) {
    case 'test_simple_prompt':
      return { messages: [user(text('This is a simple prompt for testing.'))] };
    case 'test_prompt_with_arguments':
      return { messages: [user(text(`Prompt with arguments: arg1='${args.arg1}', arg2='${args.arg2}'`))] };
    case 'test_prompt_with_embedded_resource':
      return {
        messages: [
          user({ type: 'resource', resource: { uri: args.resourceUri, mimeType: 'text/plain', text: 'Embedded resource content.' } }),
          user(text('Please process the embedded resource above.')),
        ],
      };
    case 'test_prompt_with_image':
      return { messages: [user({ type: 'image', data: PNG, mimeType: 'image/png' }), user(text('Describe the image.'))] };
    default:
      throw new Error(`prompt ${name} not found`);
  }
}

function newServer() {
  const server = new Server(
    { name: 'mcpgate-conformance-fixture', version: '1.0.0' },
    { capabilities: { tools: {}, resources: { subscribe: true }, prompts: {}, logging: {}, completions: {} } },
  );
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools }));
  server.setRequestHandler(CallToolRequestSchema, async (req, extra) => callTool(req.params.name, req.params.arguments ?? {}, extra));
  server.setRequestHandler(ListResourcesRequestSchema, async () => ({ resources }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({
    resourceTemplates: [{ uriTemplate: 'test://template/{id}/data', name: 'template', mimeType: 'application/json' }],
  }));
  server.setRequestHandler(ReadResourceRequestSchema, async (req) => ({ contents: [readResource(req.params.uri)] }));
  server.setRequestHandler(SubscribeRequestSchema, async () => ({}));
  server.setRequestHandler(UnsubscribeRequestSchema, async () => ({}));
  server.setRequestHandler(ListPromptsRequestSchema, async () => ({ prompts }));
  server.setRequestHandler(GetPromptRequestSchema, async (req) => getPrompt(req.params.name, req.params.arguments));
  server.setRequestHandler(SetLevelRequestSchema, async () => ({}));
  server.setRequestHandler(CompleteRequestSchema, async (req) => {
    const values = ['paris', 'park', 'party'].filter((v) => v.startsWith(req.params.argument.value ?? ''));
    return { completion: { values, total: values.length, hasMore: false } };
  });
  return server;
}

const loopback = new Set(['127.0.0.1', 'localhost', '[::1]']);
const hostname = (hostPort) => {
  try {
    return new URL(`http://${hostPort}`).hostname;
  } catch {
    return '';
  }
};

const originHost = (origin) => {
  try {
    return new URL(origin).hostname;
  } catch {
    return '';
  }
};

function reject(res, status, message) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

async function readJSON(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
}

// retryMs is the SSE retry interval the server announces before closing a stream (SEP-1699).
const retryMs = 200;

// newEventStore keeps a session's SSE events so a client can resume a stream with Last-Event-ID.
function newEventStore() {
  const events = []; // { id, streamId, message }, in order
  let seq = 0;
  return {
    async storeEvent(streamId, message) {
      const id = `${streamId}_${++seq}`;
      events.push({ id, streamId, message });
      return id;
    },
    async getStreamIdForEventId(eventId) {
      return events.find((e) => e.id === eventId)?.streamId;
    },
    async replayEventsAfter(lastEventId, { send }) {
      const at = events.findIndex((e) => e.id === lastEventId);
      if (at < 0) throw new Error(`unknown event ${lastEventId}`);
      const { streamId } = events[at];
      for (const e of events.slice(at + 1)) {
        if (e.streamId === streamId) await send(e.id, e.message);
      }
      return streamId;
    },
  };
}

const sessions = new Map();

const http = createServer(async (req, res) => {
  try {
    if (new URL(req.url, 'http://x').pathname !== '/mcp') return reject(res, 404, 'not found');
    const origin = req.headers.origin;
    if (!loopback.has(hostname(req.headers.host ?? '')) || (origin && !loopback.has(originHost(origin)))) {
      return reject(res, 403, 'Forbidden: Host or Origin is not a loopback name');
    }
    const sid = req.headers['mcp-session-id'];
    if (sid) {
      const transport = sessions.get(sid);
      if (!transport) return reject(res, 404, 'Session not found');
      const body = req.method === 'POST' ? await readJSON(req) : undefined;
      return await transport.handleRequest(req, res, body);
    }
    if (req.method !== 'POST') return reject(res, 400, 'Bad Request: no session');
    const body = await readJSON(req);
    if (body?.method !== 'initialize') return reject(res, 400, 'Bad Request: no session');
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      eventStore: newEventStore(),
      retryInterval: retryMs,
      onsessioninitialized: (id) => sessions.set(id, transport),
    });
    transport.onclose = () => sessions.delete(transport.sessionId);
    await newServer().connect(transport);
    await transport.handleRequest(req, res, body);
  } catch (err) {
    if (!res.headersSent) reject(res, 500, String(err));
  }
});

http.listen(Number(process.env.PORT ?? 0), '127.0.0.1');
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
