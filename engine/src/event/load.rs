//! Event TOML loading (to be written).
#[derive(Debug)]
pub struct EventError;
