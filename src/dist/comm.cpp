#include "dist/comm.h"

#include <cstdlib>

#include "core/error.h"
#include "dist/comm_impl.h"

namespace tqlm {

namespace {

class SingleProcess : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "single process"; }
  void send(int to, std::vector<uint8_t>) override { fail("single process: no rank {} to send to", to); }
  std::vector<uint8_t> recv(int from) override { fail("single process: no rank {} to receive from", from); }
  void flush() override {}
  void poll() override {}
  [[noreturn]] void abort(int code) override { std::_Exit(code); }
};

}  // namespace

Comm& single_process() {
  static SingleProcess single;
  return single;
}

Comm*& world_slot() {
  static Comm* current = &single_process();
  return current;
}

Comm& world() {
  return *world_slot();
}

bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

}  // namespace tqlm
