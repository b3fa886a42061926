/*
 * Runs every CUnit suite. The Makefile writes suites.h from the file names:
 * tests/test_foo.c contributes SUITE(test_foo), and must define
 *     int test_foo_register(void);
 * which adds one suite (CU_add_suite + CU_add_test) and returns 0, or
 * non-zero if registration failed. Tests run from the tests/ directory, and
 * the environment variable PTORRENT names the built binary.
 */
#include <CUnit/Basic.h>
#include <stdio.h>

#define SUITE(name) int name##_register(void);
#include "suites.h"
#undef SUITE

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
#define SUITE(name)                                                                                \
    if (name##_register() != 0) {                                                                  \
        fprintf(stderr, "could not register %s\n", #name);                                        \
        CU_cleanup_registry();                                                                     \
        return 2;                                                                                  \
    }
#include "suites.h"
#undef SUITE
    CU_basic_set_mode(CU_BRM_NORMAL);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned suites_failed = CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return (failed || suites_failed) ? 1 : 0;
}
