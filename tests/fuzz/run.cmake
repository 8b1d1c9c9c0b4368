# Builds the decoder's libFuzzer target with clang (-fsanitize=fuzzer,address,undefined) and
# runs it for a bounded time. Any crash, sanitizer report or failed property fails the test.
# Inputs: SOURCE (the herd source tree), WORK (a scratch directory), SECONDS.
find_program(CLANGXX NAMES clang++-14 clang++ REQUIRED)
file(MAKE_DIRECTORY ${WORK}/corpus)
execute_process(
  COMMAND ${CLANGXX} -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
          -I${SOURCE}/include -I${SOURCE}/src
          ${SOURCE}/tests/fuzz/decoder_fuzz.cpp ${SOURCE}/src/detail/framing.cpp ${SOURCE}/src/codec.cpp
          ${SOURCE}/src/error.cpp -o ${WORK}/decoder_fuzz
  RESULT_VARIABLE built)
if(NOT built EQUAL 0)
  message(FATAL_ERROR "the fuzz target did not build")
endif()
execute_process(
  COMMAND ${WORK}/decoder_fuzz -max_total_time=${SECONDS} -max_len=4096 -seed=1 -print_final_stats=1
          ${WORK}/corpus ${SOURCE}/tests/fuzz/seeds
  RESULT_VARIABLE ran)
if(NOT ran EQUAL 0)
  message(FATAL_ERROR "the decoder fuzz target found a problem (exit ${ran}); the crashing input is in the working directory")
endif()
