// kvtier-test-pki DIR: writes TestPki::standard_set() into DIR, for the Python security tests.
#include <cstdio>
#include <exception>

#include "test_pki.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: kvtier-test-pki DIR\n");
    return 2;
  }
  try {
    kvtier::testing::TestPki(argv[1]).standard_set();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
