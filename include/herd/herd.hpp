/// @file herd/herd.hpp
/// Everything herd offers, in one include.
#pragma once

#include <herd/channel_options.hpp>
#include <herd/child.hpp>
#include <herd/codec.hpp>
#include <herd/command.hpp>
#include <herd/config.hpp>
#include <herd/error.hpp>
#include <herd/exit_status.hpp>
#include <herd/pipe.hpp>
#include <herd/pipe_stream.hpp>
#include <herd/pipeline.hpp>
#include <herd/process.hpp>
#include <herd/process_options.hpp>
#include <herd/queue.hpp>
#include <herd/run.hpp>
#include <herd/scope.hpp>
#include <herd/pool.hpp>
#include <herd/shared.hpp>
#include <herd/shutdown.hpp>
#include <herd/start_method.hpp>
#include <herd/stdio.hpp>
#include <herd/stop_policy.hpp>
#include <herd/supervisor.hpp>
#include <herd/sync.hpp>
#include <herd/with_timeout.hpp>
