// ONNX Runtime worker of the peer benchmark (driven by peers.py; see run.sh).
//
//   node ort_bench.js ORT_NODE_MODULES MODEL.onnx FRAME.f32 THREADS
//
// Loads onnxruntime-node from ORT_NODE_MODULES (the cache run.sh installs it into), opens the
// model on the CPU execution provider with THREADS intra-op threads, all graph optimisations, and
// answers one JSON line per command line on stdin:
//   logits          -> {"logits": [...]}   the model's output for FRAME
//   time N          -> {"ms": [...], "cpu_ms": [...]}   wall and process CPU time of N runs on
//                      FRAME, one by one
//   quit
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');

async function main() {
  const [modules, modelPath, framePath, threadsText] = process.argv.slice(2);
  if (!threadsText) {
    throw new Error('usage: ort_bench.js ORT_NODE_MODULES MODEL.onnx FRAME.f32 THREADS');
  }
  const ort = require(path.join(modules, 'onnxruntime-node'));
  const threads = parseInt(threadsText, 10);
  const session = await ort.InferenceSession.create(modelPath, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  const input = session.inputNames[0];
  const output = session.outputNames[0];
  const shape = session.inputMetadata
    ? session.inputMetadata.find((m) => m.name === input)?.shape
    : undefined;
  const bytes = fs.readFileSync(framePath);
  // A copy into a fresh, aligned Float32Array (the file buffer may sit at any offset of a pool).
  const pixels = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(pixels.buffer).set(bytes);
  if (!shape || shape.some((d) => typeof d !== 'number')) {
    throw new Error(`${modelPath}: expected an input of fixed shape, got ${JSON.stringify(shape)}`);
  }
  if (shape.reduce((a, b) => a * b, 1) !== pixels.length) {
    throw new Error(`${framePath}: ${pixels.length} floats, the model takes ${shape.join('x')}`);
  }
  const feeds = { [input]: new ort.Tensor('float32', pixels, shape) };
  const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
  say({ ready: true, version: ort.env.versions.node || ort.env.versions.common, threads });

  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (cmd === 'logits') {
      const out = await session.run(feeds);
      say({ logits: Array.from(out[output].data) });
    } else if (cmd === 'time') {
      const ms = [];
      const cpuMs = [];
      for (let i = 0; i < parseInt(arg, 10); i++) {
        const c0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        await session.run(feeds);
        ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
        const c = process.cpuUsage(c0);
        cpuMs.push((c.user + c.system) / 1e3);
      }
      say({ ms, cpu_ms: cpuMs });
    } else if (cmd === 'quit') {
      break;
    } else {
      throw new Error(`unknown command '${line}'`);
    }
  }
  await session.release();
}

main().catch((err) => {
  process.stderr.write(`ort_bench.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
