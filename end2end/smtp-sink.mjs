// A real SMTP server for the end-to-end tests (the app sends to it with lettre over TCP),
// with an HTTP side for the tests to read what arrived: GET /messages (JSON), GET /healthz.
// Usage: node smtp-sink.mjs SMTP_PORT HTTP_PORT
import net from 'node:net';
import http from 'node:http';

const [smtpPort, httpPort] = process.argv.slice(2).map(Number);
const messages = [];

net
  .createServer((socket) => {
    let buffer = '';
    let inData = false;
    let data = '';
    let from = '';
    let to = [];
    const reply = (line) => socket.write(`${line}\r\n`);
    reply('220 sink.test ESMTP');
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      let end;
      while ((end = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            messages.push({ from, to, data });
            reply(`250 2.0.0 queued as ${messages.length}`);
            data = '';
          } else {
            data += (line.startsWith('.') ? line.slice(1) : line) + '\r\n';
          }
          continue;
        }
        const upper = line.toUpperCase();
        if (upper.startsWith('EHLO')) reply('250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8');
        else if (upper.startsWith('HELO')) reply('250 sink.test');
        else if (upper.startsWith('MAIL FROM:')) {
          from = line.slice(10).replace(/^.*<([^>]*)>.*$/, '$1');
          to = [];
          reply('250 2.1.0 ok');
        } else if (upper.startsWith('RCPT TO:')) {
          to.push(line.slice(8).replace(/^.*<([^>]*)>.*$/, '$1'));
          reply('250 2.1.5 ok');
        } else if (upper === 'DATA') {
          inData = true;
          reply('354 end with <CRLF>.<CRLF>');
        } else if (upper === 'QUIT') {
          reply('221 2.0.0 bye');
          socket.end();
        } else reply('250 2.0.0 ok');
      }
    });
    socket.on('error', () => {});
  })
  .listen(smtpPort, '127.0.0.1');

http
  .createServer((request, response) => {
    if (request.url === '/messages') {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(messages));
    } else if (request.url === '/healthz') {
      response.writeHead(200);
      response.end('ok');
    } else {
      response.writeHead(404);
      response.end();
    }
  })
  .listen(httpPort, '127.0.0.1');
