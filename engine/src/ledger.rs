//! Seats per customer per event, shared by all section actors of the event.
//!
//! A customer's count covers seats held and seats bought, so the limit is a ticket
//! limit, not only a hold limit: buying eight and holding eight more is refused.
//! Released, expired and cancelled seats are given back.

use dashmap::DashMap;

use crate::ids::CustomerId;

pub struct CustomerLedger {
    /// 0 means no limit.
    seats_max: u32,
    seats: DashMap<CustomerId, u32>,
}

/// The customer would go over the event's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitReached {
    pub limit: u32,
    /// Seats the customer already has (held or bought).
    pub current: u32,
}

impl CustomerLedger {
    pub fn new(seats_max: u32) -> CustomerLedger {
        CustomerLedger { seats_max, seats: DashMap::new() }
    }

    pub fn reserve(&self, customer: &CustomerId, count: u32) -> Result<(), LimitReached> {
        if self.seats_max == 0 {
            return Ok(());
        }
        let mut current = self.seats.entry(customer.clone()).or_insert(0);
        if *current + count > self.seats_max {
            return Err(LimitReached { limit: self.seats_max, current: *current });
        }
        *current += count;
        Ok(())
    }

    /// Takes seats regardless of the limit: recovery restores what was granted,
    /// even if the limit has been lowered since.
    pub fn force_reserve(&self, customer: &CustomerId, count: u32) {
        if self.seats_max == 0 {
            return;
        }
        *self.seats.entry(customer.clone()).or_insert(0) += count;
    }

    pub fn give_back(&self, customer: &CustomerId, count: u32) {
        if self.seats_max == 0 {
            return;
        }
        // Remove emptied entries so the map holds only customers with seats.
        let emptied = {
            let mut current = self.seats.get_mut(customer).expect("give back for a customer with no seats");
            *current = current.checked_sub(count).expect("gave back more seats than reserved");
            *current == 0
        };
        if emptied {
            self.seats.remove_if(customer, |_, count| *count == 0);
        }
    }

    pub fn seats(&self, customer: &CustomerId) -> u32 {
        self.seats.get(customer).map_or(0, |count| *count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_counts_held_and_bought() {
        let ledger = CustomerLedger::new(4);
        let alice = CustomerId::new("alice");
        ledger.reserve(&alice, 3).unwrap();
        assert_eq!(ledger.reserve(&alice, 2), Err(LimitReached { limit: 4, current: 3 }));
        ledger.reserve(&alice, 1).unwrap();
        ledger.give_back(&alice, 4);
        assert_eq!(ledger.seats(&alice), 0);
        assert!(ledger.seats.is_empty());
        assert!(CustomerLedger::new(0).reserve(&alice, 1000).is_ok());
    }
}
