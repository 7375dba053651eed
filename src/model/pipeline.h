// One model across several processes (pipeline parallel over dist/comm.h, normally MPI ranks on several
// hosts). Rank 0 runs the command (generate, perplexity, bench, serve ...) unchanged: its Model holds the
// embedding, the head and the first layers, and forward() sends the step's hidden states on through the
// other ranks, each holding a contiguous range of layers and the KV pages of those layers for every
// sequence. The last rank returns the rows that need logits to rank 0.
//
//   rank 0: embed, layers [0, a)  --x [T, D]-->  rank 1: layers [a, b)  --> ... --> rank P-1: layers [.., L)
//   rank 0: final norm, LM head, sampling  <--rows [n, D]--  rank P-1
//
// KV blocks are allocated by rank 0's pool only: each step carries every sequence's block table and the
// copies and frees rank 0's pool made since the last step, and the other ranks keep mirror pools with the
// same block ids (kv_pool.h), so prefix reuse and preemption work unchanged. Each rank maps only the shards
// holding its tensors. Messages between two ranks arrive in order, so a rank processes steps in the order
// rank 0 issued them.
//
// Worker states: idle (waiting for rank 0: setup or shutdown) and serving (steps from the previous rank,
// until a release travels down the chain). A worker that fails ends the whole job (MPI_Abort): mpirun then
// stops every rank within seconds and exits non-zero.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/comm.h"
#include "kv/kv_pool.h"
#include "model/weights.h"

namespace tqlm {

// Set by the CLI before a model is loaded (--layer-split, --mem-limit).
struct PipelineOptions {
  std::vector<int64_t> layer_split;  // layers per rank; empty: planned from memory
  std::vector<uint64_t> mem_limit;   // bytes per rank (one value: every rank); empty: available memory
};
PipelineOptions& pipeline_options();

class Model;
struct BatchSeq;

// Rank 0's end of a running pipeline (owned by its Model).
class PipelineHead {
 public:
  // Plans the split (model/layer_split.h), prints it, and asks every worker to load its layers; returns
  // rank 0's part in *part0. wait_ready() then waits for the workers (rank 0 loads its own part meanwhile).
  PipelineHead(Comm& comm, const std::string& path, int threads, ModelPart* part0);
  ~PipelineHead();  // the workers drop the model and wait for the next one
  void wait_ready();

  // A pool of rank 0's layers whose block operations the workers mirror. `budget`: bytes for the whole
  // model's KV (every rank); capped by what the smallest rank can hold for its layers.
  std::shared_ptr<KVPool> new_pool(const KVSpec& kv, const KVShape& shape, uint64_t budget, LayerRange local);
  // Model::launch / collect / in_flight in a pipeline.
  void launch(Model& m, const std::vector<BatchSeq>& batch);
  void collect(Model& m, float* logits);
  int64_t in_flight() const;
  int depth() const;

 private:
  struct State;
  std::shared_ptr<State> st_;
};

// Runs a worker rank (rank > 0) until rank 0 ends the job; returns the process's exit code.
int run_pipeline_worker(Comm& comm);
// Rank 0, at the end of main(): tells every idle worker to exit.
void stop_pipeline_workers(Comm& comm);

}  // namespace tqlm
