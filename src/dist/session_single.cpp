// WorldSession for a build without MPI: the process is always a single rank.
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "dist/comm.h"

namespace tqlm {

WorldSession::WorldSession(int*, char***) {
  const char* n = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (!n) n = std::getenv("PMI_SIZE");
  if (n && std::string(n) != "1")
    fail(
        "this tqlm was built without MPI (Open MPI was not found when it was built), but mpirun started {} "
        "ranks: install libopenmpi-dev and rebuild",
        n);
}

WorldSession::~WorldSession() = default;

}  // namespace tqlm
