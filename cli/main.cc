#include <iostream>

#include "cli/commands.h"

int main(int argc, char** argv) {
  palisade::cli::Io io{std::cout, std::cerr};
  return palisade::cli::runCommand(palisade::cli::rootCommand(), argc, argv, io);
}
