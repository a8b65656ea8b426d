//! hakken-loadtest: generates on-sale arrival queues and replays them open-loop
//! against a hakken server over HTTP.
//!
//! Not built yet: it needs the HTTP API (issue 4) and is issue 5. Until then this
//! crate is empty on purpose, and no command pretends to load-test anything.
