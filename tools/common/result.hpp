// The outcome of a set-up step in the codec tools (open a file, parse an option, read a
// description): a value, or an error message that names what was wrong. Any thread.
#pragma once

#include "common/result.hpp"

namespace kwik::tools {

using kwik::error;
using kwik::result;

} // namespace kwik::tools
