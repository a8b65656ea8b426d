//! Whole-system tests of hakken live in `tests/tests/`: many threads against real
//! section actors now, real server processes (killed and restarted) as the API lands.
