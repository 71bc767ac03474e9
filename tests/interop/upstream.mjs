// A simple MCP server (the official TypeScript SDK, streamable HTTP, stateless) for the gateway to put
// Portcullis in front of. It has no authentication of its own: it trusts the gateway's identity headers.
//
//   node upstream.mjs PORT
//
// Tools: `whoami {cloudId?}` answers the identity headers the gateway set (and whether an Authorization header
// reached it, which must never happen); `create_page {cloudId, title}` (the gateway requires mcp:write).

import http from 'node:http';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const port = Number(process.argv[2] ?? process.env.UPSTREAM_PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node upstream.mjs PORT');
  process.exit(2);
}

const identity = (headers) => ({
  accountId: headers['x-portcullis-account-id'] ?? null,
  authMethod: headers['x-portcullis-auth-method'] ?? null,
  scopes: headers['x-portcullis-scopes'] ?? null,
  siteId: headers['x-portcullis-site-id'] ?? null,
  authorizationForwarded: headers.authorization !== undefined,
});

let nextPage = 1;

function mcpServer() {
  const server = new Server({ name: 'interop-upstream', version: '0.0.0' }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: [
      {
        name: 'whoami',
        description: 'The identity the gateway passed on.',
        inputSchema: { type: 'object', properties: { cloudId: { type: 'string' } } },
      },
      {
        name: 'create_page',
        description: 'Creates a page on a site. Needs mcp:write.',
        inputSchema: {
          type: 'object',
          properties: { cloudId: { type: 'string' }, title: { type: 'string' } },
          required: ['cloudId', 'title'],
        },
      },
    ],
  }));
  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const headers = extra.requestInfo?.headers ?? {};
    const who = identity(headers);
    const args = request.params.arguments ?? {};
    let result;
    if (request.params.name === 'whoami') {
      result = who;
    } else if (request.params.name === 'create_page') {
      result = { id: `page-${nextPage++}`, siteId: who.siteId, title: String(args.title ?? ''), author: who.accountId };
    } else {
      return { isError: true, content: [{ type: 'text', text: `unknown tool ${request.params.name}` }] };
    }
    return { content: [{ type: 'text', text: JSON.stringify(result) }], structuredContent: result };
  });
  return server;
}

const httpServer = http.createServer(async (req, res) => {
  console.error(`upstream: ${req.method} ${req.url}`);
  if (req.url !== '/mcp') {
    res.writeHead(404).end();
    return;
  }
  if (req.method !== 'POST') {
    // Stateless: no standalone SSE stream, no sessions to end.
    res.writeHead(405, { allow: 'POST' }).end();
    return;
  }
  try {
    const server = mcpServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      transport.close();
      server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  } catch (err) {
    console.error(`upstream: ${err?.stack ?? err}`);
    if (!res.headersSent) res.writeHead(500).end();
  }
});

httpServer.listen(port, '127.0.0.1', () => console.log(`MCP upstream http://127.0.0.1:${port}/mcp`));
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => httpServer.close(() => process.exit(0)).closeAllConnections());
}
