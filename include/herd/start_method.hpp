/// @file herd/start_method.hpp
/// How herd starts a child process: Python's start methods (`multiprocessing.set_start_method`),
/// and `herd::init`, the line at the top of `main` that the spawn start method needs.
#pragma once

namespace herd {

/// - `fork`: a copy of the calling process (fast for a small parent; its closures travel by the
///   copy of memory; the loop's thread is held for as long as the copy takes, which grows with
///   the memory the parent has touched).
/// - `spawn`: this program run again (`/proc/self/exe`), taking its role in `herd::init` before
///   `main` does anything else: a clean memory, no inherited threads or locks, and a start cost
///   that does not grow with the parent. What it runs travels as code addresses checked against
///   the binary's build id.
/// - `forkserver`: a small server — this program spawned once, single-threaded, serving in
///   `herd::init` — forks each new process on request; the new process is still the caller's
///   child. Starts as cheaply as spawn for the caller, and faster for the child (no program
///   start); what travels is as with spawn.
enum class start_method { fork, forkserver, spawn };

/// The start method of `herd::start` and of pools when their options name none (Python's
/// `set_start_method`). Until it is called, `herd::start` forks, and pools use the forkserver if
/// main called `herd::init` (and their initializer can travel), else fork. `forkserver` starts
/// the forkserver now.
void set_start_method(start_method method);
/// What set_start_method chose; fork if it was never called.
start_method get_start_method() noexcept;

/// Call first thing in `main`. In the application it records that it was called and returns at
/// once; in a process herd spawned (start_method::spawn) it runs that process's role and never
/// returns — the C++ `if __name__ == "__main__":`. Spawn refuses to start without it.
void init(int argc, char** argv);

}  // namespace herd
