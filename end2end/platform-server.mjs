// A small platform that embeds awx-onboard, for the end-to-end tests: it holds a service
// key (never a token), creates a connect session when its user clicks, shows the outcome
// and the account read through the API when the browser comes back, and receives webhooks.
//
//   node platform-server.mjs PORT AWX_BASE_URL KEY_FILE
//
// GET  /app?user=ID[&signup=1]  the platform's page for its user ID
// POST /connect                 creates a connect session, sends the browser to its link
// GET  /back?user=ID&...        where sessions return: outcome, account and balances, via the
//                               API and its Airwallex proxy (the platform never holds a token)
// POST /hooks                   the webhook receiver (raw bodies and headers kept)
// GET  /received                what the receiver got, as JSON (for the tests)
import * as fs from 'node:fs';
import * as http from 'node:http';

const [port, awx, keyFile] = [Number(process.argv[2]), process.argv[3], process.argv[4]];
const self = `http://127.0.0.1:${port}`;
const received = [];

const key = () => fs.readFileSync(keyFile, 'utf8').trim();
const escape = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function api(method, path, body) {
  const response = await fetch(`${awx}/api/platform/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${key()}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

function page(res, status, title, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title></head>` +
    `<body><main><h1>${escape(title)}</h1>${body}</main></body></html>`);
}

function readBody(req) {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => resolve(body));
  });
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, self);
  try {
    if (url.pathname === '/healthz') {
      res.writeHead(200).end('ok');
    } else if (req.method === 'GET' && url.pathname === '/app') {
      const user = url.searchParams.get('user');
      const signup = url.searchParams.get('signup') === '1' ? '1' : '';
      page(res, 200, `Acme Platform: ${user}`,
        `<form method="post" action="/connect"><input type="hidden" name="user" value="${escape(user)}">` +
        `<input type="hidden" name="signup" value="${signup}"><button type="submit">Connect with Airwallex</button></form>`);
    } else if (req.method === 'POST' && url.pathname === '/connect') {
      const form = new URLSearchParams(await readBody(req));
      const user = form.get('user');
      const created = await api('POST', '/connect-sessions', {
        external_id: user,
        email: `${user}@platform.test`,
        return_url: `${self}/back?user=${encodeURIComponent(user)}`,
        business_name: `Shop of ${user}`,
        tags: { plan: 'gold' },
        sign_up: form.get('signup') === '1',
      });
      if (created.status !== 201) {
        page(res, 502, 'Could not start', `<pre>${escape(JSON.stringify(created.body))}</pre>`);
        return;
      }
      res.writeHead(303, { location: created.body.url }).end();
    } else if (req.method === 'GET' && url.pathname === '/back') {
      const user = url.searchParams.get('user');
      const session = await api('GET', `/connect-sessions/${encodeURIComponent(url.searchParams.get('connect_session'))}`);
      const connection = await api('GET', `/merchants/external/${encodeURIComponent(user)}/connection`);
      const balances = connection.body.status === 'connected'
        ? await api('GET', `/merchants/external/${encodeURIComponent(user)}/airwallex/api/v1/balances/current`)
        : { status: 0, body: [] };
      const rows = Array.isArray(balances.body)
        ? balances.body.map((b) => `<tr data-balance="${escape(b.currency)}"><td>${escape(b.currency)}</td>` +
          `<td>${escape(b.available_amount)}</td><td>${escape(b.total_amount)}</td></tr>`).join('')
        : '';
      page(res, 200, 'Back on Acme Platform',
        `<p data-outcome="${escape(url.searchParams.get('status'))}">Outcome: ${escape(url.searchParams.get('status'))}` +
        `${url.searchParams.get('reason') ? ` (${escape(url.searchParams.get('reason'))})` : ''}</p>` +
        `<p data-session-outcome="${escape(session.body.outcome)}">Session: ${escape(session.body.status)}</p>` +
        `<dl><dt>Status</dt><dd data-status="${escape(connection.body.status)}">${escape(connection.body.status)}</dd>` +
        `<dt>Business</dt><dd data-business>${escape(connection.body.business_name)}</dd>` +
        `<dt>Account</dt><dd data-account>${escape(connection.body.account_id)}</dd></dl>` +
        `<table><caption>Balances (through awx-onboard's proxy: HTTP ${balances.status})</caption>` +
        `<tr><th>Currency</th><th>Available</th><th>Total</th></tr>${rows}</table>`);
    } else if (req.method === 'POST' && url.pathname === '/hooks') {
      received.push({ headers: req.headers, body: await readBody(req) });
      res.writeHead(204).end();
    } else if (req.method === 'GET' && url.pathname === '/received') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(received));
    } else {
      res.writeHead(404).end('not found');
    }
  } catch (error) {
    res.writeHead(500).end(String(error));
  }
});

server.listen(port, '127.0.0.1');
