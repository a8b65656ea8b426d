//! Whole-system tests of the engine live in `tests/tests/`: many threads against real
//! section actors, and a driver process (`hakken-crash-driver`) SIGKILLed mid-sale and
//! recovered. Tests of the real `hakken` server over HTTP are in `api/tests/`.
