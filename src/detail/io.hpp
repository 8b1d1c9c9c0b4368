// Transitional: the helpers that lived here are split by concept into the headers below. Only
// src/channel.cpp and src/sync.cpp still include this one (they are being split themselves);
// once they include what they use, delete this file.
#pragma once

#include "descriptors.hpp"
#include "fork_lock.hpp"
#include "post_completion.hpp"
#include "reap.hpp"
#include "validate.hpp"
