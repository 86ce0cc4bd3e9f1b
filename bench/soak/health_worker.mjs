// bench/soak/health_worker.mjs: the /health poller of the soak, on its own worker thread so the 64 clients' work
// on the main event loop does not inflate what it measures. Every interval it opens a fresh connection (what a
// load balancer's probe does) and times GET /health to the end of the body. On 'stop' it posts every latency,
// the status counts and the slowest polls (with their time since start).
import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

const { base, interval_ms, timeout_ms } = workerData;
const latencies = [];
const statuses = {};
const slowest = [];
let stopping = false;
const t_start = performance.now();

function poll() {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.get(`${base}/health`, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: String(res.statusCode), ms: performance.now() - t0 }));
      res.on('error', (e) => resolve({ status: `error ${e.code ?? e.message}`, ms: performance.now() - t0 }));
    });
    req.setTimeout(timeout_ms, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: `error ${e.code ?? e.message}`, ms: performance.now() - t0 }));
  });
}

parentPort.on('message', (m) => { if (m === 'stop') stopping = true; });

while (!stopping) {
  const t0 = performance.now();
  const r = await poll();
  latencies.push(r.ms);
  statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  slowest.push({ ms: r.ms, at_s: (t0 - t_start) / 1000, status: r.status });
  if (slowest.length > 40) {
    slowest.sort((a, b) => b.ms - a.ms);
    slowest.length = 10;
  }
  const wait = interval_ms - (performance.now() - t0);
  if (wait > 0) await new Promise((res) => setTimeout(res, wait));
}
slowest.sort((a, b) => b.ms - a.ms);
parentPort.postMessage({ latencies, statuses, slowest: slowest.slice(0, 10) });
