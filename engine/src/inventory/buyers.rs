//! Buyers' personal data at the section: erasing it (crypto-shredding) and replacing
//! its sealed form after a key rotation.
//!
//! The engine holds a buyer's name and email only as the API sealed them (opaque
//! bytes, [`Buyer::sealed`](super::Buyer::sealed)): the blob carries the only wrapped
//! copy of its own data key, so once the store no longer has the blob, nothing it
//! holds opens the data. Erasing keeps the order, its seats, tickets and the audit
//! chain exactly as they were; only `sealed` becomes empty. The actor then snapshots
//! the section at once and the store compacts its log, so the older records that
//! carried the blob leave the disk too (`actor.rs`, `store/writer.rs`).

use std::sync::Arc;

use crate::clock::Millis;
use crate::ids::OrderId;
use crate::lockfree::OrderNumber;
use crate::wal::Record;

use super::{ApplyError, Inventory, Order, OrderError};

/// One order's buyer data, sealed afresh by the caller: replace `was` by `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reseal {
    pub order: OrderId,
    pub was: Arc<[u8]>,
    pub now: Vec<u8>,
}

impl Inventory {
    /// Erases the personal data of order `id`'s buyer. Erasing an erased buyer
    /// changes nothing and answers the same (an admin's retry is not an error).
    pub fn erase_buyer(&mut self, id: OrderId, now: Millis) -> Result<Order, OrderError> {
        let order = self.order(id).ok_or(OrderError::NotFound)?;
        if !order.buyer.is_erased() {
            self.commit(Record::BuyerErased { order: id.number.0, at_ms: now.0 });
        }
        let order = &self.orders[id.number.0 as usize];
        debug_assert!(order.buyer.is_erased(), "erased and kept erased");
        Ok(order.clone())
    }

    pub(super) fn apply_buyer_erased(&mut self, number: OrderNumber, _at_ms: u64) -> Result<(), ApplyError> {
        let what = || format!("order {} buyer erased", number.0);
        let order = self.orders.get(number.0 as usize).ok_or_else(|| self.apply_error(&what(), "no such order"))?;
        if order.buyer.is_erased() {
            return Err(self.apply_error(&what(), "the buyer was already erased"));
        }
        let erased = order.buyer.erased();
        self.orders[number.0 as usize].buyer = Arc::new(erased);
        Ok(())
    }

    /// Replaces the sealed buyer data of each `(order, was, now)` whose data is still
    /// `was` (an order erased or resealed since the caller read it is left alone, as
    /// are unknown orders). Returns how many were replaced.
    pub fn reseal_buyers(&mut self, reseals: &[Reseal], now: Millis) -> usize {
        let mut replaced = 0;
        for reseal in reseals {
            let current = self.order(reseal.order).map(|order| &order.buyer.sealed);
            if reseal.now.is_empty() || current.is_none_or(|sealed| sealed.is_empty() || *sealed != reseal.was) {
                continue;
            }
            let record =
                Record::BuyerResealed { order: reseal.order.number.0, sealed: reseal.now.clone(), at_ms: now.0 };
            self.commit(record);
            replaced += 1;
        }
        replaced
    }

    pub(super) fn apply_buyer_resealed(&mut self, number: OrderNumber, sealed: &[u8]) -> Result<(), ApplyError> {
        let what = || format!("order {} buyer resealed", number.0);
        let order = self.orders.get(number.0 as usize).ok_or_else(|| self.apply_error(&what(), "no such order"))?;
        if order.buyer.is_erased() || sealed.is_empty() {
            return Err(self.apply_error(&what(), "an erased buyer is never resealed"));
        }
        let mut buyer = (*order.buyer).clone();
        buyer.sealed = Arc::from(sealed);
        self.orders[number.0 as usize].buyer = Arc::new(buyer);
        Ok(())
    }
}
