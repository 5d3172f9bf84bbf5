#pragma once

// The palisadectl command tree. Thread: main thread only.

#include "cli/command.h"

namespace palisade::cli {

Command spiffeCommand();
Command authzCommand();
Command rootCommand();

}  // namespace palisade::cli
