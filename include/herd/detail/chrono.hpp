// The duration, time point and clock types herd's interfaces use. libstdc++'s <chrono> also
// brings C++20's calendar, time zones and their stream operators, a quarter of a second of
// parsing for every includer; its <bits/chrono.h> holds just durations, time points, the clocks
// and the literals. Other standard libraries get <chrono>. Code of yours that uses the calendar
// includes <chrono> itself, as it should.
#pragma once

#include <version>  // says which standard library this is

#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#else
#include <herd/detail/chrono.hpp>
#endif
