// The translation unit that owns the tests' precompiled header (tests/CMakeLists.txt,
// ZIMAGE_TEST_PCH): it compiles the header once; every test executable reuses it.
