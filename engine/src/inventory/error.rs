//! Why an inventory operation was refused (expected outcomes, not bugs), and
//! [`ApplyError`], the one that is a bug or corruption: a record that does not fit.

use crate::ledger::LimitReached;
use crate::venue::SeatIndex;

/// Why a ticket could not be reissued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("no such ticket")]
    NotFound,
    #[error("give the ticket's order and the buyer's email")]
    ProofMissing,
    #[error("the order is cancelled")]
    Cancelled,
    #[error("the ticket has already been used to enter")]
    AlreadyAdmitted,
    #[error("the ticket has been reissued too many times")]
    VersionsExhausted,
}

/// Why a hold was refused. Nothing was held.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HoldRefused {
    #[error("seats not available: {seats:?}")]
    SeatsUnavailable { seats: Vec<SeatIndex> },
    #[error("not enough seats left that match the request")]
    NoSeatsMatch,
    #[error("sold out: {available} left")]
    SoldOut { available: u32 },
    #[error("customer seat limit reached: {} of {}", .0.current, .0.limit)]
    CustomerLimit(LimitReached),
    #[error("the event is not on sale now")]
    NotOnSale,
    #[error("{0}")]
    Invalid(&'static str),
    #[error("too many seats in one hold (at most {max})")]
    TooManySeats { max: u32 },
    #[error("category has no ticket type for this event")]
    CategoryNotOnSale,
    #[error("this section can issue no more holds")]
    HoldNumbersExhausted,
}

/// Why an operation on an existing hold failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    #[error("no such hold")]
    NotFound,
    #[error("the hold has ended (expired, released or confirmed)")]
    Ended,
    #[error("the hold belongs to another customer")]
    NotYours,
    #[error("the hold has expired")]
    Expired,
    #[error("the hold has reached its maximum lifetime")]
    LifetimeReached,
    /// Checked out and awaiting its payment: it is sold when the PSP authorizes it.
    #[error("the hold is being paid for; it is confirmed when the payment is authorized")]
    Paying,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("no such order")]
    NotFound,
    #[error("the order is already cancelled")]
    AlreadyCancelled,
}

/// A record that does not fit the state it is applied to: the log or snapshot is
/// corrupt or was written by a diverging build. Recovery refuses to go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("section {section}: {problem} (record {record})")]
pub struct ApplyError {
    pub section: u32,
    pub record: String,
    pub problem: String,
}
