//! Venue TOML loading (to be written).
#[derive(Debug)]
pub struct VenueError;
