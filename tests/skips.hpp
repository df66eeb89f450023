// Tests that need something a clone may not have beside it (../shared/conformance, a reference
// implementation from Debian's packages) run where it is there and are skipped, by name, where not.
#pragma once

#include <string>

/// True when `available`. Otherwise, under CI=true (where everything is laid beside the clone and
/// installed) the running test case fails with `reason`; elsewhere it is recorded as skipped,
/// named with `reason` at once and again in the summary at the end of the run, and this returns
/// false so the test can return: `if (!available_or_skip(found, "...")) return;`.
bool available_or_skip(bool available, const std::string& reason);
