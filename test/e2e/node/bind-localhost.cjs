// bind-localhost.cjs is preloaded with `node --require ./bind-localhost.cjs` into servers that call
// listen(port) with no host (server-everything does), so they bind to 127.0.0.1 only instead of every
// interface. Once a server listens, its real address is printed on stderr as
// "MCPGATE_LISTENING 127.0.0.1:PORT": with PORT=0 the kernel picks a free port and the test harness
// (internal/testutil/nodeenv) learns it from that line, so there is no free-port race.
'use strict';
const net = require('node:net');

const listen = net.Server.prototype.listen;
const isPort = (v) => typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v));

net.Server.prototype.listen = function (...args) {
  if (isPort(args[0]) && (args.length === 1 || typeof args[1] === 'function')) {
    args.splice(1, 0, '127.0.0.1');
  } else if (args[0] && typeof args[0] === 'object' && args[0].port !== undefined && !args[0].host && !args[0].path) {
    args[0] = { ...args[0], host: '127.0.0.1' };
  }
  this.once('listening', () => {
    const a = this.address();
    if (a && typeof a === 'object') {
      process.stderr.write(`MCPGATE_LISTENING ${a.address}:${a.port}\n`);
    }
  });
  return listen.apply(this, args);
};
