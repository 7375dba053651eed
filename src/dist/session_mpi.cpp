// The MPI communicator (Open MPI 4.1 from Debian; any MPI-3 library works) and the WorldSession that starts
// it under mpirun.
//
// Nothing here blocks inside MPI: a blocking MPI_Recv or MPI_Send busy-waits at 100% of a core in Open MPI,
// which on a small machine takes the core from the engine. Sends are MPI_Isend into a queue of buffers that
// later calls (and poll(), between layers) test and retire; receives probe with MPI_Iprobe and sleep between
// probes, from 20 us doubling to 100 us, so an idle rank costs almost nothing and a hop adds at most ~0.1 ms.
#include <mpi.h>
#include <time.h>

#include <cstdio>
#include <deque>
#include <memory>

#include "core/error.h"
#include "dist/comm.h"
#include "dist/comm_impl.h"

namespace tqlm {

namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail("MPI: {} failed: {}", what, std::string(text, size_t(len)));
}

void nap(long ns) {
  timespec ts{0, ns};
  nanosleep(&ts, nullptr);
}

class MpiComm : public Comm {
 public:
  MpiComm() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    // Errors come back as codes (check() turns them into messages) instead of aborting inside MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  ~MpiComm() override = default;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override {
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    std::string lib(v, size_t(len));
    if (const size_t cut = lib.find_first_of(",\n"); cut != std::string::npos) lib.resize(cut);
    return fmt::format("{}, {} ranks", lib, size_);
  }

  void send(int to, std::vector<uint8_t> msg) override {
    if (to < 0 || to >= size_ || to == rank_) fail("MPI: cannot send to rank {}", to);
    if (msg.size() > size_t(INT32_MAX)) fail("MPI: a message of {} bytes is over 2 GiB", msg.size());
    retire();
    pending_.push_back({MPI_REQUEST_NULL, std::move(msg)});
    Pending& p = pending_.back();
    check(MPI_Isend(p.buf.data(), int(p.buf.size()), MPI_BYTE, to, 0, MPI_COMM_WORLD, &p.req), "MPI_Isend");
  }

  std::vector<uint8_t> recv(int from) override {
    if (from < 0 || from >= size_ || from == rank_) fail("MPI: cannot receive from rank {}", from);
    long wait_ns = 20'000;
    for (;;) {
      int flag = 0;
      MPI_Status st;
      check(MPI_Iprobe(from, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st), "MPI_Iprobe");
      retire();
      if (flag) {
        int count = 0;
        check(MPI_Get_count(&st, MPI_BYTE, &count), "MPI_Get_count");
        std::vector<uint8_t> msg(static_cast<size_t>(count));
        check(MPI_Recv(msg.data(), count, MPI_BYTE, from, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
              "MPI_Recv");
        return msg;
      }
      nap(wait_ns);
      wait_ns = std::min(wait_ns * 2, 100'000L);
    }
  }

  void flush() override {
    long wait_ns = 20'000;
    while (retire() > 0) {
      nap(wait_ns);
      wait_ns = std::min(wait_ns * 2, 100'000L);
    }
  }

  void poll() override { retire(); }

  [[noreturn]] void abort(int code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  struct Pending {
    MPI_Request req;
    std::vector<uint8_t> buf;
  };
  // Tests the queued sends (this also drives MPI's progress); drops the finished ones from the front.
  size_t retire() {
    for (Pending& p : pending_) {
      if (p.req == MPI_REQUEST_NULL) continue;
      int done = 0;
      check(MPI_Test(&p.req, &done, MPI_STATUS_IGNORE), "MPI_Test");
    }
    while (!pending_.empty() && pending_.front().req == MPI_REQUEST_NULL) pending_.pop_front();
    return pending_.size();
  }

  int rank_ = 0, size_ = 1;
  std::deque<Pending> pending_;  // in send order
};

std::unique_ptr<MpiComm>& mpi_comm() {
  static std::unique_ptr<MpiComm> c;
  return c;
}

}  // namespace

WorldSession::WorldSession(int* argc, char*** argv) {
  if (!launched_by_mpirun()) return;
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
    fail("MPI_Init_thread failed (is this process really started by mpirun?)");
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    fail("the MPI library does not support MPI_THREAD_SERIALIZED (it gave level {})", provided);
  }
  mpi_comm() = std::make_unique<MpiComm>();
  world_slot() = mpi_comm().get();
}

WorldSession::~WorldSession() {
  if (!mpi_comm()) return;
  try {
    mpi_comm()->flush();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tqlm: error: %s\n", e.what());
  }
  world_slot() = &single_process();
  mpi_comm().reset();
  MPI_Finalize();
}

}  // namespace tqlm
