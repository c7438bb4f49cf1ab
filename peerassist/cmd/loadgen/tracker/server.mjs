// bittorrent-tracker's server, WebSocket only, on a loopback port: the
// reference the load generator measures the edge's coordinator against.
//
//   node server.mjs [port]
//
// Prints {"addr":"127.0.0.1:PORT"} once listening.
import Server from 'bittorrent-tracker/server'

const port = Number(process.argv[2] || 0)
const server = new Server({ http: false, udp: false, ws: true, stats: false, trustProxy: false })
server.on('error', (err) => { console.error('tracker error:', err.message); process.exit(1) })
server.on('warning', () => {}) // bad client input: expected under load tests
server.listen(port, '127.0.0.1', () => {
  const a = server.ws.address()
  process.stdout.write(JSON.stringify({ addr: `${a.address}:${a.port}` }) + '\n')
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
