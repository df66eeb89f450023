// The one file of a compiled-mode build that holds the definitions: every file defines
// REQUESTS_ENGINE_COMPILED (CMakeLists.txt: quickstart_compiled), this one also
// REQUESTS_ENGINE_IMPLEMENTATION.
#define REQUESTS_ENGINE_IMPLEMENTATION
#include "requests_engine.hpp"
