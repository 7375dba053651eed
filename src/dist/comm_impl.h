// Internal to dist/: the slot holding the process's communicator (comm.cpp), set by a WorldSession.
#pragma once

#include "dist/comm.h"

namespace tqlm {

Comm*& world_slot();
Comm& single_process();  // what world() is outside a WorldSession

}  // namespace tqlm
