// The main API's stand-in for scripts/bench.sh: answers every POST with 200
// after reading its body, over keep-alive; GET /stats tells how many POSTs
// (and bytes) it took, so the load script can check that every request it
// counted was really forwarded. Listens on 127.0.0.1:PORT only.
import http from "node:http";

const port = Number(process.argv[2] || 0);
let posts = 0;
let bytes = 0;

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/stats") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ posts, bytes }));
    return;
  }
  let n = 0;
  req.on("data", (chunk) => (n += chunk.length));
  req.on("end", () => {
    posts += 1;
    bytes += n;
    res.writeHead(200, { "content-type": "application/json", "content-length": "11" });
    res.end('{"ok":true}');
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => {
  console.log(`stand-in listening on ${server.address().port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
