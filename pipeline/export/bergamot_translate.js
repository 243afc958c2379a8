// Translate stdin (one sentence a line) with bergamot-translator, the WebAssembly engine Firefox uses,
// loading the files an export ships. Used by the tests to prove that Firefox's engine loads them.
//
//   node pipeline/export/bergamot_translate.js --package DIR --model model.xxyy.intgemm8.bin \
//       --vocab vocab.xxyy.spm [--trg-vocab trgvocab.xxyy.spm] [--shortlist lex.50.50.xxyy.s2t.bin] \
//       [--precision int8shiftAll] < in > out
//
// With one vocabulary per language, --vocab is srcvocab.xxyy.spm and --trg-vocab trgvocab.xxyy.spm: both are
// handed to the engine in that order, as Firefox does.
//
// DIR is the installed npm package @browsermt/bergamot-translator. The package's own translator.js needs
// a browser (Web Worker, fetch); its worker script is evaluated here as a classic script with a global
// `Module`, like the browser worker does, and the int8 GEMM imports are linked to the module's fallbacks.
"use strict";

const fs = require("fs");
const path = require("path");
const vm = require("vm");
const zlib = require("zlib");

const GEMM_FALLBACKS = {
  int8_prepare_a: "int8PrepareAFallback",
  int8_prepare_b: "int8PrepareBFallback",
  int8_prepare_b_from_transposed: "int8PrepareBFromTransposedFallback",
  int8_prepare_b_from_quantized_transposed: "int8PrepareBFromQuantizedTransposedFallback",
  int8_prepare_bias: "int8PrepareBiasFallback",
  int8_multiply_and_add_bias: "int8MultiplyAndAddBiasFallback",
  int8_select_columns_of_b: "int8SelectColumnsOfBFallback",
};

function fail(message) {
  process.stderr.write(`bergamot_translate: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = { precision: "int8shiftAll" };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    if (!key.startsWith("--") || i + 1 >= argv.length) fail(`bad argument ${key}`);
    args[key.slice(2)] = argv[i + 1];
  }
  for (const required of ["package", "model", "vocab"]) {
    if (!args[required]) fail(`--${required} is required`);
  }
  return args;
}

// Exported files may be gzipped, as Firefox's registry stores them.
function readMaybeGzip(file) {
  const data = fs.readFileSync(file);
  return file.endsWith(".gz") ? zlib.gunzipSync(data) : data;
}

function alignedMemory(Module, bytes, alignment) {
  const memory = new Module.AlignedMemory(bytes.byteLength, alignment);
  memory.getByteArrayView().set(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return memory;
}

function translateAll(Module, args, lines) {
  // The configuration Firefox's translation worker passes (see firefox-export.md).
  const config = [
    "beam-size: 1",
    "normalize: 1.0",
    "word-penalty: 0",
    "max-length-break: 128",
    "mini-batch-words: 1024",
    "workspace: 128",
    "max-length-factor: 2.0",
    "skip-cost: true",
    "cpu-threads: 0",
    "quiet: true",
    "quiet-translation: true",
    `gemm-precision: ${args.precision}`,
    "alignment: soft",
  ].join("\n");
  const model = alignedMemory(Module, readMaybeGzip(args.model), 256);
  const shortlist = args.shortlist
    ? alignedMemory(Module, readMaybeGzip(args.shortlist), 64)
    : new Module.AlignedMemory(0, 64);
  const vocabs = new Module.AlignedMemoryList();
  vocabs.push_back(alignedMemory(Module, readMaybeGzip(args.vocab), 64));
  if (args["trg-vocab"]) vocabs.push_back(alignedMemory(Module, readMaybeGzip(args["trg-vocab"]), 64));
  const translationModel = new Module.TranslationModel(config, model, shortlist, vocabs, null);
  const service = new Module.BlockingService({ cacheSize: 0 });

  const input = new Module.VectorString();
  const options = new Module.VectorResponseOptions();
  for (const line of lines) {
    input.push_back(line);
    options.push_back({ qualityScores: false, alignment: false, html: false });
  }
  const responses = service.translate(translationModel, input, options);
  const translations = [];
  for (let i = 0; i < lines.length; i++) {
    translations.push(responses.get(i).getTranslatedText().replace(/\n/g, " "));
  }
  return translations;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const workerDir = path.join(args.package, "worker");
  const wasm = fs.readFileSync(path.join(workerDir, "bergamot-translator-worker.wasm"));
  const lines = fs.readFileSync(0, "utf8").split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();

  const Module = {
    print: (text) => process.stderr.write(`${text}\n`),
    printErr: (text) => process.stderr.write(`${text}\n`),
    instantiateWasm(imports, accept) {
      const wasmGemm = {};
      for (const [name, fallback] of Object.entries(GEMM_FALLBACKS)) {
        wasmGemm[name] = (...a) => Module.asm[fallback](...a);
      }
      WebAssembly.instantiate(wasm, { ...imports, wasm_gemm: wasmGemm })
        .then(({ instance }) => accept(instance))
        .catch((error) => fail(`cannot instantiate the WebAssembly module: ${error}`));
      return {};
    },
    onRuntimeInitialized() {
      let translations;
      try {
        translations = translateAll(Module, args, lines);
      } catch (error) {
        // Marian aborts surface here (the model loads lazily, at the first translation).
        fail(`translation failed: ${error && error.message ? error.message : error}`);
      }
      process.stdout.write(translations.map((t) => `${t}\n`).join(""));
    },
  };
  globalThis.Module = Module;
  const source = fs.readFileSync(path.join(workerDir, "bergamot-translator-worker.js"), "utf8");
  vm.runInThisContext(source, { filename: "bergamot-translator-worker.js" });
}

main();
