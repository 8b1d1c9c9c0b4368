#include <herd/command.hpp>  // first: the header stands alone

#include <doctest/doctest.h>

TEST_SUITE("command") {
  TEST_CASE("a command collects its program, arguments and settings") {
    auto cmd = herd::command("grep", "-c", "error")
                   .arg("app.log")
                   .env("LC_ALL", "C")
                   .env_remove("HOME")
                   .current_dir("/tmp")
                   .std_out(herd::stdio::pipe())
                   .std_err(herd::stdio::to_stdout())
                   .stop({true, SIGINT, std::chrono::milliseconds(250)});
    CHECK(cmd.program() == "grep");
    CHECK(cmd.arguments() == std::vector<std::string>{"-c", "error", "app.log"});
    CHECK(cmd.inherits_environment());
    REQUIRE(cmd.environment_changes().size() == 2);
    CHECK(cmd.environment_changes()[0].second == "C");
    CHECK_FALSE(cmd.environment_changes()[1].second.has_value());
    CHECK(cmd.working_directory() == "/tmp");
    CHECK(cmd.std_in().type() == herd::stdio::kind::unset);
    CHECK(cmd.std_out().type() == herd::stdio::kind::pipe);
    CHECK(cmd.std_err().type() == herd::stdio::kind::to_stdout);
    CHECK(cmd.stop().signal == SIGINT);
    CHECK(cmd.die_with_parent());
    CHECK_FALSE(cmd.keep_descendants());
  }

  TEST_CASE("a braced or a vector argument list works as well as separate arguments") {
    CHECK(herd::command("ls", std::vector<std::string>{"-l", "/"}).arguments().size() == 2);
    CHECK(herd::command("ls", {"-l", "/"}).arguments().size() == 2);
    auto stages = herd::command("a") | herd::command("b") | herd::command("c");
    REQUIRE(stages.size() == 3);
    CHECK(stages[2].program() == "c");
  }

  TEST_CASE("env_clear starts an empty environment and forgets earlier changes") {
    herd::command cmd("env");
    cmd.env("A", "1").env_clear().env("B", "2");
    CHECK_FALSE(cmd.inherits_environment());
    REQUIRE(cmd.environment_changes().size() == 1);
    CHECK(cmd.environment_changes()[0].first == "B");
  }

  TEST_CASE("to_string quotes what a shell would need quoted") {
    CHECK(herd::command("echo", "plain", "two words", "it's", "").to_string() ==
          "echo plain 'two words' 'it'\\''s' ''");
  }

  TEST_CASE("stdio values remember their payload") {
    CHECK(herd::stdio::file("/tmp/x", true).append());
    CHECK(herd::stdio::file("/tmp/x").path() == "/tmp/x");
    CHECK(herd::stdio::fd(7).descriptor() == 7);
    CHECK(herd::stdio::bytes("abc").data() == "abc");
  }
}
