#include "model/pipeline.h"

#include <unistd.h>

#include <cstdio>
#include <deque>
#include <map>
#include <mutex>

#include "core/error.h"
#include "core/memory.h"
#include "core/thread_pool.h"
#include "dist/wire.h"
#include "kernels/qlinear.h"
#include "model/layer_split.h"
#include "model/model.h"

namespace tqlm {

namespace {

enum Kind : int32_t {
  kHello = 1,  // worker -> 0 at start: available memory, cores, host name
  kSetup,      // 0 -> worker (idle): model path, threads, layer range, linear path
  kReady,      // worker -> 0: loaded or the error, memory left
  kPool,       // down the chain: a new KV pool (id, mode, boundary, calibration file)
  kPoolDrop,   // down the chain: pool id gone
  kStep,       // down the chain: one forward step
  kResult,     // last rank -> 0: the rows that get logits
  kRelease,    // down the chain: drop the model, back to idle
  kShutdown,   // 0 -> worker (idle): exit
};

constexpr size_t kMaxSeqs = 1 << 20, kMaxBlocks = 1 << 24, kMaxOps = 1 << 24;
constexpr int64_t kKvReserveTokens = 4096;  // bf16 KV reserved per layer when planning the split

struct Hello {
  uint64_t avail = 0;
  int32_t cores = 0;
  std::string host;
};

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}

std::vector<uint8_t> hello_message() {
  WireWriter w;
  w.put<int32_t>(kHello);
  w.put<uint64_t>(available_memory_bytes());
  w.put<int32_t>(ThreadPool::default_threads());
  w.put_string(host_name());
  return w.take();
}

Hello parse_hello(const std::vector<uint8_t>& m, int from) {
  WireReader r(m);
  if (r.get<int32_t>() != kHello) fail("pipeline: rank {} did not start as a tqlm worker", from);
  Hello h;
  h.avail = r.get<uint64_t>();
  h.cores = r.get<int32_t>();
  h.host = r.get_string(256);
  return h;
}

std::vector<uint8_t> one_int(int32_t kind) {
  WireWriter w;
  w.put<int32_t>(kind);
  return w.take();
}

int32_t kind_of(const std::vector<uint8_t>& m) {
  return WireReader(m).get<int32_t>();
}

// The workers' hellos, read once per process (a job may load several models one after another).
std::vector<Hello>& hellos() {
  static std::vector<Hello> h;
  return h;
}

bool& pipeline_active() {
  static bool on = false;
  return on;
}

}  // namespace

PipelineOptions& pipeline_options() {
  static PipelineOptions o;
  return o;
}

// ---------------------------------------------------------------------------------------------------
// rank 0

struct PipelineHead::State {
  Comm& comm;
  int P = 1;
  std::mutex mu;  // one MPI caller at a time (MPI_THREAD_SERIALIZED)
  SplitPlan plan;
  std::vector<std::string> hosts;  // [P]
  std::vector<uint64_t> room;      // [P] memory left after the weights, as each rank reported it
  std::map<const KVPool*, int32_t> pools;
  int32_t next_pool = 0;
  uint64_t steps = 0;
  std::deque<std::pair<uint64_t, int64_t>> flight;  // launched steps: (id, logit rows); id 0: empty step
  // traffic: every step message crosses P - 1 hops unchanged in size; results come back once
  uint64_t bytes_step = 0, bytes_result = 0, tokens = 0, rows_back = 0;
  bool ready = false;  // wait_ready() read every worker's answer
  bool released = false;
  explicit State(Comm& c) : comm(c), P(c.size()) {}
};

PipelineHead::PipelineHead(Comm& comm, const std::string& path, int threads, ModelPart* part0)
    : st_(std::make_shared<State>(comm)) {
  State& s = *st_;
  if (pipeline_active()) fail("pipeline: only one model at a time can run across the ranks");
  if (hellos().empty()) {
    hellos().resize(size_t(s.P));
    hellos()[0] = parse_hello(hello_message(), 0);
    for (int r = 1; r < s.P; ++r) hellos()[size_t(r)] = parse_hello(comm.recv(r), r);
  }
  // What every rank may use: --mem-limit, else the host's available memory shared by its ranks.
  const PipelineOptions& o = pipeline_options();
  std::vector<uint64_t> cap(size_t(s.P));
  std::map<std::string, int> per_host;
  for (const Hello& h : hellos()) ++per_host[h.host];
  for (int r = 0; r < s.P; ++r) {
    const Hello& h = hellos()[size_t(r)];
    s.hosts.push_back(h.host);
    if (!o.mem_limit.empty()) {
      if (o.mem_limit.size() != 1 && int(o.mem_limit.size()) != s.P)
        fail("--mem-limit has {} values but the job has {} ranks (give one, or one per rank)",
             o.mem_limit.size(), s.P);
      cap[size_t(r)] = o.mem_limit.size() == 1 ? o.mem_limit[0] : o.mem_limit[size_t(r)];
    } else {
      cap[size_t(r)] = h.avail / uint64_t(per_host[h.host]);
    }
  }
  {
    const Checkpoint ck(path);  // every shard's header (mapped, not read)
    if (!ck.has_config()) fail("{}: config.json is missing", path);
    const ModelConfig cfg = parse_model_config(ck.config(), path + "/config.json");
    const ModelBytes mb = model_bytes(ck, cfg);
    s.plan = plan_layer_split(mb, cap, kv_bytes_per_layer(KVSpec("bf16"), cfg.kv_shape(), kKvReserveTokens),
                              o.layer_split);
  }
  std::fprintf(stderr,
               "tqlm: pipeline over %d ranks (%s), layers split %s (KV reserve: bf16, %lld tokens):\n%s", s.P,
               comm.describe().c_str(), s.plan.how.c_str(), (long long)kKvReserveTokens,
               format_split(s.plan, s.hosts).c_str());
  for (int r = 1; r < s.P; ++r) {
    const StagePlan& st = s.plan.stages[size_t(r)];
    if (!st.fits())
      std::fprintf(stderr, "tqlm: warning: rank %d needs more memory than it has (--layer-split)\n", r);
    WireWriter w;
    w.put<int32_t>(kSetup);
    w.put_string(path);
    w.put<int32_t>(threads);
    w.put<int64_t>(st.layers.begin);
    w.put<int64_t>(st.layers.end);
    w.put_string(linear_path_name(linear_path()));
    comm.send(r, w.take());
  }
  pipeline_active() = true;
  part0->layers = s.plan.stages[0].layers;
  part0->head = true;
}

void PipelineHead::wait_ready() {
  State& s = *st_;
  std::lock_guard<std::mutex> lk(s.mu);
  std::string errors;
  s.room.assign(size_t(s.P), 0);
  s.room[0] = available_memory_bytes();
  for (int r = 1; r < s.P; ++r) {
    const std::vector<uint8_t> m = s.comm.recv(r);
    WireReader rd(m);
    if (rd.get<int32_t>() != kReady) fail("pipeline: rank {} answered the setup out of order", r);
    const bool ok = rd.get<uint8_t>() != 0;
    const std::string err = rd.get_string();
    s.room[size_t(r)] = rd.get<uint64_t>();
    if (!ok) errors += fmt::format("\n  rank {} ({}): {}", r, s.hosts[size_t(r)], err);
  }
  s.ready = true;
  if (!errors.empty()) fail("pipeline: workers could not load their layers:{}", errors);
}

PipelineHead::~PipelineHead() {
  State& s = *st_;
  std::lock_guard<std::mutex> lk(s.mu);
  try {
    for (; !s.flight.empty(); s.flight.pop_front())  // results nobody collected: take them off the wire
      if (s.flight.front().first) s.comm.recv(s.P - 1);
    if (!s.ready)  // rank 0 failed before the workers answered: take their answers, or the next model reads
                   // them
      for (int r = 1; r < s.P; ++r) s.comm.recv(r);
    s.comm.send(1, one_int(kRelease));
    s.comm.flush();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tqlm: error: pipeline release: %s\n", e.what());
  }
  s.released = true;
  pipeline_active() = false;
  if (s.steps > 0)
    std::fprintf(stderr,
                 "tqlm: pipeline traffic: %llu steps, %llu tokens: %.1f MB per hop (%.0f bytes per token, %d "
                 "hops), %.1f MB of results (%.0f bytes per logit row)\n",
                 (unsigned long long)s.steps, (unsigned long long)s.tokens, double(s.bytes_step) / 1e6,
                 double(s.bytes_step) / double(std::max<uint64_t>(1, s.tokens)), s.P - 1,
                 double(s.bytes_result) / 1e6,
                 double(s.bytes_result) / double(std::max<uint64_t>(1, s.rows_back)));
}

std::shared_ptr<KVPool> PipelineHead::new_pool(const KVSpec& kv, const KVShape& shape, uint64_t budget,
                                               LayerRange local) {
  State& s = *st_;
  std::lock_guard<std::mutex> lk(s.mu);
  if (budget > 0 && !s.room.empty()) {
    // No rank may be asked for more blocks than half the memory it has left can hold.
    const std::vector<uint64_t> per_layer = kv_bytes_per_layer(kv, shape, kPageTokens);
    uint64_t full = 0, blocks = UINT64_MAX;
    for (uint64_t b : per_layer) full += b;
    for (int r = 0; r < s.P; ++r) {
      uint64_t bb = 0;
      const StagePlan& st = s.plan.stages[size_t(r)];
      for (int64_t l = st.layers.begin; l < st.layers.end; ++l) bb += per_layer[size_t(l)];
      if (bb > 0 && s.room[size_t(r)] > 0) blocks = std::min(blocks, s.room[size_t(r)] / 2 / bb);
    }
    if (blocks != UINT64_MAX) budget = std::min(budget, blocks * full);
  }
  const int32_t id = s.next_pool++;
  std::weak_ptr<State> weak = st_;
  std::shared_ptr<KVPool> pool(new KVPool(kv, shape, budget, local), [weak, id](KVPool* p) {
    if (auto st = weak.lock()) {
      std::lock_guard<std::mutex> lk(st->mu);
      st->pools.erase(p);
      if (!st->released) {
        WireWriter w;
        w.put<int32_t>(kPoolDrop);
        w.put<int32_t>(id);
        try {
          st->comm.send(1, w.take());
        } catch (const std::exception& e) {
          std::fprintf(stderr, "tqlm: error: pipeline: %s\n", e.what());
        }
      }
    }
    delete p;
  });
  pool->record_ops(true);
  s.pools[pool.get()] = id;
  WireWriter w;
  w.put<int32_t>(kPool);
  w.put<int32_t>(id);
  w.put_string(kv.mode);
  w.put<int32_t>(kv.boundary);
  w.put_string(kv.calib_path);  // centred and auto modes: every host reads the same file path
  if (kv.calib && kv.calib_path.empty())
    fail("pipeline: a KV calibration given in memory cannot reach the other ranks (give its file)");
  s.comm.send(1, w.take());
  return pool;
}

void PipelineHead::launch(Model& m, const std::vector<BatchSeq>& batch) {
  State& s = *st_;
  std::lock_guard<std::mutex> lk(s.mu);
  const int64_t T = m.begin_step(batch), D = m.config().hidden;
  if (T == 0) {
    s.flight.push_back({0, 0});
    return;
  }
  KVPool* pool = &batch[0].cache->pool();
  for (const BatchSeq& b : batch)
    if (&b.cache->pool() != pool) fail("pipeline: the sequences of one step must share one KV pool");
  auto it = s.pools.find(pool);
  if (it == s.pools.end()) fail("pipeline: a KV pool not made by Model::new_pool (a bug)");
  m.embed(batch);
  m.run_layers(batch);
  // After rank 0's layers: every block the step writes is in the tables, every copy/free in the log.
  WireWriter w;
  w.put<int32_t>(kStep);
  w.put<uint64_t>(++s.steps);
  w.put<int32_t>(it->second);
  const std::vector<KVPoolOp> ops = pool->take_ops();
  w.put_array(ops.data(), ops.size());
  w.put<uint64_t>(batch.size());
  int64_t rows = 0;
  for (const BatchSeq& b : batch) {
    w.put<int64_t>(b.n);
    w.put<int64_t>(b.logits_from);
    w.put<int64_t>(b.cache->length());
    w.put_array(b.cache->blocks().data(), b.cache->blocks().size());
    rows += b.n - b.logits_from;
  }
  w.put<int64_t>(T);
  w.put<int64_t>(D);
  w.put_array(m.hidden(), size_t(T * D));  // x [T, D]
  s.bytes_step += w.size();
  s.tokens += uint64_t(T);
  s.comm.send(1, w.take());
  Model::advance(batch);
  s.flight.push_back({s.steps, rows});
}

void PipelineHead::collect(Model& m, float* logits) {
  State& s = *st_;
  std::lock_guard<std::mutex> lk(s.mu);
  if (s.flight.empty()) fail("forward: collect() without a launched step (a bug)");
  const auto [step, rows] = s.flight.front();
  s.flight.pop_front();
  if (step == 0) return;  // an empty step
  const int64_t D = m.config().hidden;
  const std::vector<uint8_t> res = s.comm.recv(s.P - 1);
  s.bytes_result += res.size();
  s.rows_back += uint64_t(rows);
  WireReader r(res);
  if (r.get<int32_t>() != kResult || r.get<uint64_t>() != step)
    fail("pipeline: rank {} answered out of order", s.P - 1);
  const std::vector<float> out = r.get_array<float>(size_t(rows * D));  // [rows, D]
  if (int64_t(out.size()) != rows * D)
    fail("pipeline: rank {} returned {} values, expected {}", s.P - 1, out.size(), rows * D);
  m.head(out.data(), rows, logits);
}

int64_t PipelineHead::in_flight() const {
  return int64_t(st_->flight.size());
}

int PipelineHead::depth() const {
  return st_->P;
}

void stop_pipeline_workers(Comm& comm) {
  for (int r = 1; r < comm.size(); ++r) comm.send(r, one_int(kShutdown));
  comm.flush();
}

// ---------------------------------------------------------------------------------------------------
// workers

namespace {

struct Worker {
  Comm& comm;
  int rank, P;
  std::unique_ptr<Model> model;
  std::map<int32_t, std::shared_ptr<KVPool>> pools;
  std::vector<std::unique_ptr<KVCache>> views;  // one per sequence slot of the current pool
  int32_t views_pool = -1;

  bool last() const { return rank == P - 1; }
  void pass_on(const std::vector<uint8_t>& m) {
    if (!last()) comm.send(rank + 1, m);
  }

  void setup(const std::vector<uint8_t>& m) {
    WireReader r(m);
    r.get<int32_t>();
    const std::string path = r.get_string(1 << 16);
    const int threads = r.get<int32_t>();
    ModelPart part;
    part.layers.begin = r.get<int64_t>();
    part.layers.end = r.get<int64_t>();
    part.head = false;
    const std::string linear = r.get_string(16);
    std::string err;
    try {
      set_linear_path(parse_linear_path(linear));
      model = std::make_unique<Model>(path, threads, part);
      model->set_layer_hook([this] { comm.poll(); });
    } catch (const std::exception& e) {
      err = e.what();
      model.reset();
    }
    WireWriter w;
    w.put<int32_t>(kReady);
    w.put<uint8_t>(err.empty() ? 1 : 0);
    w.put_string(err);
    w.put<uint64_t>(available_memory_bytes());
    comm.send(0, w.take());
  }

  void step(std::vector<uint8_t>& m) {
    if (!model) fail("pipeline: a step reached a rank without a model");
    WireReader r(m);
    r.get<int32_t>();
    const uint64_t step_id = r.get<uint64_t>();
    const int32_t pool_id = r.get<int32_t>();
    auto it = pools.find(pool_id);
    if (it == pools.end()) fail("pipeline: step {} uses unknown KV pool {}", step_id, pool_id);
    KVPool& pool = *it->second;
    for (const KVPoolOp& op : r.get_array<KVPoolOp>(kMaxOps)) pool.apply(op);
    const size_t nseq = size_t(r.get<uint64_t>());
    if (nseq > kMaxSeqs) fail("pipeline: step {} has {} sequences", step_id, nseq);
    if (views_pool != pool_id) views.clear(), views_pool = pool_id;
    while (views.size() < nseq) views.push_back(std::make_unique<KVCache>(it->second));
    std::vector<BatchSeq> batch(nseq);
    for (size_t i = 0; i < nseq; ++i) {
      BatchSeq& b = batch[i];
      b.n = r.get<int64_t>();
      b.logits_from = r.get<int64_t>();
      const int64_t length = r.get<int64_t>();
      const size_t nb = r.array_size<int32_t>(kMaxBlocks);
      std::vector<int32_t> table(nb);
      if (nb) std::memcpy(table.data(), r.data(), nb * 4);
      r.skip(nb * 4);
      views[i]->view(table.data(), int64_t(nb), length);
      b.cache = views[i].get();
    }
    const int64_t T = r.get<int64_t>(), D = r.get<int64_t>();
    if (D != model->config().hidden)
      fail("pipeline: step {} has width {}, the model {}", step_id, D, model->config().hidden);
    const size_t nx = r.array_size<float>(size_t(T * D));
    if (int64_t(nx) != T * D || model->begin_step(batch) != T)
      fail("pipeline: step {} is inconsistent", step_id);
    const size_t x_at = size_t(r.data() - m.data());  // x [T, D] is the message's tail
    std::memcpy(model->hidden(), r.data(), nx * 4);
    model->run_layers(batch);
    if (!last()) {
      std::memcpy(m.data() + x_at, model->hidden(), nx * 4);
      comm.send(rank + 1, std::move(m));
      return;
    }
    int64_t n = 0;
    const float* rows = model->logit_rows(batch, &n);
    WireWriter w;
    w.put<int32_t>(kResult);
    w.put<uint64_t>(step_id);
    w.put_array(rows, size_t(n * D));
    comm.send(0, w.take());
  }

  void serve() {
    for (;;) {
      std::vector<uint8_t> m = comm.recv(rank - 1);
      const int32_t kind = kind_of(m);
      if (kind == kStep) {
        step(m);
      } else if (kind == kPool) {
        WireReader r(m);
        r.get<int32_t>();
        const int32_t id = r.get<int32_t>();
        const std::string mode = r.get_string(1 << 16);
        const int boundary = r.get<int32_t>();
        const std::string calib = r.get_string(1 << 16);
        if (model)
          pools[id] = std::make_shared<KVPool>(KVSpec(mode, boundary, calib), model->config().kv_shape(), 0,
                                               model->part().layers);
        pass_on(m);
      } else if (kind == kPoolDrop) {
        WireReader r(m);
        r.get<int32_t>();
        const int32_t id = r.get<int32_t>();
        if (views_pool == id) views.clear(), views_pool = -1;
        pools.erase(id);
        pass_on(m);
      } else if (kind == kRelease) {
        pass_on(m);
        views.clear();
        pools.clear();
        model.reset();
        return;
      } else {
        fail("pipeline: unexpected message {} from rank {}", kind, rank - 1);
      }
    }
  }
};

}  // namespace

int run_pipeline_worker(Comm& comm) {
  Worker w{comm, comm.rank(), comm.size(), nullptr, {}, {}, -1};
  try {
    comm.send(0, hello_message());
    for (;;) {
      const std::vector<uint8_t> m = comm.recv(0);
      const int32_t kind = kind_of(m);
      if (kind == kShutdown) break;
      if (kind != kSetup) fail("pipeline: unexpected message {} from rank 0 while idle", kind);
      w.setup(m);
      w.serve();
    }
    comm.flush();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tqlm: error (rank %d, %s): %s\n", comm.rank(), host_name().c_str(), e.what());
    comm.abort(1);
  }
  return 0;
}

}  // namespace tqlm
