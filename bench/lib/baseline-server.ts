// The baseline: plain node:http answering a fixed small JSON, about the size of a
// CreateAccessToken response. Every scenario's req/s is divided by this server's,
// measured in the same run with the same client settings.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const body = JSON.stringify({
  RequestId: '8A3E8B43-6C52-4D5B-9C8E-2F1D0B6A7C11',
  AccessTokenId: 'at-0123456789abcdefghij',
  AccessTokenCode: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef',
});
const headers = { 'content-type': 'application/json;charset=utf-8', 'content-length': Buffer.byteLength(body) };

const server = createServer((req, res) => {
  // Read the whole request (a POST form like the scenario's), then answer.
  req.resume();
  req.on('end', () => {
    res.writeHead(200, headers);
    res.end(body);
  });
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  console.log(`baseline listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
process.once('SIGTERM', () => process.exit(0));
