// How the processes of one job talk: a small message interface with two implementations, a single process
// (the default; no MPI needed) and MPI (built when Open MPI is found, used when the binary runs under
// mpirun). The pipeline (model/pipeline.h) is its only user.
//
// Messages are byte strings between two ranks, delivered in the order they were sent. Waiting never spins a
// core: receives poll with back-off sleeps, sends return at once (MPI: non-blocking, completed in the
// background as later calls make progress).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tqlm {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string describe() const = 0;  // "single process", "Open MPI v4.1.4, 3 ranks", ...
  // Queues `msg` for rank `to` (never this rank) and returns; the bytes are copied.
  virtual void send(int to, std::vector<uint8_t> msg) = 0;
  // The next message from rank `from` (waits for it).
  virtual std::vector<uint8_t> recv(int from) = 0;
  // Completes every queued send (before the process ends).
  virtual void flush() = 0;
  // Moves queued sends along without waiting: MPI transfers a large message (rendezvous) only while both
  // sides call into it, so a rank that computes for long calls this now and then (between layers).
  virtual void poll() = 0;
  // Ends the whole job with `code` (every rank's process), after printing nothing more.
  [[noreturn]] virtual void abort(int code) = 0;
};

// The process's communicator: single-process until a WorldSession has started MPI.
Comm& world();

// Owns MPI for the life of main(): starts it when this process was launched by mpirun (Open MPI's or a PMI
// launcher's environment), with MPI_THREAD_SERIALIZED (one thread at a time calls MPI: the engine thread
// of `serve`, the main thread otherwise), and finalizes it at the end. Without mpirun, or in a build
// without MPI, world() stays single-process. A build without MPI launched by mpirun with more than one rank
// is an error.
class WorldSession {
 public:
  WorldSession(int* argc, char*** argv);
  ~WorldSession();
  WorldSession(const WorldSession&) = delete;
  WorldSession& operator=(const WorldSession&) = delete;
};

// True when the environment says an MPI launcher started this process.
bool launched_by_mpirun();

}  // namespace tqlm
