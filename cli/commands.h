#pragma once

// The palisadectl command tree. Thread: main thread only.

#include "cli/command.h"

namespace palisade::cli {

Command spiffeCommand();
Command authzCommand();
Command caCommand();
Command certCommand();
Command certsCommand();
Command svidCommand();
Command tokenCommand();
Command rootCommand();

}  // namespace palisade::cli
