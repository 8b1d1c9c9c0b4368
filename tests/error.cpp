#include <herd/error.hpp>  // first: the header stands alone
#include <herd/exit_status.hpp>

#include <doctest/doctest.h>

#include <csignal>
#include <cerrno>

TEST_SUITE("error") {
  TEST_CASE("errc values convert to error codes of the herd category with their own messages") {
    herd::error_code ec = herd::errc::program_not_found;
    CHECK(ec.category().name() == std::string("herd"));
    CHECK(ec.message() == "program not found");
    CHECK(herd::error_code(herd::errc::timed_out).message() == "timed out");
    CHECK(herd::error_code(herd::errc::timed_out) != herd::error_code(herd::errc::closed));
    CHECK(herd::error_category().message(9999).find("9999") != std::string::npos);
  }

  TEST_CASE("a system_error made from an errc carries the context and the message") {
    boost::system::system_error e(herd::errc::bad_working_directory, "herd: cannot start 'ls'");
    CHECK(std::string(e.what()).find("cannot start 'ls'") != std::string::npos);
    CHECK(std::string(e.what()).find("working directory cannot be entered") != std::string::npos);
  }
}

TEST_SUITE("exit_status") {
  TEST_CASE("exited and signaled statuses say what happened") {
    auto ok = herd::exit_status::exited(0);
    CHECK(ok.exited());
    CHECK(ok.success());
    CHECK(ok.has_ended());
    CHECK(ok.to_string() == "exited with code 0");

    auto failed = herd::exit_status::exited(3);
    CHECK_FALSE(failed.success());
    CHECK(failed.code() == 3);
    CHECK(failed.python_exitcode() == 3);

    auto killed = herd::exit_status::signaled(SIGKILL, false, herd::exit_reason::timed_out);
    CHECK(killed.signaled());
    CHECK(killed.signal() == SIGKILL);
    CHECK(killed.python_exitcode() == -SIGKILL);
    CHECK(killed.to_string() == "killed by signal 9 (SIGKILL), stopped by herd: timed out");
  }

  TEST_CASE("a default status has not ended and a spawn failure carries its errno") {
    CHECK_FALSE(herd::exit_status().has_ended());
    auto failed = herd::exit_status::spawn_failure(ENOENT);
    CHECK(failed.has_ended());
    CHECK_FALSE(failed.success());
    CHECK(failed.reason() == herd::exit_reason::spawn_failed);
    CHECK(failed.spawn_errno() == ENOENT);
    CHECK(failed.to_string().find("No such file") != std::string::npos);
    CHECK(failed.with_reason(herd::exit_reason::cancelled).reason() == herd::exit_reason::spawn_failed);
  }
}
